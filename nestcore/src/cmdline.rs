//! The kernel command line, parsed by the kernel's own rules (lib/cmdline.c `next_arg`,
//! kernel/params.c `parse_args`).
//!
//! - Tokens are separated by white space as the kernel's `isspace()` has it (space, tab, newline,
//!   vertical tab, form feed, CR); a `"` toggles quoting, so `a="x y"` is one token.
//! - The first `=` after the token's first character splits name and value: `=x` is a name.
//! - A leading quote of the value (and the matching last character) is dropped; other quotes stay.
//! - A bare `--` (quoted or not, since quotes go first) ends the kernel's part: what follows
//!   belongs to init.
//! - Names compare with `-` equal to `_` (`kvm-intel.nested` is `kvm_intel.nested`); the last
//!   occurrence wins.

use std::ops::Range;

use crate::error::{Error, Result};

/// One parameter of a command line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Param {
    /// The name as written (quotes removed).
    pub name: String,
    /// The value as the kernel sees it (`None` for a bare name such as `quiet`).
    pub value: Option<String>,
    /// Byte range of the whole token in the original line (for editors that keep every other byte).
    #[serde(skip)]
    pub span: Range<usize>,
}

impl Param {
    /// The name with `-` replaced by `_`, as the kernel compares it.
    pub fn normalized_name(&self) -> String {
        normalize(&self.name)
    }
}

/// `-` and `_` are the same in parameter names.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Cmdline {
    /// The kernel's parameters, in order.
    pub params: Vec<Param>,
    /// What follows a bare `--` (the init's arguments), untouched; `None` when there is no `--`.
    pub init_args: Option<String>,
}

impl Cmdline {
    /// Parses a command line. Never fails: every byte sequence is some command line to the kernel.
    pub fn parse(line: &str) -> Cmdline {
        parse_with_end(line).0
    }

    /// Renders the parameters canonically: single spaces, a value with white space (or an empty
    /// value) in double quotes, then ` -- ` and the init's arguments when there are any.
    ///
    /// For parameters whose names hold no white space, `=` or `"`, and values no `"`,
    /// `Cmdline::parse(&c.render())` gives the same names, values and init arguments.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for p in &self.params {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&render_param(&p.name, p.value.as_deref()));
        }
        if let Some(init) = &self.init_args {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("--");
            if !init.is_empty() {
                out.push(' ');
                out.push_str(init);
            }
        }
        out
    }

    /// The effective value of `name` (last occurrence wins, `-` equals `_`). `Some(None)` for a
    /// bare name.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        let want = normalize(name);
        self.params
            .iter()
            .rev()
            .find(|p| normalize(&p.name) == want)
            .map(|p| p.value.as_deref())
    }

    /// Every occurrence of `name`, in order.
    pub fn all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Param> + 'a {
        let want = normalize(name);
        self.params.iter().filter(move |p| normalize(&p.name) == want)
    }

    /// The module parameters (`module.param[=value]`) written after a bare `--`, in order, as
    /// kmod's modprobe applies them. The kernel hands that part to init, but kmod reads the
    /// whole of /proc/cmdline when it loads a module, so `kvm_amd.nested=0 -- kvm_amd.nested=1`
    /// loads kvm_amd with nested=1 (seen in the lab: kmod 30 on Linux 6.1 and 6.12). A built-in
    /// module never sees them. Spans are empty: these tokens are not the kernel's.
    pub fn module_params_after_dashes(&self) -> Vec<Param> {
        let mut out = Vec::new();
        let mut rest = self.init_args.clone();
        while let Some(r) = rest {
            let c = Cmdline::parse(&r);
            out.extend(
                c.params
                    .into_iter()
                    .filter(|p| p.name.contains('.'))
                    .map(|p| Param { span: 0..0, ..p }),
            );
            rest = c.init_args;
        }
        out
    }

    /// The value the module parameter `name` (`module.param`) gets from this command line, last
    /// occurrence winning: a loadable module gets kmod's view (after `--` too, see
    /// [`Cmdline::module_params_after_dashes`]), a built-in one the kernel's (before `--` only).
    /// `Some(None)` for a bare name.
    pub fn module_param(&self, name: &str, builtin: bool) -> Option<Option<String>> {
        let want = normalize(name);
        let late = if builtin {
            Vec::new()
        } else {
            self.module_params_after_dashes()
        };
        late.iter()
            .rev()
            .chain(self.params.iter().rev())
            .find(|p| normalize(&p.name) == want)
            .map(|p| p.value.clone())
    }
}

/// Writes one parameter the way the kernel reads it back: `name`, `name=value`, or
/// `name="value"` when the value is empty or holds white space.
pub fn render_param(name: &str, value: Option<&str>) -> String {
    match value {
        None => name.to_string(),
        Some(v) if v.is_empty() || v.bytes().any(is_space) => format!("{name}=\"{v}\""),
        Some(v) => format!("{name}={v}"),
    }
}

/// Parses and also returns where the bare `--` starts (when there is one).
fn parse_with_end(line: &str) -> (Cmdline, Option<usize>) {
    let b = line.as_bytes();
    let mut params = Vec::new();
    let mut i = skip_spaces(b, 0);
    while i < b.len() {
        let start = i;
        let mut j = i;
        let mut in_quote = false;
        let quoted = b[j] == b'"';
        if quoted {
            j += 1;
            in_quote = true;
        }
        let body_start = j;
        let mut equals = None;
        while j < b.len() {
            if is_space(b[j]) && !in_quote {
                break;
            }
            // next_arg's `equals == 0` means "none yet": an `=` first in the token is the name's.
            if equals.is_none() && b[j] == b'=' && j > body_start {
                equals = Some(j);
            }
            if b[j] == b'"' {
                in_quote = !in_quote;
            }
            j += 1;
        }
        let end = j; // token is body_start..end (plus a leading quote)
        let last_is_quote = end > body_start && b[end - 1] == b'"';
        let (name, value) = match equals {
            None => {
                let mut n = &line[body_start..end];
                if quoted && last_is_quote {
                    n = &n[..n.len() - 1];
                }
                (n.to_string(), None)
            }
            Some(eq) => {
                let name = &line[body_start..eq];
                let mut v = &line[eq + 1..end];
                if v.starts_with('"') {
                    v = &v[1..];
                    if last_is_quote && !v.is_empty() {
                        v = &v[..v.len() - 1];
                    }
                } else if quoted && last_is_quote && !v.is_empty() {
                    v = &v[..v.len() - 1];
                }
                (name.to_string(), Some(v.to_string()))
            }
        };
        // Quotes are removed before the comparison: `"--"` ends the kernel's part too.
        if value.is_none() && name == "--" {
            let rest = skip_spaces(b, end);
            return (
                Cmdline {
                    params,
                    init_args: Some(line[rest..].to_string()),
                },
                Some(start),
            );
        }
        params.push(Param {
            name,
            value,
            span: start..end,
        });
        i = skip_spaces(b, end);
    }
    (
        Cmdline {
            params,
            init_args: None,
        },
        None,
    )
}

/// One argument of an edit request (`--args` / `--remove-args`), split by the kernel's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Arg {
    /// The token as written (quotes kept), inserted verbatim.
    raw: String,
    name: String,
    value: Option<String>,
}

/// Splits `args` into tokens by the kernel's rules and checks each can stand alone on a line.
/// Every editor's arguments pass here: a control character anywhere is refused
/// ([`crate::input::refuse_control`]), even between tokens, where the kernel would read it as
/// white space.
fn split_args(args: &str) -> Result<Vec<Arg>> {
    crate::input::refuse_control("Argument list", args)?;
    let (parsed, dashdash) = parse_with_end(args);
    if dashdash.is_some() {
        return Err(Error::InvalidInput(format!(
            "Argument list {args:?} contains a bare \"--\": nestcore only edits the kernel's own arguments"
        )));
    }
    let mut out = Vec::new();
    for p in parsed.params {
        let raw = &args[p.span.clone()];
        if raw.bytes().filter(|&c| c == b'"').count() % 2 != 0 {
            return Err(Error::InvalidInput(format!(
                "Argument {raw:?} has an unbalanced double quote"
            )));
        }
        if p.name.is_empty() || p.name.starts_with('=') {
            return Err(Error::InvalidInput(format!("Argument {raw:?} has no name")));
        }
        out.push(Arg {
            raw: raw.to_string(),
            name: p.name,
            value: p.value,
        });
    }
    Ok(out)
}

/// An editor for a kernel command line that keeps every byte it does not have to change:
/// parameters are replaced in place, appended after the last kernel parameter (before a bare
/// `--`), or removed together with the white space that separated them from their neighbour.
///
/// Names compare by the kernel's rule (`-` equals `_`); values compare exactly (after the kernel
/// removes quotes).
///
/// A module parameter (a name with a `.`, `kvm-intel.nested`) is edited after a bare `--` too:
/// the kernel hands that part to init and never applies it, but kmod's modprobe reads the whole
/// of /proc/cmdline when it loads a module ([`Cmdline::module_params_after_dashes`]), so a value
/// there wins over the kernel's part. [`Editor::set`] and [`Editor::add_args`] therefore write
/// the value before `--` (where the kernel, and so a built-in module, reads it) and remove the
/// same module parameter after `--`, and [`Editor::remove`] / [`Editor::remove_args`] remove it
/// there as well; init's other arguments (names without a `.`) are never touched.
///
/// ```
/// use nestcore::cmdline::Editor;
/// let mut e = Editor::new("ro  quiet kvm-intel.nested=0 -- init");
/// e.set("kvm_intel.nested", Some("1")).unwrap();
/// assert_eq!(e.as_str(), "ro  quiet kvm_intel.nested=1 -- init");
/// e.remove("quiet", None);
/// assert_eq!(e.as_str(), "ro kvm_intel.nested=1 -- init");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Editor {
    text: String,
}

impl Editor {
    /// Starts editing `text` (a whole command line, or the argument part of a boot entry line).
    pub fn new(text: impl Into<String>) -> Editor {
        Editor { text: text.into() }
    }

    /// The text as edited so far.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The edited text.
    pub fn into_string(self) -> String {
        self.text
    }

    /// The edited text, parsed.
    pub fn parsed(&self) -> Cmdline {
        Cmdline::parse(&self.text)
    }

    /// grubby's `--args`: each argument replaces the first not yet replaced parameter of the same
    /// name in place, or is appended. Returns whether the text changed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an argument list with a control character (newline, CR, NUL,
    /// ...), a bare `--`, an unbalanced quote or an argument without a name; [`Error::Parse`] when
    /// the line itself has an unbalanced quote.
    pub fn add_args(&mut self, args: &str) -> Result<bool> {
        self.add_args_diverting(args, |_, _| false)
    }

    /// Like [`Editor::add_args`], but an argument that matches no parameter is first offered to
    /// `divert(name, raw)`; when it returns true the argument was handled elsewhere (grubby puts
    /// `root=/dev/...` on a separate `root` line for extlinux) and is not appended.
    ///
    /// # Errors
    /// As [`Editor::add_args`].
    pub fn add_args_diverting(
        &mut self,
        args: &str,
        mut divert: impl FnMut(&str, &str) -> bool,
    ) -> Result<bool> {
        crate::input::refuse_kernel_split("Argument list", args)?;
        let args = split_args(args)?;
        self.check_quotes()?;
        let before = self.text.clone();
        let mut used: Vec<bool> = vec![false; self.parsed().params.len()];
        for arg in args {
            let parsed = self.parsed();
            let want = normalize(&arg.name);
            let hit = parsed
                .params
                .iter()
                .enumerate()
                .find(|(i, p)| !used.get(*i).copied().unwrap_or(true) && normalize(&p.name) == want)
                .map(|(i, p)| (i, p.span.clone()));
            match hit {
                Some((i, span)) => {
                    self.text.replace_range(span, &arg.raw);
                    used[i] = true;
                }
                None if divert(&arg.name, &arg.raw) => {}
                None => {
                    self.append_raw(&arg.raw);
                    used.push(true);
                }
            }
            self.remove_late(&want, None);
        }
        Ok(self.text != before)
    }

    /// grubby's `--remove-args`: `k` removes `k` with any value, `k=v` removes `k` only where its
    /// value is exactly `v`. Every matching occurrence goes (the kernel would honour the last one).
    /// Returns whether the text changed.
    ///
    /// # Errors
    /// As [`Editor::add_args`].
    pub fn remove_args(&mut self, args: &str) -> Result<bool> {
        let mut changed = false;
        for arg in split_args(args)? {
            changed |= self.remove(&arg.name, arg.value.as_deref());
        }
        Ok(changed)
    }

    /// Makes `name` (with `value`, or bare for `None`) the effective setting: the first occurrence
    /// is rewritten in place, later ones are removed, and the parameter is appended when absent.
    /// Returns whether the text changed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `name` is empty or holds white space, `=` or `"`, is `--`
    /// without a value (the end marker), or `value` holds a `"` or a control character;
    /// [`Error::Parse`] when the line has an unbalanced quote.
    pub fn set(&mut self, name: &str, value: Option<&str>) -> Result<bool> {
        crate::input::refuse_control("Parameter name", name)?;
        crate::input::refuse_kernel_split("Parameter name", name)?;
        if let Some(v) = value {
            crate::input::refuse_control(&format!("The value of {name}"), v)?;
            crate::input::refuse_kernel_split(&format!("The value of {name}"), v)?;
        }
        // A bare `--` is the end of the kernel's arguments, not a parameter.
        if name.is_empty()
            || (name == "--" && value.is_none())
            || name.bytes().any(|c| is_space(c) || c == b'=' || c == b'"')
        {
            return Err(Error::InvalidInput(format!(
                "Parameter name {name:?} is not valid"
            )));
        }
        if value.is_some_and(|v| v.contains('"')) {
            return Err(Error::InvalidInput(format!(
                "Value {value:?} contains a double quote"
            )));
        }
        self.check_quotes()?;
        let raw = render_param(name, value);
        let before = self.text.clone();
        let want = normalize(name);
        let spans: Vec<Range<usize>> = self
            .parsed()
            .params
            .iter()
            .filter(|p| normalize(&p.name) == want)
            .map(|p| p.span.clone())
            .collect();
        match spans.first() {
            None => self.append_raw(&raw),
            Some(first) => {
                // Remove later duplicates from the end so earlier spans stay valid.
                for i in (1..spans.len()).rev() {
                    self.remove_index_matching(&want, i);
                }
                if self.text[first.clone()] != raw {
                    self.text.replace_range(first.clone(), &raw);
                }
            }
        }
        self.remove_late(&want, None);
        Ok(self.text != before)
    }

    /// Removes every occurrence of `name` (any value when `value` is `None`, else only where the
    /// value is exactly `value`), for a module parameter after a bare `--` too. Returns whether
    /// the text changed.
    pub fn remove(&mut self, name: &str, value: Option<&str>) -> bool {
        let want = normalize(name);
        let mut changed = self.remove_late(&want, value);
        loop {
            let parsed = self.parsed();
            let hit = parsed.params.iter().rposition(|p| {
                normalize(&p.name) == want && value.is_none_or(|v| p.value.as_deref() == Some(v))
            });
            match hit {
                Some(i) => {
                    self.remove_param(i);
                    changed = true;
                }
                None => return changed,
            }
        }
    }

    /// The module parameters (names with a `.`) after a bare `--`, with their spans in the
    /// whole text: what kmod reads there ([`Cmdline::module_params_after_dashes`]).
    fn late_params(&self) -> Vec<Param> {
        let mut out = Vec::new();
        let (mut c, _) = parse_with_end(&self.text);
        while let Some(rest) = c.init_args.take() {
            let base = self.text.len() - rest.len();
            let (next, _) = parse_with_end(&rest);
            out.extend(
                next.params
                    .iter()
                    .filter(|p| p.name.contains('.'))
                    .map(|p| Param {
                        span: p.span.start + base..p.span.end + base,
                        ..p.clone()
                    }),
            );
            c = next;
        }
        out
    }

    /// Removes the module parameter `want` (normalized; any value for `None`) after a bare
    /// `--`, each with the white space before it. Nothing for a name without a `.`: that is
    /// init's. Returns whether the text changed.
    fn remove_late(&mut self, want: &str, value: Option<&str>) -> bool {
        if !want.contains('.') {
            return false;
        }
        let hits: Vec<Range<usize>> = self
            .late_params()
            .into_iter()
            .filter(|p| normalize(&p.name) == want && value.is_none_or(|v| p.value.as_deref() == Some(v)))
            .map(|p| p.span)
            .collect();
        // From the end, so earlier spans stay valid.
        for span in hits.iter().rev() {
            let b = self.text.as_bytes();
            let mut s = span.start;
            while s > 0 && b[s - 1].is_ascii_whitespace() {
                s -= 1;
            }
            self.text.replace_range(s..span.end, "");
        }
        !hits.is_empty()
    }

    /// An odd number of `"` makes the kernel read the rest of the line as one value: anything we
    /// appended would vanish into it.
    fn check_quotes(&self) -> Result<()> {
        if self.text.bytes().filter(|&c| c == b'"').count() % 2 != 0 {
            return Err(Error::parse(
                "kernel command line",
                format!("unbalanced double quote in {:?}: refusing to edit", self.text),
            ));
        }
        Ok(())
    }

    /// Removes the `nth` (0-based) occurrence of the normalized name `want`.
    fn remove_index_matching(&mut self, want: &str, nth: usize) {
        let parsed = self.parsed();
        if let Some(i) = parsed
            .params
            .iter()
            .enumerate()
            .filter(|(_, p)| normalize(&p.name) == want)
            .nth(nth)
            .map(|(i, _)| i)
        {
            self.remove_param(i);
        }
    }

    /// Removes parameter `i` with the white space before it (grubby gives the previous argument
    /// the removed one's trailing space), or after it when it is the first.
    fn remove_param(&mut self, i: usize) {
        let (parsed, dashdash) = parse_with_end(&self.text);
        let span = parsed.params[i].span.clone();
        let range = if i > 0 {
            parsed.params[i - 1].span.end..span.end
        } else if let Some(next) = parsed.params.get(1).map(|p| p.span.start).or(dashdash) {
            span.start..next
        } else {
            let b = self.text.as_bytes();
            let mut s = span.start;
            while s > 0 && is_space(b[s - 1]) {
                s -= 1;
            }
            s..span.end
        };
        self.text.replace_range(range, "");
    }

    /// Appends a raw token after the last kernel parameter (before a bare `--`).
    fn append_raw(&mut self, raw: &str) {
        let (parsed, dashdash) = parse_with_end(&self.text);
        if let Some(last) = parsed.params.last() {
            self.text.insert_str(last.span.end, &format!(" {raw}"));
        } else if let Some(dd) = dashdash {
            self.text.insert_str(dd, &format!("{raw} "));
        } else {
            // Only white space: keep it in front (it separates us from a keyword).
            self.text.push_str(raw);
        }
    }
}

/// The kernel's `isspace()` for ASCII (lib/ctype.c): `is_ascii_whitespace` plus the vertical
/// tab. (Its Latin-1 table also counts byte 0xA0, which in UTF-8 text only ends a multi-byte
/// character; nestcore keeps such characters whole.)
fn is_space(c: u8) -> bool {
    c.is_ascii_whitespace() || c == 0x0b
}

/// Whether `s` holds no parameter: only the kernel's white space ([`is_space`]). Not
/// `str::trim`, which also takes Unicode spaces (U+00A0, U+2003), text to the kernel and to
/// [`Cmdline::parse`].
pub(crate) fn is_blank(s: &str) -> bool {
    s.bytes().all(is_space)
}

/// `s` without the kernel's white space in front (see [`is_blank`]).
pub(crate) fn trim_start_spaces(s: &str) -> &str {
    s.trim_start_matches(|c: char| u8::try_from(c).is_ok_and(is_space))
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    i
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The kernel's isspace() counts byte 0xA0 (lib/ctype.c's Latin-1 no-break space), also
    /// inside a UTF-8 character: `x=\u{e0}` (C3 A0) reaches the kernel as `x=\xC3` and a second
    /// word. An argument nestcore writes would not arrive as written, so it is refused, naming
    /// the character; removing one that is already there still works.
    #[test]
    fn an_argument_the_kernel_would_split_at_byte_0xa0_is_not_written() {
        for arg in ["x=\u{e0}", "\u{a0}", "lab\u{4e20}"] {
            let mut e = Editor::new("ro");
            let err = e.add_args(arg).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains("0xA0"), "{err}");
            assert_eq!(e.into_string(), "ro");
        }
        let mut e = Editor::new("ro");
        assert!(e.set("x", Some("\u{e0}")).is_err());
        assert!(e.set("\u{a0}", None).is_err());
        // Other non-ASCII text is one word to the kernel as to nestcore.
        assert!(e.add_args("x=\u{e9}\u{2003}").unwrap());
        let mut e = Editor::new("ro x=\u{e0} y");
        assert!(e.remove_args("x").unwrap());
        assert_eq!(e.into_string(), "ro y");
    }

    fn pairs(line: &str) -> Vec<(String, Option<String>)> {
        Cmdline::parse(line)
            .params
            .into_iter()
            .map(|p| (p.name, p.value))
            .collect()
    }

    #[test]
    fn kernel_rules() {
        assert_eq!(
            pairs(r#"ro root=/dev/sda1 quiet"#),
            vec![
                ("ro".into(), None),
                ("root".into(), Some("/dev/sda1".into())),
                ("quiet".into(), None)
            ]
        );
        assert_eq!(
            pairs(r#"a="x y" b"#),
            vec![("a".into(), Some("x y".into())), ("b".into(), None)]
        );
        assert_eq!(pairs(r#""a=x y""#), vec![("a".into(), Some("x y".into()))]);
        assert_eq!(
            pairs(r#"a=b"c d"e"#),
            vec![("a".into(), Some(r#"b"c d"e"#.into()))]
        );
        assert_eq!(pairs("  \t a=1   "), vec![("a".into(), Some("1".into()))]);
        assert_eq!(pairs("a=="), vec![("a".into(), Some("=".into()))]);
        assert_eq!(pairs("=x"), vec![("=x".into(), None)]);
        assert_eq!(pairs(r#"a=""#), vec![("a".into(), Some("".into()))]);
        assert_eq!(pairs(r#"""#), vec![("".into(), None)]);
    }

    /// Lab scenario 09-kernel-cmdline, boot 1 (both kernels): the kernel's isspace() (lib/ctype.c)
    /// counts the vertical tab (U+000B) as white space, as it does tab, newline, form feed and CR;
    /// Rust's `is_ascii_whitespace` does not. Booted with `labvt=1<VT>labvt2`, init got `labvt=1`
    /// in its environment and `labvt2` as an argument; nestcore read one value `1<VT>labvt2`.
    #[test]
    fn vertical_tab_separates_like_the_kernels_isspace() {
        assert_eq!(
            pairs("a=1\x0bb\x0c c\r\nd"),
            vec![
                ("a".into(), Some("1".into())),
                ("b".into(), None),
                ("c".into(), None),
                ("d".into(), None)
            ]
        );
        assert_eq!(Cmdline::parse("\x0b--\x0bx").init_args.as_deref(), Some("x"));
        assert_eq!(render_param("a", Some("x\x0by")), "a=\"x\x0by\"");
    }

    /// Lab scenario 09-kernel-cmdline, boot 2 (both kernels): lib/cmdline.c `next_arg` marks
    /// "no `=` yet" with `equals == 0`, so an `=` that starts the token is part of the name:
    /// booted with `=x`, init got the argument `=x` (no value); nestcore read the name "" with
    /// the value "x", which the kernel would have put in init's environment. `==y` is the name
    /// `=` with the value `y`.
    #[test]
    fn a_leading_equals_is_part_of_the_name() {
        assert_eq!(pairs("=x"), vec![("=x".into(), None)]);
        assert_eq!(pairs("==y"), vec![("=".into(), Some("y".into()))]);
        assert_eq!(pairs("\"=x y\""), vec![("=x y".into(), None)]);
        assert_eq!(pairs("="), vec![("=".into(), None)]);
        assert_eq!(pairs("a=="), vec![("a".into(), Some("=".into()))]);
    }

    #[test]
    fn double_dash_ends_kernel_args() {
        let c = Cmdline::parse("quiet -- --firecracker-init kvm-intel.nested=1");
        assert_eq!(c.params.len(), 1);
        assert_eq!(
            c.init_args.as_deref(),
            Some("--firecracker-init kvm-intel.nested=1")
        );
        assert_eq!(c.get("kvm_intel.nested"), None);
    }

    /// Found by the cmdline_parse fuzz target (fuzz/regressions/cmdline_parse/quoted-double-dash):
    /// a quoted `"--"` was read as a parameter named `--`, which render() writes as a bare `--`,
    /// the end of the kernel's arguments. The kernel removes the quotes first (lib/cmdline.c
    /// `next_arg`) and then stops at a `--` without a value (kernel/params.c `parse_args`), so
    /// `"--"`, and `"--` without its closing quote, end the kernel's part too.
    #[test]
    fn quoted_double_dash_ends_kernel_args_too() {
        for line in [r#""--" x"#, r#"a "--" x"#, r#""--"#] {
            let c = Cmdline::parse(line);
            assert!(c.params.iter().all(|p| p.name != "--"), "{line:?}: {c:?}");
            assert!(c.init_args.is_some(), "{line:?}: {c:?}");
            assert_eq!(Cmdline::parse(&c.render()).init_args, c.init_args, "{line:?}");
        }
        assert_eq!(Cmdline::parse(r#""--" x"#).init_args.as_deref(), Some("x"));
        // With a value it is a parameter.
        assert_eq!(
            pairs(r#""--=1" x"#),
            vec![("--".into(), Some("1".into())), ("x".into(), None)]
        );
    }

    /// kmod reads the whole line (lab scenario 04-cmdline); the kernel stops at `--`.
    #[test]
    fn module_params_after_dashes_are_kmods() {
        let c = Cmdline::parse("quiet -- --firecracker-init kvm-intel.nested=1 x=y -- kvm_amd.nested ro");
        let late = c.module_params_after_dashes();
        let names: Vec<&str> = late.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["kvm-intel.nested", "kvm_amd.nested"]);
        assert_eq!(c.module_param("kvm_intel.nested", false), Some(Some("1".into())));
        assert_eq!(c.module_param("kvm_intel.nested", true), None);
        assert_eq!(c.module_param("kvm-amd.nested", false), Some(None));
        let c = Cmdline::parse("kvm_amd.nested=0 -- kvm_amd.nested=1");
        assert_eq!(c.module_param("kvm_amd.nested", false), Some(Some("1".into())));
        assert_eq!(c.module_param("kvm_amd.nested", true), Some(Some("0".into())));
        assert_eq!(Cmdline::parse("a -- -- --").module_params_after_dashes(), vec![]);
    }

    #[test]
    fn dash_equals_underscore_last_wins() {
        let c = Cmdline::parse("kvm-intel.nested=0 kvm_intel.nested=1 kvm-amd.nested");
        assert_eq!(c.get("kvm_intel.nested"), Some(Some("1")));
        assert_eq!(c.get("kvm-intel-nested"), None);
        assert_eq!(c.get("kvm_amd.nested"), Some(None));
        assert_eq!(c.all("kvm_intel.nested").count(), 2);
    }

    #[test]
    fn spans_cover_tokens() {
        let line = r#"a="x y"  b=2"#;
        let c = Cmdline::parse(line);
        assert_eq!(&line[c.params[0].span.clone()], r#"a="x y""#);
        assert_eq!(&line[c.params[1].span.clone()], "b=2");
    }

    #[test]
    fn hostile_input_never_panics() {
        for s in [
            "\"",
            "\"\"\"",
            "=",
            "==",
            "a=\"",
            "\u{e9}=\u{e8}\"x",
            "--",
            "\0\0",
            "a\u{2003}b",
        ] {
            let _ = Cmdline::parse(s);
        }
    }

    #[test]
    fn editor_keeps_other_bytes() {
        let mut e = Editor::new("ro\troot=/dev/sda1  hdd=ide-scsi -- x=1");
        assert!(e.add_args("hdd=notide-scsi root=/dev/hdd1 new").unwrap());
        assert_eq!(e.as_str(), "ro\troot=/dev/hdd1  hdd=notide-scsi new -- x=1");
        assert!(!e.add_args("new").unwrap());
        assert!(e.remove_args("hdd=foobar root").unwrap());
        assert_eq!(e.as_str(), "ro  hdd=notide-scsi new -- x=1");
        assert!(!e.remove_args("hdd=foobar").unwrap());
        assert!(e.remove_args("hdd=notide-scsi ro new").unwrap());
        assert_eq!(e.as_str(), "-- x=1");
        assert!(e.add_args("a").unwrap());
        assert_eq!(e.as_str(), "a -- x=1");
    }

    #[test]
    fn editor_dash_underscore_and_duplicates() {
        let mut e = Editor::new("kvm-intel.nested=0 quiet kvm_intel.nested=0");
        assert!(e.set("kvm_intel.nested", Some("1")).unwrap());
        assert_eq!(e.as_str(), "kvm_intel.nested=1 quiet");
        assert!(!e.set("kvm_intel.nested", Some("1")).unwrap());
        assert!(e.set("a", Some("x y")).unwrap());
        assert_eq!(e.as_str(), "kvm_intel.nested=1 quiet a=\"x y\"");
        assert_eq!(e.parsed().get("a"), Some(Some("x y")));
        assert!(e.remove("kvm-intel.nested", None));
        assert_eq!(e.as_str(), "quiet a=\"x y\"");
        assert!(e.remove("quiet", None));
        assert!(e.remove("a", Some("x y")));
        assert_eq!(e.as_str(), "");
    }

    /// B6: kmod applies a module's parameters after `--` too (the lab), so the editor edits
    /// them there: a set leaves no contrary value, a removal removes them, init's own
    /// arguments stay.
    #[test]
    fn editor_edits_module_params_after_dashes() {
        let mut e = Editor::new("ro kvm-intel.nested=1 -- kvm-intel.nested=0 single -- kvm_intel.nested=0");
        assert!(e.set("kvm_intel.nested", Some("1")).unwrap());
        assert_eq!(e.as_str(), "ro kvm_intel.nested=1 -- single --");
        assert_eq!(
            e.parsed().module_param("kvm_intel.nested", false),
            Some(Some("1".into()))
        );
        assert!(!e.set("kvm_intel.nested", Some("1")).unwrap());
        let mut e = Editor::new("ro -- kvm-amd.nested=1 x");
        assert!(e.add_args("kvm_amd.nested=0").unwrap());
        assert_eq!(e.as_str(), "ro kvm_amd.nested=0 -- x");
        let mut e = Editor::new("ro -- kvm-amd.nested=1 kvm-amd.nested=2 x");
        assert!(e.remove_args("kvm_amd.nested=2").unwrap());
        assert_eq!(e.as_str(), "ro -- kvm-amd.nested=1 x");
        assert!(e.remove_args("kvm_amd.nested").unwrap());
        assert_eq!(e.as_str(), "ro -- x");
        // A name without a `.` after `--` is init's: never touched.
        let mut e = Editor::new("ro -- single");
        assert!(e.set("single", Some("1")).unwrap());
        assert_eq!(e.as_str(), "ro single=1 -- single");
        assert!(e.remove("single", None));
        assert_eq!(e.as_str(), "ro -- single");
    }

    #[test]
    fn editor_rejects_bad_args() {
        let mut e = Editor::new("ro");
        assert!(e.add_args("a=\"x").is_err());
        assert!(e.add_args("a -- b").is_err());
        assert!(e.add_args("=x").is_err());
        assert!(e.set("a b", None).is_err());
        assert!(e.set("a", Some("\"")).is_err());
        assert_eq!(e.as_str(), "ro");
    }

    /// Issue 13: a newline inside a quoted argument became a new line of grub.conf.
    #[test]
    fn control_characters_are_refused_by_every_editing_call() {
        for bad in [
            "\"x\ninitrd /evil\"",
            "a=1\nb=2",
            "a\r",
            "a=\0",
            "a\tb",
            "x=\u{1b}[2J",
            "\u{7f}",
            "a=\u{85}",
        ] {
            let mut e = Editor::new("ro quiet");
            let err = e.add_args(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.to_string().contains("control character U+00"), "{err}");
            assert!(
                err.to_string().contains(&format!("{bad:?}")),
                "names the argument: {err}"
            );
            assert!(e.remove_args(bad).is_err(), "{bad:?}");
            assert_eq!(e.as_str(), "ro quiet");
        }
        let mut e = Editor::new("ro");
        assert!(e.set("a\nb", Some("1")).is_err());
        let err = e.set("a", Some("1\ninitrd /evil")).unwrap_err();
        assert!(err.to_string().contains("The value of a"), "{err}");
        assert!(err.to_string().contains("U+000A (line feed)"), "{err}");
        assert_eq!(e.as_str(), "ro");
        // Arguments are validated before the line: the error is about what the caller gave.
        let mut e = Editor::new("a=\"open");
        assert_eq!(
            e.add_args("b\n").unwrap_err().kind(),
            crate::ErrorKind::InvalidInput
        );
    }

    /// Found by the cmdline_edit fuzz target (fuzz/regressions/cmdline_edit/set-double-dash):
    /// `set("--", None)` wrote a bare `--`, which the kernel reads as the end of its arguments,
    /// not as a parameter: the set had no effect and hid everything after it.
    #[test]
    fn set_refuses_the_end_marker() {
        let mut e = Editor::new("--");
        assert_eq!(
            e.set("--", None).unwrap_err().kind(),
            crate::ErrorKind::InvalidInput
        );
        assert_eq!(e.as_str(), "--");
        // With a value it is an ordinary parameter.
        let mut e = Editor::new("ro");
        e.set("--", Some("1")).unwrap();
        assert_eq!(e.parsed().get("--"), Some(Some("1")));
    }

    #[test]
    fn render_round_trips() {
        let c = Cmdline::parse("a b=\"x y\" c= -- init args");
        assert_eq!(c.render(), "a b=\"x y\" c=\"\" -- init args");
        let again = Cmdline::parse(&c.render());
        assert_eq!(again.params.len(), 3);
        assert_eq!(again.get("c"), Some(Some("")));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn name() -> impl Strategy<Value = String> {
            "[a-zA-Z0-9_.-]{1,12}".prop_filter("not the end marker", |s| s != "--")
        }
        fn value() -> impl Strategy<Value = Option<String>> {
            proptest::option::of("[a-zA-Z0-9_.,:/= -]{0,10}")
        }
        fn line() -> impl Strategy<Value = String> {
            // Hostile lines: quotes, tabs, equals, dashes and unicode.
            "[a-z=\" \t\u{e9}_-]{0,40}"
        }

        proptest! {
            #![proptest_config(crate::proptest_seed::config(256))]

            #[test]
            fn parse_render_round_trip(params in proptest::collection::vec((name(), value()), 0..8),
                                       init in proptest::option::of("[a-z =]{0,10}")) {
                let c = Cmdline {
                    params: params.iter().map(|(n, v)| Param { name: n.clone(), value: v.clone(), span: 0..0 }).collect(),
                    init_args: init.map(|s| s.trim_start().to_string()),
                };
                let back = Cmdline::parse(&c.render());
                let got: Vec<_> = back.params.iter().map(|p| (p.name.clone(), p.value.clone())).collect();
                prop_assert_eq!(got, params);
                prop_assert_eq!(back.init_args, c.init_args);
            }

            #[test]
            fn editing_one_param_keeps_other_bytes(l in line(), v in "[a-z0-9]{1,5}") {
                let mut e = Editor::new(l.clone());
                let target = "kvm_intel.nested";
                let had = Cmdline::parse(&l).params.iter().any(|p| normalize(&p.name) == target);
                if e.set(target, Some(&v)).is_err() {
                    prop_assert!(l.matches('"').count() % 2 == 1);
                    return Ok(());
                }
                let out = e.as_str().to_string();
                let reparsed = Cmdline::parse(&out);
                prop_assert_eq!(reparsed.get(target), Some(Some(v.as_str())));
                if !had {
                    // The original line is intact around the inserted token and its one space.
                    let tok = format!("{target}={v}");
                    let cands = [
                        out.replacen(&format!(" {tok}"), "", 1),
                        out.replacen(&format!("{tok} "), "", 1),
                        out.replacen(&tok, "", 1),
                    ];
                    prop_assert!(cands.contains(&l), "{:?} -> {:?}", l, out);
                }
                // Removing it again leaves the other parameters as they were.
                let mut e2 = Editor::new(out);
                e2.remove(target, None);
                let a: Vec<_> = Cmdline::parse(&l).params.into_iter().filter(|p| normalize(&p.name) != target).map(|p| (p.name, p.value)).collect();
                let b: Vec<_> = e2.parsed().params.into_iter().map(|p| (p.name, p.value)).collect();
                prop_assert_eq!(a, b);
            }

            #[test]
            fn editor_never_panics(l in "\\PC{0,40}", a in "\\PC{0,20}") {
                let mut e = Editor::new(l);
                let _ = e.add_args(&a);
                let _ = e.remove_args(&a);
            }
        }
    }
}
