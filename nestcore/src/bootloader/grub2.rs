//! GRUB 2's `/etc/default/grub` (and Ubuntu's `/etc/default/grub.d/*.cfg`): POSIX shell
//! assignments. `GRUB_CMDLINE_LINUX` goes to every entry, `GRUB_CMDLINE_LINUX_DEFAULT` to
//! non-recovery entries after it (so a parameter there wins). The last assignment of a variable
//! is the one that counts; nestcore edits that one, keeping its quoting and any comment.
//!
//! Values are edited only when their quoting is plain: `"..."` without `\` or `` ` ``, `'...'`,
//! or an unquoted word without `$`, `\`, `` ` ``. Anything else is refused with the line,
//! never guessed at.

use crate::cmdline::Cmdline;
use crate::error::{Error, Result};

use super::ArgsEdit;

/// The variable that carries arguments for every entry.
pub const CMDLINE_VAR: &str = "GRUB_CMDLINE_LINUX";
/// The variable that carries arguments for non-recovery entries.
pub const CMDLINE_DEFAULT_VAR: &str = "GRUB_CMDLINE_LINUX_DEFAULT";

/// How a value is quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    Double,
    Single,
    None,
}

/// One assignment `VAR=value` found in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assignment {
    /// Byte range of the value's content (inside the quotes).
    content: std::ops::Range<usize>,
    quote: Quote,
    /// Line number (1-based), for messages.
    line: usize,
}

/// Scans shell text for assignments to `var` at the start of a command (optionally after
/// `export`), tracking quotes across lines. Returns them in order.
fn assignments(text: &str, var: &str) -> Result<Vec<Assignment>> {
    scan(text, var).map(|(a, _)| a)
}

/// [`assignments`], and whether the text ends in a backslash that continues its last line (a
/// line appended after it would join that line).
fn scan(text: &str, var: &str) -> Result<(Vec<Assignment>, bool)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut at_cmd_start = true;
    let mut continued = false;
    while i < b.len() {
        let c = b[i];
        if at_cmd_start {
            // Skip blanks, then look for [export ]VAR=
            let mut j = i;
            while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
                j += 1;
            }
            let mut k = j;
            if text[k..].starts_with("export ") {
                k += "export ".len();
                while k < b.len() && b[k] == b' ' {
                    k += 1;
                }
            }
            if text[k..].starts_with(var) && b.get(k + var.len()) == Some(&b'=') {
                let v = k + var.len() + 1;
                let (content, quote, end) = match b.get(v) {
                    Some(b'"') => {
                        let close = find_close(b, v + 1, b'"').ok_or_else(|| unterminated(var, line))?;
                        (v + 1..close, Quote::Double, close + 1)
                    }
                    Some(b'\'') => {
                        let close = find_close(b, v + 1, b'\'').ok_or_else(|| unterminated(var, line))?;
                        (v + 1..close, Quote::Single, close + 1)
                    }
                    _ => {
                        let mut e = v;
                        while e < b.len() && !matches!(b[e], b' ' | b'\t' | b'\n' | b';' | b'#') {
                            e += 1;
                        }
                        (v..e, Quote::None, e)
                    }
                };
                out.push(Assignment { content, quote, line });
                line += text[i..end].matches('\n').count();
                i = end;
                at_cmd_start = false;
                continue;
            }
            at_cmd_start = false;
            i = j;
            continue;
        }
        match c {
            b'\n' => {
                line += 1;
                at_cmd_start = true;
                i += 1;
            }
            b';' => {
                at_cmd_start = true;
                i += 1;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'\\' => {
                continued = i + 2 >= b.len() && b.get(i + 1).is_none_or(|&c| c == b'\n');
                i += 2;
            }
            b'"' | b'\'' => {
                let close = find_close(b, i + 1, c).ok_or_else(|| {
                    Error::parse("/etc/default/grub", format!("line {line}: unterminated quote"))
                })?;
                line += text[i..close].matches('\n').count();
                i = close + 1;
            }
            _ => i += 1,
        }
    }
    Ok((out, continued))
}

fn unterminated(var: &str, line: usize) -> Error {
    Error::parse(
        "/etc/default/grub",
        format!("line {line}: unterminated quote in {var}"),
    )
}

/// The index of the closing quote, honouring backslash escapes inside double quotes.
fn find_close(b: &[u8], mut i: usize, q: u8) -> Option<usize> {
    while i < b.len() {
        if q == b'"' && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The value of the last assignment of `var` as the shell would see it, when it is plain
/// (see the module documentation); `Ok(None)` when there is no assignment.
///
/// # Errors
/// [`Error::Parse`] for an unterminated quote or a value that needs a shell to evaluate.
pub fn value(text: &str, var: &str) -> Result<Option<String>> {
    let all = assignments(text, var)?;
    let Some(a) = all.last() else { return Ok(None) };
    check_plain(text, a, var)?;
    Ok(Some(text[a.content.clone()].to_string()))
}

/// The command line carried by the last assignment of `var` (`None` without one).
///
/// # Errors
/// As [`value`].
pub fn cmdline(text: &str, var: &str) -> Result<Option<Cmdline>> {
    Ok(value(text, var)?.map(|v| Cmdline::parse(&v)))
}

fn check_plain(text: &str, a: &Assignment, var: &str) -> Result<()> {
    let v = &text[a.content.clone()];
    let bad = match a.quote {
        Quote::Double => v.contains(['\\', '`']) || v.contains("$("),
        Quote::Single => false,
        Quote::None => !bare_word_is_literal(v),
    };
    if bad {
        return Err(Error::parse(
            "/etc/default/grub",
            format!(
                "line {}: {var} uses shell expansion or escapes that nestcore will not rewrite: {v:?}",
                a.line
            ),
        ));
    }
    Ok(())
}

/// Applies `edit` to the last assignment of `var`, or appends `var="..."` when there is none
/// and the edit adds something. Returns the new text.
///
/// # Errors
/// [`Error::Parse`] for a value nestcore cannot rewrite safely; [`Error::InvalidInput`] for an
/// argument that cannot be written inside the value's quotes.
pub fn edit(text: &str, var: &str, edit: &ArgsEdit) -> Result<String> {
    let (all, continued) = scan(text, var)?;
    match all.last() {
        Some(a) => {
            check_plain(text, a, var)?;
            let old = &text[a.content.clone()];
            let new = edit.apply_to(old)?;
            if new == old {
                return Ok(text.to_string());
            }
            check_writable(old, &new, a.quote)?;
            let mut out = String::with_capacity(text.len() + 32);
            out.push_str(&text[..a.content.start]);
            if a.quote == Quote::None && !bare_word_is_literal(&new) {
                // A bare word that grew a space or a shell operator (`;`, `|`, `(`...) needs
                // quotes now: grub-mkconfig sources this file.
                out.push('"');
                out.push_str(&new);
                out.push('"');
            } else {
                out.push_str(&new);
            }
            out.push_str(&text[a.content.end..]);
            Ok(out)
        }
        None => {
            let new = edit.apply_to("")?;
            if new.trim().is_empty() {
                return Ok(text.to_string());
            }
            check_writable("", &new, Quote::Double)?;
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            if continued {
                // The last line continues: an empty line ends it, so the assignment is a
                // command of its own.
                out.push('\n');
            }
            out.push_str(&format!("{var}=\"{}\"\n", new.trim_start()));
            Ok(out)
        }
    }
}

/// Whether `v`, written unquoted after `VAR=`, is read by the shell as exactly `v`: no
/// operators, quotes, expansions or globs.
fn bare_word_is_literal(v: &str) -> bool {
    !v.starts_with('~')
        && !v.contains([
            ' ', '\t', '\n', '"', '\'', '$', '\\', '`', ';', '|', '&', '<', '>', '(', ')', '*', '?', '[',
            '{', '}', '#',
        ])
}

/// Whether the edit brought in a character the value's quoting cannot hold literally.
fn check_writable(old: &str, new: &str, q: Quote) -> Result<()> {
    let special: &[char] = match q {
        Quote::Double | Quote::None => &['"', '\\', '`', '$', '\''],
        Quote::Single => &['\''],
    };
    let grew = |c: &char| new.matches(*c).count() > old.matches(*c).count();
    let bad = special
        .iter()
        .any(|c| grew(c) && !(q == Quote::Double && *c == '\''));
    if bad {
        return Err(Error::InvalidInput(format!(
            "Cannot write {new:?} inside a shell-quoted GRUB variable"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DEB: &str = "# If you change this file, run 'update-grub'\nGRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet splash\"\nGRUB_CMDLINE_LINUX=\"\"   # keep\n";

    #[test]
    fn edits_last_assignment_keeping_quotes_and_comment() {
        let out = edit(DEB, CMDLINE_VAR, &ArgsEdit::set("kvm-intel.nested", "1")).unwrap();
        assert_eq!(out, DEB.replace("LINUX=\"\"", "LINUX=\"kvm-intel.nested=1\""));
        assert_eq!(
            edit(&out, CMDLINE_VAR, &ArgsEdit::set("kvm-intel.nested", "1")).unwrap(),
            out
        );
        let t = "GRUB_CMDLINE_LINUX='a  b'\nexport GRUB_CMDLINE_LINUX='c'\n";
        let out = edit(t, CMDLINE_VAR, &ArgsEdit::set("x", "1")).unwrap();
        assert_eq!(
            out,
            "GRUB_CMDLINE_LINUX='a  b'\nexport GRUB_CMDLINE_LINUX='c x=1'\n"
        );
        assert_eq!(value(&out, CMDLINE_VAR).unwrap().as_deref(), Some("c x=1"));
    }

    #[test]
    fn unquoted_and_missing() {
        let out = edit(
            "GRUB_CMDLINE_LINUX=quiet\n",
            CMDLINE_VAR,
            &ArgsEdit::set("a", "1"),
        )
        .unwrap();
        assert_eq!(out, "GRUB_CMDLINE_LINUX=\"quiet a=1\"\n");
        let out = edit("GRUB_TIMEOUT=5", CMDLINE_VAR, &ArgsEdit::set("a", "1")).unwrap();
        assert_eq!(out, "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"a=1\"\n");
        assert_eq!(
            edit("X=1\n", CMDLINE_VAR, &ArgsEdit::unset("a")).unwrap(),
            "X=1\n"
        );
    }

    #[test]
    fn multi_line_and_quotes_in_comments() {
        let t = "# don't panic\nGRUB_CMDLINE_LINUX=\"a\n  b\"\nGRUB_X=\"GRUB_CMDLINE_LINUX=no\"\n";
        let out = edit(t, CMDLINE_VAR, &ArgsEdit::unset("a")).unwrap();
        assert_eq!(
            out,
            "# don't panic\nGRUB_CMDLINE_LINUX=\"b\"\nGRUB_X=\"GRUB_CMDLINE_LINUX=no\"\n"
        );
    }

    /// Found by tests/properties.rs: an unquoted value that gained a shell operator was
    /// written bare (`GRUB_CMDLINE_LINUX=a;reboot`), and grub-mkconfig sources this file.
    #[test]
    fn bare_values_with_shell_operators_get_quotes() {
        for arg in ["a;reboot", ")", "x|y", "a&b", "<f", "(x)", "~root", "a*"] {
            for t in ["GRUB_CMDLINE_LINUX=\n", "GRUB_CMDLINE_LINUX=ro\n"] {
                let out = edit(
                    t,
                    CMDLINE_VAR,
                    &ArgsEdit {
                        add: Some(arg.into()),
                        ..ArgsEdit::default()
                    },
                )
                .unwrap();
                let v = out.trim_end().strip_prefix("GRUB_CMDLINE_LINUX=").unwrap();
                assert!(
                    v.starts_with('"') && v.ends_with('"'),
                    "{arg:?} in {t:?} -> {out:?}"
                );
                assert!(value(&out, CMDLINE_VAR).unwrap().unwrap().ends_with(arg));
            }
        }
        // Reading: a bare value with an operator needs a shell, never guessed at.
        for t in [
            "GRUB_CMDLINE_LINUX=a|b\n",
            "GRUB_CMDLINE_LINUX=a&\n",
            "GRUB_CMDLINE_LINUX=(a)\n",
        ] {
            assert_eq!(
                value(t, CMDLINE_VAR).unwrap_err().kind(),
                crate::ErrorKind::Parse,
                "{t}"
            );
        }
    }

    /// Found by the grub2 fuzz target (fuzz/regressions/grub2/continuation-at-end): a file
    /// ending in a backslash-newline (a continued line) got the new assignment appended to that
    /// line, so the shell never ran it as a command of its own.
    #[test]
    fn an_appended_assignment_after_a_continued_last_line_is_a_command() {
        for t in ["GRUB_TIMEOUT=5 \\\n", "GRUB_X=a\\\n", "GRUB_X=a \\"] {
            let out = edit(t, CMDLINE_VAR, &ArgsEdit::set("a", "1")).unwrap();
            assert_eq!(
                value(&out, CMDLINE_VAR).unwrap().as_deref(),
                Some("a=1"),
                "{t:?} -> {out:?}"
            );
        }
        // A backslash in a comment continues nothing.
        let out = edit("# a \\\n", CMDLINE_VAR, &ArgsEdit::set("a", "1")).unwrap();
        assert_eq!(out, "# a \\\nGRUB_CMDLINE_LINUX=\"a=1\"\n");
    }

    #[test]
    fn refuses_shell() {
        for t in [
            "GRUB_CMDLINE_LINUX=\"$(cat /x)\"\n",
            "GRUB_CMDLINE_LINUX=\"a \\\"b\\\"\"\n",
            "GRUB_CMDLINE_LINUX=$X\n",
            "GRUB_CMDLINE_LINUX=\"open\n",
        ] {
            assert_eq!(
                edit(t, CMDLINE_VAR, &ArgsEdit::set("a", "1")).unwrap_err().kind(),
                crate::ErrorKind::Parse,
                "{t}"
            );
        }
        // $VAR references in double quotes are kept (grub.d snippets append to the variable).
        let t = "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX quiet\"\n";
        assert_eq!(
            edit(t, CMDLINE_VAR, &ArgsEdit::set("a", "1")).unwrap(),
            "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX quiet a=1\"\n"
        );
        assert!(edit(
            "GRUB_CMDLINE_LINUX=''\n",
            CMDLINE_VAR,
            &ArgsEdit::set("a", "it's")
        )
        .is_err());
    }
}
