//! kill -9 during `Plan::apply`: the test binary re-executes itself as a child that applies a
//! four-file plan to a copy of the fedora-bls fixture, and the parent kills it at random
//! moments (at least 200 times, at most about a minute). Every target file must afterwards hold
//! exactly its old or its new content, and `plan_undo` must then give back every original.
#![allow(clippy::unwrap_used)]

mod common;
use common::copy_tree;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nestcore::nested::{self, Persist, Want};
use nestcore::plan::{Action, RecordingExecutor};
use nestcore::Host;

const CHILD_ENV: &str = "NESTCORE_KILL_CHILD_ROOT";

fn plan_for(root: &Path) -> nestcore::plan::Plan {
    let host = Host::from_root(root).unwrap();
    nested::plan(&host, Want::On, Persist::from_names(&["cmdline"]).unwrap()).unwrap()
}

/// The child: apply and exit. Does nothing in a normal test run.
#[test]
fn child_apply() {
    let Some(root) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let root = PathBuf::from(root);
    let plan = plan_for(&root);
    let host = Host::from_root(&root).unwrap();
    plan.apply(&host, &RecordingExecutor::new()).unwrap();
}

/// A cheap xorshift: no extra dependency for random delays.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn kill_during_apply_never_leaves_a_partial_file() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/enable/fedora-bls/root");
    let exe = std::env::current_exe().unwrap();
    // Old and new content of every target, from a reference plan.
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    copy_tree(&src, &reference);
    let mut targets: BTreeMap<String, (Option<String>, String)> = BTreeMap::new();
    for a in plan_for(&reference).actions {
        if let Action::WriteFile { path, old, new, .. } = a {
            targets.insert(path, (old, new));
        }
    }
    assert!(targets.len() >= 4);
    let spawn = |root: &Path| {
        std::process::Command::new(&exe)
            .args(["--exact", "child_apply", "--test-threads=1", "-q"])
            .env(CHILD_ENV, root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long a whole child run takes, to spread the kills over it.
    let t0 = Instant::now();
    let full = tmp.path().join("full");
    copy_tree(&src, &full);
    assert!(spawn(&full).wait().unwrap().success());
    let span = t0.elapsed().as_micros().max(1000) as u64;
    for (p, (_, new)) in &targets {
        assert_eq!(
            &fs::read_to_string(full.join(p.trim_start_matches('/'))).unwrap(),
            new
        );
    }

    // A fixed seed: the kill times are the same fraction of the span every run. Which files a
    // kill catches still depends on the machine's speed, but every outcome is checked the same
    // way (old or new, and undo restores), so no timing can make the test fail by chance.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (mut runs, mut killed_mid, mut finished) = (0, 0, 0);
    while runs < 200 {
        let root = tmp.path().join(format!("run{runs}"));
        copy_tree(&src, &root);
        let mut child = spawn(&root);
        std::thread::sleep(Duration::from_micros(next(&mut seed) % (span + span / 5)));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            finished += 1;
        }
        let mut news = 0;
        for (p, (old, new)) in &targets {
            let got = fs::read_to_string(root.join(p.trim_start_matches('/'))).ok();
            assert!(
                got.as_deref() == old.as_deref() || got.as_deref() == Some(new.as_str()),
                "run {runs}: {p} is neither old nor new: {got:?}"
            );
            news += usize::from(got.as_deref() == Some(new.as_str()));
        }
        if news > 0 && news < targets.len() {
            killed_mid += 1;
        }
        // Whatever the kill left (the backup store's transaction pending, or none yet), undo
        // gives back every original.
        let host = Host::from_root(&root).unwrap();
        let undo = nested::plan_undo(&host).unwrap();
        assert!(undo.blockers.is_empty(), "run {runs}: {}", undo.render());
        undo.apply(&host, &RecordingExecutor::new()).unwrap();
        for (p, (old, _)) in &targets {
            let got = fs::read_to_string(root.join(p.trim_start_matches('/'))).ok();
            assert_eq!(
                got.as_deref(),
                old.as_deref(),
                "run {runs}: {p} not restored by undo"
            );
        }
        let _ = fs::remove_dir_all(&root);
        runs += 1;
    }
    println!("{runs} kills: {finished} finished first, {killed_mid} stopped between files; no partial file");
}
