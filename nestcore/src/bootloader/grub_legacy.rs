//! GRUB legacy (0.97) `grub.conf` / `menu.lst`: stanzas start at `title`; arguments live on
//! `kernel /vmlinuz-VER ARGS` lines; `default=N` picks the entry (CentOS 6).

use super::{edit_region, join_lines, keyword_line, split_lines, ArgsEdit, Selection};
use crate::cmdline::Cmdline;
use crate::error::Result;

/// One `title` stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The title as written (after `title`).
    pub title: String,
    /// Line index (0-based) of the `title` line.
    pub first_line: usize,
    /// One past the last line of the stanza.
    pub end_line: usize,
    /// Line index of the first `kernel` line, if any.
    pub kernel_line: Option<usize>,
    /// The kernel path as written, root specifier (`(hd0,0)`) removed.
    pub kernel: Option<String>,
    /// The arguments after the kernel path.
    pub args: Option<String>,
}

/// A parsed grub.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The stanzas, in order.
    pub entries: Vec<Entry>,
    /// The default entry (`default=N`; 0 when absent or not a number, as GRUB does).
    pub default: usize,
}

/// Removes a GRUB root specifier such as `(hd0,1)` from a path.
pub(crate) fn strip_rootspec(path: &str) -> &str {
    if path.starts_with('(') {
        if let Some(i) = path.find(')') {
            return &path[i + 1..];
        }
    }
    path
}

/// Splits `rest` of a kernel line into the path and the argument region (with its leading space).
fn path_and_args(rest: &str) -> (&str, &str) {
    let end = rest.find([' ', '\t']).unwrap_or(rest.len());
    (&rest[..end], &rest[end..])
}

/// Parses a grub.conf. Never fails: unknown lines are kept as they are.
pub fn parse(text: &str) -> Config {
    let lines = split_lines(text);
    let mut entries: Vec<Entry> = Vec::new();
    let mut default = 0;
    for (i, l) in lines.iter().enumerate() {
        let Some(k) = keyword_line(&l.text, true) else {
            continue;
        };
        let kw = k.keyword.to_ascii_lowercase();
        if kw == "title" {
            if let Some(last) = entries.last_mut() {
                last.end_line = i;
            }
            entries.push(Entry {
                title: k.rest.trim_end().to_string(),
                first_line: i,
                end_line: lines.len(),
                kernel_line: None,
                kernel: None,
                args: None,
            });
            continue;
        }
        match entries.last_mut() {
            None if kw == "default" => default = k.rest.trim().parse().unwrap_or(0),
            Some(e) if kw == "kernel" && e.kernel_line.is_none() => {
                let (path, args) = path_and_args(k.rest);
                e.kernel_line = Some(i);
                e.kernel = Some(strip_rootspec(path).to_string());
                e.args = Some(args.to_string());
            }
            _ => {}
        }
    }
    Config { entries, default }
}

/// The effective command line of each selected entry.
pub fn cmdlines(text: &str, sel: &Selection) -> Vec<(String, Cmdline)> {
    let cfg = parse(text);
    pick(&cfg, sel)
        .into_iter()
        .filter_map(|i| {
            let e = &cfg.entries[i];
            e.args.as_ref().map(|a| (e.title.clone(), Cmdline::parse(a)))
        })
        .collect()
}

fn pick(cfg: &Config, sel: &Selection) -> Vec<usize> {
    sel.pick(
        cfg.entries.len(),
        Some(cfg.default),
        |i| Some(cfg.entries[i].title.clone()),
        |i| cfg.entries[i].kernel.clone(),
    )
}

/// Edits the `kernel` lines of the selected entries; entries without a `kernel` line (chain
/// loaders) are left alone, as grubby does.
///
/// # Errors
/// As [`ArgsEdit::apply_diverting`], with the entry's title.
pub fn edit(text: &str, sel: &Selection, edit: &ArgsEdit) -> Result<String> {
    let cfg = parse(text);
    let mut lines = split_lines(text);
    for i in pick(&cfg, sel) {
        let Some(li) = cfg.entries[i].kernel_line else {
            continue;
        };
        let new = {
            let Some(k) = keyword_line(&lines[li].text, true) else {
                continue;
            };
            let (path, region) = path_and_args(k.rest);
            if path.is_empty() {
                continue; // `kernel` without a path: nothing safe to do
            }
            let region =
                edit_region(region, edit, |_, _| false).map_err(|e| in_entry(e, &cfg.entries[i].title))?;
            format!("{}{}{}{}{}", k.indent, k.keyword, k.sep, path, region)
        };
        lines[li].text = new;
    }
    Ok(join_lines(&lines))
}

/// Names the entry in an error.
pub(crate) fn in_entry(e: crate::Error, title: &str) -> crate::Error {
    match e {
        crate::Error::Parse { what, reason } => crate::Error::Parse {
            what: format!("{what} of entry {title:?}"),
            reason,
        },
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::Target;
    use super::*;

    const CONF: &str = "default=1\ntimeout=5\ntitle A\n\troot (hd0,0)\n\tkernel (hd0,0)/vmlinuz-a ro root=/dev/sda1\n\tinitrd /initrd-a\ntitle B\n\tkernel /vmlinuz-b ro\ntitle DOS\n\tchainloader +1\n";

    #[test]
    fn parses_entries_and_default() {
        let c = parse(CONF);
        assert_eq!(c.default, 1);
        assert_eq!(c.entries.len(), 3);
        assert_eq!(c.entries[0].kernel.as_deref(), Some("/vmlinuz-a"));
        assert_eq!(c.entries[2].kernel, None);
    }

    #[test]
    fn edits_default_only() {
        let sel = Selection {
            target: Target::Default,
            boot_prefix: None,
            only_linux: true,
        };
        let out = edit(CONF, &sel, &ArgsEdit::set("kvm-intel.nested", "1")).unwrap();
        assert_eq!(
            out,
            CONF.replace("vmlinuz-b ro\n", "vmlinuz-b ro kvm-intel.nested=1\n")
        );
        let cl = cmdlines(&out, &sel);
        assert_eq!(cl[0].1.get("kvm_intel.nested"), Some(Some("1")));
    }

    #[test]
    fn kernel_without_args_and_malformed() {
        let t = "title X\nkernel /vmlinuz\ntitle\nkernel\n";
        let out = edit(t, &Selection::all_linux(), &ArgsEdit::set("a", "1")).unwrap();
        assert_eq!(out, "title X\nkernel /vmlinuz a=1\ntitle\nkernel\n");
        let bad = "title X\nkernel /vmlinuz a=\"x\n";
        assert!(edit(bad, &Selection::all_linux(), &ArgsEdit::set("b", "1")).is_err());
    }
}
