//! modprobe.d: module options the way kmod reads them (libkmod-config.c, checked against
//! kmod itself in tests/differential_kmod.rs).
//!
//! - Folders, in priority order: /etc/modprobe.d, /run/modprobe.d, /usr/local/lib/modprobe.d,
//!   /lib/modprobe.d, /usr/lib/modprobe.d. Only `*.conf` and `*.alias` files whose names do not
//!   start with `.` count; a file name found in an earlier folder hides the same name in later
//!   ones (/etc overrides the distribution).
//! - The remaining files are read in lexical order of their names, across folders.
//! - A backslash followed by a line end joins the next line (nothing in between); a backslash
//!   before any other character is dropped and the character kept; a line ends at its first NUL.
//!   A line whose first word starts with `#` is a comment. Words are separated by spaces and
//!   tabs. `options MODULE PARAMS...` lines accumulate; the kernel applies the parameters in
//!   order, so a later value of the same parameter wins. Module names (and parameter names)
//!   compare with `-` equal to `_`.

use serde::Serialize;

use crate::cmdline::{normalize, Cmdline};
use crate::error::{Error, Result};
use crate::Host;

/// The folders kmod reads, highest priority first.
pub const DIRS: [&str; 5] = [
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/lib/modprobe.d",
    "/usr/lib/modprobe.d",
];

/// The drop-in nestcore owns.
pub const DROP_IN: &str = "/etc/modprobe.d/nestcore-kvm.conf";

/// The marker nestcore puts on lines it neutralised.
pub const MARKER: &str = "# nestcore:";

/// One logical line of a modprobe.d file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfLine {
    /// 1-based number of the first physical line.
    pub line: usize,
    /// Number of physical lines (more than 1 with `\` continuations).
    pub physical: usize,
    /// The logical text as kmod reads it: continuations joined, escaping backslashes removed,
    /// cut at a NUL.
    pub text: String,
}

/// The first word of a logical line (words are separated by spaces and tabs, as kmod splits
/// them).
fn first_word(text: &str) -> &str {
    text.trim_start_matches(KMOD_BLANKS)
        .split(KMOD_BLANKS)
        .next()
        .unwrap_or("")
}

/// What kmod separates words of a line with (`strtok_r(line, "\t ", ...)`).
const KMOD_BLANKS: [char; 2] = [' ', '\t'];

/// Splits a modprobe.d file into logical lines (blank lines and comments dropped), by kmod's
/// `getline_wrapped`: `\` and a line end join two lines, `\` and any other character is that
/// character. A backslash at the very end of the file is dropped (kmod appends the byte 0xFF
/// there, its EOF marker read as a character; see tests/differential_kmod.rs).
pub fn logical_lines(text: &str) -> Vec<ConfLine> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut cur = ConfLine {
        line,
        physical: 1,
        text: String::new(),
    };
    let mut cut = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    // A continuation counts its next physical line only once that line has a character (a
    // file may end right after the backslash and its newline).
    let mut pending = false;
    while let Some(c) = chars.next() {
        any = true;
        if std::mem::take(&mut pending) {
            cur.physical += 1;
        }
        match c {
            '\n' => {
                line += 1;
                push_line(
                    &mut out,
                    std::mem::replace(
                        &mut cur,
                        ConfLine {
                            line,
                            physical: 1,
                            text: String::new(),
                        },
                    ),
                );
                cut = false;
                any = false;
            }
            '\\' => match chars.next() {
                Some('\n') => {
                    line += 1;
                    pending = true;
                }
                Some(other) if !cut => {
                    if other == '\0' {
                        cut = true;
                    } else {
                        cur.text.push(other);
                    }
                }
                _ => {}
            },
            '\0' => cut = true,
            c if !cut => cur.text.push(c),
            _ => {}
        }
    }
    if any || !cur.text.is_empty() {
        push_line(&mut out, cur);
    }
    out
}

fn push_line(out: &mut Vec<ConfLine>, l: ConfLine) {
    let first = first_word(&l.text);
    if !first.is_empty() && !first.starts_with('#') {
        out.push(l);
    }
}

/// One parameter set by an `options` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OptionSource {
    /// The file as the host sees it.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// The module, normalized (`kvm_intel`).
    pub module: String,
    /// The parameter, normalized.
    pub param: String,
    /// The value (`None` for a bare parameter).
    pub value: Option<String>,
    /// The whole logical line.
    pub text: String,
}

impl OptionSource {
    /// `file:line`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// The modprobe.d configuration of a host.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ModprobeConfig {
    /// The files kmod reads, in the order it reads them.
    pub files: Vec<String>,
    /// Files hidden by a same-named file in a higher-priority folder.
    pub shadowed: Vec<String>,
    /// Every parameter of every `options` line, in reading order.
    pub options: Vec<OptionSource>,
}

/// Whether kmod reads a file of this name in a modprobe.d folder (libkmod-config.c
/// `conf_files_filter_out`): `*.conf` or `*.alias`, not hidden (`.name`).
pub fn is_config_name(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".conf") || name.ends_with(".alias"))
}

/// The files kmod reads, in order, and those hidden by a same-named file.
pub fn config_files(host: &Host) -> (Vec<String>, Vec<String>) {
    let mut by_name: Vec<(String, String)> = Vec::new();
    let mut shadowed = Vec::new();
    for dir in DIRS {
        let Ok(names) = host.read_dir(dir) else { continue };
        for n in names {
            if !is_config_name(&n) || host.is_dir(&format!("{dir}/{n}")) {
                continue;
            }
            let path = format!("{dir}/{n}");
            if by_name.iter().any(|(name, _)| *name == n) {
                shadowed.push(path);
            } else {
                by_name.push((n, path));
            }
        }
    }
    by_name.sort();
    (by_name.into_iter().map(|(_, p)| p).collect(), shadowed)
}

/// Splits a logical `options MODULE PARAMS...` line into the module word and the text after it
/// (the parameters, by the kernel's rules); `None` for another directive or a line without a
/// module. Words are separated by spaces and tabs only, as kmod splits them. The module is found
/// by position, never by searching for its name: `options ons x=1` names module `ons`, not the
/// `ons` inside `options`.
fn options_words(text: &str) -> Option<(&str, &str)> {
    let rest = text.trim_start_matches(KMOD_BLANKS).strip_prefix("options")?;
    if !rest.starts_with(KMOD_BLANKS) {
        return None;
    }
    let rest = rest.trim_start_matches(KMOD_BLANKS);
    let end = rest.find(KMOD_BLANKS).unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    Some((&rest[..end], &rest[end..]))
}

/// A module name as kmod keeps it (libkmod-util.c `underscores`): `-` becomes `_` except
/// inside `[...]`; `None` for an unmatched bracket, which makes kmod ignore the line.
fn kmod_module_name(word: &str) -> Option<String> {
    let mut out = String::with_capacity(word.len());
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match c {
            '-' => out.push('_'),
            ']' => return None,
            '[' => {
                out.push('[');
                loop {
                    match chars.next()? {
                        ']' => break,
                        x => out.push(x),
                    }
                }
                out.push(']');
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// The parameters of an `options` line as kmod hands them to the kernel: tabs become spaces
/// (libkmod-config.c `kmod_config_add_options`), which matters inside quotes.
fn kernel_options(after: &str) -> String {
    after.replace('\t', " ")
}

/// Parses the `options` lines of one file's text.
pub fn parse_options(file: &str, text: &str) -> Vec<OptionSource> {
    logical_lines(text)
        .iter()
        .flat_map(|l| line_options(file, l))
        .collect()
}

/// The parameters one logical line sets (none when it is no `options` line).
fn line_options(file: &str, l: &ConfLine) -> Vec<OptionSource> {
    let Some((module, after)) = options_words(&l.text) else {
        return Vec::new();
    };
    let Some(module) = kmod_module_name(module) else {
        return Vec::new();
    };
    Cmdline::parse(&kernel_options(after))
        .params
        .into_iter()
        .map(|p| OptionSource {
            file: file.to_string(),
            line: l.line,
            module: module.clone(),
            param: normalize(&p.name),
            value: p.value,
            text: l.text.clone(),
        })
        .collect()
}

/// Reads the modprobe.d configuration of `host`.
///
/// # Errors
/// [`Error::Io`] when a listed file cannot be read (other than vanishing).
pub fn load(host: &Host) -> Result<ModprobeConfig> {
    let (files, shadowed) = config_files(host);
    let mut options = Vec::new();
    for f in &files {
        match host.read(f) {
            Ok(t) => options.extend(parse_options(f, &t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(f, e)),
        }
    }
    Ok(ModprobeConfig {
        files,
        shadowed,
        options,
    })
}

impl ModprobeConfig {
    /// Every line that sets `module`'s `param`, in the order kmod applies them.
    pub fn contributions(&self, module: &str, param: &str) -> Vec<&OptionSource> {
        let (m, p) = (normalize(module), normalize(param));
        self.options
            .iter()
            .filter(|o| o.module == m && o.param == p)
            .collect()
    }

    /// The line whose value wins (the last one).
    pub fn effective(&self, module: &str, param: &str) -> Option<&OptionSource> {
        self.contributions(module, param).into_iter().last()
    }

    /// Where a file sorts among the files kmod reads (by name).
    pub fn sorts_after(a: &str, b: &str) -> bool {
        file_name(a) > file_name(b)
    }
}

/// The file name of a path.
pub fn file_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Reads a parameter value as a boolean: Y/y/1/on/true, N/n/0/off/false. For what sysfs prints
/// (and nestcore records) only: whether a module loads with a modprobe.d or command-line value,
/// and with what, is judged by [`crate::kvm::param_load_value`] (kvm_amd's `nested` is an int,
/// so `Y` here is true but refused there).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "y" | "1" | "on" | "yes" | "true" => Some(true),
        "n" | "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// The text of nestcore's drop-in for `module` with `nested=value`.
pub fn drop_in_text(module: &str, value: &str) -> String {
    format!(
        "# Written by nestcore: nested virtualization for {module}.\n\
         # nestcore owns this file; `nestcore enable --off` rewrites it, deleting it undoes it.\n\
         options {module} nested={value}\n"
    )
}

/// The module and value when `text` is exactly what [`drop_in_text`] writes (nestcore's own
/// file, which the backup store regenerates instead of copying).
pub fn own_drop_in(text: &str) -> Option<(String, String)> {
    ["kvm_intel", "kvm_amd"].iter().find_map(|m| {
        ["1", "0"]
            .iter()
            .find(|v| drop_in_text(m, v) == text)
            .map(|v| (m.to_string(), v.to_string()))
    })
}

/// Neutralises every `options` line of `text` that sets `module`'s `param`: the original line
/// is kept as a comment with nestcore's marker and, when it set other parameters too, an
/// `options` line with just those follows. Returns the new text.
pub fn neutralise(text: &str, module: &str, param: &str) -> String {
    let (m, p) = (normalize(module), normalize(param));
    let physical: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::with_capacity(text.len() + 64);
    let mut i = 0;
    for l in logical_lines(text) {
        let start = l.line - 1;
        while i < start && i < physical.len() {
            out.push_str(physical[i]);
            i += 1;
        }
        // The logical line as it is (parsing its text as a file again would unescape twice).
        let hits = line_options("", &l).iter().any(|o| o.module == m && o.param == p);
        let end = (start + l.physical).min(physical.len());
        if !hits {
            continue;
        }
        for ph in &physical[start..end] {
            out.push_str(&format!("{MARKER} disabled (sets {m} {p}) {ph}"));
        }
        // The file may end inside a continuation (an odd run of backslashes before the last
        // line end, or before the end): end the comment with an empty line, or it would
        // swallow the line written next.
        let body = out.strip_suffix('\n').unwrap_or(&out);
        let open = (body.len() - body.trim_end_matches('\\').len()) % 2 == 1;
        if !out.ends_with('\n') {
            out.push('\n');
        }
        if open {
            out.push('\n');
        }
        let (module_word, after) = options_words(&l.text).unwrap_or(("", ""));
        let after = kernel_options(after);
        let rest: Vec<String> = Cmdline::parse(&after)
            .params
            .iter()
            .filter(|x| normalize(&x.name) != p)
            .map(|x| after[x.span.clone()].to_string())
            .collect();
        if !rest.is_empty() {
            // The words come from the logical line (escapes removed): escape backslashes again,
            // or `x=a\\` written back as `x=a\` would continue onto the next line.
            let esc = |w: &str| w.replace('\\', "\\\\");
            let rest: Vec<String> = rest.iter().map(|w| esc(w)).collect();
            out.push_str(&format!("options {} {}\n", esc(module_word), rest.join(" ")));
        }
        i = end;
    }
    while i < physical.len() {
        out.push_str(physical[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// kmod splits at spaces and tabs only: "\t\r# x" is the unknown command "\r#", not a
    /// comment (fuzz/regressions/modprobe/carriage-return-before-hash-is-no-comment: the
    /// target's own oracle had trimmed the CR as white space).
    #[test]
    fn carriage_return_before_hash_is_no_comment() {
        let l = logical_lines("\t\r# x\n# y\n");
        assert_eq!(l.len(), 1, "{l:?}");
        assert_eq!(l[0].text, "\t\r# x");
        assert!(parse_options("f", "\t\r# x\n").is_empty());
    }

    /// A `[` opens a range that ends at the first `]`; brackets do not nest, so in `a[-[]` the
    /// `-` is inside the range and stays (kmod 30: `modprobe -n -C DIR --showconfig` prints
    /// `options a[-[] ax -b=1`; libkmod-util.c `underscores`: `i += strcspn(&s[i], "]")`).
    /// An unclosed `[` or a stray `]` makes kmod ignore the line ("ignoring bad line").
    /// fuzz/regressions/modprobe/bracket-range-ends-at-first-close: the target's own oracle had
    /// split the name at every `[`.
    #[test]
    fn a_bracket_range_ends_at_the_first_close() {
        let o = parse_options("f", "options a[-[] ax -b=1\n");
        assert_eq!(o.len(), 2, "{o:?}");
        assert_eq!(o[0].module, "a[-[]");
        assert_eq!(o[0].param, "ax");
        let o = parse_options("f", "options f-[x-y]-g z=1\n");
        assert_eq!(o[0].module, "f_[x-y]_g");
        assert!(parse_options("f", "options c[- x=1\noptions e]- y=1\n").is_empty());
    }

    fn host_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Host) {
        let d = tempfile::tempdir().unwrap();
        for (p, t) in files {
            let real = d.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(real.parent().unwrap()).unwrap();
            std::fs::write(real, t).unwrap();
        }
        let h = Host::from_root(d.path()).unwrap();
        (d, h)
    }

    #[test]
    fn kmod_order_and_override() {
        let (_d, h) = host_with(&[
            ("/usr/lib/modprobe.d/kvm.conf", "options kvm-intel nested=0\n"),
            (
                "/etc/modprobe.d/kvm.conf",
                "# local\noptions kvm_intel nested=1 \\\n  ept=1\n",
            ),
            ("/lib/modprobe.d/zz.conf", "options kvm_intel nested=N\n"),
            (
                "/etc/modprobe.d/a.conf",
                "options kvm_intel nested=Y\n#options kvm_intel nested=0\n",
            ),
            ("/etc/modprobe.d/ignored.txt", "options kvm_intel nested=0\n"),
        ]);
        let c = load(&h).unwrap();
        assert_eq!(
            c.files,
            vec![
                "/etc/modprobe.d/a.conf",
                "/etc/modprobe.d/kvm.conf",
                "/lib/modprobe.d/zz.conf"
            ]
        );
        assert_eq!(c.shadowed, vec!["/usr/lib/modprobe.d/kvm.conf"]);
        let all: Vec<_> = c
            .contributions("kvm-intel", "nested")
            .iter()
            .map(|o| o.location())
            .collect();
        assert_eq!(
            all,
            vec![
                "/etc/modprobe.d/a.conf:1",
                "/etc/modprobe.d/kvm.conf:2",
                "/lib/modprobe.d/zz.conf:1"
            ]
        );
        assert_eq!(
            c.effective("kvm_intel", "nested").unwrap().value.as_deref(),
            Some("N")
        );
        assert_eq!(c.effective("kvm_intel", "ept").unwrap().line, 2);
    }

    /// kmod's reading, found by tests/differential_kmod.rs (modprobe -C DIR --showconfig): 174
    /// of 300 generated folders disagreed before. A continuation joins with nothing in between;
    /// `\\x` is `x`; a NUL ends the line; tabs in options are spaces; words are split at
    /// spaces and tabs only; a module name with an unmatched bracket makes kmod ignore the line.
    #[test]
    fn lines_as_kmod_reads_them() {
        let opts = |t: &str| -> Vec<(String, String, Option<String>)> {
            parse_options("f", t)
                .into_iter()
                .map(|o| (o.module, o.param, o.value))
                .collect()
        };
        let o = |m: &str, p: &str, v: Option<&str>| (m.to_string(), p.to_string(), v.map(str::to_string));
        assert_eq!(
            opts("options kvm_intel nested=1\\\nept=1\n"),
            vec![o("kvm_intel", "nested", Some("1ept=1"))]
        );
        assert_eq!(opts("options kvm_intel nested=1 \\\n  ept=1\n").len(), 2);
        assert_eq!(
            opts("options kvm_\\intel ne\\sted=\\Y\n"),
            vec![o("kvm_intel", "nested", Some("Y"))]
        );
        assert_eq!(
            opts("options a x=a\\\\\noptions b y=1\n"),
            vec![o("a", "x", Some("a\\")), o("b", "y", Some("1"))]
        );
        assert_eq!(
            opts("options a x=1\0 y=2\noptions b z=1\n"),
            vec![o("a", "x", Some("1")), o("b", "z", Some("1"))]
        );
        assert_eq!(opts("options a x=\"1\t2\"\n"), vec![o("a", "x", Some("1 2"))]);
        assert!(opts("options\x0ca x=1\noptions a\rx=1\n").is_empty());
        assert!(opts("options a[b x=1\noptions a]b x=1\n").is_empty());
        assert_eq!(opts("options a[-]-b x=1\n"), vec![o("a[-]_b", "x", Some("1"))]);
        assert!(is_config_name("kvm.conf") && is_config_name("x.alias"));
        assert!(!is_config_name(".kvm.conf") && !is_config_name("kvm.conf.bak") && !is_config_name(".conf"));
    }

    /// neutralise writes what kmod then reads as intended (tests/differential_kmod.rs): a
    /// backslash of the logical line is escaped again, and a file ending inside a continuation
    /// does not swallow the line written after its comment.
    #[test]
    fn neutralised_files_read_as_intended() {
        let out = neutralise(
            "options kvm_intel nested=0 x=a\\\\\noptions b y=1\n",
            "kvm_intel",
            "nested",
        );
        assert!(
            out.ends_with("\noptions kvm_intel x=a\\\\\noptions b y=1\n"),
            "{out:?}"
        );
        for t in [
            "options kvm_intel x=1 nested=0 \\\n",
            "options kvm_intel x=1 nested=0 \\",
        ] {
            let out = neutralise(t, "kvm_intel", "nested");
            let o = parse_options("f", &out);
            assert_eq!(o.len(), 1, "{t:?} -> {out:?}");
            assert_eq!((o[0].param.as_str(), o[0].value.as_deref()), ("x", Some("1")));
        }
    }

    /// Found by the modprobe fuzz target (fuzz/regressions/modprobe/escaped-backslash-twice):
    /// neutralise parsed each logical line again as a file, so an escaped backslash (`\\\\`)
    /// was unescaped twice, the setting it names never matched and stayed in force.
    #[test]
    fn neutralise_reads_each_line_once() {
        for t in [
            "options kvm_intel ne\\\\sted=0 x=1\n",
            "options kvm\\\\intel nested=0\n",
        ] {
            let o = &parse_options("f", t)[0];
            let out = neutralise(t, &o.module, &o.param);
            assert!(
                parse_options("f", &out)
                    .iter()
                    .all(|x| !(x.module == o.module && x.param == o.param)),
                "{t:?} -> {out:?}"
            );
        }
    }

    #[test]
    fn neutralises_only_the_param() {
        let t = "# hi\noptions kvm_intel nested=0 ept=1\noptions kvm_amd nested=0\noptions kvm-intel \\\n nested=0\n";
        let out = neutralise(t, "kvm_intel", "nested");
        assert_eq!(
            out,
            "# hi\n# nestcore: disabled (sets kvm_intel nested) options kvm_intel nested=0 ept=1\noptions kvm_intel ept=1\noptions kvm_amd nested=0\n# nestcore: disabled (sets kvm_intel nested) options kvm-intel \\\n# nestcore: disabled (sets kvm_intel nested)  nested=0\n"
        );
        assert!(parse_options("x", &out)
            .iter()
            .all(|o| !(o.module == "kvm_intel" && o.param == "nested")));
        assert_eq!(
            neutralise("options kvm_intel nested=0", "kvm_intel", "nested")
                .lines()
                .count(),
            1
        );
    }

    #[test]
    fn bools_and_hostile() {
        assert_eq!(parse_bool("Y\n"), Some(true));
        assert_eq!(parse_bool("off"), Some(false));
        assert_eq!(parse_bool("2"), None);
        for t in [
            "options",
            "options \\",
            "\\\n\\",
            "options kvm_intel \"",
            "options kvm_intel nested",
        ] {
            let _ = parse_options("f", t);
            let _ = neutralise(t, "kvm_intel", "nested");
        }
        assert_eq!(parse_options("f", "options kvm_intel nested")[0].value, None);
    }

    #[test]
    fn module_named_like_part_of_options() {
        // Found by tests/properties.rs: the module was searched for by name, and `i` or `ons`
        // matched inside the word `options` itself.
        for (text, module) in [
            ("options i nested=1\n", "i"),
            ("  options\tons nested=1\n", "ons"),
        ] {
            let o = parse_options("f", text);
            assert_eq!(o.len(), 1, "{text:?}: {o:?}");
            assert_eq!((o[0].module.as_str(), o[0].param.as_str()), (module, "nested"));
            let n = neutralise(text, module, "nested");
            assert!(parse_options("f", &n).is_empty(), "{n:?}");
        }
        let n = neutralise("options o nested=1 x=2\n", "o", "nested");
        assert!(n.ends_with("\noptions o x=2\n"), "{n:?}");
        assert!(parse_options("f", "optionsx a b=1\noptions\n").is_empty());
    }
}
