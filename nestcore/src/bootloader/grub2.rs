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
    /// Quoted and unquoted parts joined in one word (`'a'"b"c`): the shell concatenates them;
    /// nestcore refuses to read or rewrite such a value.
    Mixed,
}

/// One assignment `VAR=value` found in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assignment {
    /// Byte offset of the assignment word (`VAR=...`).
    start: usize,
    /// Byte range of the value's content (inside the quotes).
    content: std::ops::Range<usize>,
    quote: Quote,
    /// Line number (1-based), for messages.
    line: usize,
}

/// Scans shell text for assignments to `var` that set it in the shell (optionally after
/// `export`), tracking quotes across lines. Returns them in order.
fn assignments(text: &str, var: &str) -> Result<Vec<Assignment>> {
    scan(text, var).map(|(a, _)| a)
}

fn unterminated_at(text: &str, i: usize) -> Error {
    let line = 1 + text[..i].matches('\n').count();
    Error::parse("/etc/default/grub", format!("line {line}: unterminated quote"))
}

/// The end of the shell word starting at `i` (at an unquoted blank, newline, `;`, `&`, `|`,
/// `<`, `>`, `(`, `)` or the end): quotes, backslash escapes (a backslash-newline continues the
/// word), backquotes and `$(...)` are stepped over. `continued` is set when a backslash escapes
/// the final newline or ends the text.
fn word_end(text: &str, mut i: usize, continued: &mut bool) -> Result<usize> {
    let b = text.as_bytes();
    let n = b.len();
    while i < n {
        match b[i] {
            b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')' => break,
            b'\\' => {
                *continued = i + 2 >= n && b.get(i + 1).is_none_or(|&c| c == b'\n');
                i += 2;
            }
            b'\'' | b'"' | b'`' => {
                let close = find_close(b, i + 1, b[i]).ok_or_else(|| unterminated_at(text, i))?;
                i = close + 1;
            }
            b'$' if b.get(i + 1) == Some(&b'(') => {
                let mut depth = 0;
                let mut j = i + 1;
                loop {
                    match b.get(j) {
                        None => return Err(unterminated_at(text, i)),
                        Some(b'(') => depth += 1,
                        Some(b')') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Some(&q @ (b'\'' | b'"' | b'`')) => {
                            j = find_close(b, j + 1, q).ok_or_else(|| unterminated_at(text, i))?;
                        }
                        Some(b'\\') => j += 1,
                        _ => {}
                    }
                    j += 1;
                }
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    Ok(i.min(n))
}

/// Skips blanks and backslash-newline continuations from `i`; `continued` tells whether the
/// last thing skipped was a continuation that ends the text.
fn skip_blanks(b: &[u8], mut i: usize, continued: &mut bool) -> usize {
    loop {
        match b.get(i) {
            Some(b' ' | b'\t') => {
                *continued = false;
                i += 1;
            }
            Some(b'\\') if b.get(i + 1) == Some(&b'\n') => {
                *continued = i + 2 >= b.len();
                i += 2;
            }
            _ => return i,
        }
    }
}

/// The length of a shell name (`[A-Za-z_][A-Za-z0-9_]*`) at the start of `b`.
fn name_len(b: &[u8]) -> usize {
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => b
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count(),
        _ => 0,
    }
}

/// How the value word `text[v..end]` is quoted, and its content.
fn classify(text: &str, v: usize, end: usize) -> (Quote, std::ops::Range<usize>) {
    let w = &text.as_bytes()[v..end];
    match w.first() {
        Some(&q @ (b'"' | b'\'')) if find_close(w, 1, q) == Some(w.len() - 1) => (
            if q == b'"' { Quote::Double } else { Quote::Single },
            v + 1..end - 1,
        ),
        _ if w.iter().any(|c| matches!(c, b'"' | b'\'')) => (Quote::Mixed, v..end),
        _ => (Quote::None, v..end),
    }
}

/// [`assignments`], and whether the text ends in a backslash that continues its last line (a
/// line appended after it would join that line).
///
/// Shell rules kept: an assignment counts when every word before it in its command is an
/// assignment too (`A=1 B=2`), after `export`, or after `;`; one followed by a command word
/// (`A=1 cmd`) only sets the variable for that command, and is not counted. `#` starts a comment
/// at the start of a word only.
fn scan(text: &str, var: &str) -> Result<(Vec<Assignment>, bool)> {
    let b = text.as_bytes();
    let n = b.len();
    let mut out = Vec::new();
    let mut continued = false;
    let mut i = 0;
    while i < n {
        // The start of a command.
        match b[i] {
            b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' => {
                i += 1;
                continue;
            }
            b'\\' if b.get(i + 1) == Some(&b'\n') => {
                continued = i + 2 >= n;
                i += 2;
                continue;
            }
            b'#' => {
                while i < n && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        continued = false;
        let export = text[i..].starts_with("export") && matches!(b.get(i + 6), Some(b' ' | b'\t'));
        if export {
            i = skip_blanks(b, i + 6, &mut continued);
        }
        let mut pending: Vec<Assignment> = Vec::new();
        let mut command = false;
        // The words of this command.
        loop {
            match b.get(i) {
                None | Some(b'\n' | b';' | b'#') => break,
                Some(b'&' | b'|' | b'<' | b'>' | b'(' | b')') => {
                    // In a pipeline, in the background, redirected or in a subshell: whether
                    // the assignment reaches this shell needs a shell to tell.
                    if let Some(a) = pending.first() {
                        return Err(Error::parse(
                            "/etc/default/grub",
                            format!(
                                "line {}: {var} is set in a command with {:?}: nestcore will not guess",
                                a.line, b[i] as char
                            ),
                        ));
                    }
                    command = true;
                    i = skip_blanks(b, i + 1, &mut continued);
                    continue;
                }
                _ => {}
            }
            let nl = name_len(&b[i..]);
            if !command && nl > 0 && b.get(i + nl) == Some(&b'=') {
                let v = i + nl + 1;
                let end = word_end(text, v, &mut continued)?;
                if &text[i..i + nl] == var {
                    let (quote, content) = classify(text, v, end);
                    let line = 1 + text[..i].matches('\n').count();
                    pending.push(Assignment {
                        start: i,
                        content,
                        quote,
                        line,
                    });
                }
                i = end;
            } else {
                if !export {
                    command = true;
                }
                i = word_end(text, i, &mut continued)?;
            }
            i = skip_blanks(b, i, &mut continued);
        }
        if !command {
            out.extend(pending);
        }
    }
    Ok((out, continued))
}

/// The index of the closing quote, honouring backslash escapes inside double quotes and
/// backquotes.
fn find_close(b: &[u8], mut i: usize, q: u8) -> Option<usize> {
    while i < b.len() {
        if q != b'\'' && b[i] == b'\\' {
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
/// (see the module documentation); `Ok(None)` when there is no assignment. `$NAME` and
/// `${NAME}` in a double-quoted value are expanded from the assignments before it (a variable
/// the text never sets expands to nothing, as in an empty environment).
///
/// # Errors
/// [`Error::Parse`] for an unterminated quote or a value that needs a shell to evaluate.
pub fn value(text: &str, var: &str) -> Result<Option<String>> {
    let all = assignments(text, var)?;
    let Some(a) = all.last() else { return Ok(None) };
    check_plain(text, a, var)?;
    expand(text, a, var).map(Some)
}

/// The content of assignment `a` with `$NAME`/`${NAME}` references replaced by the values the
/// text gives those variables before `a` (depth-limited: a loop of references is refused).
fn expand(text: &str, a: &Assignment, var: &str) -> Result<String> {
    let v = &text[a.content.clone()];
    if a.quote != Quote::Double || !v.contains('$') {
        return Ok(v.to_string());
    }
    let refuse = |why: &str| {
        Error::parse(
            "/etc/default/grub",
            format!("line {}: {var} {why}: {v:?}", a.line),
        )
    };
    let before = &text[..a.start];
    let b = v.as_bytes();
    let mut out = String::with_capacity(v.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let ch = v[i..].chars().next().unwrap_or_default();
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let (name, next) = match b.get(i + 1) {
            Some(b'{') => {
                let nl = name_len(&b[i + 2..]);
                if nl == 0 || b.get(i + 2 + nl) != Some(&b'}') {
                    return Err(refuse("uses a ${...} form nestcore does not evaluate"));
                }
                (&v[i + 2..i + 2 + nl], i + 3 + nl)
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let nl = name_len(&b[i + 1..]);
                (&v[i + 1..i + 1 + nl], i + 1 + nl)
            }
            // $1, $?, $$, $@ ... are the shell's own.
            Some(c) if c.is_ascii_digit() || b"?$#@*!-".contains(c) => {
                return Err(refuse("uses a special shell parameter"));
            }
            // A lone `$` is itself.
            _ => ("", i + 1),
        };
        if name.is_empty() {
            out.push('$');
        } else if before.len() >= text.len() {
            return Err(refuse("refers to itself"));
        } else {
            out.push_str(&value(before, name)?.unwrap_or_default());
        }
        i = next;
    }
    Ok(out)
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
        Quote::Mixed => true,
    };
    if bad {
        return Err(Error::parse(
            "/etc/default/grub",
            format!(
                "line {}: {var} uses shell expansion, escapes or joined quotes that nestcore will not rewrite: {v:?}",
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
/// [`Error::Parse`] for a value nestcore cannot rewrite safely (shell expansion, escapes, a
/// line break); [`Error::InvalidInput`] for an
/// argument that cannot be written inside the value's quotes.
pub fn edit(text: &str, var: &str, edit: &ArgsEdit) -> Result<String> {
    let (all, continued) = scan(text, var)?;
    match all.last() {
        Some(a) => {
            check_plain(text, a, var)?;
            let old = &text[a.content.clone()];
            let refers = a.quote == Quote::Double && old.contains('$');
            check_one_line(text, a, var, refers)?;
            let new = edit.apply_to(old)?;
            if new == old {
                if refers {
                    check_effective(text, var, edit)?;
                }
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
            if refers {
                check_effective(&out, var, edit)?;
            }
            Ok(out)
        }
        None => {
            let new = edit.apply_to("")?;
            if crate::cmdline::is_blank(&new) {
                return Ok(text.to_string());
            }
            check_writable("", &new, Quote::Double)?;
            // A lone backslash that ends the file is a word to the shell; the line end an
            // append needs would make it a continuation and change what the last line means.
            if text.bytes().rev().take_while(|&c| c == b'\\').count() % 2 == 1 {
                return Err(Error::parse(
                    "/etc/default/grub",
                    "the file ends in a backslash without a line end: a line appended after it would join the last line (end the file with a newline first)",
                ));
            }
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            if continued {
                // The last line continues: an empty line ends it, so the assignment is a
                // command of its own.
                out.push('\n');
            }
            out.push_str(&format!(
                "{var}=\"{}\"\n",
                crate::cmdline::trim_start_spaces(&new)
            ));
            Ok(out)
        }
    }
}

/// Refuses a value that holds a line break (itself or through a variable it refers to):
/// grub-mkconfig writes `linux ... ro ${args}` into grub.cfg through a here-document
/// (10_linux), so what follows the break is a GRUB command of its own, not kernel arguments. An
/// edit could neither keep the break (its arguments would not reach the kernel) nor drop it
/// (data lost, and arguments that never applied would apply).
fn check_one_line(text: &str, a: &Assignment, var: &str, refers: bool) -> Result<()> {
    let raw = &text[a.content.clone()];
    let broken = raw.contains('\n') || (refers && value(text, var)?.is_some_and(|v| v.contains('\n')));
    if broken {
        return Err(Error::parse(
            "/etc/default/grub",
            format!(
                "line {}: {var} holds a line break, which grub-mkconfig would write into grub.cfg's linux line, splitting it: {raw:?}",
                a.line
            ),
        ));
    }
    Ok(())
}

/// After an edit of a value that refers to other variables (`"$GRUB_CMDLINE_LINUX quiet"`),
/// the value the shell computes must hold the edit too: a parameter the edit sets or removes may
/// come from the reference, where editing this assignment cannot reach it.
fn check_effective(out: &str, var: &str, edit: &ArgsEdit) -> Result<()> {
    let v = value(out, var)?.unwrap_or_default();
    let c = Cmdline::parse(&v);
    let gone = Cmdline::parse(edit.remove.as_deref().unwrap_or("")).params;
    let bad = edit
        .set
        .iter()
        .find(|(n, val)| c.get(n) != Some(val.as_deref()))
        .map(|(n, _)| n.clone())
        .or_else(|| edit.unset.iter().find(|n| c.get(n).is_some()).cloned())
        .or_else(|| {
            gone.iter()
                .find(|g| c.all(&g.name).any(|p| g.value.is_none() || p.value == g.value))
                .map(|g| g.name.clone())
        });
    match bad {
        Some(n) => Err(Error::Unsupported(format!(
            "{var} takes {n} from a variable it refers to ({v:?}): edit the assignment that sets it"
        ))),
        None => Ok(()),
    }
}

/// Whether `v`, written unquoted after `VAR=`, is read by the shell as exactly `v`: no
/// operators, quotes, expansions or globs (nor `~` after `:`, which bash expands in an
/// assignment).
fn bare_word_is_literal(v: &str) -> bool {
    // `#` inside a word (as here, after `=`) is no comment; globs and braces are not expanded
    // in assignments but stay refused, to keep the rule simple.
    !v.starts_with('~')
        && !v.contains(":~")
        && !v.contains([
            ' ', '\t', '\n', '"', '\'', '$', '\\', '`', ';', '|', '&', '<', '>', '(', ')', '*', '?', '[',
            '{', '}',
        ])
}

/// Whether the edit brought in a character the value's quoting cannot hold literally.
fn check_writable(old: &str, new: &str, q: Quote) -> Result<()> {
    let special: &[char] = match q {
        Quote::Double | Quote::None | Quote::Mixed => &['"', '\\', '`', '$', '\''],
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

    /// `--args` of Unicode white space is a parameter (nestcore's parser and the kernel's split
    /// at ASCII white space only); str::trim called it nothing and the file was left unchanged.
    #[test]
    fn an_argument_of_unicode_white_space_is_kept() {
        let out = edit(
            "GRUB_DEFAULT=0\n",
            "GRUB_CMDLINE_LINUX",
            &ArgsEdit {
                add: Some("\u{2003}".into()),
                ..ArgsEdit::default()
            },
        )
        .unwrap();
        assert_eq!(out, "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX=\"\u{2003}\"\n");
    }

    const DEB: &str = "# If you change this file, run 'update-grub'\nGRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet splash\"\nGRUB_CMDLINE_LINUX=\"\"   # keep\n";

    /// Found by the campaign (fuzz/regressions/grub2/backslash-at-the-end): `X=a   \` with no
    /// line end. To bash and dash the lone `\` is a command word, so `X=a` is an assignment
    /// in front of a command and sets nothing; appending a line after it turned the `\` into a
    /// continuation, which set X. The edit must not change what the shell sees of the other
    /// variable.
    #[test]
    fn a_backslash_at_the_very_end_is_a_word() {
        let t = "GRUB_CMDLINE_LINUX_DEFAULT=a   \\";
        assert_eq!(value(t, CMDLINE_DEFAULT_VAR).unwrap(), None);
        // No line end can be appended without joining the last line: refused, the file as
        // it was. (An edit of a variable the file already sets does not append: it still works.)
        for t in [t, "X=1 \\", "GRUB_X=a \\", "true \\\\\\"] {
            let e = edit(t, CMDLINE_VAR, &ArgsEdit::set("kvm-amd.nested", "1")).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Parse, "{t:?}");
            assert!(e.to_string().contains("ends in a backslash"), "{e}");
        }
        let t = "GRUB_CMDLINE_LINUX=\"\"\ntrue \\";
        assert!(edit(t, CMDLINE_VAR, &ArgsEdit::set("a", "1")).is_ok());
    }

    /// A line break inside the value: grub-mkconfig writes `linux ... ro ${args}` into grub.cfg
    /// through a here-document (10_linux), so what follows the break becomes a GRUB command of
    /// its own and never reaches the kernel. An edit can neither keep the break (its arguments
    /// would not be the kernel's) nor drop it (data lost, other arguments suddenly applied): it
    /// is refused, the file unchanged (fuzz/regressions/grub2/line-break-in-a-value: the edit
    /// had joined the two lines).
    #[test]
    fn a_value_with_a_line_break_is_not_edited() {
        for t in [
            "GRUB_CMDLINE_LINUX='a\n b'\n",
            "GRUB_CMDLINE_LINUX=\"a\nb\"\n",
            "X=\"a\nb\"\nGRUB_CMDLINE_LINUX=\"$X c\"\n",
        ] {
            assert!(value(t, CMDLINE_VAR).unwrap().unwrap().contains('\n'), "{t:?}");
            for e in [
                ArgsEdit::set("kvm-amd.nested", "1"),
                ArgsEdit::unset("b"),
                ArgsEdit::unset("kvm-amd.nested"),
            ] {
                let err = edit(t, CMDLINE_VAR, &e).unwrap_err();
                assert_eq!(err.kind(), crate::ErrorKind::Parse, "{t:?}: {err}");
                assert!(err.to_string().contains("line break"), "{err}");
            }
        }
        // The other variable's line break does not stop an edit of this one.
        let t = "GRUB_CMDLINE_LINUX_DEFAULT='a\nb'\nGRUB_CMDLINE_LINUX='c'\n";
        let out = edit(t, CMDLINE_VAR, &ArgsEdit::set("kvm-amd.nested", "1")).unwrap();
        assert_eq!(out, t.replace("'c'", "'c kvm-amd.nested=1'"));
    }

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

    /// Quotes in comments and other values; a multi-line value of another variable is stepped
    /// over (one of this variable is refused: `a_value_with_a_line_break_is_not_edited`).
    #[test]
    fn multi_line_and_quotes_in_comments() {
        let t = "# don't panic\nGRUB_CMDLINE_LINUX=\"a  b\"\nGRUB_X=\"GRUB_CMDLINE_LINUX=no\n'\"\n";
        let out = edit(t, CMDLINE_VAR, &ArgsEdit::unset("a")).unwrap();
        assert_eq!(
            out,
            "# don't panic\nGRUB_CMDLINE_LINUX=\"b\"\nGRUB_X=\"GRUB_CMDLINE_LINUX=no\n'\"\n"
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

    /// Found by the grub2 fuzz target (fuzz/regressions/grub2/continuation-after-a-command): the
    /// same after a command word (`,GRUB_TIMEOUT=5 \\`): the appended assignment became an
    /// argument of that command.
    #[test]
    fn an_appended_assignment_after_a_continued_command_is_a_command() {
        for t in [",GRUB_TIMEOUT=5 \\\n", "true \\\n", "X=1 \\\n"] {
            let out = edit(t, CMDLINE_VAR, &ArgsEdit::set("a", "1")).unwrap();
            assert_eq!(
                value(&out, CMDLINE_VAR).unwrap().as_deref(),
                Some("a=1"),
                "{t:?} -> {out:?}"
            );
        }
    }

    /// Found by the grub2 fuzz target (fuzz/regressions/grub2/continuation-at-end): a file
    /// ending in a backslash-newline (a continued line) got the new assignment appended to that
    /// line, so the shell never ran it as a command of its own.
    #[test]
    fn an_appended_assignment_after_a_continued_last_line_is_a_command() {
        for t in ["GRUB_TIMEOUT=5 \\\n", "GRUB_X=a\\\n"] {
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

    /// The shell's reading, found by tests/differential_bash.rs (82 of 200 generated files
    /// disagreed with bash before): several assignments in one command all count, an assignment
    /// before a command word only sets it for that command, joined quotes are refused, `$VAR`
    /// in double quotes is what the file set before, `~` after `:` is expanded by bash.
    #[test]
    fn reads_as_the_shell_does() {
        let v = |t: &str| value(t, CMDLINE_VAR);
        assert_eq!(
            v("A=1 GRUB_CMDLINE_LINUX='x y'\n").unwrap().as_deref(),
            Some("x y")
        );
        assert_eq!(
            v("GRUB_CMDLINE_LINUX=a\nGRUB_CMDLINE_LINUX=b true\n")
                .unwrap()
                .as_deref(),
            Some("a")
        );
        assert_eq!(
            v("export A GRUB_CMDLINE_LINUX=\"q\"\n").unwrap().as_deref(),
            Some("q")
        );
        assert_eq!(
            v("X=a#b; GRUB_CMDLINE_LINUX=c#d # e\n").unwrap().as_deref(),
            Some("c#d")
        );
        for t in [
            "GRUB_CMDLINE_LINUX='a'\"b\"\n",
            "GRUB_CMDLINE_LINUX=\"a\"x\n",
            "GRUB_CMDLINE_LINUX=a:~\n",
        ] {
            assert_eq!(v(t).unwrap_err().kind(), crate::ErrorKind::Parse, "{t:?}");
        }
        let t = "GRUB_X=\"k=1\"\nGRUB_CMDLINE_LINUX=\"a\"\nGRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX ${GRUB_X} $NONE$ b\"\n";
        assert_eq!(v(t).unwrap().as_deref(), Some("a k=1 $ b"));
        assert_eq!(
            v("GRUB_CMDLINE_LINUX=\"$1\"\n").unwrap_err().kind(),
            crate::ErrorKind::Parse
        );
        // An edit whose parameter comes through a reference cannot be made in this assignment.
        let t =
            "GRUB_CMDLINE_LINUX=\"kvm-intel.nested=0\"\nGRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX quiet\"\n";
        let e = edit(t, CMDLINE_VAR, &ArgsEdit::unset("kvm_intel.nested")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unsupported, "{e}");
        let out = edit(t, CMDLINE_VAR, &ArgsEdit::set("kvm_intel.nested", "1")).unwrap();
        assert_eq!(
            cmdline(&out, CMDLINE_VAR)
                .unwrap()
                .unwrap()
                .get("kvm_intel.nested"),
            Some(Some("1"))
        );
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
