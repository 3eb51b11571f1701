//! Boot Loader Specification entries (`/boot/loader/entries/*.conf`): `key value` lines; the
//! kernel's arguments are on `options` lines (several are joined). RHEL 8 entries may say
//! `options $kernelopts`, which GRUB resolves from `grubenv` (`kernelopts=...`): nestcore then
//! edits grubenv, keeping it exactly as long as it was (a 1024-byte block padded with `#`).

use super::{edit_region, join_lines, keyword_line, split_lines, ArgsEdit, KwLine, Selection, Target};
use crate::cmdline::Cmdline;
use crate::error::{Error, Result};

/// The grubenv variable RHEL 8 entries refer to.
pub const KERNELOPTS: &str = "kernelopts";

/// What an entry says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// `title`.
    pub title: Option<String>,
    /// `linux` (the kernel path, relative to the boot file system).
    pub linux: Option<String>,
    /// `options`, joined with spaces when there are several lines.
    pub options: Option<String>,
}

impl Entry {
    /// Whether the options refer to grubenv's `$kernelopts`.
    pub fn uses_kernelopts(&self) -> bool {
        self.options.as_deref().is_some_and(|o| {
            Cmdline::parse(o)
                .params
                .iter()
                .any(|p| p.name == "$kernelopts" || p.name == "${kernelopts}")
        })
    }
}

/// A line's key and the rest, as systemd-boot reads an entry: white space at the end of the
/// line (CR included, for files with DOS line ends) is stripped first, then the key ends at a
/// space or tab; so `options\r\r` is an `options` line with no value.
fn key_line(text: &str) -> Option<KwLine<'_>> {
    keyword_line(text.trim_end_matches([' ', '\t', '\r']), false)
}

/// Parses an entry. Never fails.
pub fn parse(text: &str) -> Entry {
    let mut e = Entry::default();
    for l in split_lines(text) {
        let Some(k) = key_line(&l.text) else {
            continue;
        };
        // key_line stripped the white space systemd-boot strips (space, tab, CR); str's
        // trim_end would also take Unicode spaces such as U+00A0, which are text to
        // systemd-boot and to nestcore's command-line parser.
        let v = k.rest.to_string();
        match k.keyword {
            "title" => e.title = Some(v),
            "linux" => e.linux = Some(v),
            "options" => {
                e.options = Some(match e.options.take() {
                    Some(prev) => format!("{prev} {v}"),
                    None => v,
                })
            }
            _ => {}
        }
    }
    e
}

/// Edits the `options` line of an entry (the first one; later ones are only edited to remove
/// parameters), adding an `options` line when the entry has none and the edit adds something.
///
/// # Errors
/// [`Error::Parse`] when a quote opened on one `options` line is closed on a later one (the
/// kernel reads the lines joined); else as [`ArgsEdit::apply_diverting`].
pub fn edit_entry(text: &str, edit: &ArgsEdit) -> Result<String> {
    let mut lines = split_lines(text);
    let idx: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| key_line(&l.text).is_some_and(|k| k.keyword == "options"))
        .map(|(i, _)| i)
        .collect();
    let Some((&first, later)) = idx.split_first() else {
        let new = edit.apply_to("")?;
        if crate::cmdline::is_blank(&new) {
            return Ok(text.to_string());
        }
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("options {}\n", crate::cmdline::trim_start_spaces(&new)));
        return Ok(out);
    };
    // systemd-boot joins the options lines with a space and the kernel's quotes span the join:
    // with a quote open at the end of a line that another options line follows, the parameters
    // are not those of the lines one by one, and no line-by-line edit is right.
    let mut open = false;
    for &li in &idx[..idx.len() - 1] {
        open ^= lines[li].text.matches('"').count() % 2 == 1;
        if open {
            return Err(Error::parse(
                "BLS entry",
                format!(
                    "line {}: a quote opened on this options line is closed on a later one: {:?}",
                    li + 1,
                    lines[li].text
                ),
            ));
        }
    }
    // Parameters set on the first line must not be overridden by a later one.
    for &li in later {
        lines[li].text = edit_value(&lines[li].text, &edit.removals_only())?;
    }
    lines[first].text = edit_value(&lines[first].text, edit)?;
    Ok(join_lines(&lines))
}

/// Edits the value of one `options` line as systemd-boot reads it: between the key and the
/// white space it strips from the line's end (which stays as it was). A quote left open on the
/// last line then ends where the kernel's does, at the value's last character.
fn edit_value(text: &str, edit: &ArgsEdit) -> Result<String> {
    let Some(k) = key_line(text) else {
        return Ok(text.to_string());
    };
    let kw_end = k.indent.len() + k.keyword.len();
    let value_end = text.trim_end_matches([' ', '\t', '\r']).len();
    let (value, tail) = (&text[kw_end..value_end], &text[value_end..]);
    let mut region = edit_region(value, edit, |_, _| false)?;
    // A value emptied by the edit keeps the key's separator (edit_region's rule) when what
    // follows would not separate it: `options \r\rx\r` without x is `options \r`.
    if region.is_empty() && value.starts_with([' ', '\t']) && !tail.starts_with([' ', '\t']) {
        region.push(' ');
    }
    Ok(format!("{}{region}{tail}", &text[..kw_end]))
}

/// `nestcore kargs --loader bls`: edits the entry when `sel` selects it (ALL, DEFAULT and index 0
/// select the one entry; a path must equal its `linux`).
///
/// # Errors
/// [`Error::Unsupported`] for an entry that uses `$kernelopts` (edit grubenv instead), else as
/// [`edit_entry`].
pub fn edit_entry_for(text: &str, sel: &Selection, edit: &ArgsEdit) -> Result<String> {
    let e = parse(text);
    let selected = match &sel.target {
        Target::All | Target::Default => true,
        Target::Indexes(v) => v.contains(&0),
        Target::Title(t) => e.title.as_deref() == Some(t.as_str()),
        Target::Path(_) => e.linux.as_deref().is_some_and(|l| sel.path_matches(l)),
    };
    if !selected {
        return Ok(text.to_string());
    }
    if e.uses_kernelopts() && (edit.add.is_some() || !edit.set.is_empty()) {
        return Err(Error::Unsupported(
            "this entry takes its options from $kernelopts in grubenv: edit grubenv's kernelopts".into(),
        ));
    }
    edit_entry(text, edit)
}

/// The variables of a grubenv block, in order (`#` lines and padding skipped).
pub fn grubenv_vars(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), unescape(v))))
        .collect()
}

fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Edits variable `var` of a grubenv block with `edit`, keeping the other variables and the
/// block's size (at least 1024 bytes) by adjusting the `#` padding.
///
/// # Errors
/// [`Error::Parse`] when the text is not a grubenv block, the variable is missing, its value
/// needs escapes, or the result does not fit.
pub fn edit_grubenv(text: &str, var: &str, edit: &ArgsEdit) -> Result<String> {
    if !text.starts_with("# GRUB Environment Block\n") {
        return Err(Error::parse(
            "grubenv",
            "missing \"# GRUB Environment Block\" header",
        ));
    }
    let size = text.len().max(1024);
    // The padding is ASCII `#`; what precedes it may end in a multi-byte character.
    let body_end = text.trim_end_matches('#').len();
    let body = &text[..body_end];
    if !body.ends_with('\n') {
        // GRUB reads a value up to its line end: the padding would join the last variable.
        return Err(Error::parse(
            "grubenv",
            "the last variable has no line end (a truncated block): refusing to edit",
        ));
    }
    let prefix = format!("\n{var}=");
    let Some(start) = body.find(&prefix).map(|i| i + prefix.len()) else {
        return Err(Error::parse("grubenv", format!("no {var}= variable")));
    };
    let end = body[start..].find('\n').map(|i| start + i).unwrap_or(body.len());
    let old = &body[start..end];
    if old.contains('\\') {
        return Err(Error::parse(
            "grubenv",
            format!("{var} holds escapes that nestcore will not rewrite"),
        ));
    }
    let new = edit.apply_to(old)?;
    if new.contains(['\\', '\n']) {
        return Err(Error::InvalidInput(format!("Cannot write {new:?} into grubenv")));
    }
    let mut out = String::with_capacity(size);
    out.push_str(&body[..start]);
    out.push_str(&new);
    out.push_str(&body[end..]);
    if out.len() > size {
        return Err(Error::parse(
            "grubenv",
            format!("{var} no longer fits in the {size}-byte block"),
        ));
    }
    while out.len() < size {
        out.push('#');
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An argument of Unicode white space (U+2003) is a parameter to nestcore's command-line
    /// parser, as to the kernel's, but the editor asked str::trim whether the new options were
    /// empty: `--args U+00A0` on an entry without an options line was dropped without a word
    /// (found by the `bls` target, fuzz/regressions/bls/args-of-a-unicode-space-are-kept).
    /// U+00A0 itself is now refused (its byte 0xA0 is white space to the kernel's isspace:
    /// `input::refuse_kernel_split`); U+2003 is not.
    #[test]
    fn an_argument_of_unicode_white_space_is_kept() {
        for arg in ["\u{2003}", "\u{2003}x"] {
            let out = edit_entry(
                "title x\n",
                &ArgsEdit {
                    add: Some(arg.into()),
                    ..ArgsEdit::default()
                },
            )
            .unwrap();
            assert_eq!(out, format!("title x\noptions {arg}\n"));
            let got = Cmdline::parse(parse(&out).options.as_deref().unwrap_or(""));
            assert_eq!(got.params.len(), 1, "{out:?}");
        }
    }

    /// Found by a rerun of the bls target (fuzz/regressions/bls/no-break-space-at-the-end):
    /// parse trimmed U+00A0 from the end of the options, so an argument ending in one read
    /// back without it.
    #[test]
    fn a_no_break_space_at_the_end_is_text() {
        assert_eq!(parse("options a\u{a0}\n").options.as_deref(), Some("a\u{a0}"));
        assert_eq!(parse("options a \t\r\n").options.as_deref(), Some("a"));
    }

    /// Found by the campaign (fuzz/regressions/bls/options-with-trailing-carriage-returns):
    /// systemd-boot strips white space (CR included) from the end of a line before it splits
    /// the key, so `options\r\r` is an options line with no value, and an edit goes there
    /// rather than into a second options line.
    #[test]
    fn options_with_trailing_carriage_returns_is_an_options_line() {
        let t = "title x\noptions\r\r\n";
        assert_eq!(parse(t).options.as_deref(), Some(""));
        let out = edit_entry(t, &ArgsEdit::set("kvm-amd.nested", "1")).unwrap();
        assert_eq!(out.lines().count(), 2, "{out:?}");
        assert_eq!(
            crate::cmdline::Cmdline::parse(parse(&out).options.as_deref().unwrap()).get("kvm_amd.nested"),
            Some(Some("1")),
            "{out:?}"
        );
    }

    /// Found by the campaign (fuzz/regressions/bls/separator-kept-when-the-first-argument-goes):
    /// `options \r\rx\r` with x removed became `options\r\r`: the space went with the
    /// argument and the CRs, white space to the kernel but not a BLS separator, renamed the key.
    #[test]
    fn the_separator_stays_when_the_first_argument_is_removed() {
        let t = "title x\noptions \r\rx\r\t\n";
        let edit = ArgsEdit {
            remove: Some("x".into()),
            ..ArgsEdit::default()
        };
        let out = edit_entry(t, &edit).unwrap();
        assert!(out.starts_with("title x\noptions "), "{out:?}");
        assert!(parse(&out).options.is_some(), "{out:?}");
    }

    /// A key ends at white space only, as systemd-boot (`line_get_key_value(..., " \t", ...)`)
    /// and bootspec.c read it: `options=a1` is a key `options=`, so an edit appends an
    /// `options` line (fuzz/regressions/bls/options-equals-is-not-options: the target's own
    /// oracle had split at `=`).
    #[test]
    fn options_equals_is_another_key() {
        let t = "title x\noptions= a1\n";
        assert_eq!(parse(t).options, None);
        let out = edit_entry(t, &ArgsEdit::set("kvm-intel.nested", "1")).unwrap();
        assert_eq!(out, "title x\noptions= a1\noptions kvm-intel.nested=1\n");
    }

    /// systemd-boot joins the `options` lines of an entry with one space (boot.c: `xasprintf("%ls
    /// %ls", entry->options, new)`) and the kernel reads quotes across the join: a quote left
    /// open at the end of one `options` line is closed on the next, and the parameters between
    /// are not the ones a line-by-line edit sees. Such an entry is refused, unchanged
    /// (fuzz/regressions/bls/quote-open-across-options-lines: `--remove-args rw` left `rw`).
    #[test]
    fn a_quote_open_across_options_lines_is_refused() {
        let t = "options \"a\noptions \" rw\n";
        assert_eq!(parse(t).options.as_deref(), Some("\"a \" rw"));
        let e = edit_entry(t, &ArgsEdit::unset("rw")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Parse, "{e}");
        assert!(edit_entry(t, &ArgsEdit::set("kvm-intel.nested", "1")).is_err());
        // Quotes closed on their own line, or open on the last line only, are edited.
        let t = "options \"a b\"\noptions rw \"c\n";
        let out = edit_entry(t, &ArgsEdit::unset("rw")).unwrap();
        assert_eq!(out, "options \"a b\"\noptions \"c\n");
    }

    /// systemd-boot strips a line's trailing white space before it reads the value, so a quote
    /// left open on the last `options` line ends at the last non-blank character, not at the
    /// line's end: the kernel's parameter is `c`, and removing `c` removes it. The edit kept
    /// the trailing blanks inside the quote and saw a parameter `c   ` that was not asked for
    /// (fuzz/regressions/bls/remove-args-with-an-open-quote-on-the-last-options-line).
    #[test]
    fn a_quote_open_on_the_last_line_ends_where_systemd_boot_ends_the_value() {
        let t = "options a\noptions   \r\"c   \n";
        assert_eq!(parse(t).options.as_deref(), Some("a \r\"c"));
        let out = edit_entry(t, &ArgsEdit::unset("c")).unwrap();
        assert_eq!(
            Cmdline::parse(parse(&out).options.as_deref().unwrap_or("")).get("c"),
            None,
            "{out:?}"
        );
        assert_eq!(out, "options a\noptions   \n");
        // What follows the value (CR of a DOS line end, blanks) stays where it was.
        let t = "options a  \r\n";
        assert_eq!(
            edit_entry(t, &ArgsEdit::set("b", "1")).unwrap(),
            "options a b=1  \r\n"
        );
    }

    #[test]
    fn entry_options() {
        let t = "title Fedora\nversion 6.1\nlinux /vmlinuz-6.1\noptions root=UUID=1 ro kvm_intel.nested=0\noptions quiet kvm-intel.nested=0\n";
        let e = parse(t);
        assert_eq!(e.linux.as_deref(), Some("/vmlinuz-6.1"));
        let out = edit_entry(t, &ArgsEdit::set("kvm-intel.nested", "1")).unwrap();
        assert_eq!(
            out,
            t.replace("ro kvm_intel.nested=0\n", "ro kvm-intel.nested=1\n")
                .replace(" kvm-intel.nested=0\n", "\n")
        );
        assert_eq!(
            edit_entry("title x\n", &ArgsEdit::set("a", "1")).unwrap(),
            "title x\noptions a=1\n"
        );
    }

    #[test]
    fn kernelopts() {
        let t = "title R\noptions $kernelopts\n";
        assert!(parse(t).uses_kernelopts());
        let sel = Selection::all_linux();
        assert!(edit_entry_for(
            t,
            &sel,
            &ArgsEdit {
                add: Some("a=1".into()),
                ..ArgsEdit::default()
            }
        )
        .is_err());
        let mut env = "# GRUB Environment Block\nsaved_entry=x\nkernelopts=root=/dev/vda1 ro \n".to_string();
        while env.len() < 1024 {
            env.push('#');
        }
        let out = edit_grubenv(&env, KERNELOPTS, &ArgsEdit::set("kvm-amd.nested", "1")).unwrap();
        assert_eq!(out.len(), 1024);
        assert!(out.contains("\nkernelopts=root=/dev/vda1 ro kvm-amd.nested=1 \n###"));
        assert_eq!(grubenv_vars(&out)[1].1, "root=/dev/vda1 ro kvm-amd.nested=1 ");
        assert!(edit_grubenv("junk", KERNELOPTS, &ArgsEdit::set("a", "1")).is_err());
        assert!(edit_grubenv(&env, "nope", &ArgsEdit::set("a", "1")).is_err());
    }

    /// Found by tests/properties.rs: a grubenv whose last byte before the `#` padding is part
    /// of a multi-byte character made the padding search slice inside it (a panic).
    /// Found by the grubenv fuzz target (fuzz/regressions/grubenv/unterminated-last-variable):
    /// the last variable of a block had no line end, so the `#` padding written after an edit
    /// became part of its value (`x=\u{e9}#` read back as `x=\u{e9}###...`): GRUB reads a value
    /// up to its `\n` (grub-core/lib/envblk.c). Such a block is refused, not edited.
    #[test]
    fn grubenv_with_an_unterminated_last_variable_is_refused() {
        for env in [
            "# GRUB Environment Block\nkernelopts=ro a=1\nx=\u{e9}#".to_string(),
            format!("{:#<1024}", "# GRUB Environment Block\nkernelopts=ro\nx=y"),
            "# GRUB Environment Block\nkernelopts=ro".to_string(),
        ] {
            match edit_grubenv(&env, KERNELOPTS, &ArgsEdit::set("a", "b")) {
                Err(e) => assert_eq!(e.kind(), crate::ErrorKind::Parse, "{e}"),
                Ok(out) => {
                    let others = |t: &str| {
                        grubenv_vars(t)
                            .into_iter()
                            .filter(|(k, _)| k != KERNELOPTS)
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(others(&out), others(&env), "{env:?} -> {out:?}");
                }
            }
        }
    }

    #[test]
    fn grubenv_ending_in_non_ascii_does_not_panic() {
        // The padding is found after a multi-byte character; the variable before it has no line
        // end, so the block is refused (see above), without a panic.
        let mut env = "# GRUB Environment Block\nkernelopts=ro\nx=\u{e9}".to_string();
        let e = edit_grubenv(&env, KERNELOPTS, &ArgsEdit::set("a", "1")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Parse);
        env.push('\u{fffd}');
        while env.len() < 1024 {
            env.push('#');
        }
        let e = edit_grubenv(&env, KERNELOPTS, &ArgsEdit::set("a", "1")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Parse);
        let mut env = "# GRUB Environment Block\nkernelopts=ro\nx=\u{e9}\u{fffd}\n".to_string();
        while env.len() < 1024 {
            env.push('#');
        }
        let out = edit_grubenv(&env, KERNELOPTS, &ArgsEdit::set("a", "1")).unwrap();
        assert_eq!(out.len(), 1024);
        assert!(out.contains("\nx=\u{e9}\u{fffd}\n"));
    }
}
