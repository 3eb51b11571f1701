//! The kernel command line, parsed by the kernel's own rules (lib/cmdline.c `next_arg`,
//! kernel/params.c `parse_args`).
//!
//! - Tokens are separated by white space; a `"` toggles quoting, so `a="x y"` is one token.
//! - A leading quote of the value (and the matching last character) is dropped; other quotes stay.
//! - A bare `--` ends the kernel's part: what follows belongs to init.
//! - Names compare with `-` equal to `_` (`kvm-intel.nested` is `kvm_intel.nested`); the last
//!   occurrence wins.

use std::ops::Range;

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
                if b[j].is_ascii_whitespace() && !in_quote {
                    break;
                }
                if equals.is_none() && b[j] == b'=' {
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
            if value.is_none() && name == "--" && !quoted {
                let rest = skip_spaces(b, end);
                return Cmdline {
                    params,
                    init_args: Some(line[rest..].to_string()),
                };
            }
            params.push(Param {
                name,
                value,
                span: start..end,
            });
            i = skip_spaces(b, end);
        }
        Cmdline {
            params,
            init_args: None,
        }
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
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(pairs("=x"), vec![("".into(), Some("x".into()))]);
        assert_eq!(pairs(r#"a=""#), vec![("a".into(), Some("".into()))]);
        assert_eq!(pairs(r#"""#), vec![("".into(), None)]);
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
        // a quoted "--" is a parameter, not the end
        assert_eq!(Cmdline::parse(r#""--" x"#).params.len(), 2);
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
}
