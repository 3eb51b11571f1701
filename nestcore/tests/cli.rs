//! The `nestcore` command: exit codes, JSON on standard output, errors on standard error.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;
use common::copy_tree;

use std::process::Command;

fn nestcore(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nestcore"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn check_exit_codes_follow_the_verdict() {
    for dir in common::fixtures() {
        let root = dir.join("root");
        let mut args = vec!["check", "--root", root.to_str().unwrap(), "--json"];
        let cpuid = dir.join("cpuid.txt");
        if cpuid.exists() {
            args.extend(["--cpuid", cpuid.to_str().unwrap()]);
        }
        let out = nestcore(&args);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ok = v["verdict"]["kvm_usable"] == true && v["verdict"]["nested_for_guests"] == "available";
        assert_eq!(
            out.status.code(),
            Some(if ok { 0 } else { 1 }),
            "{}",
            dir.display()
        );
        // Text mode: same exit code, one line per finding, no colour when not a terminal.
        args.retain(|a| *a != "--json");
        let text = nestcore(&args);
        assert_eq!(text.status.code(), out.status.code());
        let s = String::from_utf8(text.stdout).unwrap();
        assert_eq!(
            s.lines().filter(|l| l.starts_with("nestcore: ")).count(),
            v["verdict"]["findings"].as_array().unwrap().len()
        );
        assert!(!s.contains('\x1b'));
    }
}

#[test]
fn errors_exit_2_with_a_message() {
    let out = nestcore(&["check", "--root", "/nonexistent/nestcore-root"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("/nonexistent/nestcore-root"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    std::fs::write(&dump, "CPU 0:\n   0x00000000 0x00: eax=0x1 ebx=0x2").unwrap();
    let out = nestcore(&[
        "check",
        "--root",
        dir.path().to_str().unwrap(),
        "--cpuid",
        dump.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("line 2"));
}

#[test]
fn guest_cpu_formats() {
    let out = nestcore(&[
        "guest-cpu",
        "--vendor",
        "amd",
        "--format",
        "qemu",
        "--model",
        "EPYC-Rome",
    ]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "EPYC-Rome,svm=on\n");
    let out = nestcore(&[
        "guest-cpu",
        "--vendor",
        "intel",
        "--model",
        "Haswell",
        "--topology",
        "1,2,1",
    ]);
    let xml = String::from_utf8(out.stdout).unwrap();
    assert!(
        xml.contains("<feature policy='require' name='vmx'/>")
            && xml.contains("<model fallback='forbid'>Haswell</model>"),
        "{xml}"
    );
    let out = nestcore(&[
        "guest-cpu",
        "--vendor",
        "intel",
        "--format",
        "nova",
        "--mode",
        "host-model",
    ]);
    let ini = String::from_utf8(out.stdout).unwrap();
    assert!(
        ini.starts_with("[libvirt]\n")
            && ini.contains("cpu_mode = host-model")
            && ini.contains("cpu_model_extra_flags = vmx"),
        "{ini}"
    );
    let out = nestcore(&[
        "guest-cpu",
        "--vendor",
        "intel",
        "--mode",
        "host-model",
        "--model",
        "Haswell",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "libvirt forbids a model with host-model"
    );
}

/// Issue 15: a named vmx or svm is never joined by the other vendor's extension; the host's vendor
/// decides only when neither is named.
#[test]
fn guest_cpu_keeps_what_was_asked() {
    let amd = |args: &[&str]| {
        let mut a = vec!["guest-cpu", "--vendor", "amd"];
        a.extend_from_slice(args);
        let out = nestcore(&a);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{a:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        amd(&[
            "--format",
            "qemu",
            "--mode",
            "custom",
            "--model",
            "qemu64",
            "--feature",
            "require:vmx"
        ]),
        "qemu64,vmx=on\n"
    );
    let xml = amd(&[
        "--mode",
        "custom",
        "--model",
        "qemu64",
        "--feature",
        "require:vmx",
    ]);
    assert!(xml.contains("name='vmx'") && !xml.contains("name='svm'"), "{xml}");
    // Disabling the other vendor's extension is also "naming" one: nothing is added.
    assert_eq!(
        amd(&[
            "--format",
            "qemu",
            "--model",
            "EPYC-Rome",
            "--feature",
            "disable:svm"
        ]),
        "EPYC-Rome,svm=off\n"
    );
    // Neither named: the host's vendor decides.
    assert_eq!(amd(&["--format", "qemu", "--model", "qemu64"]), "qemu64,svm=on\n");
}

/// `guest-cpu --for-host` exits 1 when it says the host cannot give guests VMX/SVM.
#[test]
fn guest_cpu_for_host_exit_status() {
    let run = |name: &str| {
        let dir = common::hosts_dir().join(name);
        let root = dir.join("root");
        let cpuid = dir.join("cpuid.txt");
        nestcore(&[
            "guest-cpu",
            "--for-host",
            "--root",
            root.to_str().unwrap(),
            "--cpuid",
            cpuid.to_str().unwrap(),
        ])
    };
    let ok = run("intel-nested-on");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for name in ["intel-nested-off", "hyperv-guest"] {
        let out = run(name);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains("cannot give guests VMX/SVM"), "{name}: {err}");
        assert!(!out.stdout.is_empty(), "{name}: the snippet is still printed");
    }
}

/// A pasted `cpuid -1 -r` dump (prompt, disclaimer, comment) is read like a clean one.
#[test]
fn check_reads_a_pasted_cpuid_dump() {
    let dir = common::hosts_dir().join("gce-guest");
    let out = nestcore(&[
        "check",
        "--json",
        "--root",
        dir.join("root").to_str().unwrap(),
        "--cpuid",
        dir.join("cpuid.txt").to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["virtualization"]["hypervisor"], "google");
    assert_eq!(v["cpu"]["vendor_id"], "GenuineIntel");
}

#[test]
fn ensure_nested_keeps_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let dom = "<domain type='kvm'>\n  <!-- keep -->\n  <name>g</name>\n  <memory>1024</memory>\n  <os><type arch='x86_64'>hvm</type></os>\n  <cpu mode='host-model'/>\n</domain>\n";
    let p = dir.path().join("d.xml");
    std::fs::write(&p, dom).unwrap();
    let out = nestcore(&[
        "guest-cpu",
        "--vendor",
        "amd",
        "--ensure-nested",
        p.to_str().unwrap(),
    ]);
    let got = String::from_utf8(out.stdout).unwrap();
    assert!(got.contains("name='svm'"), "{got}");
    assert!(got.starts_with("<domain type='kvm'>\n  <!-- keep -->\n  <name>g</name>"));
    std::fs::write(&p, &got).unwrap();
    let back = nestcore(&[
        "guest-cpu",
        "--vendor",
        "amd",
        "--ensure-nested",
        p.to_str().unwrap(),
        "--disable",
    ]);
    assert!(!String::from_utf8(back.stdout)
        .unwrap()
        .contains("policy='require' name='svm'"));
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        got,
        "the input file is never written"
    );
}

#[test]
fn enable_prints_then_applies_to_a_copy_then_does_nothing() {
    let src = common::workspace().join("tests/fixtures/enable/debian-grub2/root");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    copy_tree(&src, &root);
    let r = root.to_str().unwrap();
    let before = std::fs::read_to_string(root.join("etc/default/grub")).unwrap();
    let plan = nestcore(&["enable", "--root", r, "--persist", "modprobe,cmdline"]);
    assert_eq!(
        plan.status.code(),
        Some(1),
        "a plan not applied is not yet as wanted"
    );
    let text = String::from_utf8(plan.stdout).unwrap();
    assert!(
        text.contains("+++ /etc/default/grub") && text.contains("nested=1"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/default/grub")).unwrap(),
        before,
        "printing changes nothing"
    );
    let applied = nestcore(&[
        "enable",
        "--root",
        r,
        "--persist",
        "modprobe,cmdline",
        "--apply",
        "--json",
    ]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert!(!v["report"]["written"].as_array().unwrap().is_empty());
    // Programs would act on this machine, not the root: listed, not run.
    let deferred = v["report"]["deferred"].as_array().unwrap();
    assert!(
        deferred.iter().any(|c| c["program"] == "update-grub"),
        "{deferred:?}"
    );
    assert!(v["report"]["commands"].as_array().unwrap().is_empty());
    assert!(std::fs::read_to_string(root.join("etc/default/grub"))
        .unwrap()
        .contains("nested=1"));
    let again = nestcore(&[
        "enable",
        "--root",
        r,
        "--persist",
        "modprobe,cmdline",
        "--apply",
        "--json",
    ]);
    assert_eq!(again.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(v["report"].is_null(), "the second apply has nothing to do: {v}");
}

#[test]
fn kargs_edits_like_grubby() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("grub.conf");
    let text = "default=0\ntimeout=5\ntitle CentOS\n\troot (hd0,0)\n\tkernel /vmlinuz-2.6.32 ro root=/dev/sda1 kvm-intel.nested=0 quiet\n\tinitrd /initramfs-2.6.32.img\n";
    std::fs::write(&cfg, text).unwrap();
    let c = cfg.to_str().unwrap();
    let out = nestcore(&[
        "kargs",
        "--config",
        c,
        "--loader",
        "grub",
        "--update-kernel",
        "ALL",
        "--args",
        "kvm-intel.nested=1",
    ]);
    let got = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        got,
        text.replace("kvm-intel.nested=0", "kvm-intel.nested=1"),
        "replaced in place"
    );
    let out = nestcore(&[
        "kargs",
        "--config",
        c,
        "--loader",
        "grub",
        "--remove-args",
        "quiet",
        "--in-place",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!std::fs::read_to_string(&cfg).unwrap().contains("quiet"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("grub.conf.nestcore-bak")).unwrap(),
        text
    );
    let out = nestcore(&["kargs", "--config", c, "--loader", "lilo"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Issue 13, the exact command of the report: `--args $'"x\ninitrd /evil"'` wrote a new
/// `initrd /evil"` line into grub.conf and exited 0. Now every loader refuses it (exit 2, the
/// character named on standard error), prints nothing and leaves the file alone with --in-place.
#[test]
fn kargs_refuses_control_characters_in_every_loader() {
    let dir = tempfile::tempdir().unwrap();
    let configs = [
        (
            "grub",
            "grub.conf",
            "default=0\ntitle L\n\troot (hd0,0)\n\tkernel /vmlinuz-1 ro\n\tinitrd /initrd-1\n",
        ),
        ("grub2", "grub", "GRUB_CMDLINE_LINUX=\"ro\"\n"),
        ("bls", "entry.conf", "title T\nlinux /vmlinuz\noptions ro\n"),
        (
            "extlinux",
            "extlinux.conf",
            "label l\n  kernel /vmlinuz\n  append ro\n",
        ),
        ("kernel-cmdline", "cmdline", "ro\n"),
    ];
    for (loader, name, text) in configs {
        let cfg = dir.path().join(name);
        std::fs::write(&cfg, text).unwrap();
        let c = cfg.to_str().unwrap();
        for arg in ["\"x\ninitrd /evil\"", "x\rinitrd", "a=\u{1b}[2J"] {
            for extra in [&[][..], &["--in-place"][..]] {
                let mut args = vec![
                    "kargs",
                    "--config",
                    c,
                    "--loader",
                    loader,
                    "--update-kernel",
                    "ALL",
                    "--args",
                    arg,
                ];
                args.extend_from_slice(extra);
                let out = nestcore(&args);
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(2), "{loader} {arg:?}: {err}");
                assert!(
                    out.stdout.is_empty(),
                    "{loader}: {}",
                    String::from_utf8_lossy(&out.stdout)
                );
                assert!(err.contains("control character U+00"), "{loader}: {err}");
                assert_eq!(
                    std::fs::read_to_string(&cfg).unwrap(),
                    text,
                    "{loader}: the file changed"
                );
            }
        }
        assert!(
            std::fs::read_dir(dir.path()).unwrap().count()
                == configs.iter().position(|x| x.0 == loader).unwrap() + 1,
            "no backup or temporary file"
        );
    }
}
