//! Property tests for every parser and editor nestcore has: the properties a cargo-fuzz target
//! would check (cargo-fuzz needs a nightly toolchain; these run on stable). Each property says
//! more than "no panic": an edit touches only what it must, editing twice is editing once,
//! `render(parse(x))` is stable, generated valid input round-trips, and hostile names never
//! reach XML, a command line or a shell as anything but data.
//!
//! The default run uses a modest number of cases (256, less for the slow ones) from a fixed seed
//! (`src/proptest_seed.rs`), so every run of the suite tries the same cases;
//! `NESTCORE_PROPTEST_CASES=N` raises them all and `PROPTEST_RNG_SEED=N` picks another seed
//! (scripts/fuzz-long does both). Failing seeds are kept in
//! `tests/properties.proptest-regressions` and replayed first.
//!
//! No property rejects its input (`prop_assume!`): the strategies generate only cases the
//! property applies to, so a long run does the cases it was asked for.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

mod guest_common;

use nestcore::bootloader::{self, bls, extlinux, grub2, grub_legacy, kernel_cmdline, ArgsEdit, Selection};
use nestcore::cmdline::{normalize, Cmdline, Editor};
use nestcore::cpu::{CpuinfoBlock, Vendor};
use nestcore::guest::libvirt::{self, Cpu};
use nestcore::guest::nova::NovaSettings;
use nestcore::guest::qemu::CpuArg;
use nestcore::host::{CpuidDump, CpuidFormat, CpuidLeaf};
use nestcore::{modprobe, ErrorKind};
use proptest::prelude::*;

#[path = "../src/proptest_seed.rs"]
mod proptest_seed;

/// `default` cases per property (`NESTCORE_PROPTEST_CASES` overrides) from the fixed seed;
/// failures are kept in `tests/properties.proptest-regressions` and replayed first.
fn cases(default: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
            "tests/properties.proptest-regressions",
        ))),
        ..proptest_seed::config(default)
    }
}

/// Text with everything hostile: quotes, shell and XML metacharacters, control characters,
/// NUL, CR, non-ASCII.
fn hostile_text(max: usize) -> impl Strategy<Value = String> {
    hostile_text_with(max, true)
}

/// Hostile text, with or without control characters (newline, CR, tab, NUL, DEL, ESC).
fn hostile_text_with(max: usize, controls: bool) -> impl Strategy<Value = String> {
    let mut specials = vec![
        "\"", "'", "`", "$(", ")", ";", "&", "|", "<", ">", "\\", "#", "$", "{", "}", ":", ",", ",,", "--",
        "]]>", "&amp;", "\u{e9}", "\u{fffd}",
    ];
    let mut spaces = vec![" "];
    if controls {
        specials.extend(["\0", "\u{7f}", "\u{1b}"]);
        spaces.extend(["\n", "\r\n", "\t"]);
    }
    proptest::collection::vec(
        prop_oneof![
            4 => "[a-z0-9_.=-]",
            3 => proptest::sample::select(spaces).prop_map(str::to_string),
            1 => proptest::sample::select(specials).prop_map(str::to_string),
        ],
        0..max,
    )
    .prop_map(|v| v.concat())
}

// ---------------------------------------------------------------------------------------------
// /proc/cpuinfo

fn cpuinfo_block() -> impl Strategy<Value = String> {
    proptest::collection::vec(("[a-zA-Z][a-zA-Z _]{0,12}", "[ -~\t\u{e9}]{0,40}"), 1..12).prop_map(|kv| {
        kv.iter()
            .map(|(k, v)| format!("{k}\t: {}\n", v.replace(':', ";")))
            .collect::<String>()
    })
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn cpuinfo_reads_only_the_first_block(block in cpuinfo_block(), more in hostile_text(200)) {
        let first = CpuinfoBlock::parse(&block);
        prop_assert!(first.present);
        for sep in ["\n", "\n\n", "\r\n", "\n \t\n"] {
            let whole = format!("{block}{sep}{more}");
            prop_assert_eq!(&CpuinfoBlock::parse(&whole), &first, "sep {:?}", sep);
        }
    }

    #[test]
    fn cpuinfo_garbage_never_panics(text in hostile_text(400)) {
        let b = CpuinfoBlock::parse(&text);
        let _ = (b.arch(), b.has_flag("vmx"), b.words("flags"), b.get("vendor_id"));
    }
}

proptest! {
    #![proptest_config(cases(48))]

    /// Through a Host: the streamed first-block read equals parsing the whole file.
    #[test]
    fn cpuinfo_streamed_read_equals_parse(blocks in proptest::collection::vec(cpuinfo_block(), 1..4),
                                          lead in "[\n ]{0,3}") {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("proc")).unwrap();
        let text = format!("{lead}{}", blocks.join("\n"));
        std::fs::write(d.path().join("proc/cpuinfo"), &text).unwrap();
        let host = nestcore::Host::from_root(d.path()).unwrap();
        let (got, ev) = CpuinfoBlock::read(&host);
        prop_assert!(ev.is_none());
        prop_assert_eq!(got, CpuinfoBlock::parse(&text));
    }
}

// ---------------------------------------------------------------------------------------------
// CPUID dumps: cpuid -r, libvirt <cpudata>, nestcore JSON

fn leaves() -> impl Strategy<Value = Vec<CpuidLeaf>> {
    let leaf = prop_oneof![
        0u32..0x20,
        0x4000_0000u32..0x4000_0010,
        0x8000_0000u32..0x8000_0020,
        any::<u32>()
    ];
    proptest::collection::vec(
        (
            leaf,
            prop_oneof![Just(0u32), 0u32..4, any::<u32>()],
            any::<[u32; 4]>(),
        ),
        1..24,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(leaf, subleaf, [eax, ebx, ecx, edx])| CpuidLeaf {
                leaf,
                subleaf,
                eax,
                ebx,
                ecx,
                edx,
            })
            .collect()
    })
}

fn as_cpuid_r(ls: &[CpuidLeaf], cpus: usize) -> String {
    let mut s = String::new();
    for cpu in 0..cpus {
        s.push_str(&format!("CPU {cpu}:\n"));
        for l in ls {
            // Later CPUs differ: only CPU 0 counts.
            let eax = if cpu == 0 { l.eax } else { !l.eax };
            s.push_str(&format!(
                "   0x{:08x} 0x{:02x}: eax=0x{eax:08x} ebx=0x{:08x} ecx=0x{:08x} edx=0x{:08x}\n",
                l.leaf, l.subleaf, l.ebx, l.ecx, l.edx
            ));
        }
    }
    s
}

fn as_libvirt(ls: &[CpuidLeaf]) -> String {
    let mut s = String::from("<!-- recorded -->\n<cpudata arch='x86'>\n");
    for l in ls {
        s.push_str(&format!(
            "  <cpuid eax_in='0x{:08x}' ecx_in='0x{:08x}' eax='0x{:08x}' ebx='0x{:08x}' ecx='0x{:08x}' edx='0x{:08x}'/>\n",
            l.leaf, l.subleaf, l.eax, l.ebx, l.ecx, l.edx
        ));
    }
    s.push_str("</cpudata>\n");
    s
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Replace(usize, String),
    Insert(usize, String),
    Delete(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), hostile_text(4)).prop_map(|(i, s)| Mutation::Replace(i, s)),
        (any::<usize>(), hostile_text(8)).prop_map(|(i, s)| Mutation::Insert(i, s)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
    ]
}

fn boundary(s: &str, i: usize) -> usize {
    let mut i = i % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(s: &str, ms: &[Mutation]) -> String {
    let mut s = s.to_string();
    for m in ms {
        match m {
            Mutation::Truncate(i) => {
                let i = boundary(&s, *i);
                s.truncate(i);
            }
            Mutation::Replace(i, t) => {
                let i = boundary(&s, *i);
                let j = s[i..].chars().next().map_or(i, |c| i + c.len_utf8());
                s.replace_range(i..j, t);
            }
            Mutation::Insert(i, t) => {
                let i = boundary(&s, *i);
                s.insert_str(i, t);
            }
            Mutation::Delete(i, n) => {
                let i = boundary(&s, *i);
                let j = boundary(&s, i + n);
                if j >= i {
                    s.replace_range(i..j, "");
                }
            }
        }
    }
    s
}

proptest! {
    #![proptest_config(cases(256))]

    /// The three formats of one dump parse to the same leaves (later duplicates win, only the
    /// first CPU of `cpuid -r` counts) and to_json round-trips.
    #[test]
    fn cpuid_formats_agree_and_round_trip(ls in leaves(), cpus in 1usize..3) {
        let want = CpuidDump::from_leaves(CpuidFormat::NestcoreJson, ls.clone());
        let r = CpuidDump::parse(&as_cpuid_r(&ls, cpus)).unwrap();
        prop_assert_eq!(r.format, CpuidFormat::CpuidR);
        let x = CpuidDump::parse(&as_libvirt(&ls)).unwrap();
        prop_assert_eq!(x.format, CpuidFormat::LibvirtXml);
        let j = CpuidDump::parse(&want.to_json()).unwrap();
        prop_assert_eq!(&j, &want);
        prop_assert_eq!(r.to_json(), want.to_json());
        prop_assert_eq!(x.to_json(), want.to_json());
        for l in &ls {
            let last = ls.iter().rev().find(|m| (m.leaf, m.subleaf) == (l.leaf, l.subleaf)).unwrap();
            prop_assert_eq!(j.get(l.leaf, l.subleaf), Some([last.eax, last.ebx, last.ecx, last.edx]));
        }
    }

    /// Mutated dumps: a Parse error or a dump that itself round-trips; never a panic, never
    /// an empty dump.
    #[test]
    fn cpuid_mutated_dumps_are_parse_errors(ls in leaves(), fmt in 0u8..3,
                                           ms in proptest::collection::vec(mutation(), 1..4)) {
        let text = match fmt {
            0 => as_cpuid_r(&ls, 2),
            1 => as_libvirt(&ls),
            _ => CpuidDump::from_leaves(CpuidFormat::NestcoreJson, ls.clone()).to_json(),
        };
        match CpuidDump::parse(&mutate(&text, &ms)) {
            Ok(d) => {
                prop_assert!(!d.is_empty());
                prop_assert_eq!(CpuidDump::parse(&d.to_json()).unwrap().to_json(), d.to_json());
            }
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::Parse, "{}", e),
        }
    }

    #[test]
    fn cpuid_garbage_is_a_parse_error(text in hostile_text(300)) {
        if let Err(e) = CpuidDump::parse(&text) {
            prop_assert_eq!(e.kind(), ErrorKind::Parse);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sysfs values

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn sysfs_bools_are_exact(v in hostile_text(12)) {
        let t = v.trim().to_ascii_lowercase();
        let want = match t.as_str() {
            "y" | "1" | "on" | "yes" | "true" => Some(true),
            "n" | "0" | "off" | "no" | "false" => Some(false),
            _ => None,
        };
        prop_assert_eq!(modprobe::parse_bool(&v), want);
    }
}

proptest! {
    #![proptest_config(cases(32))]

    /// Whatever bytes a module's sysfs files hold, the report says Unknown unless the value is
    /// a boolean the kernel prints, and never panics.
    #[test]
    fn sysfs_garbage_is_unknown(nested in proptest::collection::vec(any::<u8>(), 0..24),
                                refcnt in proptest::collection::vec(any::<u8>(), 0..12),
                                initstate in proptest::collection::vec(any::<u8>(), 0..12)) {
        let d = tempfile::tempdir().unwrap();
        let put = |rel: &str, b: &[u8]| {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b).unwrap();
        };
        put("proc/cpuinfo", b"processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nflags\t\t: fpu vmx lm\n\n");
        put("sys/module/kvm_intel/parameters/nested", &nested);
        put("sys/module/kvm_intel/refcnt", &refcnt);
        put("sys/module/kvm_intel/initstate", &initstate);
        put("sys/module/kvm/refcnt", &refcnt);
        let r = nestcore::check(&nestcore::Host::from_root(d.path()).unwrap());
        let text = String::from_utf8_lossy(&nested);
        if modprobe::parse_bool(&text).is_none() {
            prop_assert_eq!(r.kvm.nested, nestcore::kvm::Tri::Unknown);
        }
        serde_json::to_string(&r).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel command line

fn param_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,10}".prop_filter("not the end marker", |s| s != "--")
}

fn param_value() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[a-zA-Z0-9_.,:/=+-]{0,10}")
}

fn params() -> impl Strategy<Value = Vec<(String, Option<String>)>> {
    params_n(0..8)
}

fn params_n(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<(String, Option<String>)>> {
    proptest::collection::vec((param_name(), param_value()), n)
}

fn render_params(ps: &[(String, Option<String>)]) -> String {
    ps.iter()
        .map(|(n, v)| nestcore::cmdline::render_param(n, v.as_deref()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn pairs(c: &Cmdline) -> Vec<(String, Option<String>)> {
    c.params
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect()
}

proptest! {
    #![proptest_config(cases(256))]

    /// render(parse(x)) is a fixed point, and parses to the same parameters, for the parameters
    /// render() documents it can write (names without white space, `=`, `"`; values without
    /// `"`): the writable parameters of any hostile line are kept, the others dropped, so every
    /// generated line is a case (nothing is rejected).
    #[test]
    fn cmdline_render_is_stable(x in hostile_text(80)) {
        let c = Cmdline::parse(&x);
        for p in &c.params {
            prop_assert!(x.get(p.span.clone()).is_some(), "span {:?} outside {:?}", p.span, x);
        }
        let _ = c.render();
        let writable = |p: &nestcore::cmdline::Param| {
            !p.name.is_empty() && !p.name.contains(|ch: char| ch.is_ascii_whitespace() || ch == '=' || ch == '"')
                && !p.value.as_deref().is_some_and(|v| v.contains('"'))
        };
        let w = Cmdline {
            params: c.params.iter().filter(|p| writable(p)).cloned().collect(),
            init_args: c.init_args.clone().filter(|i| !i.contains('"')),
        };
        let r = w.render();
        let c2 = Cmdline::parse(&r);
        prop_assert_eq!(pairs(&c2), pairs(&w), "{:?} -> {:?}", x, r);
        prop_assert_eq!(&c2.init_args, &w.init_args);
        prop_assert_eq!(c2.render(), r);
    }

    /// Editor::set changes one parameter: removing the same name from old and new leaves the
    /// same parameters; setting twice is setting once.
    #[test]
    fn cmdline_editor_set_is_local_and_idempotent(ps in params(), name in param_name(),
                                                   v in "[a-z0-9]{1,4}", sep in "[ \t]{1,2}") {
        let line = ps.iter()
            .map(|(n, v)| nestcore::cmdline::render_param(n, v.as_deref()))
            .collect::<Vec<_>>().join(&sep);
        let mut e = Editor::new(line.clone());
        e.set(&name, Some(&v)).unwrap();
        let once = e.as_str().to_string();
        let c = Cmdline::parse(&once);
        prop_assert_eq!(c.get(&name), Some(Some(v.as_str())));
        prop_assert!(!e.set(&name, Some(&v)).unwrap(), "second set changed {:?}", once);
        let others = |s: &str| -> Vec<_> {
            pairs(&Cmdline::parse(s)).into_iter().filter(|(n, _)| normalize(n) != normalize(&name)).collect()
        };
        prop_assert_eq!(others(&once), others(&line));
        // Removing it keeps every other byte of the original (minus separators).
        let mut r = Editor::new(once);
        r.remove(&name, None);
        prop_assert_eq!(others(r.as_str()), others(&line));
        prop_assert!(Cmdline::parse(r.as_str()).get(&name).is_none());
    }

    /// grubby --args twice is --args once; --remove-args takes them out again.
    #[test]
    fn cmdline_add_args_idempotent(base in params(), add in params_n(1..8)) {
        let mut e = Editor::new(render_params(&base));
        let args = render_params(&add);
        e.add_args(&args).unwrap();
        let once = e.as_str().to_string();
        prop_assert!(!e.add_args(&args).unwrap(), "{:?} + {:?} twice", once, args);
        // Every added name is now present (the last value given wins in place).
        for (n, _) in &add {
            prop_assert!(Cmdline::parse(&once).get(n).is_some());
        }
    }

    #[test]
    fn cmdline_editor_garbage_never_panics(line in hostile_text(60), arg in hostile_text(20)) {
        let mut e = Editor::new(line);
        let _ = e.add_args(&arg);
        let _ = e.remove_args(&arg);
        let _ = e.set(&arg, Some(&arg));
        let _ = e.remove(&arg, None);
        let _ = e.parsed();
    }
}

// ---------------------------------------------------------------------------------------------
// modprobe.d

#[derive(Debug, Clone)]
enum ConfItem {
    Comment(String),
    Blank,
    Other(String),
    Options {
        indent: String,
        module: String,
        params: Vec<(String, Option<String>)>,
        /// Break the line with `\` before this parameter.
        split: Option<usize>,
    },
}

fn module_name() -> impl Strategy<Value = String> {
    // Short names too: `o`, `on`, `ons` are substrings of the word `options`.
    prop_oneof![
        "[a-z][a-z0-9_-]{0,3}",
        "kvm[_-](intel|amd)",
        "[a-z][a-z0-9_]{0,12}"
    ]
}

fn conf_item() -> impl Strategy<Value = ConfItem> {
    prop_oneof![
        // kmod continues a comment that ends in `\` too: not generated here.
        1 => "#[ -~]{0,30}[ -\\[\\]-~]".prop_map(ConfItem::Comment),
        1 => Just(ConfItem::Blank),
        1 => "(install|blacklist|alias|softdep) [a-z_]{1,8} [a-z/ ]{0,12}".prop_map(ConfItem::Other),
        4 => ("[ \t]{0,2}", module_name(),
              proptest::collection::vec((param_name(), proptest::option::of("[a-zA-Z0-9_.,:/+-]{0,6}")), 1..4),
              proptest::option::of(1usize..4))
            .prop_map(|(indent, module, params, split)| ConfItem::Options { indent, module, params, split }),
    ]
}

/// Renders the items; returns the text and, per options line, (line number, module, params).
type Expected = Vec<(usize, String, Vec<(String, Option<String>)>)>;

fn render_conf(items: &[ConfItem]) -> (String, Expected) {
    let mut text = String::new();
    let mut line = 1;
    let mut want = Vec::new();
    for it in items {
        match it {
            ConfItem::Comment(c) => text.push_str(&format!("{c}\n")),
            ConfItem::Blank => text.push('\n'),
            ConfItem::Other(o) => text.push_str(&format!("{o}\n")),
            ConfItem::Options {
                indent,
                module,
                params,
                split,
            } => {
                want.push((line, module.clone(), params.clone()));
                text.push_str(&format!("{indent}options {module}"));
                for (i, (n, v)) in params.iter().enumerate() {
                    if Some(i) == *split {
                        text.push_str(" \\\n");
                        line += 1;
                    }
                    text.push(' ');
                    text.push_str(&nestcore::cmdline::render_param(n, v.as_deref()));
                }
                text.push('\n');
            }
        }
        line += 1;
    }
    (text, want)
}

proptest! {
    #![proptest_config(cases(256))]

    /// Every generated options line is found, with its line, module and parameters, in order.
    #[test]
    fn modprobe_finds_every_options_line(items in proptest::collection::vec(conf_item(), 0..10)) {
        let (text, want) = render_conf(&items);
        let got = modprobe::parse_options("/etc/modprobe.d/x.conf", &text);
        let want_flat: Vec<(usize, String, String, Option<String>)> = want
            .iter()
            .flat_map(|(l, m, ps)| ps.iter().map(move |(n, v)| (*l, normalize(m), normalize(n), v.clone())))
            .collect();
        let got_flat: Vec<_> = got.iter().map(|o| (o.line, o.module.clone(), o.param.clone(), o.value.clone())).collect();
        prop_assert_eq!(got_flat, want_flat, "{}", text);
    }

    /// neutralise removes exactly the module/param setting, keeps every other parameter and
    /// every other line, and is idempotent.
    #[test]
    fn modprobe_neutralise_is_exact_and_idempotent(items in proptest::collection::vec(conf_item(), 0..10),
                                                   which in any::<prop::sample::Index>()) {
        let (text, want) = render_conf(&items);
        let (module, param) = if want.is_empty() {
            ("kvm_intel".to_string(), "nested".to_string())
        } else {
            let (_, m, ps) = &want[which.index(want.len())];
            (m.clone(), ps[0].0.clone())
        };
        let out = modprobe::neutralise(&text, &module, &param);
        let opts = |t: &str| modprobe::parse_options("f", t);
        let key = |o: &modprobe::OptionSource| (o.module.clone(), o.param.clone(), o.value.clone());
        let (m, p) = (normalize(&module), normalize(&param));
        prop_assert!(opts(&out).iter().all(|o| !(o.module == m && o.param == p)), "{}", out);
        let keep_before: Vec<_> = opts(&text).iter().filter(|o| !(o.module == m && o.param == p)).map(key).collect();
        let keep_after: Vec<_> = opts(&out).iter().map(key).collect();
        prop_assert_eq!(keep_after, keep_before);
        prop_assert_eq!(modprobe::neutralise(&out, &module, &param), out.clone());
        // Lines without the setting are kept byte for byte, in order.
        let untouched: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("options")
            && !l.starts_with(' ') && !l.starts_with('\t')).collect();
        let mut it = out.lines();
        for l in untouched {
            prop_assert!(it.any(|o| o == l), "lost {:?} in {}", l, out);
        }
    }

    #[test]
    fn modprobe_garbage_never_panics(text in hostile_text(300), m in hostile_text(8)) {
        let _ = modprobe::logical_lines(&text);
        let _ = modprobe::parse_options("f", &text);
        let _ = modprobe::neutralise(&text, &m, "nested");
    }
}

// ---------------------------------------------------------------------------------------------
// Boot loader editors

/// A parameter set the tests make effective, and its normalized name.
const SET_NAME: &str = "kvm-intel.nested";

fn set_edit() -> ArgsEdit {
    ArgsEdit::set(SET_NAME, "1")
}

/// Lines of `a` whose text is not accepted by `touched`, in order, must equal those of `b`.
fn same_untouched(a: &str, b: &str, touched: impl Fn(&str) -> bool) -> bool {
    let keep = |s: &str| -> Vec<String> { s.lines().filter(|l| !touched(l)).map(str::to_string).collect() };
    keep(a) == keep(b)
}

fn first_word(l: &str) -> &str {
    l.trim_start()
        .split(|c: char| c.is_whitespace() || c == '=')
        .next()
        .unwrap_or("")
}

fn grub_default() -> impl Strategy<Value = String> {
    let other = prop_oneof![
        "# [ -~]{0,20}".boxed(),
        Just(String::new()).boxed(),
        "GRUB_(TIMEOUT|DEFAULT|DISTRIBUTOR)=[a-z0-9]{0,6}".boxed(),
        "GRUB_CMDLINE_LINUX_DEFAULT=\"[a-z =]{0,12}\"".boxed(),
        "export GRUB_[A-Z]{1,6}=\"[a-z ]{0,6}\"".boxed(),
    ];
    let cmd = (0u8..3, params()).prop_map(|(q, ps)| {
        let v = render_params(&ps).replace('"', "");
        match q {
            0 => format!("GRUB_CMDLINE_LINUX=\"{v}\""),
            1 => format!("GRUB_CMDLINE_LINUX='{v}'"),
            _ => format!("GRUB_CMDLINE_LINUX={}", v.split_whitespace().next().unwrap_or("")),
        }
    });
    proptest::collection::vec(prop_oneof![3 => other, 1 => cmd], 0..8).prop_map(|ls| {
        let mut s = ls.join("\n");
        s.push('\n');
        s
    })
}

fn grub_legacy_conf() -> impl Strategy<Value = String> {
    let entry = ("[A-Za-z0-9 ]{1,10}", params(), any::<bool>()).prop_map(|(t, ps, linux)| {
        if linux {
            format!(
                "title {t}\n\troot (hd0,0)\n\tkernel /vmlinuz-{} {}\n\tinitrd /initramfs.img\n",
                t.len(),
                render_params(&ps)
            )
        } else {
            format!("title {t}\n\trootnoverify (hd0,1)\n\tchainloader +1\n")
        }
    });
    ("[0-3]", proptest::collection::vec(entry, 1..4))
        .prop_map(|(d, es)| format!("# grub.conf\ndefault={d}\ntimeout=5\n{}", es.concat()))
}

fn bls_entry() -> impl Strategy<Value = String> {
    (params(), 0usize..3, any::<bool>()).prop_map(|(ps, nopts, crlf)| {
        let mut s =
            String::from("title Fedora Linux\nversion 6.1\nlinux /vmlinuz-6.1\ninitrd /initramfs-6.1.img\n");
        for i in 0..nopts {
            let chunk: Vec<_> = ps.iter().skip(i * 3).take(3).cloned().collect();
            s.push_str(&format!("options {}\n", render_params(&chunk)));
        }
        s.push_str("grub_users $grub_users\n");
        if crlf {
            s = s.replace('\n', "\r\n");
        }
        s
    })
}

fn extlinux_conf() -> impl Strategy<Value = String> {
    let entry = ("[a-z0-9]{1,8}", params(), 0u8..3).prop_map(|(label, ps, kind)| match kind {
        0 => format!(
            "label {label}\n  kernel /vmlinuz-{label}\n  append {}\n",
            render_params(&ps)
        ),
        1 => format!("label {label}\n  linux /vmlinuz-{label}\n  initrd /initrd.img\n"),
        _ => format!("label {label}\n  com32 chain.c32\n  append hd0 0\n"),
    });
    proptest::collection::vec(entry, 1..4)
        .prop_map(|es| format!("# extlinux\ndefault {}\ntimeout 50\n{}", "x", es.concat()))
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn grub2_edit_touches_only_its_line_and_is_idempotent(text in grub_default()) {
        let out = match grub2::edit(&text, grub2::CMDLINE_VAR, &set_edit()) {
            Ok(o) => o,
            // Only a value nestcore will not rewrite safely may refuse.
            Err(e) => { prop_assert!(matches!(e.kind(), ErrorKind::Parse | ErrorKind::InvalidInput), "{}", e); return Ok(()); }
        };
        let cmd = grub2::cmdline(&out, grub2::CMDLINE_VAR).unwrap().unwrap();
        prop_assert_eq!(cmd.get(SET_NAME), Some(Some("1")));
        // Only the last GRUB_CMDLINE_LINUX assignment may differ (or one was appended).
        let last = text.lines().collect::<Vec<_>>().iter().rposition(|l| first_word(l) == grub2::CMDLINE_VAR);
        let (a, b): (Vec<&str>, Vec<&str>) = (text.lines().collect(), out.lines().collect());
        match last {
            Some(i) => {
                prop_assert_eq!(a.len(), b.len());
                for (k, (x, y)) in a.iter().zip(&b).enumerate() {
                    if k != i { prop_assert_eq!(x, y); }
                }
            }
            None => {
                prop_assert_eq!(&b[..a.len()], &a[..]);
                prop_assert_eq!(b.len(), a.len() + 1);
            }
        }
        prop_assert_eq!(grub2::edit(&out, grub2::CMDLINE_VAR, &set_edit()).unwrap(), out.clone());
        let off = grub2::edit(&out, grub2::CMDLINE_VAR, &ArgsEdit::unset(SET_NAME)).unwrap();
        prop_assert!(grub2::cmdline(&off, grub2::CMDLINE_VAR).unwrap().unwrap().get(SET_NAME).is_none());
    }

    #[test]
    fn grub_legacy_edit_touches_only_kernel_lines(text in grub_legacy_conf()) {
        let sel = Selection::all_linux();
        let out = grub_legacy::edit(&text, &sel, &set_edit()).unwrap();
        prop_assert!(same_untouched(&text, &out, |l| first_word(l) == "kernel"));
        for (_, c) in grub_legacy::cmdlines(&out, &sel) {
            prop_assert_eq!(c.get(SET_NAME), Some(Some("1")));
        }
        prop_assert_eq!(grub_legacy::edit(&out, &sel, &set_edit()).unwrap(), out.clone());
    }

    #[test]
    fn bls_edit_touches_only_options_lines(text in bls_entry()) {
        let out = bls::edit_entry(&text, &set_edit()).unwrap();
        let had_options = text.lines().any(|l| first_word(l) == "options");
        if had_options {
            prop_assert!(same_untouched(&text, &out, |l| first_word(l) == "options"));
            prop_assert_eq!(out.matches('\n').count(), text.matches('\n').count());
        } else {
            prop_assert!(out.starts_with(&text));
        }
        let opts = bls::parse(&out).options.unwrap();
        let c = Cmdline::parse(&opts);
        prop_assert_eq!(c.get(SET_NAME), Some(Some("1")));
        prop_assert_eq!(bls::edit_entry(&out, &set_edit()).unwrap(), out.clone());
    }

    #[test]
    fn extlinux_edit_touches_only_append_lines(text in extlinux_conf()) {
        let sel = Selection::all_linux();
        let out = extlinux::edit(&text, &sel, &set_edit()).unwrap();
        prop_assert!(same_untouched(&text, &out, |l| first_word(l) == "append"), "{}\n->\n{}", text, out);
        for (_, c) in extlinux::cmdlines(&out, &sel) {
            prop_assert_eq!(c.get(SET_NAME), Some(Some("1")));
        }
        prop_assert_eq!(extlinux::edit(&out, &sel, &set_edit()).unwrap(), out.clone());
    }

    #[test]
    fn kernel_cmdline_edit_is_local_and_idempotent(ps in params(), crlf in any::<bool>()) {
        let text = format!("{}{}", render_params(&ps), if crlf { "\r\n" } else { "\n" });
        let out = kernel_cmdline::edit(&text, &set_edit()).unwrap();
        let c = kernel_cmdline::parse(&out);
        prop_assert_eq!(c.get(SET_NAME), Some(Some("1")));
        let eol = if crlf { "\r\n" } else { "\n" };
        prop_assert!(out.ends_with(eol));
        prop_assert_eq!(out.lines().count(), 1);
        prop_assert_eq!(kernel_cmdline::edit(&out, &set_edit()).unwrap(), out.clone());
    }

    #[test]
    fn grubenv_edit_keeps_size_and_other_vars(ps in params(), others in proptest::collection::vec(("[a-z_]{1,8}", "[a-z0-9 ]{0,10}"), 0..4)) {
        let mut body = String::from("# GRUB Environment Block\n");
        for (k, v) in &others {
            body.push_str(&format!("x{k}={v}\n"));
        }
        body.push_str(&format!("kernelopts={}\n", render_params(&ps)));
        let text = format!("{body}{}", "#".repeat(1024usize.saturating_sub(body.len())));
        let out = bls::edit_grubenv(&text, bls::KERNELOPTS, &set_edit()).unwrap();
        prop_assert_eq!(out.len(), text.len());
        let vars = bls::grubenv_vars(&out);
        let ko = &vars.iter().find(|(k, _)| k == "kernelopts").unwrap().1;
        let c = Cmdline::parse(ko);
        prop_assert_eq!(c.get(SET_NAME), Some(Some("1")));
        let strip = |v: Vec<(String, String)>| -> Vec<_> { v.into_iter().filter(|(k, _)| k != "kernelopts").collect() };
        prop_assert_eq!(strip(vars), strip(bls::grubenv_vars(&text)));
        prop_assert_eq!(bls::edit_grubenv(&out, bls::KERNELOPTS, &set_edit()).unwrap(), out.clone());
    }

    /// Hostile --args for every loader (quotes, shell and XML metacharacters, non-ASCII; no
    /// control characters, see below): refused, or each argument ends up as one argument of the
    /// right command line and no line was added (no injection of a second directive).
    #[test]
    fn hostile_kargs_are_refused_or_data(arg in hostile_text_with(24, false)) {
        hostile_karg(&arg)?;
    }

    /// The same with control characters in the argument (a newline inside quotes, CR, NUL,
    /// ESC, DEL, tab): every loader refuses them, naming the character (issue 13: a `"\n"`
    /// argument became a new line of grub.conf).
    #[test]
    fn hostile_kargs_with_control_characters_are_refused_or_data(arg in hostile_text(24)) {
        hostile_karg(&arg)?;
    }
}

/// The property of the hostile kargs tests: for every loader, `arg` is refused, or each of its
/// arguments is one argument of the edited command line, no line was added and no control
/// character was written that the configuration did not hold.
fn hostile_karg(arg: &str) -> Result<(), TestCaseError> {
    let configs = [
        (
            "grub",
            "default=0\ntitle L\n\troot (hd0,0)\n\tkernel /vmlinuz-1 ro\n",
        ),
        ("grub2", "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"ro\"\n"),
        ("grub2", "GRUB_CMDLINE_LINUX=ro\n"),
        ("grub2", "GRUB_CMDLINE_LINUX=''\n"),
        ("grub2", "GRUB_CMDLINE_LINUX=\n"),
        ("bls", "title T\nlinux /vmlinuz\noptions ro\n"),
        ("extlinux", "label l\n  kernel /vmlinuz\n  append ro\n"),
        ("kernel-cmdline", "ro\n"),
    ];
    for (loader, cfg) in configs {
        let res = bootloader::kargs_cli(cfg, loader, "ALL", Some(arg), None, None);
        // A control character is never written, in any loader: refused, with its name.
        if let Some(c) = arg.chars().find(|c| c.is_control()) {
            let e = res.expect_err("an argument with a control character was accepted");
            prop_assert_eq!(e.kind(), ErrorKind::InvalidInput);
            let code = format!("U+{:04X}", u32::from(c));
            prop_assert!(e.to_string().contains(&code), "{}", e);
            continue;
        }
        let Ok(out) = res else {
            continue;
        };
        prop_assert_eq!(
            out.lines().count(),
            cfg.lines().count(),
            "{} {:?}: {:?}",
            loader,
            arg,
            out
        );
        for c in out.chars().filter(|c| c.is_control()) {
            prop_assert!(
                out.matches(c).count() <= cfg.matches(c).count(),
                "{} {:?} wrote {:?}: {:?}",
                loader,
                arg,
                c,
                out
            );
        }
        let line = match loader {
            "grub2" => grub2::value(&out, grub2::CMDLINE_VAR).unwrap().unwrap(),
            "kernel-cmdline" => out.lines().next().unwrap().to_string(),
            _ => out
                .lines()
                .last()
                .unwrap()
                .trim_start()
                .split_once(' ')
                .map(|(_, r)| r.to_string())
                .unwrap_or_default(),
        };
        if loader == "grub2" {
            prop_assert!(shell_safe_assignment(&out), "{:?} -> {:?}", arg, out);
        }
        let want = Cmdline::parse(arg);
        let got = Cmdline::parse(&line);
        for p in &want.params {
            prop_assert!(
                got.params.iter().any(|q| q.name == p.name && q.value == p.value),
                "{} {:?}: {:?} missing from {:?}",
                loader,
                arg,
                p.name,
                line
            );
        }
    }
    Ok(())
}

/// The shortest argument the control-character property found (a quoted newline): written
/// into grub.conf's `kernel` line, it started a new line. Issue 13 refuses it.
#[test]
fn quoted_newline_karg_adds_no_line() {
    let cfg = "default=0\ntitle L\n\troot (hd0,0)\n\tkernel /vmlinuz-1 ro\n";
    let e = bootloader::kargs_cli(cfg, "grub", "ALL", Some("\"\n\""), None, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

/// Whether the GRUB_CMDLINE_LINUX assignment in `text` is one the shell reads literally:
/// `"..."` without `"`, `\`, `` ` ``, `$`; `'...'`; or a bare word of safe characters.
fn shell_safe_assignment(text: &str) -> bool {
    let Some(line) = text.lines().rfind(|l| l.starts_with("GRUB_CMDLINE_LINUX=")) else {
        return true;
    };
    let v = &line["GRUB_CMDLINE_LINUX=".len()..];
    if let Some(inner) = v.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return !inner.contains(['"', '\\', '`', '$']);
    }
    if let Some(inner) = v.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return !inner.contains('\'');
    }
    // Bytes outside ASCII and control characters are literal in a bare word; shell operators,
    // quotes, expansions, globs and white space are not. `#` after `=` is inside the word.
    !v.starts_with('~') && !v.contains(":~") && !v.bytes().any(|b| b" \t\n\"'$\\`;|&<>()*?[]{}".contains(&b))
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn bootloader_garbage_never_panics(text in hostile_text(200), arg in hostile_text(16)) {
        let sel = Selection::all_linux();
        let e = ArgsEdit { add: Some(arg.clone()), remove: Some(arg.clone()), ..ArgsEdit::default() };
        let _ = grub_legacy::edit(&text, &sel, &e);
        let _ = grub_legacy::parse(&text);
        let _ = extlinux::edit(&text, &sel, &e);
        let _ = extlinux::parse(&text);
        let _ = grub2::edit(&text, grub2::CMDLINE_VAR, &e);
        let _ = grub2::value(&text, grub2::CMDLINE_DEFAULT_VAR);
        let _ = bls::edit_entry(&text, &e);
        let _ = bls::parse(&text);
        let _ = bls::edit_grubenv(&format!("# GRUB Environment Block\n{text}"), bls::KERNELOPTS, &e);
        let _ = kernel_cmdline::edit(&text, &e);
        for t in ["ALL", "DEFAULT", "0,1", "TITLE=x", "/vmlinuz"] {
            let _ = bootloader::kargs_cli(&text, "grub", t, Some(&arg), Some(&arg), Some("/boot"));
            let _ = bootloader::kargs_cli(&text, "extlinux", t, Some(&arg), None, None);
            let _ = bootloader::kargs_cli(&text, "bls", t, None, Some(&arg), None);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Guest CPU: libvirt domain edits, QEMU -cpu, nova, guest-cpu CLI

proptest! {
    #![proptest_config(cases(128))]

    /// ensure_nested then disable_nested leave everything outside <cpu> byte for byte; each
    /// is idempotent.
    #[test]
    fn libvirt_edits_stay_inside_cpu(cpu in guest_common::arb_guest_cpu(), amd in any::<bool>(), present in any::<bool>()) {
        let vendor = if amd { Vendor::Amd } else { Vendor::Intel };
        let cpu_xml = if present { cpu.to_xml() } else { String::new() };
        let dom = guest_common::wrap_in_domain(&cpu_xml, cpu.topology.and_then(|t| t.vcpus()).unwrap_or(4));
        let head_end = dom.find("</os>\n").unwrap() + "</os>\n".len();
        let tail = "\n  <devices/>\n</domain>\n";
        let outside_same = |x: &str| -> bool {
            // Without a <cpu>, ensure inserts one after <vcpu>: the head may grow only there.
            x.ends_with(tail)
                && (x.starts_with(&dom[..head_end]) || (!present && x.contains("</os>\n")))
        };
        let Ok(on) = libvirt::ensure_nested(&dom, vendor) else { return Ok(()); };
        prop_assert!(outside_same(&on.xml), "{}", on.xml);
        prop_assert!(!libvirt::ensure_nested(&on.xml, vendor).unwrap().changed(), "ensure twice changed {}", on.xml);
        let off = libvirt::disable_nested(&on.xml, vendor).unwrap();
        prop_assert!(outside_same(&off.xml), "{}", off.xml);
        prop_assert!(!libvirt::disable_nested(&off.xml, vendor).unwrap().changed());
        // Outside the <cpu> element the three documents are identical.
        let strip = |x: &str| -> String {
            match (x.find("<cpu"), x.rfind("</cpu>").map(|i| i + 6).or_else(|| x.find("<cpu").and_then(|s| x[s..].find("/>").map(|e| s + e + 2)))) {
                (Some(s), Some(e)) if e > s => format!("{}{}", &x[..s], &x[e..]),
                _ => x.to_string(),
            }
        };
        if present {
            prop_assert_eq!(strip(&on.xml), strip(&dom));
            prop_assert_eq!(strip(&off.xml), strip(&dom));
        }
    }

    #[test]
    fn nova_round_trips(cpu in guest_common::arb_guest_cpu()) {
        let Ok(n) = NovaSettings::from_libvirt(&cpu) else { return Ok(()); };
        let ini = n.to_ini();
        prop_assert_eq!(NovaSettings::parse(&ini).unwrap(), n);
    }

    #[test]
    fn qemu_from_libvirt_round_trips(cpu in guest_common::arb_guest_cpu()) {
        let Ok(a) = CpuArg::from_libvirt(&cpu) else { return Ok(()); };
        prop_assert_eq!(CpuArg::parse(&a.to_string()).unwrap(), a.clone());
        let [flag, value] = a.args();
        prop_assert_eq!(flag, "-cpu");
        prop_assert_eq!(value, a.to_string());
    }
}

proptest! {
    #![proptest_config(cases(256))]

    /// Hostile model and feature names through guest-cpu in every format: refused, or they come
    /// back as exactly that name (escaped, never interpreted).
    #[test]
    fn hostile_guest_names_are_data(model in hostile_text(20), feature in hostile_text(12), amd in any::<bool>()) {
        let facts = nestcore::guest::HostFacts::new(if amd { Vendor::Amd } else { Vendor::Intel });
        let feats = vec![format!("disable:{feature}")];
        for fmt in ["libvirt", "qemu", "nova"] {
            for (mode, feats) in [(None, &feats), (Some("custom"), &Vec::new()), (Some("host-passthrough"), &feats)] {
                let Ok(out) = nestcore::guest::guest_cpu_cli(fmt, mode, Some(&model), feats, None, &facts) else { continue };
                match fmt {
                    "libvirt" => {
                        let c = Cpu::from_xml(&out).unwrap();
                        let name = c.model.and_then(|m| m.name);
                        // An empty name is no name; any other comes back exactly.
                        let want = Some(model.as_str()).filter(|m| !m.is_empty());
                        prop_assert_eq!(name.as_deref(), want, "{:?}", out);
                        prop_assert_eq!(out.matches("<cpu").count(), 1);
                        prop_assert!(!out.contains('\0'));
                    }
                    "qemu" => {
                        prop_assert_eq!(out.lines().count(), 1, "{:?}", out);
                        let a = CpuArg::parse(out.trim_end()).unwrap();
                        // host-passthrough is `-cpu host` whatever the model says.
                        let want = if mode == Some("host-passthrough") { "host" } else { model.as_str() };
                        prop_assert_eq!(a.model, want);
                    }
                    _ => {
                        let n = NovaSettings::parse(&out).unwrap();
                        prop_assert!(n.cpu_models.is_empty() || n.cpu_models == vec![model.clone()], "{:?}", out);
                        prop_assert!(out.lines().all(|l| l.is_empty() || l.starts_with('[') || l.starts_with('#') || l.contains(" = ")), "{:?}", out);
                    }
                }
            }
        }
        // The QEMU and libvirt builders themselves.
        if let Ok(a) = CpuArg::named(&model) {
            prop_assert_eq!(CpuArg::parse(&a.to_string()).unwrap(), a);
        }
        if let Ok(c) = Cpu::custom(&model) {
            prop_assert_eq!(Cpu::from_xml(&c.to_xml()).unwrap(), c);
        }
    }

    #[test]
    fn ensure_nested_garbage_never_panics(x in hostile_text(200), amd in any::<bool>()) {
        let v = if amd { Vendor::Amd } else { Vendor::Intel };
        let _ = libvirt::ensure_nested(&x, v);
        let _ = libvirt::disable_nested(&x, v);
        let _ = libvirt::parse_domain(&x);
        let _ = libvirt::domain_nesting(&x, nestcore::cpu::Extension::Vmx);
        let _ = CpuArg::parse_with_notes(&x);
        let _ = NovaSettings::parse(&x);
    }
}
