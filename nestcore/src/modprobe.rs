//! modprobe.d: module options the way kmod reads them.
//!
//! - Folders, in priority order: /etc/modprobe.d, /run/modprobe.d, /usr/local/lib/modprobe.d,
//!   /lib/modprobe.d, /usr/lib/modprobe.d. Only `*.conf` files count; a file name found in an
//!   earlier folder hides the same name in later ones (/etc overrides the distribution).
//! - The remaining files are read in lexical order of their names, across folders.
//! - A line ending in `\` continues on the next; a line whose first word starts with `#` is a
//!   comment. `options MODULE PARAMS...` lines accumulate; the kernel applies the parameters in
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
    /// The logical text (continuations joined with a space).
    pub text: String,
}

/// Splits a modprobe.d file into logical lines (blank lines and comments dropped).
pub fn logical_lines(text: &str) -> Vec<ConfLine> {
    let mut out = Vec::new();
    let mut cur: Option<ConfLine> = None;
    for (i, raw) in text.lines().enumerate() {
        let (body, cont) = match raw.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (raw, false),
        };
        let c = cur.get_or_insert_with(|| ConfLine {
            line: i + 1,
            physical: 0,
            text: String::new(),
        });
        if !c.text.is_empty() {
            c.text.push(' ');
        }
        c.text.push_str(body);
        c.physical += 1;
        if !cont {
            if let Some(done) = cur.take() {
                let first = done.text.split_ascii_whitespace().next().unwrap_or("");
                if !first.is_empty() && !first.starts_with('#') {
                    out.push(done);
                }
            }
        }
    }
    if let Some(done) = cur.take() {
        let first = done.text.split_ascii_whitespace().next().unwrap_or("");
        if !first.is_empty() && !first.starts_with('#') {
            out.push(done);
        }
    }
    out
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

/// The files kmod reads, in order, and those hidden by a same-named file.
pub fn config_files(host: &Host) -> (Vec<String>, Vec<String>) {
    let mut by_name: Vec<(String, String)> = Vec::new();
    let mut shadowed = Vec::new();
    for dir in DIRS {
        let Ok(names) = host.read_dir(dir) else { continue };
        for n in names {
            if !n.ends_with(".conf") || host.is_dir(&format!("{dir}/{n}")) {
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
/// module. The module is found by position, never by searching for its name: `options ons x=1`
/// names module `ons`, not the `ons` inside `options`.
fn options_words(text: &str) -> Option<(&str, &str)> {
    let ws = |c: char| c.is_ascii_whitespace();
    let rest = text.trim_start_matches(ws).strip_prefix("options")?;
    if !rest.starts_with(ws) {
        return None;
    }
    let rest = rest.trim_start_matches(ws);
    let end = rest.find(ws).unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    Some((&rest[..end], &rest[end..]))
}

/// Parses the `options` lines of one file's text.
pub fn parse_options(file: &str, text: &str) -> Vec<OptionSource> {
    let mut out = Vec::new();
    for l in logical_lines(text) {
        let Some((module, after)) = options_words(&l.text) else {
            continue;
        };
        for p in Cmdline::parse(after).params {
            out.push(OptionSource {
                file: file.to_string(),
                line: l.line,
                module: normalize(module),
                param: normalize(&p.name),
                value: p.value,
                text: l.text.clone(),
            });
        }
    }
    out
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

/// Reads a parameter value as a boolean: Y/y/1/on/true, N/n/0/off/false.
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
        let hits = parse_options("", &l.text)
            .iter()
            .any(|o| o.module == m && o.param == p);
        let end = (start + l.physical).min(physical.len());
        if !hits {
            continue;
        }
        for ph in &physical[start..end] {
            out.push_str(&format!("{MARKER} disabled (sets {m} {p}) {ph}"));
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
        let (module_word, after) = options_words(&l.text).unwrap_or(("", ""));
        let rest: Vec<String> = Cmdline::parse(after)
            .params
            .iter()
            .filter(|x| normalize(&x.name) != p)
            .map(|x| after[x.span.clone()].to_string())
            .collect();
        if !rest.is_empty() {
            out.push_str(&format!("options {module_word} {}\n", rest.join(" ")));
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
