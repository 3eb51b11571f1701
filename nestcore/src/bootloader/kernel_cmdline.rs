//! `/etc/kernel/cmdline`: one line of kernel arguments that kernel-install (systemd-boot, UKIs,
//! Fedora/RHEL BLS) copies into new boot entries.

use super::ArgsEdit;
use crate::cmdline::Cmdline;
use crate::error::{Error, Result};

/// The command line in the file (its first line).
pub fn parse(text: &str) -> Cmdline {
    Cmdline::parse(text.lines().next().unwrap_or(""))
}

/// Edits the first line, keeping the line ending and anything after it.
///
/// # Errors
/// As [`ArgsEdit::apply_to`]; [`Error::Parse`] when the file holds more than one non-empty line
/// (kernel-install would join them; nestcore does not guess).
pub fn edit(text: &str, edit: &ArgsEdit) -> Result<String> {
    let (first, rest) = match text.find('\n') {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    if rest.lines().any(|l| !crate::cmdline::is_blank(l)) {
        return Err(Error::parse(
            "/etc/kernel/cmdline",
            "more than one line of arguments",
        ));
    }
    let (first, cr) = match first.strip_suffix('\r') {
        Some(f) => (f, "\r"),
        None => (first, ""),
    };
    let new = edit.apply_to(first)?;
    if new == first {
        return Ok(text.to_string());
    }
    let new = new.trim_start_matches(' ');
    let new = if first.starts_with(' ') {
        format!(" {new}")
    } else {
        new.to_string()
    };
    let rest = if rest.is_empty() && text.is_empty() {
        "\n"
    } else {
        rest
    };
    Ok(format!("{new}{cr}{rest}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A second line of Unicode white space holds a word (kernel-install's shell splits at
    /// space, tab and newline only): the file has two lines of arguments and is refused, as
    /// any other; str::trim had called that line blank.
    #[test]
    fn a_second_line_of_unicode_white_space_is_a_line_of_arguments() {
        let e = edit(
            "a\n\u{2003}\n",
            &ArgsEdit {
                add: Some("b".into()),
                ..ArgsEdit::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Parse, "{e}");
        assert_eq!(
            edit(
                "a\n \t\n",
                &ArgsEdit {
                    add: Some("b".into()),
                    ..ArgsEdit::default()
                }
            )
            .unwrap(),
            "a b\n \t\n"
        );
    }

    #[test]
    fn edits_first_line() {
        assert_eq!(
            edit("root=UUID=x ro\n", &ArgsEdit::set("kvm-amd.nested", "1")).unwrap(),
            "root=UUID=x ro kvm-amd.nested=1\n"
        );
        assert_eq!(edit("", &ArgsEdit::set("a", "1")).unwrap(), "a=1\n");
        assert_eq!(edit("a=1 b\n", &ArgsEdit::unset("a")).unwrap(), "b\n");
        assert!(edit("a\nb\n", &ArgsEdit::unset("a")).is_err());
        assert_eq!(parse("x=1\n").get("x"), Some(Some("1")));
    }
}
