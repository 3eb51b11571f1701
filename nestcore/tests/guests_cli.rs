//! `nestcore guests [--root DIR [--cpuid FILE]] [--json] [--apply]`: exit codes, JSON against
//! the schema, nothing changed without --apply, the fixes carried out with --apply on a copy.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn nestcore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nestcore"))
        .args(args)
        .output()
        .unwrap()
}

fn guests(root: &Path, cpuid: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "guests",
        "--root",
        root.to_str().unwrap(),
        "--cpuid",
        cpuid.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    nestcore(&args)
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(common::workspace().join("schema/guests.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Every file under `dir` with its content, for "nothing changed".
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                out.push((e.path().display().to_string(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn exit_codes_and_json_follow_the_fixtures_and_nothing_changes() {
    let schema = schema();
    for e in std::fs::read_dir(common::guests_dir()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let (root, cpuid) = common::guest_fixture_root(&name);
        let expect: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(common::guests_dir().join(&name).join("expect.json")).unwrap(),
        )
        .unwrap();
        let before = tree(root.path());
        let out = guests(root.path(), &cpuid, &["--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let errs = common::violations(&schema, &v);
        assert!(errs.is_empty(), "{name}: {errs:#?}");
        assert_eq!(
            out.status.code().map(i64::from),
            expect["exit_code"].as_i64(),
            "{name}"
        );
        assert_eq!(v["exit_code"], expect["exit_code"], "{name}");
        assert_eq!(v["applied"], serde_json::Value::Null);
        let text = guests(root.path(), &cpuid, &[]);
        assert_eq!(text.status.code(), out.status.code(), "{name}");
        let s = String::from_utf8(text.stdout).unwrap();
        assert!(s.contains(" guests will get "), "{name}: {s}");
        assert_eq!(
            tree(root.path()),
            before,
            "{name}: nestcore guests without --apply changed files"
        );
    }
}

#[test]
fn apply_carries_the_fixes_out_and_lists_the_programs() {
    let (root, cpuid) = common::guest_fixture_root("libvirt-intel");
    let out = guests(root.path(), &cpuid, &["--apply", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(common::violations(&schema(), &v).is_empty());
    let applied = v["applied"].as_array().unwrap();
    assert_eq!(applied.len(), 8, "{applied:#?}");
    assert!(applied.iter().all(|a| a["error"].is_null()));
    // Still 1: broken and invalid definitions cannot be told, fixed or not.
    assert_eq!(out.status.code(), Some(1));
    let after = &v["after"];
    let lacking: Vec<&str> = after["guests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["gets_extension"] != true)
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(lacking, vec!["broken", "network"]);
    let edited = std::fs::read_to_string(root.path().join("etc/libvirt/qemu/nocpu.xml")).unwrap();
    assert!(edited.contains("<feature policy='require' name='vmx'/>"));
    // The original is kept in the backup store, not beside the file in the folder libvirt scans.
    assert!(!root
        .path()
        .join("etc/libvirt/qemu/nocpu.xml.nestcore-bak")
        .exists());
    let original =
        std::fs::read(common::guests_dir().join("libvirt-intel/root/etc/libvirt/qemu/nocpu.xml")).unwrap();
    let store = root.path().join("var/lib/nestcore/backup");
    let saved: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path().join("files/etc/libvirt/qemu/nocpu.xml"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(saved.len(), 1, "one transaction keeps nocpu.xml: {saved:?}");
    assert_eq!(std::fs::read(&saved[0]).unwrap(), original);
    // Text: the deferred virsh define is named, and a second run has nothing to apply.
    let again = guests(root.path(), &cpuid, &["--apply"]);
    let s = String::from_utf8(again.stdout).unwrap();
    assert!(s.contains("Nothing to apply."), "{s}");

    let (root, cpuid) = common::guest_fixture_root("nova-qemu");
    let out = guests(root.path(), &cpuid, &["--apply"]);
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(
        s.contains("not run (a recorded root): `systemctl restart nova-compute`"),
        "{s}"
    );
    assert_eq!(out.status.code(), Some(0), "{s}");
    let conf = std::fs::read_to_string(root.path().join("etc/nova/nova.conf")).unwrap();
    assert!(
        conf.contains("virt_type = kvm\ncpu_mode = host-model\ncpu_model_extra_flags = vmx\n"),
        "{conf}"
    );
}

#[test]
fn a_fix_that_fails_to_apply_exits_2_and_restores() {
    let (root, cpuid) = common::guest_fixture_root("libvirt-amd");
    // The definition is a symlink inside the root: readable, but apply never writes through one.
    let q = root.path().join("etc/libvirt/qemu");
    std::fs::rename(q.join("epyc.xml"), root.path().join("epyc.xml")).unwrap();
    std::os::unix::fs::symlink("/epyc.xml", q.join("epyc.xml")).unwrap();
    let out = guests(root.path(), &cpuid, &["--apply"]);
    let s = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(2), "{s}");
    assert!(s.contains("libvirt epyc: FAILED"), "{s}");
    assert!(s.contains("symlink"), "{s}");
    // The others were fixed all the same.
    assert!(std::fs::read_to_string(q.join("nocpu.xml"))
        .unwrap()
        .contains("name='svm'"));
}

#[test]
fn usage_errors_exit_2() {
    let out = nestcore(&["guests", "--root", "/nonexistent/nestcore-root"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("nestcore: "));
    let out = nestcore(&["guests", "--cpuid", "/x"]);
    assert_eq!(out.status.code(), Some(2), "--cpuid needs --root");
}

/// Issue 13, B3: one `guests --apply` is one transaction of the backup store, so one
/// `nestcore enable --undo --apply` puts every guest back, byte for byte; a guest whose fix
/// failed is not part of it.
#[test]
fn one_guests_apply_is_one_undo_step() {
    let outside_store = |root: &Path| {
        let mut t = tree(root);
        t.retain(|(p, _)| !p.contains("/var/lib/nestcore/"));
        t
    };
    let (root, cpuid) = common::guest_fixture_root("libvirt-intel");
    let r = root.path().to_str().unwrap();
    let before = outside_store(root.path());
    let out = guests(root.path(), &cpuid, &["--apply"]);
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(
        s.contains(
            "recorded in /var/lib/nestcore/backup/0001/manifest.json: `nestcore enable --undo` puts it back"
        ),
        "{s}"
    );
    let store = root.path().join("var/lib/nestcore/backup");
    let txns: Vec<_> = std::fs::read_dir(&store).unwrap().collect();
    assert_eq!(txns.len(), 1, "one transaction for the whole apply: {s}");
    let undo = nestcore(&["enable", "--undo", "--root", r]);
    let u = String::from_utf8(undo.stdout).unwrap();
    assert!(u.starts_with("Undo apply 0001"), "{u}");
    let undo = nestcore(&["enable", "--undo", "--root", r, "--apply"]);
    let u = String::from_utf8(undo.stdout).unwrap();
    assert_eq!(undo.status.code(), Some(0), "{u}");
    assert_eq!(
        outside_store(root.path()),
        before,
        "one undo puts every guest back: {u}"
    );
    let again = nestcore(&["enable", "--undo", "--root", r, "--apply"]);
    assert!(String::from_utf8(again.stdout)
        .unwrap()
        .starts_with("Nothing to undo"));

    // A failing guest: the others are recorded, it is not.
    let (root, cpuid) = common::guest_fixture_root("libvirt-amd");
    let r = root.path().to_str().unwrap();
    let q = root.path().join("etc/libvirt/qemu");
    std::fs::rename(q.join("epyc.xml"), root.path().join("epyc.xml")).unwrap();
    std::os::unix::fs::symlink("/epyc.xml", q.join("epyc.xml")).unwrap();
    let before = outside_store(root.path());
    let out = guests(root.path(), &cpuid, &["--apply"]);
    assert_eq!(out.status.code(), Some(2));
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.path().join("var/lib/nestcore/backup/0001/manifest.json")).unwrap(),
    )
    .unwrap();
    let files: Vec<&str> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        !files.is_empty() && files.iter().all(|f| !f.ends_with("epyc.xml")),
        "{files:?}"
    );
    assert_eq!(m["state"], "applied");
    let undo = nestcore(&["enable", "--undo", "--root", r, "--apply"]);
    assert_eq!(undo.status.code(), Some(0));
    assert_eq!(outside_store(root.path()), before);
}

/// One `guests --apply` fixing a libvirt domain (a file) and a Proxmox VM (`qm set`, which
/// edits Proxmox's configuration itself): undo restored the domain and then re-ran every
/// recorded program, `qm set VMID --cpu host` included, so it applied the Proxmox fix again.
/// Undo re-runs only what regenerates from restored files (qm is never recorded), does not claim
/// the Proxmox VMs, and their fix says how to go back by hand.
#[test]
fn undo_never_runs_a_guests_fix_again() {
    let (root, cpuid) = common::guest_fixture_root("proxmox");
    let q = root.path().join("etc/libvirt/qemu");
    std::fs::create_dir_all(&q).unwrap();
    std::fs::write(
        q.join("plain.xml"),
        "<domain type='kvm'>\n  <name>plain</name>\n  <os>\n    <type arch='x86_64'>hvm</type>\n  </os>\n</domain>\n",
    )
    .unwrap();
    let r = root.path().to_str().unwrap();
    let out = guests(root.path(), &cpuid, &["--apply"]);
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("qm set"), "the fixture has a Proxmox fix: {s}");
    assert!(s.contains("virsh -c qemu:///system define"), "{s}");
    let undo = nestcore(&["enable", "--undo", "--root", r]);
    let u = String::from_utf8(undo.stdout).unwrap();
    assert!(u.starts_with("Undo apply 0001"), "{u}");
    assert!(
        !u.contains("run `qm"),
        "undo would apply the Proxmox fix again: {u}"
    );
    assert!(
        u.contains("define /etc/libvirt/qemu/plain.xml`: define the restored domain"),
        "{u}"
    );
    // Review B9: a domain is not the host's boot configuration.
    assert!(!u.contains("after a reboot"), "{u}");
    assert!(
        u.contains("after a restart: each guest gets the CPU it had before"),
        "{u}"
    );
    assert!(!u.contains("proxmox"), "undo does not claim the Proxmox VMs: {u}");
    assert!(
        s.contains("not undoable by nestcore") && s.contains("`qm set 102 --cpu x86-64-v2-AES` puts it back"),
        "the Proxmox fix says how to go back: {s}"
    );
}
