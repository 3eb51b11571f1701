//! The checks every editor shares before text reaches a configuration: no control
//! characters, and (for kernel arguments) nothing the kernel would split where nestcore does not.
//!
//! A newline, carriage return, NUL or any other control character (Unicode category Cc: U+0000
//! to U+001F, U+007F to U+009F, tab included) in an argument or a value would become a new line
//! of a boot configuration, end a shell assignment, cut a C string or hide text from whoever
//! reads the file. No format nestcore writes needs one inside a value, so such input is refused
//! with an error naming the character, where it is and the input it came in, never quoted or
//! dropped silently.

use crate::error::{Error, Result};

/// The name of a control character for messages: `U+000A (line feed)`.
pub fn describe_control(c: char) -> String {
    let name = match c {
        '\0' => " (NUL)",
        '\t' => " (tab)",
        '\n' => " (line feed)",
        '\u{b}' => " (vertical tab)",
        '\u{c}' => " (form feed)",
        '\r' => " (carriage return)",
        '\u{1b}' => " (escape)",
        '\u{7f}' => " (delete)",
        '\u{85}' => " (next line)",
        _ => "",
    };
    format!("U+{:04X}{name}", u32::from(c))
}

/// Refuses `text` when it holds a control character: [`Error::InvalidInput`] naming `what`
/// (the argument, as the caller knows it), the input, the character and its byte offset.
///
/// ```
/// let e = nestcore::input::refuse_control("argument list", "x\ninitrd /evil").unwrap_err();
/// assert!(e.to_string().contains("U+000A (line feed)"));
/// assert!(nestcore::input::refuse_control("argument list", "kvm-intel.nested=1").is_ok());
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] for the first control character found.
pub fn refuse_control(what: &str, text: &str) -> Result<()> {
    match text.char_indices().find(|(_, c)| c.is_control()) {
        None => Ok(()),
        Some((at, c)) => Err(Error::InvalidInput(format!(
            "{what} {text:?} contains the control character {} at byte {at}: nestcore never \
             writes control characters into a configuration",
            describe_control(c)
        ))),
    }
}

/// Refuses kernel-argument text the kernel would split where nestcore sees one word: the
/// kernel's `isspace()` counts byte 0xA0 as white space (lib/ctype.c's Latin-1 table: the
/// no-break space), and UTF-8 puts that byte inside many characters (U+00A0, U+00E0,
/// U+4E20...), so `x=\u{e0}` would reach the kernel as `x=\xC3` and a second word.
/// [`Error::InvalidInput`] naming `what`, the character and its byte offset. Removing such an
/// argument from a configuration is not refused: only text nestcore writes is.
///
/// ```
/// let e = nestcore::input::refuse_kernel_split("argument list", "x=\u{e0}").unwrap_err();
/// assert!(e.to_string().contains("U+00E0"));
/// assert!(nestcore::input::refuse_kernel_split("argument list", "x=\u{e9}").is_ok());
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] for the first such character.
pub fn refuse_kernel_split(what: &str, text: &str) -> Result<()> {
    let mut buf = [0u8; 4];
    match text
        .char_indices()
        .find(|(_, c)| !c.is_ascii() && c.encode_utf8(&mut buf).bytes().any(|b| b == 0xA0))
    {
        None => Ok(()),
        Some((at, c)) => Err(Error::InvalidInput(format!(
            "{what} {text:?} contains U+{:04X} at byte {at}, whose UTF-8 holds byte 0xA0: the \
             kernel's isspace() counts that byte as white space (lib/ctype.c, Latin-1), so the \
             kernel would split the argument there",
            u32::from(c)
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_control_character_is_refused_and_named() {
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            let text = format!("a=1{c}b");
            let e = refuse_control("argument", &text).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
            let msg = e.to_string();
            assert!(msg.contains(&format!("U+{:04X}", u32::from(c))), "{msg}");
            assert!(msg.contains("at byte 3"), "{msg}");
            assert!(msg.starts_with("Invalid input: argument "), "{msg}");
        }
        for ok in [
            "",
            "kvm-intel.nested=1",
            "a=\"x y\"",
            "\u{e9}\u{fffd}",
            "$(x);|&<>",
        ] {
            assert!(refuse_control("argument", ok).is_ok(), "{ok:?}");
        }
        assert_eq!(describe_control('\n'), "U+000A (line feed)");
        assert_eq!(describe_control('\u{1}'), "U+0001");
    }
}
