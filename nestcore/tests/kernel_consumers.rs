//! What real kernels and kmod did in the lab (tests/lab, docs/lab.md), kept as regression tests
//! on copies of fixture hosts. The consumer is the oracle: these are the answers Debian's 6.1.0-57
//! and 6.12.117 kernels with kmod 30 gave, not nestcore's model of them.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::Path;

use nestcore::report::Level;

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// A copy of fixture `name` booted with `cmdline`; `nested` is what sysfs then read, or `None`
/// when the module did not load.
fn booted(
    name: &str,
    module: &str,
    cmdline: &str,
    nested: Option<&str>,
) -> (tempfile::TempDir, nestcore::Host) {
    let tmp = tempfile::tempdir().unwrap();
    let src = common::hosts_dir().join(name);
    copy(&src, tmp.path());
    let root = tmp.path().join("root");
    std::fs::write(root.join("proc/cmdline"), format!("{cmdline}\n")).unwrap();
    let m = root.join("sys/module").join(module);
    match nested {
        Some(v) => std::fs::write(m.join("parameters/nested"), format!("{v}\n")).unwrap(),
        None => {
            let _ = std::fs::remove_dir_all(&m);
            let modules = root.join("proc/modules");
            if let Ok(t) = std::fs::read_to_string(&modules) {
                let kept: String = t
                    .lines()
                    .filter(|l| !l.starts_with(&format!("{module} ")))
                    .map(|l| format!("{l}\n"))
                    .collect();
                std::fs::write(&modules, kept).unwrap();
            }
        }
    }
    let host = common::fixture_host(tmp.path());
    (tmp, host)
}

fn relevant(report: &nestcore::Report, name: &str) -> Option<Option<String>> {
    report
        .cmdline
        .relevant
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.clone())
}

/// Lab scenario 04-cmdline, boot 6 and generated lines 3, 8, 21, 26: booted with
/// `kvm_amd.nested=0 -- kvm_amd.nested=1`, kmod's modprobe loads kvm_amd with nested=1. The
/// kernel hands what follows `--` to init, but kmod reads all of /proc/cmdline.
#[test]
fn kmod_applies_module_options_after_dashes() {
    let (_t, host) = booted(
        "amd-nested-on",
        "kvm_amd",
        "console=ttyS0 kvm_amd.nested=0 -- kvm_amd.nested=1",
        Some("1"),
    );
    let r = nestcore::check(&host);
    assert_eq!(
        relevant(&r, "kvm_amd.nested"),
        Some(Some("1".into())),
        "{:?}",
        r.cmdline
    );
    let st = nestcore::nested::state(&host).unwrap();
    assert_eq!(st.running_cmdline, Some(Some("1".into())));

    let (_t, host) = booted(
        "amd-nested-on",
        "kvm_amd",
        "kvm_amd.nested=1 -- kvm_amd.nested=0 init-arg -- kvm-amd.nested=1",
        Some("1"),
    );
    let r = nestcore::check(&host);
    assert_eq!(relevant(&r, "kvm_amd.nested"), Some(Some("1".into())));
}

/// A built-in module gets its parameters from the kernel's own parser, which stops at `--`.
#[test]
fn builtin_modules_ignore_options_after_dashes() {
    let (_t, host) = booted(
        "intel-builtin-kvm-wsl2",
        "kvm_intel",
        "initrd=\\initrd.img kvm_intel.nested=1 -- kvm_intel.nested=0",
        Some("Y"),
    );
    let r = nestcore::check(&host);
    assert_eq!(
        relevant(&r, "kvm_intel.nested"),
        Some(Some("1".into())),
        "{:?}",
        r.cmdline
    );
}

/// Lab scenario 04-cmdline, boot 3 and generated lines: kvm_amd's `nested` is an int, so
/// `kvm-amd.nested=Y` (and N, on, an empty value, a bare name) makes the module refuse to load
/// ("kvm_amd: `Y' invalid for parameter `nested'", modprobe exits 1); 0x1, 010 and -1 load.
#[test]
fn values_kvm_amd_refuses_are_warned_about() {
    for (line, value) in [
        ("kvm-amd.nested=Y", "Y"),
        ("kvm_amd.nested=0 kvm_amd.nested=N", "N"),
        ("kvm_amd.nested=on", "on"),
        ("kvm_amd.nested=1 kvm_amd.nested=", ""),
        ("kvm_amd.nested=1 kvm_amd.nested", ""),
    ] {
        let (_t, host) = booted("amd-nested-on", "kvm_amd", line, None);
        let r = nestcore::check(&host);
        let f = r
            .verdict
            .finding("kvm.cmdline_invalid")
            .unwrap_or_else(|| panic!("{line}: no kvm.cmdline_invalid in {:?}", r.verdict.findings));
        assert_eq!(f.level, Level::Warn, "{line}");
        assert!(
            f.message.contains("kvm_amd refuses to load"),
            "{line}: {}",
            f.message
        );
        assert!(f.message.contains(&format!("`{value}'")), "{line}: {}", f.message);
        assert!(
            f.remedy.as_deref().unwrap_or("").contains("kvm-amd.nested=1"),
            "{line}: {:?}",
            f.remedy
        );
        assert!(r.verdict.finding("kvm.cmdline_nested").is_none(), "{line}");
    }
    for (line, sysfs) in [
        ("kvm_amd.nested=0x1", "1"),
        ("kvm_amd.nested=010", "8"),
        ("kvm_amd.nested=-1", "-1"),
        ("kvm_amd.nested=\"0\"", "0"),
    ] {
        let (_t, host) = booted("amd-nested-on", "kvm_amd", line, Some(sysfs));
        let r = nestcore::check(&host);
        assert!(r.verdict.finding("kvm.cmdline_invalid").is_none(), "{line}");
        assert!(r.verdict.finding("kvm.cmdline_nested").is_some(), "{line}");
    }
}

/// Lab scenario 09-kernel-cmdline, boot 3 (both kernels): booted with `kvm-amd.nested=
/// kvm_amd.nested=0 -- kvm_amd.nested=0x1`, kmod passes all three to the kernel, which sets them
/// in order and refuses the load when any one is invalid ("kvm_amd: `' invalid for parameter
/// `nested'", modprobe exits 1), although the last one alone would load. nestcore judged only
/// the last occurrence and said kvm_amd gets 0x1.
#[test]
fn an_invalid_earlier_occurrence_refuses_the_load_too() {
    for (line, value) in [
        ("kvm-amd.nested= kvm_amd.nested=0 -- kvm_amd.nested=0x1", ""),
        ("kvm_amd.nested=Y kvm_amd.nested=1", "Y"),
        ("kvm_amd.nested kvm-amd.nested=0", ""),
    ] {
        let (_t, host) = booted("amd-nested-on", "kvm_amd", line, None);
        let r = nestcore::check(&host);
        let f = r
            .verdict
            .finding("kvm.cmdline_invalid")
            .unwrap_or_else(|| panic!("{line}: no kvm.cmdline_invalid in {:?}", r.verdict.findings));
        assert!(
            f.message.contains("kvm_amd refuses to load"),
            "{line}: {}",
            f.message
        );
        assert!(f.message.contains(&format!("`{value}'")), "{line}: {}", f.message);
        assert!(r.verdict.finding("kvm.cmdline_nested").is_none(), "{line}");
    }
    // Every occurrence valid: the last one wins, no warning.
    let (_t, host) = booted(
        "amd-nested-on",
        "kvm_amd",
        "kvm_amd.nested=0 -- kvm_amd.nested=0x1",
        Some("1"),
    );
    let r = nestcore::check(&host);
    assert!(r.verdict.finding("kvm.cmdline_invalid").is_none());
    assert_eq!(relevant(&r, "kvm_amd.nested"), Some(Some("0x1".into())));
}

/// kvm_intel's `nested` is a bool (kstrtobool: the first character y/Y/1/n/N/0, or on/off; a
/// bare name is true); anything else makes it refuse to load.
#[test]
fn values_kvm_intel_refuses_are_warned_about() {
    for line in [
        "kvm-intel.nested=2",
        "kvm_intel.nested=",
        "kvm_intel.nested=maybe",
    ] {
        let (_t, host) = booted("intel-nested-on", "kvm_intel", line, None);
        let r = nestcore::check(&host);
        let f = r
            .verdict
            .finding("kvm.cmdline_invalid")
            .unwrap_or_else(|| panic!("{line}: no kvm.cmdline_invalid"));
        assert!(
            f.message.contains("kvm_intel refuses to load"),
            "{line}: {}",
            f.message
        );
    }
    for line in [
        "kvm-intel.nested=Y",
        "kvm_intel.nested=yes",
        "kvm_intel.nested=on",
        "kvm_intel.nested",
    ] {
        let (_t, host) = booted("intel-nested-on", "kvm_intel", line, Some("Y"));
        let r = nestcore::check(&host);
        assert!(r.verdict.finding("kvm.cmdline_invalid").is_none(), "{line}");
    }
}

/// Lab scenario 06-intel-tcg: an Intel guest of QEMU TCG (no VMX) with kvm-intel.ko installed.
/// `modprobe kvm_intel` fails ("Operation not supported"; the kernel logs "kvm: no hardware
/// support for 'kvm_intel'" on 6.1, "kvm_intel: VMX not supported by CPU 0" on 6.12): the report
/// says the module is not loaded and cannot be, rather than that modprobe would load it.
#[test]
fn a_module_that_cannot_load_without_the_extension_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    copy(&common::hosts_dir().join("kvm-guest-no-vmx"), tmp.path());
    let root = tmp.path().join("root");
    let kver = std::fs::read_to_string(root.join("proc/sys/kernel/osrelease")).unwrap();
    let kvm = root
        .join("lib/modules")
        .join(kver.trim())
        .join("kernel/arch/x86/kvm");
    std::fs::create_dir_all(&kvm).unwrap();
    std::fs::write(kvm.join("kvm-intel.ko"), b"").unwrap();
    let r = nestcore::check(&common::fixture_host(tmp.path()));
    assert!(r.verdict.finding("cpu.extension_hidden_by_hypervisor").is_some());
    let f = r
        .verdict
        .finding("kvm.module_not_loaded")
        .unwrap_or_else(|| panic!("no kvm.module_not_loaded in {:?}", r.verdict.findings));
    assert!(f.message.contains("kvm_intel"), "{}", f.message);
    assert!(f.message.contains("cannot load"), "{}", f.message);
    assert!(f.message.contains("VT-x"), "{}", f.message);
    assert!(
        r.kvm
            .evidence
            .iter()
            .all(|e| !e.detail.contains("modprobe would load it")),
        "{:?}",
        r.kvm.evidence
    );
}
