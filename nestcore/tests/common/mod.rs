//! Shared helpers of the integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// tests/fixtures/hosts.
pub fn hosts_dir() -> PathBuf {
    workspace().join("tests/fixtures/hosts")
}

/// The report schema, compiled.
pub fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(workspace().join("schema/report.schema.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&value).unwrap()
}

/// Every schema violation of `value`, as readable lines.
pub fn violations(v: &jsonschema::Validator, value: &serde_json::Value) -> Vec<String> {
    v.iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

/// The host of a fixture: root/ plus cpuid.txt when present.
pub fn fixture_host(dir: &Path) -> nestcore::Host {
    let host = nestcore::Host::from_root(dir.join("root")).unwrap();
    let cpuid = dir.join("cpuid.txt");
    if cpuid.exists() {
        host.with_cpuid_file(&cpuid).unwrap()
    } else {
        host
    }
}

/// Every fixture folder, sorted.
pub fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(hosts_dir())
        .map(|r| {
            r.map(|e| e.unwrap().path())
                .filter(|p| p.join("root").is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// tests/fixtures/guests.
pub fn guests_dir() -> PathBuf {
    workspace().join("tests/fixtures/guests")
}

/// Copies `from` into `to`, keeping symlinks as symlinks.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        let dst = to.join(e.file_name());
        if t.is_symlink() {
            let target = std::fs::read_link(e.path()).unwrap();
            let _ = std::fs::remove_file(&dst);
            std::os::unix::fs::symlink(target, &dst).unwrap();
        } else if t.is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// A writable root for guest fixture `name`: the host fixture its `host` file names, with the
/// guest definitions laid over it; and that host's CPUID dump.
pub fn guest_fixture_root(name: &str) -> (tempfile::TempDir, PathBuf) {
    let src = guests_dir().join(name);
    let host_name = std::fs::read_to_string(src.join("host")).unwrap();
    let host_dir = hosts_dir().join(host_name.trim());
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&host_dir.join("root"), dir.path());
    copy_tree(&src.join("root"), dir.path());
    (dir, host_dir.join("cpuid.txt"))
}
