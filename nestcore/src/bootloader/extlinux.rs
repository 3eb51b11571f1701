//! extlinux / syslinux configurations (`extlinux.conf`, `syslinux.cfg`): stanzas start at
//! `label`; the kernel is on a `kernel` or `linux` line, its arguments on an `append` line.
//! Keywords are case-insensitive. `default LABEL` (or `menu default` inside a stanza) picks the
//! default entry.
//!
//! grubby's behaviour is kept: an `--args root=/dev/...` that replaces nothing goes to a `root`
//! line of the stanza; a stanza without an `append` line gets one after its last non-empty line;
//! an `append` line left without arguments is removed.

use super::{edit_region, join_lines, keyword_line, split_lines, ArgsEdit, Line, Selection};
use crate::cmdline::Cmdline;
use crate::error::{Error, Result};

/// One `label` stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The label (the rest of the `label` line).
    pub title: String,
    /// Line index of the `label` line.
    pub first_line: usize,
    /// One past the last line of the stanza.
    pub end_line: usize,
    /// The kernel path (`kernel` or `linux` line), if any.
    pub kernel: Option<String>,
    /// Line index of the `append` line, if any: the last one, which syslinux keeps (a later
    /// `append` replaces an earlier one).
    pub append_line: Option<usize>,
    /// Line index of the `root` line, if any.
    pub root_line: Option<usize>,
    /// Whether the stanza says `menu default`.
    pub menu_default: bool,
}

/// A parsed extlinux configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The stanzas.
    pub entries: Vec<Entry>,
    /// The default entry, when one can be found (`default` names a label, or `menu default`);
    /// without a `default` line the first entry.
    pub default: Option<usize>,
}

/// Parses an extlinux configuration. Never fails.
pub fn parse(text: &str) -> Config {
    let lines = split_lines(text);
    let mut entries: Vec<Entry> = Vec::new();
    let mut default_label: Option<String> = None;
    for (i, l) in lines.iter().enumerate() {
        let Some(k) = keyword_line(&l.text, false) else {
            continue;
        };
        let kw = k.keyword.to_ascii_lowercase();
        if kw == "label" {
            if let Some(last) = entries.last_mut() {
                last.end_line = i;
            }
            entries.push(Entry {
                title: k.rest.trim_end().to_string(),
                first_line: i,
                end_line: lines.len(),
                kernel: None,
                append_line: None,
                root_line: None,
                menu_default: false,
            });
            continue;
        }
        match entries.last_mut() {
            None if kw == "default" => default_label = Some(k.rest.trim_end().to_string()),
            None => {}
            Some(e) => match kw.as_str() {
                "kernel" | "linux" if e.kernel.is_none() => {
                    e.kernel = Some(k.rest.split([' ', '\t']).next().unwrap_or("").to_string())
                }
                "append" => e.append_line = Some(i),
                "root" if e.root_line.is_none() => e.root_line = Some(i),
                "menu" if k.rest.trim().eq_ignore_ascii_case("default") => e.menu_default = true,
                _ => {}
            },
        }
    }
    let default = match (&default_label, entries.iter().position(|e| e.menu_default)) {
        (_, Some(i)) => Some(i),
        (Some(d), None) => entries.iter().position(|e| &e.title == d),
        (None, None) => Some(0),
    };
    Config { entries, default }
}

fn pick(cfg: &Config, sel: &Selection) -> Vec<usize> {
    sel.pick(
        cfg.entries.len(),
        cfg.default,
        |i| Some(cfg.entries[i].title.clone()),
        |i| cfg.entries[i].kernel.clone(),
    )
    .into_iter()
    .filter(|i| !sel.only_linux || cfg.entries[*i].kernel.is_some())
    .collect()
}

/// The effective command line of each selected entry (its `append` line).
pub fn cmdlines(text: &str, sel: &Selection) -> Vec<(String, Cmdline)> {
    let cfg = parse(text);
    let lines = split_lines(text);
    pick(&cfg, sel)
        .into_iter()
        .map(|i| {
            let e = &cfg.entries[i];
            let args = e
                .append_line
                .and_then(|l| keyword_line(&lines[l].text, false).map(|k| k.rest.to_string()))
                .unwrap_or_default();
            (e.title.clone(), Cmdline::parse(&args))
        })
        .collect()
}

/// The indent of a stanza's last non-empty line and the index to insert after (grubby's
/// `addLine`): the label line gets no indent copied.
/// Inserts `line` after line `after`, giving that line a line end first if it had none (the
/// last line of a file without a final newline), so that the two stay two lines.
fn insert_after(lines: &mut Vec<Line>, after: usize, line: Line) {
    if let Some(prev) = lines.get_mut(after) {
        if prev.eol.is_empty() {
            prev.eol = line.eol.clone();
        }
    }
    lines.insert(after + 1, line);
}

fn insertion_point(lines: &[Line], first: usize, end: usize) -> (usize, String) {
    let mut prev = first;
    for (i, l) in lines.iter().enumerate().take(end).skip(first) {
        if keyword_line(&l.text, false).is_some() {
            prev = i;
        }
    }
    let indent = if prev == first {
        String::new()
    } else {
        keyword_line(&lines[prev].text, false)
            .map(|k| k.indent.to_string())
            .unwrap_or_default()
    };
    (prev, indent)
}

/// Edits the `append` lines of the selected entries.
///
/// # Errors
/// [`Error::Parse`] for a selected stanza with more than one `append` line; else as
/// [`ArgsEdit::apply_diverting`], with the entry's label.
pub fn edit(text: &str, sel: &Selection, edit: &ArgsEdit) -> Result<String> {
    let cfg = parse(text);
    let mut lines = split_lines(text);
    let eol = lines
        .iter()
        .find(|l| !l.eol.is_empty())
        .map(|l| l.eol.clone())
        .unwrap_or_else(|| "\n".into());
    // From the last entry to the first, so inserted and removed lines do not move the others.
    let mut picked = pick(&cfg, sel);
    picked.sort_unstable();
    for i in picked.into_iter().rev() {
        let e = &cfg.entries[i];
        // syslinux boots with the last append line of a stanza, grubby edits the first: with
        // several, no edit is both what boots and idempotent.
        let appends: Vec<usize> = (e.first_line..e.end_line)
            .filter(|&li| {
                keyword_line(&lines[li].text, false).is_some_and(|k| k.keyword.eq_ignore_ascii_case("append"))
            })
            .collect();
        if appends.len() > 1 {
            let at: Vec<String> = appends.iter().map(|li| (li + 1).to_string()).collect();
            return Err(Error::parse(
                format!("extlinux entry {:?}", e.title),
                format!(
                    "{} append lines (lines {}): syslinux uses the last, grubby edits the first; merge them into one",
                    appends.len(),
                    at.join(", ")
                ),
            ));
        }
        let mut root_value: Option<String> = None;
        // The append line split after its keyword; the region keeps the separator.
        let append = e.append_line.and_then(|li| {
            keyword_line(&lines[li].text, false).map(|k| {
                let kw_end = k.indent.len() + k.keyword.len();
                (
                    li,
                    lines[li].text[..kw_end].to_string(),
                    lines[li].text[kw_end..].to_string(),
                )
            })
        });
        let region = append.as_ref().map(|a| a.2.clone()).unwrap_or_default();
        let region = edit_region(&region, edit, |name, raw| {
            if name == "root" && raw.starts_with("root=/dev/") {
                root_value = Some(raw["root=".len()..].to_string());
                true
            } else {
                false
            }
        })
        .map_err(|err| super::grub_legacy::in_entry(err, &e.title))?;
        let has_args = !Cmdline::parse(&region).params.is_empty() || region.contains("--");
        let mut end = e.end_line;
        let mut append_li = append.as_ref().map(|a| a.0);
        if root_value.is_none() && edit.removes_with_prefix("root=") {
            if let Some(rl) = e.root_line {
                lines.remove(rl);
                end -= 1;
                append_li = append_li.map(|li| if rl < li { li - 1 } else { li });
            }
        }
        let (after, indent) = insertion_point(&lines, e.first_line, end);
        if let Some(v) = &root_value {
            match e.root_line {
                Some(rl) => {
                    if let Some(k) = keyword_line(&lines[rl].text, false) {
                        lines[rl].text = format!("{}{}{}{}", k.indent, k.keyword, k.sep, v);
                    }
                }
                None => insert_after(
                    &mut lines,
                    after,
                    Line {
                        text: format!("{indent}root {v}"),
                        eol: eol.clone(),
                    },
                ),
            }
        }
        match (append_li, append) {
            (Some(li), Some((_, kw, _))) => {
                if has_args {
                    lines[li].text = format!("{kw}{region}");
                } else {
                    lines.remove(li);
                }
            }
            // grubby adds the append line before a root line it adds.
            _ if has_args => insert_after(
                &mut lines,
                after,
                Line {
                    text: format!("{indent}append{region}"),
                    eol: eol.clone(),
                },
            ),
            _ => {}
        }
    }
    Ok(join_lines(&lines))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::Target;
    use super::*;

    /// A CRLF file whose last line has no line end: the appended `append` line and the end of
    /// that last line use the file's CRLF (fuzz/regressions/extlinux/crlf-ends-an-unterminated-
    /// last-line: the target's oracle had called the `\r` a change; syslinux reads a CR before
    /// the line end as white space).
    #[test]
    fn an_unterminated_last_line_of_a_crlf_file_ends_in_crlf() {
        let sel = Selection {
            target: Target::All,
            boot_prefix: None,
            only_linux: false,
        };
        let out = edit(
            "label l\r\n  kernel /v",
            &sel,
            &ArgsEdit::set("kvm-amd.nested", "1"),
        )
        .unwrap();
        assert_eq!(out, "label l\r\n  kernel /v\r\n  append kvm-amd.nested=1\r\n");
    }

    /// `append\r` (a CRLF file's append line with no value) is an append line: syslinux's
    /// looking_at ends a keyword at any byte up to ' ', CR included, so the arguments go on it,
    /// not on a second append line (fuzz/regressions/extlinux/append-with-only-a-cr: the
    /// target's oracle had split keys at space and tab only).
    #[test]
    fn an_append_line_ending_in_cr_is_edited_in_place() {
        let sel = Selection {
            target: Target::All,
            boot_prefix: None,
            only_linux: false,
        };
        let add = ArgsEdit {
            add: Some("b=1".into()),
            ..ArgsEdit::default()
        };
        let out = edit("label l\n  linux /v\nappend\r\n", &sel, &add).unwrap();
        assert_eq!(out, "label l\n  linux /v\nappend b=1\r\n");
    }

    const CONF: &str = "default B\nLABEL A\n  KERNEL /vmlinuz-a\n  APPEND ro quiet\nlabel B\n  linux /vmlinuz-b\nlabel DOS\n  com32 chain.c32\n  append hd0 1\n";

    #[test]
    fn default_by_label_and_add_append_line() {
        let c = parse(CONF);
        assert_eq!(c.default, Some(1));
        let sel = Selection {
            target: Target::Default,
            boot_prefix: None,
            only_linux: true,
        };
        let out = edit(CONF, &sel, &ArgsEdit::set("kvm-amd.nested", "1")).unwrap();
        assert_eq!(
            out,
            CONF.replace(
                "linux /vmlinuz-b\n",
                "linux /vmlinuz-b\n  append kvm-amd.nested=1\n"
            )
        );
    }

    /// Found by the extlinux fuzz target (fuzz/regressions/extlinux/last-line-without-newline):
    /// a line inserted after a last line without a line end was glued to it
    /// (`linux /vmlinuz-b  append kvm-amd.nested=1`: the kernel path line gained words).
    #[test]
    fn lines_inserted_after_an_unterminated_last_line_stay_lines() {
        let t = "label B\n  linux /vmlinuz-b";
        let out = edit(t, &Selection::all_linux(), &ArgsEdit::set("kvm-amd.nested", "1")).unwrap();
        assert_eq!(out, "label B\n  linux /vmlinuz-b\n  append kvm-amd.nested=1\n");
        let add_root = ArgsEdit {
            add: Some("root=/dev/sda1 quiet".into()),
            ..ArgsEdit::default()
        };
        let out = edit(t, &Selection::all_linux(), &add_root).unwrap();
        let c = parse(&out);
        assert_eq!(c.entries[0].kernel.as_deref(), Some("/vmlinuz-b"), "{out:?}");
        assert!(
            out.lines()
                .all(|l| l.split_whitespace().count() <= 2 || l.trim_start().starts_with("append")),
            "{out:?}"
        );
        assert_eq!(
            cmdlines(&out, &Selection::all_linux())[0].1.get("quiet"),
            Some(None)
        );
    }

    /// syslinux keeps the last `append` line of a stanza (readconfig.c: a later `append`
    /// replaces `ld.append`), grubby edits the first. With two, the edit was not what boots,
    /// and not idempotent: an emptied first line was removed, so the second took its place and
    /// the next run edited that (fuzz/regressions/extlinux/two-append-lines-in-a-stanza). Such
    /// a stanza is now refused; the others are still edited.
    #[test]
    fn a_stanza_with_two_append_lines_is_refused() {
        let t = "label a\n  linux /v\n  append ro\n  append quiet\nlabel b\n  linux /w\n  append x\n";
        let c = cmdlines(t, &Selection::all_linux());
        assert_eq!(c[0].1.get("quiet"), Some(None), "{c:?}");
        assert_eq!(c[0].1.get("ro"), None, "{c:?}");
        for e in [
            ArgsEdit::set("kvm-amd.nested", "1"),
            ArgsEdit::unset("ro"),
            ArgsEdit::default(),
        ] {
            let err = edit(t, &Selection::all_linux(), &e).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Parse, "{err}");
            assert!(err.to_string().contains("append lines"), "{err}");
        }
        let only_b = Selection {
            target: Target::Indexes(vec![1]),
            boot_prefix: None,
            only_linux: true,
        };
        let out = edit(t, &only_b, &ArgsEdit::set("kvm-amd.nested", "1")).unwrap();
        assert_eq!(out, t.replace("append x", "append x kvm-amd.nested=1"));
    }

    #[test]
    fn all_linux_skips_chainloaders() {
        let out = edit(CONF, &Selection::all_linux(), &ArgsEdit::unset("quiet")).unwrap();
        assert_eq!(out, CONF.replace("APPEND ro quiet", "APPEND ro"));
        let out = edit(CONF, &Selection::all_linux(), &ArgsEdit::unset("ro")).unwrap();
        let out = edit(&out, &Selection::all_linux(), &ArgsEdit::unset("quiet")).unwrap();
        assert_eq!(out, CONF.replace("  APPEND ro quiet\n", ""));
    }
}
