//! Fixture hosts for `nestcore::nested::plan` and `Plan::apply`.
//!
//! Each tests/fixtures/enable/<name>/ holds `root/` (a host laid out like `/`), `case.txt`
//! (want, persist, executor, neutralise) and the goldens: `plan.txt` (the rendered plan, or
//! the error), `commands.txt` (programs run), `expected/` (the root after apply, the backup
//! store left out) and `undo.txt` (the plan that puts it back).
//! The plan is applied to a temporary copy; planning again must give an empty plan and applying
//! the same plan again must write nothing. The backup store must hold every original and
//! nothing may appear beside the files changed; the undo must then give back the root byte for
//! byte. `NESTCORE_BLESS=1` rewrites the goldens.
#![allow(clippy::unwrap_used)]

mod common;
use common::copy_tree;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use nestcore::nested::{self, Options, Persist, Want};
use nestcore::plan::{Action, CommandOutput, RecordingExecutor};
use nestcore::Host;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/enable")
}

fn bless() -> bool {
    std::env::var_os("NESTCORE_BLESS").is_some_and(|v| v == "1")
}

/// Copies a tree, keeping symlinks as symlinks.
/// The backup store, relative to the root.
const STORE: &str = "var/lib/nestcore/backup";

/// path -> content ("-> target" for symlinks), the backup store left out.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if rel.starts_with(STORE) {
                continue;
            }
            if t.is_symlink() {
                out.insert(rel, format!("-> {}", fs::read_link(e.path()).unwrap().display()));
            } else if t.is_dir() {
                walk(root, &e.path(), out);
            } else {
                out.insert(
                    rel,
                    String::from_utf8_lossy(&fs::read(e.path()).unwrap()).into_owned(),
                );
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(root, root, &mut m);
    m
}

fn diff_trees(want: &BTreeMap<String, String>, got: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            None => out.push(format!("missing {k}")),
            Some(g) if g != v => out.push(format!("{k} differs:\n--- want\n{v}\n--- got\n{g}")),
            _ => {}
        }
    }
    for k in got.keys() {
        if !want.contains_key(k) {
            out.push(format!("unexpected {k}"));
        }
    }
    out
}

fn golden(path: &Path, got: &str, failures: &mut Vec<String>) {
    if bless() {
        fs::write(path, got).unwrap();
        return;
    }
    match fs::read_to_string(path) {
        Ok(want) if want == got => {}
        Ok(want) => failures.push(format!(
            "{} differs:\n--- want\n{want}\n--- got\n{got}",
            path.display()
        )),
        Err(_) => failures.push(format!(
            "{} missing (NESTCORE_BLESS=1 writes it); got:\n{got}",
            path.display()
        )),
    }
}

/// A fake executor: `modprobe M nested=V` rewrites the fixture's sysfs value (Y/N for
/// kvm_intel's bool, 1/0 for kvm_amd's int) when `reload-ok`.
fn executor(kind: &str) -> RecordingExecutor {
    let works = kind == "reload-ok";
    RecordingExecutor::new().on("modprobe", move |host, cmd| {
        if works && cmd.args.len() == 2 && !cmd.args[0].starts_with('-') {
            if let Some(v) = cmd.args[1].strip_prefix("nested=") {
                let m = &cmd.args[0];
                let on = v == "1";
                let text = match (m.as_str(), on) {
                    ("kvm_intel", true) => "Y\n",
                    ("kvm_intel", false) => "N\n",
                    (_, true) => "1\n",
                    (_, false) => "0\n",
                };
                fs::write(host.path(&format!("/sys/module/{m}/parameters/nested")), text).unwrap();
            }
        }
        Ok(CommandOutput::default())
    })
}

fn run_case(dir: &Path, failures: &mut Vec<String>) {
    let case = fs::read_to_string(dir.join("case.txt")).unwrap();
    let kv: BTreeMap<&str, &str> = case.lines().filter_map(|l| l.split_once('=')).collect();
    let want = if kv["want"] == "on" { Want::On } else { Want::Off };
    let persist = Persist::from_names(&[kv["persist"]]).unwrap();
    let mut opts = Options::default();
    opts.neutralise_conflicts = kv.get("neutralise") == Some(&"1");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    copy_tree(&dir.join("root"), &root);
    let before = snapshot(&root);
    let host = Host::from_root(&root).unwrap();
    let exec = executor(kv.get("executor").copied().unwrap_or("none"));

    let plan = match nested::plan_with(&host, want, persist, opts) {
        Ok(p) => p,
        Err(e) => {
            golden(
                &dir.join("plan.txt"),
                &format!("error ({:?}): {e}\n", e.kind()),
                failures,
            );
            assert_eq!(snapshot(&root), before);
            return;
        }
    };
    // Review B10: the steps are shown in the order apply takes them (Plan::actions' contract):
    // every file first, then programs, the module reload last.
    let order: Vec<u8> = plan
        .actions
        .iter()
        .map(|a| match a {
            _ if a.path().is_some() => 0,
            Action::ReloadModule { .. } => 2,
            _ => 1,
        })
        .collect();
    if !order.windows(2).all(|w| w[0] <= w[1]) {
        failures.push(format!(
            "{}: the steps are not in apply order:\n{}",
            dir.display(),
            plan.render()
        ));
    }
    let mut rendered = plan.render();
    let applied = plan.apply(&host, &exec);
    match &applied {
        Ok(r) => rendered.push_str(&format!(
            "\napplied: {} written, {} unchanged\n",
            r.written.len(),
            r.unchanged.len()
        )),
        Err(e) => rendered.push_str(&format!("\napply error ({:?}): {e}\n", e.kind())),
    }
    golden(&dir.join("plan.txt"), &rendered, failures);
    let cmds: String = exec.calls().iter().map(|c| format!("{c}\n")).collect();
    golden(&dir.join("commands.txt"), &cmds, failures);

    let after = snapshot(&root);
    let expected_dir = dir.join("expected");
    if applied.is_err() {
        // Nothing may have changed but the fake sysfs.
        let strip = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            m.iter()
                .filter(|(k, _)| !k.starts_with("sys/"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let d = diff_trees(&strip(&before), &strip(&after));
        if !d.is_empty() {
            failures.push(format!(
                "{}: failed apply changed files:\n{}",
                dir.display(),
                d.join("\n")
            ));
        }
        return;
    }
    if bless() {
        let _ = fs::remove_dir_all(&expected_dir);
        copy_tree(&root, &expected_dir);
        let _ = fs::remove_dir_all(expected_dir.join("var/lib/nestcore"));
        let _ = fs::remove_dir(expected_dir.join("var/lib"));
        let _ = fs::remove_dir(expected_dir.join("var"));
    } else {
        let d = diff_trees(&snapshot(&expected_dir), &after);
        if !d.is_empty() {
            failures.push(format!("{}: tree after apply:\n{}", dir.display(), d.join("\n")));
        }
    }
    let report = applied.unwrap();
    check_store(dir, &host, &root, &before, &after, &report, failures);
    // Idempotence: the same plan again writes nothing; a new plan is empty.
    let again = plan.apply(&host, &exec).unwrap();
    if !again.written.is_empty() || again.transaction.is_some() {
        failures.push(format!(
            "{}: second apply wrote {:?} (transaction {:?})",
            dir.display(),
            again.written,
            again.transaction
        ));
    }
    if plan.blockers.is_empty() {
        let replan = nested::plan_with(&host, want, persist, opts).unwrap();
        if !replan.is_empty() {
            failures.push(format!(
                "{}: plan after apply is not empty:\n{}",
                dir.display(),
                replan.render()
            ));
        }
    }
    assert_eq!(snapshot(&root).len(), after.len());

    // Undo: the root comes back byte for byte, the fake sysfs included when the reload worked.
    let undo = nestcore::nested::plan_undo(&host).unwrap();
    golden(&dir.join("undo.txt"), &undo.render(), failures);
    if let Err(e) = undo.apply(&host, &exec) {
        failures.push(format!("{}: undo failed: {e}", dir.display()));
        return;
    }
    let undone = snapshot(&root);
    let d = diff_trees(&before, &undone);
    if !d.is_empty() {
        failures.push(format!("{}: tree after undo:\n{}", dir.display(), d.join("\n")));
    }
    if report.transaction.is_some() {
        let m = nestcore::backup::read_manifest(&host, "0001").unwrap();
        if m.state != nestcore::backup::TxState::Undone {
            failures.push(format!(
                "{}: the transaction is {:?} after undo",
                dir.display(),
                m.state
            ));
        }
    }
    let twice = nestcore::nested::plan_undo(&host).unwrap();
    if !twice.is_empty() || !twice.blockers.is_empty() {
        failures.push(format!(
            "{}: a second undo is not empty:\n{}",
            dir.display(),
            twice.render()
        ));
    }
}

/// The backup store after a successful apply: one transaction whose manifest lists exactly the
/// files written, with every original copied (or nestcore's own text) and the right hashes;
/// and nothing new beside the files changed (no backup where a consumer scans).
fn check_store(
    dir: &Path,
    host: &Host,
    root: &Path,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    report: &nestcore::plan::ApplyReport,
    failures: &mut Vec<String>,
) {
    use nestcore::backup::{self, sha256, TxState};
    let name = dir.display();
    let changed: Vec<String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v) && !k.starts_with("sys/"))
        .map(|(k, _)| format!("/{k}"))
        .collect();
    let written: Vec<String> = report.written.iter().map(|w| w.path.clone()).collect();
    let mut sorted = written.clone();
    sorted.sort();
    if changed != sorted {
        failures.push(format!("{name}: files changed {changed:?}, reported {sorted:?}"));
    }
    if after
        .keys()
        .any(|k| k.contains(".nestcore-bak") || k.contains("nestcore-tmp"))
    {
        failures.push(format!(
            "{name}: a backup or temporary file beside a target: {:?}",
            after.keys()
        ));
    }
    let txs = backup::transactions(host);
    if written.is_empty() {
        return;
    }
    if txs != ["0001"] {
        failures.push(format!("{name}: transactions {txs:?}"));
        return;
    }
    let m = backup::read_manifest(host, "0001").unwrap();
    let paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    if paths != written.iter().map(String::as_str).collect::<Vec<_>>() || m.state != TxState::Applied {
        failures.push(format!("{name}: manifest {m:?} for {written:?}"));
    }
    for f in &m.files {
        let rel = f.path.trim_start_matches('/');
        let now = fs::read(root.join(rel)).unwrap();
        if f.after_sha256.as_deref() != Some(sha256(&now).as_str()) {
            failures.push(format!("{name}: {} after_sha256 is not its content", f.path));
        }
        match (&f.before, before.get(rel)) {
            (None, None) => {}
            (Some(o), Some(old)) => {
                if o.sha256 != sha256(old.as_bytes()) {
                    failures.push(format!("{name}: {} before sha256 is not the original", f.path));
                }
                match (&o.copy, &o.generated) {
                    (Some(c), None) => {
                        let copy = fs::read_to_string(root.join(c.trim_start_matches('/'))).unwrap();
                        if &copy != old {
                            failures.push(format!("{name}: the copy {c} is not the original"));
                        }
                    }
                    (None, Some(g)) => {
                        if &nestcore::modprobe::drop_in_text(&g.module, &g.value) != old {
                            failures.push(format!("{name}: {} regenerates wrong", f.path));
                        }
                    }
                    other => failures.push(format!("{name}: {} original {other:?}", f.path)),
                }
            }
            other => failures.push(format!("{name}: {} before {other:?}", f.path)),
        }
    }
}

#[test]
fn enable_fixtures() {
    let mut names: Vec<PathBuf> = fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.txt").is_file())
        .collect();
    names.sort();
    let mut failures = Vec::new();
    for dir in &names {
        run_case(dir, &mut failures);
    }
    println!("{} enable fixtures", names.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Runs a multi-file plan (fedora-bls: four files) with the N-th file-system operation failing,
/// for every N: each file is either entirely old or entirely new (never partial), a failure
/// restores every file and says which, and no temporary file is left behind.
#[test]
fn fault_at_every_operation_leaves_old_or_new() {
    use nestcore::plan::FailNth;
    let src = fixtures().join("fedora-bls/root");
    let mut n = 0;
    loop {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        copy_tree(&src, &root);
        let before = snapshot(&root);
        let host = Host::from_root(&root).unwrap();
        let plan = nested::plan(&host, Want::On, Persist::from_names(&["cmdline"]).unwrap()).unwrap();
        let targets = plan.actions.len();
        assert!(targets >= 4);
        let hook = FailNth::new(n);
        let res = plan.apply_with(&host, &RecordingExecutor::new(), &hook);
        let after = snapshot(&root);
        assert!(
            after.keys().all(|k| !k.contains("nestcore-tmp")),
            "fault {n}: temporary file left"
        );
        match res {
            Ok(_) => {
                assert!(hook.seen() <= n, "fault {n} swallowed");
                println!("{n} fault points checked over {targets} files");
                return;
            }
            Err(nestcore::Error::Apply { rolled_back, .. }) => {
                assert_eq!(after, before, "fault {n}: files not restored");
                assert!(
                    rolled_back.iter().all(|r| !r.contains("failed")),
                    "{rolled_back:?}"
                );
            }
            Err(e) => panic!("fault {n}: {e}"),
        }
        n += 1;
        assert!(n < 1000);
    }
}
