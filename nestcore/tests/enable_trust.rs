//! `nestcore enable` you can trust (issue 13), through the command as users run it, on copies of
//! the repository's fixtures, with the real consumers as oracles where this machine has them:
//! kmod (`modprobe -C DIR --showconfig` reads a folder the test creates) and bash (sourcing a
//! copy of /etc/default/grub, with no PATH so that nothing it names runs). Nothing here changes
//! this machine.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nestcore::cmdline::Cmdline;

fn nestcore(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nestcore"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A temporary copy of tests/fixtures/<kind>/<name>/root; returns (guard, root, cpuid dump).
fn fixture(kind: &str, name: &str) -> (tempfile::TempDir, PathBuf, Option<PathBuf>) {
    let src = common::workspace().join("tests/fixtures").join(kind).join(name);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    common::copy_tree(&src.join("root"), &root);
    let cpuid = src.join("cpuid.txt");
    (tmp, root, cpuid.exists().then_some(cpuid))
}

const STORE: &str = "var/lib/nestcore/backup";

/// path -> (content, mode) of every file and symlink under `root`, the backup store left out.
fn tree(root: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (Vec<u8>, u32)>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            // The backup store and the folders that hold it (/var/lib/nestcore) are kept on
            // purpose: they are the history undo reads.
            if rel.starts_with(STORE) || STORE.starts_with(&format!("{rel}/")) {
                continue;
            }
            let t = e.file_type().unwrap();
            if t.is_dir() {
                // Folders count too: an undo that leaves a folder the apply created is not
                // the tree it started from.
                use std::os::unix::fs::PermissionsExt;
                let mode = e.metadata().unwrap().permissions().mode() & 0o7777;
                out.insert(format!("{rel}/"), (Vec::new(), mode));
                walk(root, &e.path(), out);
            } else if t.is_symlink() {
                let l = fs::read_link(e.path()).unwrap();
                out.insert(rel, (l.display().to_string().into_bytes(), 0));
            } else {
                use std::os::unix::fs::PermissionsExt;
                let mode = e.metadata().unwrap().permissions().mode() & 0o7777;
                out.insert(rel, (fs::read(e.path()).unwrap(), mode));
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(root, root, &mut m);
    m
}

/// kmod's modprobe, when this machine has it.
/// `tree(root)` without the empty folders that `before` did not have: undo removes every file
/// an apply created but leaves a folder it had to create (an empty /etc/modprobe.d on a root
/// that had none), which no consumer reads.
fn restored_tree(root: &Path, before: &BTreeMap<String, (Vec<u8>, u32)>) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut t = tree(root);
    let keys: Vec<String> = t.keys().cloned().collect();
    for k in &keys {
        let empty = !keys
            .iter()
            .any(|o| o != k && o.starts_with(k.as_str()) && !o.ends_with('/'));
        if k.ends_with('/') && !before.contains_key(k) && empty {
            t.remove(k);
        }
    }
    t
}

fn kmod() -> Option<PathBuf> {
    ["/usr/sbin/modprobe", "/sbin/modprobe", "/usr/bin/modprobe"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// What kmod applies for `module`'s `param` from the folder `dir` (`modprobe -C DIR
/// --showconfig`): the values in the order it passes them, the last wins. `None` without kmod.
fn kmod_values(dir: &Path, module: &str, param: &str) -> Option<Vec<String>> {
    let Some(m) = kmod() else {
        println!("skipped the kmod oracle: no modprobe on this machine (Debian: kmod)");
        return None;
    };
    let out = Command::new(m)
        .arg("-C")
        .arg(dir)
        .arg("--showconfig")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut v = Vec::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let mut w = l.split_whitespace();
        if w.next() == Some("options") && w.next() == Some(module) {
            for p in Cmdline::parse(&w.collect::<Vec<_>>().join(" ")).params {
                if p.name == param {
                    v.push(p.value.unwrap_or_default());
                }
            }
        }
    }
    Some(v)
}

/// What module-init-tools (CentOS 6's modprobe) applies: every file of the folder, whatever
/// its name ("WARNING: All config files need .conf ... it will be ignored in a future
/// release"), in name order.
fn module_init_tools_value(dir: &Path, module: &str, param: &str) -> Option<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut last = None;
    for n in names {
        let text = fs::read_to_string(&n).unwrap();
        for o in nestcore::modprobe::parse_options(&n.display().to_string(), &text) {
            if o.module == module && o.param == param {
                last = o.value;
            }
        }
    }
    last
}

/// The kernel command line GRUB 2 builds for a normal entry, by bash sourcing
/// /etc/default/grub then /etc/default/grub.d/*.cfg as grub-mkconfig does (PATH empty: a
/// command substitution in the file runs nothing).
fn grub2_cmdline(root: &Path) -> String {
    let mut script = String::from("set -e\n. \"$1/etc/default/grub\"\n");
    script.push_str("for f in \"$1\"/etc/default/grub.d/*.cfg; do [ -e \"$f\" ] && . \"$f\"; done\n");
    script.push_str("printf '%s %s' \"$GRUB_CMDLINE_LINUX\" \"$GRUB_CMDLINE_LINUX_DEFAULT\"\n");
    let out = Command::new("/bin/bash")
        .args(["--noprofile", "--norc", "-c", &script, "bash"])
        .arg(root)
        .env_clear()
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn r(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Issue 13, item 3 (the report's commands): after `enable --persist cmdline --apply`,
/// `enable --off --apply` left `kvm-intel.nested=1` in GRUB_CMDLINE_LINUX, which kmod applies
/// after modprobe.d, and a second `--off` said "already off". Now off is off in every layer,
/// as kmod and bash read them.
#[test]
fn off_after_cmdline_is_off_in_every_layer() {
    let (_t, root, _) = fixture("enable", "debian-grub2");
    let (code, out, err) = nestcore(&["enable", "--root", r(&root), "--persist", "cmdline", "--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    let on = Cmdline::parse(&grub2_cmdline(&root));
    assert_eq!(on.get("kvm_intel.nested"), Some(Some("1")), "bash reads {on:?}");

    let (code, out, err) = nestcore(&["enable", "--root", r(&root), "--off", "--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("note: the kernel command line is turned off too"),
        "{out}"
    );
    let off = Cmdline::parse(&grub2_cmdline(&root));
    assert_eq!(off.get("kvm_intel.nested"), Some(Some("0")), "bash reads {off:?}");
    assert!(off
        .all("kvm_intel.nested")
        .all(|p| p.value.as_deref() == Some("0")));
    if let Some(v) = kmod_values(&root.join("etc/modprobe.d"), "kvm_intel", "nested") {
        assert_eq!(v, vec!["0"], "kmod applies {v:?}");
    }
    // The second --off has nothing left to do, and it is true.
    let (code, out, _) = nestcore(&["enable", "--root", r(&root), "--off", "--apply"]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to do"), "{out}");
}

/// `enable --persist modprobe,cmdline --apply` then `enable --off --apply` on `root`; returns
/// the tree between the two.
fn on_then_off(root: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let (code, out, err) = nestcore(&[
        "enable",
        "--root",
        r(root),
        "--persist",
        "modprobe,cmdline",
        "--apply",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let on = tree(root);
    let (code, out, err) = nestcore(&["enable", "--root", r(root), "--off", "--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    on
}

/// Issue 13, item 2 (the report's commands): after `enable --apply` then `enable --off
/// --apply`, /etc/modprobe.d held `nestcore-kvm.conf.nestcore-bak` with nested=1, which
/// module-init-tools applies after nestcore's file. Now no folder a consumer scans gains
/// anything but the files changed; the originals are in one backup store with a manifest.
#[test]
fn backups_never_where_a_consumer_reads() {
    let (_t, root, _) = fixture("enable", "debian-grub2");
    let before = tree(&root);
    on_then_off(&root);
    let after = tree(&root);
    // Files: a folder the apply had to make (/etc/modprobe.d) holds only the drop-in.
    let new: Vec<&String> = after
        .keys()
        .filter(|k| !before.contains_key(*k) && !k.ends_with('/'))
        .collect();
    assert_eq!(
        new,
        vec!["etc/modprobe.d/nestcore-kvm.conf"],
        "new files outside the store"
    );
    assert!(after
        .keys()
        .all(|k| !k.contains("nestcore-bak") && !k.contains("nestcore-tmp")));
    let md = root.join("etc/modprobe.d");
    assert_eq!(
        module_init_tools_value(&md, "kvm_intel", "nested").as_deref(),
        Some("0")
    );
    if let Some(v) = kmod_values(&md, "kvm_intel", "nested") {
        assert_eq!(v, vec!["0"]);
    }
    // One store, one transaction per apply, each with its manifest and originals.
    let store = root.join(STORE);
    let mut txs: Vec<String> = fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    txs.sort();
    assert_eq!(txs, vec!["0001", "0002"]);
    let grub = fs::read(store.join("0001/files/etc/default/grub")).unwrap();
    assert_eq!(grub, before["etc/default/grub"].0, "the first original is kept");
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(store.join("0002/manifest.json")).unwrap()).unwrap();
    assert_eq!(m["state"], "applied");
    let paths: Vec<&str> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"/etc/modprobe.d/nestcore-kvm.conf"), "{paths:?}");
    // nestcore's own drop-in needs no copy: its text is regenerated.
    let dropin = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/modprobe.d/nestcore-kvm.conf")
        .unwrap();
    assert!(dropin["before"]["copy"].is_null(), "{dropin}");
    assert_eq!(dropin["before"]["generated"]["value"], "1");
    assert!(!store.join("0002/files/etc/modprobe.d").exists());
}

/// Issue 13, item 4: on no-extension, pvm-guest and intel-firmware-disabled, `enable --apply`
/// wrote nested=1 and exited 0, then said "already on". Now: blocked with the verdict's reason
/// and remedy, exit 1, nothing written; `--force` writes it (still exit 1); and the next plan
/// is blocked again, never "already on".
#[test]
fn impossible_hosts_are_blocked_and_forced_only_explicitly() {
    for (name, code_wanted) in [
        ("no-extension", "cpu.extension_missing"),
        ("pvm-guest", "kvm.pvm_backend"),
        ("intel-firmware-disabled", "cpu.firmware_disabled"),
        ("hyperv-guest", "cpu.extension_hidden_by_hypervisor"),
    ] {
        let (_t, root, cpuid) = fixture("hosts", name);
        let cpuid = cpuid.unwrap();
        let mut base = vec!["enable", "--root", r(&root), "--cpuid", r(&cpuid)];
        let before = tree(&root);
        let (_, check, _) = nestcore(&["check", "--root", r(&root), "--cpuid", r(&cpuid), "--json"]);
        let report: serde_json::Value = serde_json::from_str(&check).unwrap();
        let finding = report["verdict"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == code_wanted)
            .unwrap_or_else(|| panic!("{name}: check has no {code_wanted}"))
            .clone();

        let mut args = base.clone();
        args.extend(["--apply", "--json"]);
        let (code, out, err) = nestcore(&args);
        assert_eq!(code, 1, "{name}: {out}{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let b = &v["plan"]["blockers"][0];
        assert_eq!(b["code"], code_wanted, "{name}: {}", v["plan"]["blockers"]);
        assert_eq!(b["reason"], finding["message"], "{name}: the verdict's reason");
        let remedy = b["remedy"].as_str().unwrap();
        assert!(
            remedy.starts_with(finding["remedy"].as_str().unwrap()),
            "{name}: {remedy}"
        );
        assert!(remedy.contains("--force"), "{name}: {remedy}");
        assert!(v["report"].is_null());
        assert_eq!(tree(&root), before, "{name}: a blocked plan wrote something");

        base.extend(["--force", "--apply"]);
        let (code, out, err) = nestcore(&base);
        assert_eq!(code, 1, "{name}: forced is still not as wanted: {out}{err}");
        assert!(out.contains("warning: forced past (--force)"), "{name}: {out}");
        assert!(out.contains("wrote") || out.contains("created"), "{name}: {out}");
        assert_ne!(tree(&root), before, "{name}: --force applied nothing");

        let (code, out, _) = nestcore(&["enable", "--root", r(&root), "--cpuid", r(&cpuid)]);
        assert_eq!(code, 1, "{name}");
        assert!(
            out.contains("is blocked") && !out.contains("nothing to do"),
            "{name}: {out}"
        );
    }
}

/// Issue 13, item 5: `enable --undo [--root DIR] [--apply]` puts back exactly what the last
/// apply changed, from the backup store: files byte for byte (modes too), files created
/// removed, the module reloaded back (listed for a recorded root), the boot configuration
/// regenerated; then there is nothing left to undo. A file changed since blocks it.
#[test]
fn undo_puts_back_byte_for_byte() {
    for (name, persist, expect_cmd) in [
        ("debian-grub2", "modprobe,cmdline", "update-grub"),
        (
            "centos6-grub-legacy",
            "runtime,modprobe,cmdline",
            "modprobe kvm_intel nested=0",
        ),
        ("amd-host", "runtime,modprobe", "modprobe kvm_amd nested=0"),
        ("fedora-bls", "cmdline", ""),
        ("conflict-neutralise", "modprobe", ""),
    ] {
        let (_t, root, _) = fixture("enable", name);
        let before = tree(&root);
        let mut args = vec!["enable", "--root", r(&root), "--persist", persist, "--apply"];
        if name == "conflict-neutralise" {
            args.push("--neutralise-conflicts");
        }
        let (code, out, err) = nestcore(&args);
        assert_eq!(code, 0, "{name}: {out}{err}");
        assert!(out.contains("enable --undo"), "{name}: {out}");
        let applied = tree(&root);
        assert_ne!(applied, before);

        let (code, out, _) = nestcore(&["enable", "--undo", "--root", r(&root)]);
        assert_eq!(code, 1, "{name}: shown, not applied: {out}");
        assert!(out.starts_with("Undo apply 0001"), "{name}: {out}");
        assert_eq!(
            tree(&root),
            applied,
            "{name}: --undo without --apply changed something"
        );

        let (code, out, err) = nestcore(&["enable", "--undo", "--root", r(&root), "--apply"]);
        assert_eq!(code, 0, "{name}: {out}{err}");
        assert_eq!(
            restored_tree(&root, &before),
            before,
            "{name}: not back byte for byte"
        );
        assert!(out.contains(expect_cmd), "{name}: {out}");
        let (code, out, _) = nestcore(&["enable", "--undo", "--root", r(&root), "--apply"]);
        assert_eq!(code, 0, "{name}");
        assert!(out.starts_with("Nothing to undo"), "{name}: {out}");
    }

    // A file changed since the apply: undo would lose that change, so it is blocked.
    let (_t, root, _) = fixture("enable", "debian-grub2");
    let (code, _, _) = nestcore(&["enable", "--root", r(&root), "--persist", "cmdline", "--apply"]);
    assert_eq!(code, 0);
    fs::write(
        root.join("etc/default/grub"),
        "GRUB_CMDLINE_LINUX=\"edited by hand\"\n",
    )
    .unwrap();
    let edited = tree(&root);
    let (code, out, _) = nestcore(&["enable", "--undo", "--root", r(&root), "--apply"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("/etc/default/grub changed since apply 0001"),
        "{out}"
    );
    assert_eq!(tree(&root), edited);
}

/// Issue 13, B3: undo walks back through history, one apply per `--undo --apply`, each plan
/// naming the apply it undoes and how many remain, until the tree is as it was before the
/// first apply.
#[test]
fn undo_walks_back_through_every_apply() {
    let (_t, root, _) = fixture("enable", "debian-grub2");
    let before = tree(&root);
    let on = on_then_off(&root);
    assert_ne!(tree(&root), on);

    let (code, out, _) = nestcore(&["enable", "--undo", "--root", r(&root)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("Undo apply 0002"), "{out}");
    assert!(out.contains("1 earlier apply remains (0001)"), "{out}");
    let (code, out, err) = nestcore(&["enable", "--undo", "--root", r(&root), "--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("apply 0002 is undone"), "{out}");
    assert_eq!(
        tree(&root),
        on,
        "the first undo goes back to after the first apply"
    );

    let (code, out, err) = nestcore(&["enable", "--undo", "--root", r(&root), "--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("Undo apply 0001"), "{out}");
    assert!(out.contains("apply 0001 is undone"), "{out}");
    assert!(!out.contains("remains"), "{out}");
    assert_eq!(
        restored_tree(&root, &before),
        before,
        "two undos go back to before the first apply"
    );

    let (code, out, _) = nestcore(&["enable", "--undo", "--root", r(&root), "--apply"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("Nothing to undo: every apply recorded"), "{out}");
    assert_eq!(restored_tree(&root, &before), before);
}

/// Issue 13, item 6: a blocker says `--neutralise-conflicts` to a CLI user; how the module was
/// chosen is a note, not a warning.
#[test]
fn cli_messages_speak_cli() {
    let (_t, root, _) = fixture("enable", "conflict-distro");
    let (code, out, _) = nestcore(&["enable", "--root", r(&root)]);
    assert_eq!(code, 1);
    assert!(out.contains("plan again with --neutralise-conflicts"), "{out}");
    assert!(!out.contains("neutralise_conflicts"), "{out}");
    assert!(
        out.contains("note: kvm_intel chosen from /proc/cpuinfo vendor_id"),
        "{out}"
    );
    assert!(!out.contains("warning: kvm_intel chosen"), "{out}");
    let (_, json, _) = nestcore(&["enable", "--root", r(&root), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let has = |k: &str| {
        v["plan"][k]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("chosen from"))
    };
    assert!(has("notes") && !has("warnings"), "{v}");
}

/// Issue 13, item 6: `snapshot` lists every file it wrote, and nothing else.
#[test]
fn snapshot_lists_every_file_it_wrote() {
    if !Path::new("/proc/cpuinfo").exists() {
        println!("skipped: no /proc here");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    let (code, out, err) = nestcore(&["snapshot", r(&dir)]);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    let head = lines.next().unwrap();
    let listed: Vec<PathBuf> = lines
        .take_while(|l| l.starts_with("  "))
        .map(|l| PathBuf::from(l.trim_start()))
        .collect();
    assert_eq!(
        head,
        format!("Recorded {} files into {}:", listed.len(), dir.display())
    );
    fn files(d: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut on_disk = Vec::new();
    files(&dir, &mut on_disk);
    on_disk.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, on_disk);
    assert!(out.contains("Reproduce with: nestcore check --root"), "{out}");
}

/// Issue 13, item 3: off reaches a layer someone else set (a distribution file read after
/// nestcore's drop-in: refused with the layer named, or neutralised when asked), and a plan
/// names the layer that overrides the one it writes.
#[test]
fn off_and_overrides_name_every_layer() {
    // Debian's qemu-system-x86.conf sets nested=1 and is read after nestcore-kvm.conf.
    let (_t, root, _) = fixture("enable", "already-on");
    let (code, out, _) = nestcore(&["enable", "--root", r(&root), "--off", "--apply"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("/etc/modprobe.d/qemu-system-x86.conf:1 sets kvm_intel nested=1"),
        "{out}"
    );
    let (code, out, err) = nestcore(&[
        "enable",
        "--root",
        r(&root),
        "--off",
        "--neutralise-conflicts",
        "--apply",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let md = root.join("etc/modprobe.d");
    assert_eq!(
        module_init_tools_value(&md, "kvm_intel", "nested").as_deref(),
        Some("0")
    );
    if let Some(v) = kmod_values(&md, "kvm_intel", "nested") {
        assert_eq!(v.last().map(String::as_str), Some("0"), "{v:?}");
        assert!(!v.contains(&"1".to_string()), "{v:?}");
    }

    // --off --persist runtime,modprobe while a boot configuration sets nested=1: the command
    // line is turned off too, and the running kernel's nested=1 is named as overriding
    // modprobe.d until the reboot.
    let (_t, root, _) = fixture("enable", "centos6-grub-legacy");
    let (code, _, _) = nestcore(&["enable", "--root", r(&root), "--persist", "cmdline", "--apply"]);
    assert_eq!(code, 0);
    fs::write(
        root.join("proc/cmdline"),
        "ro root=/dev/mapper/vg-root kvm-intel.nested=1 quiet\n",
    )
    .unwrap();
    let (code, out, err) = nestcore(&["enable", "--root", r(&root), "--off", "--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("note: the kernel command line is turned off too"),
        "{out}"
    );
    assert!(
        out.contains("warning: the running kernel's command line sets kvm-intel.nested=1: kmod applies it after modprobe.d"),
        "{out}"
    );
    let conf = fs::read_to_string(root.join("boot/grub/grub.conf")).unwrap();
    assert!(
        !conf.contains("nested=1") && conf.matches("kvm-intel.nested=0").count() == 2,
        "{conf}"
    );

    // On through modprobe.d while the boot configuration says nested=0: the command line
    // would win after the next boot, so the plan is blocked with the flag that fixes it.
    let (_t, root, _) = fixture("enable", "debian-grub2");
    let (code, out, _) = nestcore(&["enable", "--root", r(&root), "--apply"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("kmod applies after modprobe.d: nested would be off again"),
        "{out}"
    );
    assert!(
        out.contains("remedy: plan again with --persist modprobe,cmdline"),
        "{out}"
    );

    // The running kernel's command line says nested=0 and no boot loader configuration is
    // found to change it: nestcore cannot change that layer, so it refuses, naming it.
    let (_t, root, cpuid) = fixture("hosts", "amd-nested-off");
    let before = tree(&root);
    let cpuid = cpuid.unwrap();
    let (code, out, _) = nestcore(&["enable", "--root", r(&root), "--cpuid", r(&cpuid), "--apply"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("blocked: the running kernel's command line sets kvm-amd.nested=0, which kmod applies after modprobe.d"),
        "{out}"
    );
    assert!(
        out.contains("--persist runtime changes the running module now"),
        "{out}"
    );
    assert_eq!(tree(&root), before);

    // A built-in module reads only the kernel command line.
    let (_t, root, _) = fixture("enable", "wsl2-builtin");
    let (code, out, _) = nestcore(&["enable", "--root", r(&root), "--persist", "modprobe"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("kvm_intel is built into the kernel: it reads only the kernel command line"),
        "{out}"
    );
    assert!(out.contains("remedy: plan again with --persist cmdline"), "{out}");
}

/// The order nestcore assumes is kmod's: files in name order (`.conf` only), options
/// concatenated, the last value wins; continuations and comments as kmod reads them.
#[test]
fn modprobe_order_is_kmods() {
    let cases: &[&[(&str, &str)]] = &[
        &[
            ("a.conf", "options kvm_intel nested=1\n"),
            ("b.conf", "options kvm-intel nested=0 ept=1\n"),
        ],
        &[
            ("b.conf", "options kvm_intel nested=0\n"),
            ("a.conf", "options kvm_intel nested=1\n"),
        ],
        &[
            ("z.conf", "options kvm_intel \\\n  nested=0\n"),
            ("nestcore-kvm.conf", "options kvm_intel nested=1\n"),
        ],
        &[(
            "a.conf",
            "#options kvm_intel nested=0\noptions kvm_intel nested=Y ept=1 nested=N\n",
        )],
        &[
            ("a.conf", "options kvm_intel nested=1\n"),
            ("b.conf.nestcore-bak", "options kvm_intel nested=0\n"),
        ],
    ];
    let mut checked = 0;
    for files in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("etc/modprobe.d");
        fs::create_dir_all(&dir).unwrap();
        for (n, t) in *files {
            fs::write(dir.join(n), t).unwrap();
        }
        let host = nestcore::Host::from_root(tmp.path()).unwrap();
        let ours: Vec<String> = nestcore::modprobe::load(&host)
            .unwrap()
            .contributions("kvm_intel", "nested")
            .iter()
            .map(|o| o.value.clone().unwrap_or_default())
            .collect();
        let Some(theirs) = kmod_values(&dir, "kvm_intel", "nested") else {
            return;
        };
        assert_eq!(ours, theirs, "{files:?}");
        checked += 1;
    }
    assert_eq!(checked, cases.len());
}

/// Review B8: one byte that is not UTF-8 in a file the plan edits made every `enable --apply`
/// fail with "changed since the plan was made" (the plan read the file lossily, apply compared
/// bytes). The plan refuses at once, naming the file and the byte, and changes nothing.
#[test]
fn a_file_that_is_not_utf8_is_refused_when_planning() {
    let (_t, root, _) = fixture("enable", "debian-grub2");
    let grub = root.join("etc/default/grub");
    let mut text = fs::read(&grub).unwrap();
    let at = text.len() + "# Mise ".len();
    text.extend_from_slice(b"# Mise \xe0 jour\n");
    fs::write(&grub, &text).unwrap();
    let before = tree(&root);
    for apply in [false, true] {
        let mut args = vec!["enable", "--root", r(&root), "--persist", "modprobe,cmdline"];
        if apply {
            args.push("--apply");
        }
        let (code, out, err) = nestcore(&args);
        assert_eq!(code, 2, "{out}{err}");
        assert!(
            err.contains("/etc/default/grub") && err.contains(&format!("not valid UTF-8 at byte {at}")),
            "{err}"
        );
        assert!(!err.contains("changed since"), "{err}");
        assert_eq!(tree(&root), before);
    }
}

/// B4 (issue 13, the reviewer): on a host whose running module has nesting on (fixture
/// intel-nested-on, runtime Y), `enable --off --apply` wrote nested=0 to modprobe.d, exited 0
/// and warned of nothing, and a second `--off` said "already off ... (runtime: on): nothing to
/// do" while the running module still has it on. Now both say what stays on, until when, and
/// how to change it.
#[test]
fn off_says_the_running_module_stays_on() {
    let (_t, root, _) = fixture("hosts", "intel-nested-on");
    let (code, out, err) = nestcore(&["enable", "--root", r(&root), "--off", "--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("warning: the running kvm_intel still has nested on"),
        "{out}"
    );
    assert!(
        out.contains("--persist runtime") && out.contains("reboot"),
        "{out}"
    );
    let (code, out, _) = nestcore(&["enable", "--root", r(&root), "--off"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("already off"), "{out}");
    let summary = out.lines().next().unwrap();
    assert!(
        summary.contains("the running kvm_intel still has nested on")
            && summary.contains("--persist runtime")
            && summary.contains("reboot"),
        "{summary}"
    );
    // With the runtime layer asked too, the reload turns it off and nothing is left on.
    let (code, out, _) = nestcore(&[
        "enable",
        "--root",
        r(&root),
        "--off",
        "--persist",
        "runtime,modprobe",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("kvm_intel reloaded with nested=0"), "{out}");
    assert!(!out.contains("still has nested on"), "{out}");
    // The help (and the man page made from it) no longer says "every layer".
    let (_, help, _) = nestcore(&["enable", "--help"]);
    assert!(!help.contains("in every layer"), "{help}");
    assert!(
        help.contains("every persistent layer") && help.contains("--persist runtime"),
        "{help}"
    );
}

/// B5 (the lab's finding 2, for every layer): kvm_amd's nested is an int, and kvm_amd refuses
/// to load with `Y` (the lab measured it: "kvm_amd: `Y' invalid for parameter `nested'",
/// modprobe exits 1). The planner judged modprobe.d and the command line as bools: on amd-host
/// with `options kvm_amd nested=Y` it said "already on ... nothing to do" and exited 0, and
/// check had no finding; with `kvm-amd.nested=Y` on the running command line the plan said
/// "kvm_amd loads with nested=1 (modprobe.d)" and warned of nothing. kmod hands the kernel
/// every option line of the module, and the kernel refuses the load at the first invalid one,
/// so a refused line blocks the load wherever it sorts.
#[test]
fn refused_values_are_conflicts_in_every_layer() {
    let (_t, root, _) = fixture("enable", "amd-host");
    fs::write(root.join("etc/modprobe.d/kvm.conf"), "options kvm_amd nested=Y\n").unwrap();
    let (code, out, err) = nestcore(&["enable", "--root", r(&root), "--apply"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("nothing to do"), "{out}");
    assert!(
        out.contains(
            "blocked: /etc/modprobe.d/kvm.conf:1 sets kvm_amd nested=Y, which kvm_amd refuses to load with"
        ),
        "{out}"
    );
    assert!(out.contains("--neutralise-conflicts"), "{out}");
    assert!(!root.join("etc/modprobe.d/nestcore-kvm.conf").exists());
    // --neutralise-conflicts comments it out and writes the drop-in; kmod then passes only 1.
    let (code, out, err) = nestcore(&["enable", "--root", r(&root), "--neutralise-conflicts", "--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    if let Some(v) = kmod_values(&root.join("etc/modprobe.d"), "kvm_amd", "nested") {
        assert_eq!(v, vec!["1"], "kmod applies {v:?}");
    }

    // check names the line, with the file:line and the fix.
    let (_t, root, _) = fixture("enable", "amd-host");
    fs::write(
        root.join("etc/modprobe.d/kvm.conf"),
        "# local\noptions kvm_amd nested=Y\n",
    )
    .unwrap();
    let (_, out, _) = nestcore(&["check", "--root", r(&root), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let f = v["verdict"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "kvm.modprobe_invalid")
        .unwrap_or_else(|| panic!("no kvm.modprobe_invalid in {out}"));
    assert_eq!(f["level"], "warn", "{f}");
    assert_eq!(f["evidence"][0]["source"], "/etc/modprobe.d/kvm.conf:2", "{f}");
    assert!(f["remedy"].as_str().unwrap().contains("nested=1"), "{f}");
    // A valid line gives none.
    fs::write(
        root.join("etc/modprobe.d/kvm.conf"),
        "options kvm_amd nested=0x1\n",
    )
    .unwrap();
    let (_, out, _) = nestcore(&["check", "--root", r(&root), "--json"]);
    assert!(!out.contains("kvm.modprobe_invalid"), "{out}");

    // The running command line: every load of kvm_amd fails until a reboot without it.
    let (_t, root, _) = fixture("enable", "amd-host");
    fs::write(root.join("proc/cmdline"), "ro quiet kvm-amd.nested=Y\n").unwrap();
    let (code, out, _) = nestcore(&["enable", "--root", r(&root)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "the running kernel's command line sets kvm-amd.nested=Y, which kvm_amd refuses to load with"
        ),
        "{out}"
    );
}

/// The systemd-boot fixture's entry.
fn entry_of(root: &Path) -> PathBuf {
    let dir = root.join("efi/loader/entries");
    fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path()
}

/// The `options` line of the systemd-boot fixture's entry, and its file.
fn bls_options(root: &Path) -> (PathBuf, String) {
    let f = entry_of(root);
    let text = fs::read_to_string(&f).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("options")).unwrap();
    (f.clone(), line.trim().to_string())
}

/// B6 (the lab's finding 1, for the editors): kmod applies a module's parameters after `--`
/// too (the lab booted `kvm_amd.nested=0 -- kvm_amd.nested=1` and got 1), but the editors
/// changed only what comes before `--`: on systemd-boot with `-- kvm-intel.nested=0`,
/// `enable --persist cmdline --apply` wrote `kvm-intel.nested=1 -- kvm-intel.nested=0` and
/// reported success while kmod applies 0; `--off` missed `-- ...nested=1`; `kargs
/// --remove-args` left it. Judged as kmod reads the line (Cmdline::module_param, loadable).
#[test]
fn module_params_after_dashes_are_edited_too() {
    let (_t, root, _) = fixture("enable", "systemd-boot");
    let (entry, _) = bls_options(&root);
    let text = fs::read_to_string(&entry).unwrap();
    fs::write(
        &entry,
        text.replace("rw quiet", "rw quiet -- kvm-intel.nested=0 single"),
    )
    .unwrap();
    let (code, out, err) = nestcore(&["enable", "--root", r(&root), "--persist", "cmdline", "--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, line) = bls_options(&root);
    let c = Cmdline::parse(&line);
    assert_eq!(
        c.module_param("kvm_intel.nested", false),
        Some(Some("1".into())),
        "kmod reads {line:?}"
    );
    assert_eq!(
        c.module_param("kvm_intel.nested", true),
        Some(Some("1".into())),
        "the kernel reads {line:?}"
    );
    assert!(line.ends_with("-- single"), "init's own arguments stay: {line:?}");

    // --off finds an on after `--` (and nothing else sets it on).
    let (_t, root, _) = fixture("enable", "systemd-boot");
    fs::write(
        entry_of(&root),
        text.replace("rw quiet", "rw quiet -- kvm_intel.nested=1"),
    )
    .unwrap();
    let (code, out, err) = nestcore(&["enable", "--root", r(&root), "--off", "--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, line) = bls_options(&root);
    assert_eq!(
        Cmdline::parse(&line).module_param("kvm_intel.nested", false),
        Some(Some("0".into())),
        "kmod reads {line:?}"
    );

    // kargs --remove-args removes it there too.
    let entry = entry_of(&root);
    fs::write(
        &entry,
        text.replace("rw quiet", "rw quiet kvm-amd.nested=1 -- kvm-amd.nested=1 x"),
    )
    .unwrap();
    let (code, out, err) = nestcore(&[
        "kargs",
        "--config",
        r(&entry),
        "--loader",
        "bls",
        "--remove-args",
        "kvm-amd.nested",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("kvm-amd.nested"), "{out}");
    assert!(out.contains("rw quiet -- x"), "{out}");
}
