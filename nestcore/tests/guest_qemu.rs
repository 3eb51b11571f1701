//! Every `-cpu` string nestcore produces is accepted by a real qemu-system-x86_64.
//!
//! How: `qemu-system-x86_64 -machine pc -m 32 -cpu STR -accel tcg -display none -nodefaults
//! -no-user-config -S -qmp stdio`, fed `qmp_capabilities` and `quit` on stdin. QEMU parses and
//! applies `-cpu` while creating the machine, before it serves QMP: an unknown model ("unable to
//! find CPU model") or feature ("Property ... not found") exits 1 before any QMP reply; an
//! accepted string answers both commands and exits 0. "TCG doesn't support requested feature"
//! is only a warning, so TCG proves syntax and names; svm strings run under TCG (which emulates
//! SVM), vmx strings are also started under KVM where /dev/kvm opens. Skips print their reason.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nestcore::cpu::{Extension, Vendor};
use nestcore::guest::qemu::CpuArg;
use nestcore::guest::{guest_cpu_cli, recommend, HostFacts, Needs};

const QEMU: &str = "qemu-system-x86_64";

struct Outcome {
    ok: bool,
    stderr: String,
}

fn run(cpu: &str, accel: &str) -> Outcome {
    let mut child = Command::new(QEMU)
        .args(["-machine", "pc", "-m", "32", "-cpu", cpu, "-accel", accel])
        .args([
            "-display",
            "none",
            "-nodefaults",
            "-no-user-config",
            "-S",
            "-qmp",
            "stdio",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    Outcome {
        ok: out.status.success() && stdout.matches("\"return\"").count() >= 2,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn qemu_available() -> Result<(), String> {
    match Command::new(QEMU).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(format!("{QEMU} not found (apt-get install qemu-system-x86)")),
    }
}

fn kvm_opens() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(|_| ())
        .map_err(|e| format!("/dev/kvm does not open: {e}"))
}

/// The `-cpu` strings nestcore produces, with the extension each is meant to give.
fn produced() -> Vec<(String, Option<Extension>)> {
    let mut v = Vec::new();
    for vendor in [Vendor::Intel, Vendor::Amd] {
        let facts = HostFacts::new(vendor);
        for needs in [
            Needs::single_host(),
            Needs::migratable(None),
            Needs::migratable(Some("Skylake-Client-v4")),
        ] {
            v.push((
                recommend(&facts, &needs).qemu.to_string(),
                facts.guest_extension(),
            ));
        }
        for (mode, model, feats) in [
            (None, Some("qemu64"), vec![]),
            (Some("maximum"), None, vec![]),
            (None, Some("EPYC-Rome"), vec!["disable:vmx".to_string()]),
            (
                None,
                Some("Haswell-noTSX"),
                vec!["require:pcid".to_string(), "forbid:sse4.2".to_string()],
            ),
        ] {
            let s = guest_cpu_cli("qemu", mode, model, &feats, None, &facts).unwrap();
            v.push((s.trim_end().to_string(), facts.guest_extension()));
        }
    }
    let mut edited = CpuArg::parse("qemu64,+vmx,-svm,sse4_1").unwrap();
    edited.disable_extension(Extension::Vmx);
    v.push((edited.to_string(), None));
    let mut host = CpuArg::parse("max,-vmx").unwrap();
    host.ensure_extension(Extension::Vmx);
    v.push((host.to_string(), Some(Extension::Vmx)));
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

#[test]
fn produced_cpu_strings_start_under_tcg() {
    if let Err(why) = qemu_available() {
        return println!("skipped: {why}");
    }
    let mut checked = 0;
    for (s, ext) in produced() {
        if s.starts_with("host") {
            continue; // -cpu host needs KVM; checked below
        }
        let o = run(&s, "tcg");
        assert!(o.ok, "QEMU refused -cpu {s} under TCG:\n{}", o.stderr);
        assert!(
            !o.stderr.contains("Ambiguous CPU model string"),
            "-cpu {s}: {}",
            o.stderr
        );
        let note = if ext == Some(Extension::Vmx) && s.contains("vmx=on") {
            " (names and syntax only: TCG cannot emulate VMX, see the KVM test)"
        } else {
            ""
        };
        println!("ok (tcg): -cpu {s}{note}");
        checked += 1;
    }
    println!("{checked} -cpu strings accepted by {QEMU} under TCG (parsed, models and features exist)");
}

#[test]
fn produced_cpu_strings_start_under_kvm() {
    if let Err(why) = qemu_available().and_then(|_| kvm_opens()) {
        return println!("skipped: {why}");
    }
    let (mut checked, mut skipped) = (0, 0);
    for (s, _) in produced() {
        let o = run(&s, "kvm");
        if o.ok {
            println!("ok (kvm): -cpu {s}");
            checked += 1;
            continue;
        }
        // The same model without options failing too means this host's KVM cannot run the model
        // at all (kvm_pvm, for example, refuses MSRs that -cpu host sets): not nestcore's string.
        let model = s.split(',').next().unwrap();
        let base = run(model, "kvm");
        if !base.ok {
            println!(
                "skipped (kvm): -cpu {s}: this KVM cannot start -cpu {model} at all: {}",
                base.stderr
                    .lines()
                    .find(|l| !l.contains("warning"))
                    .unwrap_or("")
                    .trim()
            );
            skipped += 1;
            continue;
        }
        panic!(
            "QEMU refused -cpu {s} under KVM although -cpu {model} starts:\n{}",
            o.stderr
        );
    }
    println!(
        "{checked} -cpu strings accepted by {QEMU} under KVM, {skipped} skipped (model unusable on this KVM)"
    );
}

#[test]
fn harness_detects_bad_strings() {
    if let Err(why) = qemu_available() {
        return println!("skipped: {why}");
    }
    for bad in ["nosuchmodel", "qemu64,nosuchfeature=on", "qemu64,vmx=maybe"] {
        let o = run(bad, "tcg");
        assert!(
            !o.ok,
            "QEMU accepted -cpu {bad}: the harness cannot tell good from bad"
        );
        println!(
            "rejected as expected: -cpu {bad}: {}",
            o.stderr.lines().next().unwrap_or("").trim()
        );
    }
    // A mixed string is only a warning, which is why nestcore never emits one.
    let o = run("qemu64,+svm,svm=off", "tcg");
    assert!(
        o.ok && o.stderr.contains("Ambiguous CPU model string"),
        "{}",
        o.stderr
    );
}
