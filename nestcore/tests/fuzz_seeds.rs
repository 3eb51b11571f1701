//! The seed corpora of the fuzz targets (`fuzz/seeds/TARGET/`), generated from this repository's
//! own fixtures and tests, never from ../shared/corpora:
//!
//! - the fixture hosts' and enable fixtures' files (tests/fixtures: /proc/cpuinfo, /proc/cmdline,
//!   modprobe.d, /etc/default/grub, grub.conf, BLS entries, grubenv, extlinux.conf,
//!   /etc/kernel/cmdline, CPUID dumps);
//! - every string literal of the unit tests beside each parser (`#[cfg(test)]` of
//!   src/cmdline.rs, src/modprobe.rs, src/bootloader/*.rs, src/guest/*.rs, ...), given to the
//!   targets of that parser;
//! - `<cpu>` models from the property-test strategy (`guest_common::arb_guest_cpu`, fixed seed)
//!   and the hand-written domains of `guest_common::domain_fixtures`.
//!
//! The seeds are generated, not committed (so a new fixture or unit test never makes them
//! stale): `NESTCORE_FUZZ_SEEDS=fuzz/seeds cargo test -p nestcore --test fuzz_seeds` writes them
//! (scripts/fuzz does, before it replays or fuzzes); without the variable this test only
//! generates them and checks that every target gets its share. The input layout (a selector
//! byte, then text fields separated by 0xFF) is the one of fuzz/src/lib.rs. The committed
//! inputs are the regressions, in fuzz/regressions/.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

mod common;
mod guest_common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use nestcore::host::CpuidDump;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngSeed, TestRunner};

/// `--args` and `--remove-args` lists the editor seeds are paired with.
const ARGS: [(&str, &str); 6] = [
    ("kvm-intel.nested=1", "kvm_intel.nested=0"),
    ("kvm_amd.nested=1 quiet", "rhgb"),
    ("root=/dev/sda1 a=\"x y\" ro=0", "quiet splash"),
    ("console=ttyS0,115200n8 -- init", "ro"),
    ("a b=1 b=2 c=", "b=1 c"),
    ("'$(x)' ;", "x=\"y"),
];

/// One input in the fuzz layout.
fn encode(selector: u8, fields: &[&str]) -> Vec<u8> {
    let mut out = vec![selector];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(0xFF);
        }
        out.extend_from_slice(f.as_bytes());
    }
    out
}

/// A stable 64-bit FNV-1a hash, for seed file names.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The seeds, by target, each a file name and content.
#[derive(Default)]
struct Seeds(BTreeMap<&'static str, BTreeMap<String, Vec<u8>>>);

impl Seeds {
    fn add(&mut self, target: &'static str, data: Vec<u8>) {
        let name = format!("{:016x}", fnv(&data));
        self.0.entry(target).or_default().insert(name, data);
    }
}

/// Every file under `dir` whose path (relative to the repository) ends with one of `suffixes`.
fn fixture_files(suffixes: &[&str]) -> Vec<(String, String)> {
    let root = common::workspace();
    let mut out = Vec::new();
    let mut stack = vec![root.join("tests/fixtures"), root.join("tests/c/fixtures")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            if suffixes.iter().any(|s| rel.ends_with(s)) {
                if let Ok(t) = std::fs::read_to_string(&p) {
                    out.push((rel, t));
                }
            }
        }
    }
    out.sort();
    out
}

/// The string literals of the `#[cfg(test)]` part of a source file (decoded: escapes, raw
/// strings, line continuations). Char literals and comments are skipped.
fn test_literals(rel: &str) -> Vec<String> {
    let src = std::fs::read_to_string(common::workspace().join(rel)).unwrap();
    let start = src.find("#[cfg(test)]").unwrap_or(src.len());
    literals(&src[start..])
}

fn literals(src: &str) -> Vec<String> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            '\'' => {
                // A char literal ('x', '\n', '\u{e9}', '"') or a lifetime ('a).
                if c.get(i + 1) == Some(&'\\') {
                    i += 2;
                    while i < c.len() && c[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if c.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            'r' if matches!(c.get(i + 1), Some('"' | '#')) && (i == 0 || !c[i - 1].is_alphanumeric()) => {
                let mut j = i + 1;
                let mut hashes = 0;
                while c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if c.get(j) != Some(&'"') {
                    i += 1;
                    continue;
                }
                j += 1;
                let body_start = j;
                let close: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let rest: String = c[j..].iter().collect();
                let end = rest.find(&close).unwrap_or(rest.len());
                out.push(rest[..end].to_string());
                i = body_start + rest[..end].chars().count() + close.chars().count();
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        i += 1;
                        match c.get(i) {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some('r') => s.push('\r'),
                            Some('0') => s.push('\0'),
                            Some('u') => {
                                let close = (i..c.len()).find(|&k| c[k] == '}').unwrap_or(i);
                                let hex: String = c[i + 2..close].iter().collect();
                                s.extend(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32));
                                i = close;
                            }
                            Some('\n') => {
                                while c.get(i + 1).is_some_and(|c| c.is_whitespace()) {
                                    i += 1;
                                }
                            }
                            Some(&other) => s.push(other),
                            None => {}
                        }
                    } else {
                        s.push(c[i]);
                    }
                    i += 1;
                }
                i += 1;
                out.push(s);
            }
            _ => i += 1,
        }
    }
    out
}

/// The `<cpu>` models of the property-test strategy, from a fixed seed.
fn generated_cpus(n: usize) -> Vec<nestcore::guest::libvirt::Cpu> {
    let config = Config {
        rng_seed: RngSeed::Fixed(0x5eed),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = guest_common::arb_guest_cpu();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

fn generate() -> Seeds {
    let mut s = Seeds::default();

    // /proc/cpuinfo: every fixture's, with a second CPU's block after it.
    for (_, t) in fixture_files(&["proc/cpuinfo"]) {
        s.add(
            "cpuinfo",
            encode(0, &[&t, "processor\t: 1\nflags\t\t: fpu svm\n"]),
        );
    }
    for l in test_literals("nestcore/src/cpu.rs") {
        s.add("cpuinfo", encode(0, &[&l]));
    }

    // Kernel command lines: /proc/cmdline, /etc/kernel/cmdline and the cmdline unit tests'
    // strings; the editor gets them with every argument pair.
    let mut lines: Vec<String> = fixture_files(&["proc/cmdline", "etc/kernel/cmdline"])
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    lines.extend(test_literals("nestcore/src/cmdline.rs"));
    for l in &lines {
        s.add("cmdline_parse", encode(0, &[l]));
    }
    for (i, l) in lines.iter().enumerate() {
        let (add, remove) = ARGS[i % ARGS.len()];
        s.add(
            "cmdline_edit",
            encode(i as u8, &[l, add, remove, "kvm-intel.nested", "1"]),
        );
    }
    for (_, t) in fixture_files(&["etc/kernel/cmdline"]) {
        for (add, remove) in ARGS {
            s.add("kernel_cmdline", encode(0, &[&t, add, remove]));
        }
    }
    for l in test_literals("nestcore/src/bootloader/kernel_cmdline.rs") {
        s.add("kernel_cmdline", encode(0, &[&l, ARGS[0].0, ARGS[0].1]));
    }

    // CPUID dumps: the fixtures' files, and the same leaves in the three formats.
    let dumps = fixture_files(&["cpuid.txt", "cpuid.xml", "cpuid.json"]);
    for (_, t) in &dumps {
        s.add("cpuid_parse", encode(0, &[t]));
        if let Ok(d) = CpuidDump::parse(t) {
            s.add("cpuid_parse", encode(0, &[&d.to_json()]));
            let mut bytes = vec![0u8];
            for l in d.leaves().take(40) {
                for w in [l.leaf, l.subleaf, l.eax, l.ebx, l.ecx, l.edx] {
                    bytes.extend_from_slice(&w.to_le_bytes());
                }
            }
            s.add("cpuid_formats", bytes);
        }
    }
    for l in test_literals("nestcore/src/host/cpuid.rs") {
        s.add("cpuid_parse", encode(0, &[&l]));
    }

    // modprobe.d: every fixture file, neutralising kvm_intel/kvm_amd nested.
    for (_, t) in fixture_files(&[".conf"])
        .into_iter()
        .filter(|(p, _)| p.contains("modprobe.d"))
    {
        s.add("modprobe", encode(0, &[&t]));
        s.add("modprobe", encode(0, &[&t, "kvm-amd", "nested"]));
    }
    for l in test_literals("nestcore/src/modprobe.rs") {
        s.add("modprobe", encode(0, &[&l]));
    }

    // Boot loaders: the fixtures' files and their unit tests' strings, with each argument pair
    // and each --update-kernel.
    let loaders: [(&'static str, &[&str], &str); 5] = [
        (
            "grub_legacy",
            &["grub.conf", "menu.lst"],
            "nestcore/src/bootloader/grub_legacy.rs",
        ),
        ("grub2", &["etc/default/grub"], "nestcore/src/bootloader/grub2.rs"),
        ("bls", &["loader/entries/"], "nestcore/src/bootloader/bls.rs"),
        ("grubenv", &["grubenv"], "nestcore/src/bootloader/bls.rs"),
        (
            "extlinux",
            &["extlinux.conf"],
            "nestcore/src/bootloader/extlinux.rs",
        ),
    ];
    for (target, names, src) in loaders {
        let mut texts: Vec<String> = fixture_files(&["", ".conf"])
            .into_iter()
            .filter(|(p, _)| names.iter().any(|n| p.contains(n)) && !p.ends_with(".nestcore-bak"))
            .map(|(_, t)| t)
            .collect();
        texts.extend(test_literals(src).into_iter().filter(|l| l.contains('\n')));
        texts.sort();
        texts.dedup();
        for (i, t) in texts.iter().enumerate() {
            for (j, (add, remove)) in ARGS.iter().enumerate() {
                if (i + j) % 2 == 0 {
                    // grubenv: the header is part of the text (selector bit 0).
                    let sel = if target == "grubenv" { 1 } else { (i + j) as u8 };
                    s.add(target, encode(sel, &[t, add, remove]));
                }
            }
        }
    }

    // libvirt: generated <cpu> models, bare and in a domain, the hand-written domains, and the
    // guest unit tests' XML.
    let mut xmls: Vec<String> = Vec::new();
    for cpu in generated_cpus(48) {
        let x = cpu.to_xml();
        let vcpus = cpu.topology.and_then(|t| t.vcpus()).unwrap_or(4);
        xmls.push(guest_common::wrap_in_domain(&x, vcpus));
        xmls.push(x);
    }
    xmls.extend(guest_common::domain_fixtures().into_iter().map(|(_, d)| d));
    for src in ["nestcore/src/guest/tests.rs", "nestcore/src/guest/xml.rs"] {
        xmls.extend(
            test_literals(src)
                .into_iter()
                .filter(|l| l.trim_start().starts_with('<')),
        );
    }
    for (i, x) in xmls.iter().enumerate() {
        s.add("libvirt_cpu", encode(0, &[x]));
        s.add("libvirt_domain", encode(i as u8 & 3, &[x]));
    }
    // QEMU -cpu and nova: from the generated models, and the unit tests' strings.
    for (i, cpu) in generated_cpus(48).iter().enumerate() {
        if let Ok(a) = nestcore::guest::qemu::CpuArg::from_libvirt(cpu) {
            s.add("qemu_cpu", encode(i as u8 & 1, &[&a.to_string()]));
        }
        if let Ok(n) = nestcore::guest::nova::NovaSettings::from_libvirt(cpu) {
            s.add(
                "nova",
                encode(0, &[&format!("[DEFAULT]\ndebug = true\n\n{}", n.to_ini())]),
            );
        }
    }
    for l in test_literals("nestcore/src/guest/qemu.rs") {
        if !l.contains('\n') {
            s.add("qemu_cpu", encode(0, &[&l]));
        }
    }
    for l in test_literals("nestcore/src/guest/nova.rs") {
        s.add("nova", encode(0, &[&l]));
    }

    // The C ABI: each function with inputs of the targets above.
    let grub = fixture_files(&["grub.conf"])
        .into_iter()
        .next()
        .map(|(_, t)| t)
        .unwrap_or_default();
    for (i, loader) in ["grub", "grub2", "bls", "extlinux", "kernel-cmdline", "lilo"]
        .iter()
        .enumerate()
    {
        let (add, remove) = ARGS[i % ARGS.len()];
        s.add("ffi", encode(0, &[&grub, loader, "ALL", add, remove, "/boot"]));
    }
    for (i, l) in lines.iter().take(8).enumerate() {
        let (add, remove) = ARGS[i % ARGS.len()];
        s.add("ffi", encode(1, &[l, add, remove]));
    }
    for (sel, fields) in [
        (
            2 | 1 << 2,
            vec![
                "custom",
                "Skylake-Server-v4",
                "require:pcid\ndisable:hle",
                "1,2,2",
            ],
        ),
        (2 | 2 << 2 | 1 << 4, vec!["host-model", "", "optional:svm"]),
        (2 | 1 << 2 | 2 << 4, vec!["host-passthrough"]),
        (2 | 2 << 2 | 2 << 4, vec![]),
    ] {
        s.add("ffi", encode(sel, &fields));
    }
    for (i, (_, d)) in guest_common::domain_fixtures().into_iter().enumerate() {
        let sel = 3 | (1 + (i as u8 & 1)) << 2 | (i as u8 & 2) << 5;
        s.add("ffi", encode(sel, &[&d]));
    }
    s
}

/// Every target of fuzz/Cargo.toml.
fn targets() -> Vec<String> {
    let toml = std::fs::read_to_string(common::workspace().join("fuzz/Cargo.toml")).unwrap();
    toml.split("[[bin]]")
        .skip(1)
        .filter_map(|b| {
            b.lines()
                .find_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"').map(str::to_string))
        })
        .collect()
}

#[test]
fn seeds_are_generated_for_every_target() {
    let fresh = generate();
    let names = targets();
    assert!(names.len() >= 12, "{names:?}");
    for t in &names {
        let n = fresh.0.get(t.as_str()).map_or(0, BTreeMap::len);
        assert!(n >= 4, "{t}: only {n} seeds");
    }
    let unknown: Vec<_> = fresh
        .0
        .keys()
        .filter(|t| !names.iter().any(|n| n == *t))
        .collect();
    assert!(
        unknown.is_empty(),
        "seeds for targets fuzz/Cargo.toml does not have: {unknown:?}"
    );
    // Deterministic: the same seeds on every run.
    let again = generate();
    assert_eq!(again.0, fresh.0);
    let Some(dir) = std::env::var_os("NESTCORE_FUZZ_SEEDS").map(PathBuf::from) else {
        return;
    };
    let dir = if dir.is_absolute() {
        dir
    } else {
        common::workspace().join(dir)
    };
    let _ = std::fs::remove_dir_all(&dir);
    let mut total = 0;
    for (t, files) in &fresh.0 {
        std::fs::create_dir_all(dir.join(t)).unwrap();
        for (name, data) in files {
            std::fs::write(dir.join(t).join(name), data).unwrap();
            total += 1;
        }
    }
    eprintln!("wrote {total} seeds into {}", dir.display());
}

#[test]
fn literals_are_decoded() {
    let got = literals(
        "let a = \"x\\n\\\"y\\u{e9}\"; let c = '\"'; // \"no\"\nlet r = r#\"a \"q\" b\"#; fn f<'a>() {} \"z\\\n   w\"",
    );
    assert_eq!(got, vec!["x\n\"y\u{e9}", "a \"q\" b", "zw"]);
}
