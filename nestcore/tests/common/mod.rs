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

/// Copies a tree, keeping symlinks as symlinks.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        let dst = to.join(e.file_name());
        if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &dst).unwrap();
        } else if t.is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}
