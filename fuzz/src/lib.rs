//! The fuzz targets of nestcore: one function per target, `TARGET::run(data)`, that feeds the
//! bytes to a parser or editor and asserts its properties (a panic is the failure report). The
//! libFuzzer entry points in `fuzz_targets/` call them; so does the plain replay harness
//! (`tests/replay.rs`), which runs every seed and regression input without libFuzzer.
//!
//! # Input layout
//! Every target reads its input the same way ([`Input`]): the first byte selects a variant (a
//! loader target, a vendor, a C function; targets without variants ignore it), the rest is split
//! at `0xFF` bytes into text fields. `0xFF` never occurs in UTF-8, so every string, NUL and
//! control characters included, is reachable; other invalid UTF-8 becomes U+FFFD. The seed
//! generator (`nestcore/tests/fuzz_seeds.rs`) writes inputs in this layout.
//!
//! # Properties
//! Each target checks more than "no panic": round trips, idempotence, that an edit touches only
//! what it must, that output holds no control character the input did not, and that generated
//! XML parses with an independent parser (roxmltree).
#![allow(clippy::unwrap_used, clippy::expect_used)] // A panic is how a target reports.

pub mod bls;
pub mod cmdline_edit;
pub mod cmdline_parse;
pub mod cpuid_formats;
pub mod cpuid_parse;
pub mod cpuinfo;
pub mod extlinux;
pub mod ffi;
pub mod grub2;
pub mod grub_legacy;
pub mod grubenv;
pub mod kernel_cmdline;
pub mod libvirt_cpu;
pub mod libvirt_domain;
pub mod modprobe;
pub mod nova;
pub mod qemu_cpu;

/// A target: its name and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target by name, for the replay harness and scripts/fuzz.
pub const TARGETS: &[Target] = &[
    ("cpuinfo", cpuinfo::run),
    ("cmdline_parse", cmdline_parse::run),
    ("cmdline_edit", cmdline_edit::run),
    ("cpuid_parse", cpuid_parse::run),
    ("cpuid_formats", cpuid_formats::run),
    ("modprobe", modprobe::run),
    ("grub_legacy", grub_legacy::run),
    ("grub2", grub2::run),
    ("bls", bls::run),
    ("grubenv", grubenv::run),
    ("extlinux", extlinux::run),
    ("kernel_cmdline", kernel_cmdline::run),
    ("libvirt_cpu", libvirt_cpu::run),
    ("libvirt_domain", libvirt_domain::run),
    ("qemu_cpu", qemu_cpu::run),
    ("nova", nova::run),
    ("ffi", ffi::run),
];

/// A target's input: the variant byte and the text fields.
#[derive(Debug, Clone)]
pub struct Input {
    /// The first byte (0 for empty input).
    pub selector: u8,
    fields: Vec<String>,
}

impl Input {
    /// Splits `data` as described in the crate documentation.
    pub fn new(data: &[u8]) -> Input {
        let (selector, rest) = match data.split_first() {
            Some((s, r)) => (*s, r),
            None => (0, &[][..]),
        };
        let fields = rest
            .split(|&b| b == 0xFF)
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        Input { selector, fields }
    }

    /// Field `i` ("" when there are fewer).
    pub fn field(&self, i: usize) -> &str {
        self.fields.get(i).map_or("", String::as_str)
    }

    /// Field `i`, or `None` when the input has fewer fields (an argument not given).
    pub fn opt(&self, i: usize) -> Option<&str> {
        self.fields.get(i).map(String::as_str)
    }

    /// Field `i` as a kernel argument list, control characters and all (the editors must
    /// refuse them: issue 13).
    pub fn karg(&self, i: usize) -> Option<String> {
        self.opt(i).map(str::to_string)
    }
}

/// Writes an input in the layout [`Input::new`] reads (for seeds and regression files).
pub fn encode(selector: u8, fields: &[&str]) -> Vec<u8> {
    let mut out = vec![selector];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(0xFF);
        }
        out.extend_from_slice(f.as_bytes());
    }
    out
}

/// Panics unless every control character of `after` occurs in `after` at most as often as in
/// `before`, except that `newlines` more `\n` (lines an editor may add) are allowed.
pub fn no_new_controls(what: &str, before: &str, after: &str, newlines: usize) {
    let mut seen = std::collections::BTreeSet::new();
    for c in after.chars().filter(|c| c.is_control()) {
        if !seen.insert(c) {
            continue;
        }
        let (a, b) = (after.matches(c).count(), before.matches(c).count());
        let allowed = b + if c == '\n' { newlines } else { 0 };
        assert!(
            a <= allowed,
            "{what}: the output holds {a} x {c:?}, the input {b}\ninput:  {before:?}\noutput: {after:?}"
        );
    }
}

/// Panics unless every control character of `after` but those in `free` occurs in `after` at
/// most as often as in `before` (generated text: its own line breaks are `free`).
pub fn no_new_controls_but(what: &str, before: &str, after: &str, free: &[char]) {
    for c in after.chars().filter(|c| c.is_control() && !free.contains(c)) {
        let (a, b) = (after.matches(c).count(), before.matches(c).count());
        assert!(
            a <= b,
            "{what}: the output holds {a} x {c:?}, the input {b}\ninput:  {before:?}\noutput: {after:?}"
        );
    }
}

/// Panics unless every control character of `after` (but `\n`) occurs in `before` (for editors
/// that keep an original line as a comment next to its rewrite, so counts may grow).
pub fn no_new_control_kinds(what: &str, before: &str, after: &str) {
    for c in after.chars().filter(|c| c.is_control() && *c != '\n') {
        assert!(
            before.contains(c),
            "{what}: the output holds {c:?}, the input none\ninput:  {before:?}\noutput: {after:?}"
        );
    }
}

/// Panics unless `xml` is well-formed XML to roxmltree.
pub fn xml_parses<'a>(what: &str, xml: &'a str) -> roxmltree::Document<'a> {
    match roxmltree::Document::parse(xml) {
        Ok(d) => d,
        Err(e) => panic!("{what}: generated XML does not parse: {e}\n{xml}"),
    }
}

/// Lines of `text` (keeping `\r`), for editors that split at `\n` only.
pub fn lines(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    text.strip_suffix('\n').unwrap_or(text).split('\n').collect()
}

/// The lines of `text` for which `touched` is false, in order.
pub fn untouched(text: &str, touched: impl Fn(&str) -> bool) -> Vec<&str> {
    lines(text).into_iter().filter(|l| !touched(l)).collect()
}

/// The first word of a configuration line (up to white space or `=`).
pub fn first_word(l: &str) -> &str {
    l.trim_start_matches([' ', '\t'])
        .split([' ', '\t', '='])
        .next()
        .unwrap_or("")
}

/// `(name, value)` of every parameter of `line`.
pub fn pairs(line: &str) -> Vec<(String, Option<String>)> {
    nestcore::cmdline::Cmdline::parse(line)
        .params
        .into_iter()
        .map(|p| (p.name, p.value))
        .collect()
}

/// Panics unless every parameter of the argument list `args` is among `got` (a command line's
/// `(name, value)` pairs).
pub fn args_present(what: &str, args: &str, got: &[(String, Option<String>)]) {
    for (n, v) in pairs(args) {
        assert!(
            got.iter().any(|(gn, gv)| *gn == n && *gv == v),
            "{what}: argument {n:?}={v:?} of {args:?} is not in {got:?}"
        );
    }
}

/// After `--args add --remove-args remove`: every argument of `add` that `remove` does not
/// remove is among `got`, and nothing `remove` removes is.
pub fn edited_as_asked(
    what: &str,
    add: Option<&str>,
    remove: Option<&str>,
    got: &[(String, Option<String>)],
) {
    use nestcore::cmdline::normalize;
    let gone = remove.map(pairs).unwrap_or_default();
    let removed = |n: &str, v: &Option<String>| {
        gone.iter()
            .any(|(gn, gv)| normalize(gn) == normalize(n) && (gv.is_none() || gv == v))
    };
    for (n, v) in add.map(pairs).unwrap_or_default() {
        assert!(
            removed(&n, &v) || got.iter().any(|(gn, gv)| *gn == n && *gv == v),
            "{what}: argument {n:?}={v:?} of {add:?} is not in {got:?}"
        );
    }
    if let Some(r) = remove {
        removed_absent(what, r, got);
    }
}

/// Panics if a parameter among `got` is one the `--remove-args` list `remove` removes (`k` any
/// value, `k=v` that value; names compared with `-` equal to `_`).
pub fn removed_absent(what: &str, remove: &str, got: &[(String, Option<String>)]) {
    use nestcore::cmdline::normalize;
    for (n, v) in pairs(remove) {
        for (gn, gv) in got {
            assert!(
                !(normalize(gn) == normalize(&n) && (v.is_none() || *gv == v)),
                "{what}: {gn:?}={gv:?} should have been removed by {remove:?}: {got:?}"
            );
        }
    }
}

/// Panics unless applying an edit a second time (`twice`) gave what the first did (`once`).
/// Not checked for an edit with both `--args` and `--remove-args` (`combined`): by grubby's
/// semantics the second run may differ (an argument re-added in the place of another parameter
/// of its name, then removed), which nestcore reproduces.
pub fn twice_is_once(what: &str, once: &str, twice: &str, combined: bool) {
    if !combined {
        assert_eq!(twice, once, "{what}: twice is not once");
    }
}

/// The parameters of a line, sorted.
pub fn sorted_pairs(line: &str) -> Vec<(String, Option<String>)> {
    let mut p = pairs(line);
    p.sort();
    p
}

/// `(name, value)` of every parameter of a parsed command line.
pub fn cpairs(c: &nestcore::cmdline::Cmdline) -> Vec<(String, Option<String>)> {
    c.params
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect()
}

/// The loaders' `--update-kernel` values the boot loader targets pick from with their selector.
pub const UPDATE_KERNEL: [&str; 6] = ["ALL", "DEFAULT", "0", "1,0", "TITLE=Linux", "/boot/vmlinuz-1"];
