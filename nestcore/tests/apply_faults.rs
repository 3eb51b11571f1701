//! `Plan::apply` under faults and attacks: full disk, read-only file system, permission denied,
//! a failing rename (injected through the FaultHook, nothing is mounted), symlinks planted in
//! configuration folders, a FIFO in the place of a target, file modes, and the programs apply
//! runs. Every test is bounded by a watchdog: a hang is a failure, not a stuck CI job.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nestcore::nested::{self, Persist, Want};
use nestcore::plan::{Action, FaultHook, FsOp, RecordingExecutor};
use nestcore::Host;

/// Aborts the whole test binary when a test runs longer than `secs`.
struct Watchdog(std::sync::mpsc::Sender<()>);

fn watchdog(name: &'static str, secs: u64) -> Watchdog {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            eprintln!("watchdog: {name} still running after {secs} s: aborting");
            std::process::abort();
        }
    });
    Watchdog(tx)
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/enable")
        .join(name)
        .join("root")
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        let dst = to.join(e.file_name());
        if t.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), &dst).unwrap();
        } else if t.is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if t.is_dir() {
                walk(root, &e.path(), out);
            } else if t.is_file() {
                out.insert(rel, fs::read(e.path()).unwrap());
            } else {
                out.insert(rel, b"<special>".to_vec());
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(root, root, &mut m);
    m
}

/// Fails the n-th operation (optionally only operations of one kind) with a real errno.
struct ErrnoAt {
    n: usize,
    only: Option<FsOp>,
    errno: i32,
    seen: AtomicUsize,
}

impl FaultHook for ErrnoAt {
    fn check(&self, op: FsOp, _path: &Path) -> io::Result<()> {
        if self.only.is_some_and(|o| o != op) {
            return Ok(());
        }
        if self.seen.fetch_add(1, Ordering::SeqCst) == self.n {
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        Ok(())
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// ENOSPC, EROFS, EACCES at every operation, and a rename that fails for each file: every file
/// stays old (the plan is all-or-nothing), the rollback is reported, the errno reaches the
/// caller, no temporary file stays, and a backup that existed before is kept.
#[test]
fn disk_full_read_only_and_denied_at_every_step() {
    let _w = watchdog("disk_full_read_only_and_denied_at_every_step", 60);
    let src = fixture("fedora-bls");
    let cases = [
        (libc::ENOSPC, None, "No space left on device"),
        (libc::EROFS, None, "Read-only file system"),
        (libc::EACCES, None, "Permission denied"),
        (libc::EXDEV, Some(FsOp::Rename), "Invalid cross-device link"),
        (libc::EIO, Some(FsOp::FsyncDir), "Input/output error"),
    ];
    let mut checked = 0;
    for (errno, only, text) in cases {
        for n in 0.. {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("root");
            copy_tree(&src, &root);
            // A backup from an earlier run must survive whatever happens.
            fs::write(root.join("etc/kernel/cmdline.nestcore-bak"), "first original\n").unwrap();
            let before = snapshot(&root);
            let host = Host::from_root(&root).unwrap();
            let plan = nested::plan(&host, Want::On, Persist::from_names(&["cmdline"]).unwrap()).unwrap();
            let hook = ErrnoAt {
                n,
                only,
                errno,
                seen: AtomicUsize::new(0),
            };
            let res = plan.apply_with(&host, &RecordingExecutor::new(), &hook);
            let after = snapshot(&root);
            assert!(
                after.keys().all(|k| !k.contains("nestcore-tmp")),
                "{text} at {n}: temporary file left"
            );
            assert_eq!(
                after.get("etc/kernel/cmdline.nestcore-bak").map(Vec::as_slice),
                Some(&b"first original\n"[..]),
                "{text} at {n}: an existing backup was touched"
            );
            match res {
                Ok(r) => {
                    assert!(hook.seen.load(Ordering::SeqCst) <= n, "{text} at {n} swallowed");
                    assert!(!r.written.is_empty());
                    for w in &r.written {
                        if !w.created {
                            assert!(w.backup.is_some(), "{}: no backup reported", w.path);
                        }
                    }
                    break;
                }
                Err(e @ nestcore::Error::Apply { .. }) => {
                    let nestcore::Error::Apply {
                        not_restored, kept, ..
                    } = &e
                    else {
                        unreachable!()
                    };
                    assert_eq!(after, before, "{text} at {n}: not rolled back");
                    assert!(not_restored.is_empty(), "{not_restored:?}");
                    assert_eq!(kept, &None, "{text} at {n}: every file restored, nothing kept");
                    assert!(
                        error_chain(&e).contains(text),
                        "{text} at {n}: {}",
                        error_chain(&e)
                    );
                    checked += 1;
                }
                Err(e) => panic!("{text} at {n}: unexpected {e}"),
            }
            assert!(n < 500);
        }
    }
    println!("{checked} injected faults rolled back");
    assert!(checked >= 20);
}

/// A restore that itself fails is reported as such, never hidden.
#[test]
fn a_failing_rollback_is_reported() {
    let _w = watchdog("a_failing_rollback_is_reported", 30);
    /// Counts writes; fails write number `fail` with ENOSPC and every rename after it (the
    /// rollback's too) with EROFS.
    struct Sticky {
        fail: usize,
        writes: AtomicUsize,
    }
    impl FaultHook for Sticky {
        fn check(&self, op: FsOp, _path: &Path) -> io::Result<()> {
            let w = self.writes.load(Ordering::SeqCst);
            if op == FsOp::Rename && w > self.fail {
                return Err(io::Error::from_raw_os_error(libc::EROFS));
            }
            if op == FsOp::Write && self.writes.fetch_add(1, Ordering::SeqCst) == self.fail {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            Ok(())
        }
    }
    let run = |fail: usize| {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        copy_tree(&fixture("fedora-bls"), &root);
        let host = Host::from_root(&root).unwrap();
        let plan = nested::plan(&host, Want::On, Persist::from_names(&["cmdline"]).unwrap()).unwrap();
        let hook = Sticky {
            fail,
            writes: AtomicUsize::new(0),
        };
        (
            plan.apply_with(&host, &RecordingExecutor::new(), &hook),
            hook.writes.load(Ordering::SeqCst),
        )
    };
    let (ok, writes) = run(usize::MAX);
    assert!(ok.is_ok() && writes >= 4);
    match run(writes - 1).0 {
        Err(nestcore::Error::Apply {
            not_restored, kept, ..
        }) => {
            assert!(!not_restored.is_empty());
            assert_eq!(kept.as_deref(), Some("0001"), "the backup is kept for undo");
        }
        other => panic!("expected an apply error, got {other:?}"),
    }
}

/// Planted symlinks: the drop-in pointing at a file outside the root, /etc/default/grub
/// pointing out with `..`, and a folder on the way that leads out. Apply refuses before
/// writing anything and the outside files are untouched.
#[test]
fn planted_symlinks_never_lead_a_write_outside() {
    let _w = watchdog("planted_symlinks_never_lead_a_write_outside", 30);
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("file"), "precious\n").unwrap();
    fs::write(outside.join("grub"), "GRUB_CMDLINE_LINUX=\"quiet\"\n").unwrap();
    let root = tmp.path().join("root");
    copy_tree(&fixture("debian-grub2"), &root);
    let dropin = root.join("etc/modprobe.d/nestcore-kvm.conf");
    fs::create_dir_all(dropin.parent().unwrap()).unwrap();
    let _ = fs::remove_file(&dropin);
    std::os::unix::fs::symlink(outside.join("file"), &dropin).unwrap();
    let grub = root.join("etc/default/grub");
    let _ = fs::remove_file(&grub);
    std::os::unix::fs::symlink("../../../outside/grub", &grub).unwrap();
    let outside_before = snapshot(&outside);
    let host = Host::from_root(&root).unwrap();
    for persist in ["modprobe", "cmdline", "modprobe,cmdline"] {
        for want in [Want::On, Want::Off] {
            let Ok(plan) = nested::plan(&host, want, Persist::from_names(&[persist]).unwrap()) else {
                continue;
            };
            let writes: Vec<String> = plan
                .actions
                .iter()
                .filter_map(|a| match a {
                    Action::WriteFile { path, .. } => Some(path.clone()),
                    _ => None,
                })
                .collect();
            // Reads stay inside the root too (issue 13, item 7): the planner never saw the
            // outside files' content, and names no path outside the root.
            let shown = serde_json::to_string(&plan).unwrap();
            assert!(!shown.contains("precious") && !shown.contains("quiet"), "{shown}");
            assert!(writes.iter().all(|p| !p.contains("outside")), "{writes:?}");
            let res = plan.apply(&host, &RecordingExecutor::new());
            if writes
                .iter()
                .any(|p| p == "/etc/modprobe.d/nestcore-kvm.conf" || p == "/etc/default/grub")
            {
                let e = res.expect_err("a write through a planted symlink was accepted");
                assert!(
                    e.to_string().contains("symlink") || !plan.blockers.is_empty(),
                    "{e}"
                );
            }
            assert_eq!(snapshot(&outside), outside_before, "{persist}: outside changed");
            assert!(fs::symlink_metadata(&dropin).unwrap().file_type().is_symlink());
            assert!(fs::symlink_metadata(&grub).unwrap().file_type().is_symlink());
        }
    }
    // A folder on the way that leads out of the root with `..`: refused.
    let md = root.join("etc/modprobe.d");
    fs::remove_dir_all(&md).unwrap();
    std::os::unix::fs::symlink("../../outside", &md).unwrap();
    let plan = nested::plan(&host, Want::On, Persist::from_names(&["modprobe"]).unwrap()).unwrap();
    let e = plan.apply(&host, &RecordingExecutor::new()).unwrap_err();
    assert!(e.to_string().contains("out of the root"), "{e}");
    assert_eq!(snapshot(&outside), outside_before);
    // An absolute target is resolved the way the host would see it: inside the root.
    fs::remove_file(&md).unwrap();
    std::os::unix::fs::symlink(&outside, &md).unwrap();
    let plan = nested::plan(&host, Want::On, Persist::from_names(&["modprobe"]).unwrap()).unwrap();
    if plan.apply(&host, &RecordingExecutor::new()).is_ok() {
        let inside = root
            .join(outside.strip_prefix("/").unwrap())
            .join("nestcore-kvm.conf");
        assert!(inside.is_file(), "{}", inside.display());
    }
    assert_eq!(snapshot(&outside), outside_before);
}

/// A FIFO (or a folder) in the place of a file to write: refused at once, never a hang.
#[test]
fn special_files_in_place_of_a_target_are_refused_without_hanging() {
    let _w = watchdog(
        "special_files_in_place_of_a_target_are_refused_without_hanging",
        20,
    );
    for kind in ["fifo", "dir"] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        copy_tree(&fixture("debian-grub2"), &root);
        let dropin = root.join("etc/modprobe.d/nestcore-kvm.conf");
        fs::create_dir_all(dropin.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&dropin);
        if kind == "fifo" {
            let c = std::ffi::CString::new(dropin.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        } else {
            fs::create_dir(&dropin).unwrap();
        }
        let host = Host::from_root(&root).unwrap();
        let plan = nestcore::plan::Plan {
            actions: vec![Action::WriteFile {
                path: "/etc/modprobe.d/nestcore-kvm.conf".into(),
                old: None,
                new: "options kvm_intel nested=1\n".into(),
                diff: String::new(),
                reason: "test".into(),
                when: nestcore::plan::When::AfterReload,
            }],
            ..nestcore::plan::Plan::default()
        };
        let e = plan.apply(&host, &RecordingExecutor::new()).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{kind}: {e}");
        // The planner, reading through the Host, does not hang either.
        let _ = nested::plan(&host, Want::On, Persist::from_names(&["modprobe"]).unwrap());
    }
}

/// New files are 0644 whatever the umask; an edited file keeps its mode and so does its backup.
#[test]
fn modes_new_files_0644_edited_files_keep_theirs() {
    let _w = watchdog("modes_new_files_0644_edited_files_keep_theirs", 30);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    copy_tree(&fixture("fedora-bls"), &root);
    let cmdline = root.join("etc/kernel/cmdline");
    fs::set_permissions(&cmdline, fs::Permissions::from_mode(0o600)).unwrap();
    let host = Host::from_root(&root).unwrap();
    // SAFETY: umask only changes this process's file creation mask.
    let old_mask = unsafe { libc::umask(0) };
    let plan = nested::plan(
        &host,
        Want::On,
        Persist::from_names(&["modprobe", "cmdline"]).unwrap(),
    )
    .unwrap();
    let r = plan.apply(&host, &RecordingExecutor::new());
    // SAFETY: as above.
    unsafe { libc::umask(old_mask) };
    let r = r.unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let mut created = 0;
    for w in &r.written {
        let real = root.join(w.path.trim_start_matches('/'));
        if w.created {
            assert_eq!(mode(&real), 0o644, "{}", w.path);
            created += 1;
        }
        assert_eq!(mode(&real) & 0o002, 0, "{} is world-writable", w.path);
        if let Some(b) = &w.backup {
            assert_eq!(mode(&root.join(b.trim_start_matches('/'))), mode(&real), "{b}");
        }
    }
    assert!(created >= 1, "{r:?}");
    assert_eq!(mode(&cmdline), 0o600);
    // The backup store: /var/lib as any system has it, nestcore's folders for root only,
    // whatever the umask; nothing in it world-writable.
    assert_eq!(mode(&root.join("var/lib")), 0o755);
    assert_eq!(mode(&root.join("var/lib/nestcore")), 0o700);
    assert_eq!(mode(&root.join("var/lib/nestcore/backup")), 0o700);
    assert_eq!(
        mode(&root.join("var/lib/nestcore/backup/0001/manifest.json")),
        0o600
    );
    let copy = root.join("var/lib/nestcore/backup/0001/files/etc/kernel/cmdline");
    assert_eq!(mode(&copy), 0o600, "the copy keeps the original's mode");
    assert_eq!(mode(&root.join("var/lib/nestcore/backup/0001/files/etc")), 0o755);
}

/// Every command any plan of the enable fixtures would run is a bare program name (found by
/// absolute path in fixed folders, run without a shell) with arguments that are plain words.
#[test]
fn planned_commands_are_plain_programs_and_words() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/enable");
    let mut n = 0;
    for e in fs::read_dir(dir).unwrap() {
        let root = e.unwrap().path().join("root");
        if !root.is_dir() {
            continue;
        }
        let host = Host::from_root(&root).unwrap();
        for want in [Want::On, Want::Off] {
            let Ok(plan) = nested::plan(&host, want, Persist::from_names(&["all"]).unwrap()) else {
                continue;
            };
            for c in plan.actions.iter().flat_map(Action::commands) {
                assert!(
                    !c.program.is_empty()
                        && c.program
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
                        && !c.program.starts_with(['.', '-']),
                    "{c}"
                );
                for a in &c.args {
                    assert!(
                        !a.is_empty() && !a.contains(|ch: char| ch.is_whitespace() || ch == '\0'),
                        "{c}"
                    );
                }
                n += 1;
            }
        }
    }
    assert!(n > 0);
}

/// SystemExecutor refuses a program name that is a path, a dot name or holds shell
/// metacharacters, before looking for it.
#[test]
fn system_executor_refuses_paths_and_metacharacters() {
    let host = Host::live();
    for bad in [
        "",
        ".",
        "..",
        "../bin/sh",
        "/bin/sh",
        "sh;id",
        "sh id",
        "$(id)",
        "`id`",
        "a|b",
        "-rf",
        "a\nb",
        "a\0b",
    ] {
        assert_eq!(nestcore::plan::find_program(&host, bad), None, "{bad:?}");
        let cmd = nestcore::plan::Command::new(bad, &[]);
        let e = nestcore::plan::Executor::run(&nestcore::plan::SystemExecutor, &host, &cmd).unwrap_err();
        assert_eq!(e.kind(), nestcore::ErrorKind::InvalidInput, "{bad:?}: {e}");
    }
    // A recorded host never runs anything.
    let tmp = tempfile::tempdir().unwrap();
    let rec = Host::from_root(tmp.path()).unwrap();
    let cmd = nestcore::plan::Command::new("true", &[]);
    assert!(nestcore::plan::Executor::run(&nestcore::plan::SystemExecutor, &rec, &cmd).is_err());
}

/// The tree without the backup store (what a consumer reads).
fn outside_store(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = snapshot(root);
    m.retain(|k, _| !k.starts_with("var/lib/nestcore"));
    m
}

/// The host at `root` and its plan for nesting on through modprobe.d and the kernel command line.
fn on_with_modprobe_and_cmdline(root: &Path) -> (Host, nestcore::plan::Plan) {
    let host = Host::from_root(root).unwrap();
    let plan = nested::plan(
        &host,
        Want::On,
        Persist::from_names(&["modprobe", "cmdline"]).unwrap(),
    )
    .unwrap();
    (host, plan)
}

/// Two faults (issue 13, B1): the disk fails from the rename of 50-cloudimg.cfg onwards (as a
/// full disk would), so the rollback of /etc/default/grub fails too. The backup of its original
/// is kept (the transaction stays pending), the error says which file was not restored and how
/// to get it back, and `enable --undo --apply` then puts back every file, byte for byte.
#[test]
fn a_failed_restore_keeps_the_backup_and_undo_puts_it_back() {
    let _w = watchdog("a_failed_restore_keeps_the_backup_and_undo_puts_it_back", 30);
    /// Fails every operation once the rename of the target named `from` was attempted.
    struct BrokenFrom {
        from: &'static str,
        broken: std::sync::atomic::AtomicBool,
    }
    impl FaultHook for BrokenFrom {
        fn check(&self, op: FsOp, path: &Path) -> io::Result<()> {
            let store = path.to_string_lossy().contains("/var/lib/nestcore/");
            if op == FsOp::Rename && path.ends_with(self.from) && !store {
                self.broken.store(true, Ordering::SeqCst);
            }
            if self.broken.load(Ordering::SeqCst) {
                return Err(io::Error::other(format!("injected: {op:?} {}", path.display())));
            }
            Ok(())
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    copy_tree(&fixture("debian-grub2"), &root);
    let before = outside_store(&root);
    let (host, plan) = on_with_modprobe_and_cmdline(&root);
    let hook = BrokenFrom {
        from: "50-cloudimg.cfg",
        broken: false.into(),
    };
    let e = plan
        .apply_with(&host, &RecordingExecutor::new(), &hook)
        .expect_err("the apply must fail");
    let text = error_chain(&e);
    // The scenario: /etc/default/grub was written before the disk broke and could not be put
    // back.
    assert!(
        before.get("etc/default/grub") != outside_store(&root).get("etc/default/grub"),
        "{text}"
    );
    // A failed restore is not called restored, and the error says how to get it back.
    let restored = text.split("restored: ").nth(1).unwrap_or("");
    let restored = restored.split(';').next().unwrap_or("");
    assert!(
        !restored
            .split(", ")
            .any(|f| f == "/etc/default/grub" || f.starts_with("/etc/default/grub ")),
        "{text}"
    );
    assert!(text.contains("not restored: /etc/default/grub"), "{text}");
    assert!(text.contains("nestcore enable --undo --apply"), "{text}");
    assert!(text.contains("0001"), "{text}");
    // The transaction is kept, pending, with the original of /etc/default/grub.
    assert_eq!(nestcore::backup::transactions(&host), vec!["0001"], "{text}");
    let m = nestcore::backup::read_manifest(&host, "0001").unwrap();
    assert_eq!(m.state, nestcore::backup::TxState::Pending);
    assert_eq!(
        fs::read(root.join("var/lib/nestcore/backup/0001/files/etc/default/grub")).ok(),
        before.get("etc/default/grub").cloned()
    );
    // Once the disk works again, undo puts back every file.
    let undo = nested::plan_undo(&host).unwrap();
    assert!(undo.blockers.is_empty(), "{}", undo.render());
    assert_eq!(undo.undoes.as_deref(), Some("0001"), "{}", undo.render());
    undo.apply(&host, &RecordingExecutor::new()).unwrap();
    assert_eq!(outside_store(&root), before, "undo did not put everything back");
    assert!(nested::plan_undo(&host).unwrap().is_empty());
}

/// A failing program after one that succeeded (issue 13, B2): update-initramfs copies
/// modprobe.d into the initramfs, then update-grub exits 1. The rollback restores the files and
/// runs update-initramfs again, so the initramfs no longer holds nested=1; the error lists that
/// run.
#[test]
fn a_program_that_succeeded_before_a_failure_is_run_again_after_rollback() {
    let _w = watchdog(
        "a_program_that_succeeded_before_a_failure_is_run_again_after_rollback",
        30,
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    copy_tree(&fixture("debian-grub2"), &root);
    // The host's initramfs-tools copy kvm_intel into the initramfs (what plans update-initramfs).
    fs::write(root.join("etc/initramfs-tools/modules"), "kvm_intel\n").unwrap();
    let before = outside_store(&root);
    let (host, plan) = on_with_modprobe_and_cmdline(&root);
    let programs: Vec<String> = plan
        .actions
        .iter()
        .flat_map(Action::commands)
        .map(|c| c.program)
        .collect();
    assert_eq!(programs, ["update-initramfs", "update-grub"], "{}", plan.render());
    /// What the initramfs would hold of modprobe.d: every .conf file's text.
    fn initramfs(h: &Host, _c: &nestcore::plan::Command) -> nestcore::Result<nestcore::plan::CommandOutput> {
        let md = h.root().join("etc/modprobe.d");
        let mut text = String::new();
        let mut names: Vec<_> = fs::read_dir(&md)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.sort();
        for p in names {
            if p.extension().is_some_and(|x| x == "conf") {
                text.push_str(&fs::read_to_string(p).unwrap());
            }
        }
        fs::write(h.root().join("boot/initrd.img-modprobe.d"), text).unwrap();
        Ok(nestcore::plan::CommandOutput::default())
    }
    let exec = RecordingExecutor::new()
        .on("update-initramfs", initramfs)
        .on("update-grub", |_h, _c| {
            Ok(nestcore::plan::CommandOutput {
                status: 1,
                stdout: String::new(),
                stderr: "grub-mkconfig: error: out of space".into(),
            })
        });
    let e = plan.apply(&host, &exec).expect_err("update-grub failed");
    let text = error_chain(&e);
    let image = fs::read_to_string(root.join("boot/initrd.img-modprobe.d")).unwrap();
    assert!(
        !image.contains("nested=1"),
        "the initramfs keeps nested=1: {image:?}; {text}"
    );
    let calls: Vec<String> = exec.calls().iter().map(|c| c.program.clone()).collect();
    assert_eq!(
        calls,
        ["update-initramfs", "update-grub", "update-initramfs"],
        "{text}"
    );
    assert!(
        text.contains("ran again: `update-initramfs -u -k all` (exit 0)"),
        "{text}"
    );
    let mut after = outside_store(&root);
    after.remove("boot/initrd.img-modprobe.d");
    assert_eq!(after, before, "{text}");
    // Nothing was left to undo.
    assert!(nestcore::backup::transactions(&host).is_empty(), "{text}");
}
