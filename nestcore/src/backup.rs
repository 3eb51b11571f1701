//! The backup store: where [`crate::plan::Plan::apply`] keeps what it changed, and what
//! [`crate::nested::plan_undo`] puts back.
//!
//! One folder under the host's root, [`STORE`] (`/var/lib/nestcore/backup`), which no consumer
//! scans: a backup beside the file it saves would be read by whoever reads that folder
//! (module-init-tools, CentOS 6's modprobe, reads every file in /etc/modprobe.d, `.conf` or not,
//! and applies it after nestcore's drop-in). Each apply that changes something is one
//! transaction, a numbered folder:
//!
//! ```text
//! /var/lib/nestcore/backup/0001/manifest.json      what the apply changed (below)
//! /var/lib/nestcore/backup/0001/files/etc/default/grub   the original of each edited file
//! ```
//!
//! The manifest lists every file with the SHA-256 of its content before (with mode and owner)
//! and after, the module reloads (the value before) and the programs that regenerate boot
//! configurations and initramfs images. A file nestcore owns (its modprobe.d drop-in, when it
//! holds exactly what nestcore writes) needs no copy: its text is regenerated. A created file
//! has no original; undo removes it.
//!
//! Writing the store is part of the apply's all-or-nothing: the copies and the manifest are
//! written (atomically) before the first target, and a failed apply removes the transaction
//! once every file is restored; when a restore fails too, the transaction stays (pending) and
//! undo restores from it. [`crate::plan::apply_batch`] (`nestcore guests --apply`) records
//! several plans in one transaction. Undo takes the newest transaction not yet undone, so
//! repeated undos walk back through the history.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::Host;

/// The store, as the host sees it.
pub const STORE: &str = "/var/lib/nestcore/backup";

/// The manifest's file name in a transaction folder.
pub const MANIFEST: &str = "manifest.json";

/// The manifest format this version writes and reads.
pub const FORMAT: u32 = 1;

/// Where a transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxState {
    /// Written before the first target: the apply has not finished (or was killed).
    Pending,
    /// The apply finished.
    Applied,
    /// [`crate::nested::plan_undo`]'s plan put it back.
    Undone,
}

/// nestcore's own text, regenerated instead of copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    /// The vendor module of the drop-in.
    pub module: String,
    /// Its `nested=` value.
    pub value: String,
}

/// A file as it was before the apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Original {
    /// SHA-256 of its content, hex.
    pub sha256: String,
    /// Mode bits (`0o644`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// The copy in the store, as the host sees it; `None` for nestcore's own file.
    pub copy: Option<String>,
    /// nestcore's own text, when that is what the file held.
    pub generated: Option<Generated>,
}

/// One file an apply wrote or removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// The file, as the host sees it.
    pub path: String,
    /// Before the apply; `None`: the apply created it.
    pub before: Option<Original>,
    /// SHA-256 of what the apply left; `None`: the apply removed it.
    pub after_sha256: Option<String>,
}

/// One module reload an apply made (or deferred).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleChange {
    /// The module.
    pub module: String,
    /// The parameter (`nested`).
    pub param: String,
    /// Its value before (`None`: unknown, the module was not loaded).
    pub before: Option<String>,
    /// The value the reload asked for.
    pub after: String,
    /// Whether the module was loaded before.
    pub was_loaded: bool,
}

/// What one apply changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The transaction (`0001`).
    pub id: String,
    /// Where it stands.
    pub state: TxState,
    /// The plan's summary.
    pub summary: String,
    /// Files, in the order they were written.
    pub files: Vec<FileChange>,
    /// Module reloads.
    pub modules: Vec<ModuleChange>,
    /// The programs the plan ran (or listed, for a recorded root), each as its argument vector
    /// (`["update-grub"]`): boot configuration and initramfs regeneration, run again after an
    /// undo.
    pub commands: Vec<Vec<String>>,
    /// Whether the programs were deferred (a recorded root) rather than run.
    pub deferred: bool,
}

impl Manifest {
    /// The folder of this transaction, as the host sees it.
    pub fn dir(&self) -> String {
        format!("{STORE}/{}", self.id)
    }
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The copy of `path` in transaction `id`, as the host sees it.
pub fn copy_path(id: &str, path: &str) -> String {
    format!("{STORE}/{id}/files{path}")
}

/// The transactions in the store of `host`, oldest first (numeric folder names only).
pub fn transactions(host: &Host) -> Vec<String> {
    let mut ids: Vec<(u64, String)> = host
        .read_dir(STORE)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| {
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse::<u64>().ok().map(|v| (v, n)))
                .flatten()
        })
        .collect();
    ids.sort();
    ids.into_iter().map(|(_, n)| n).collect()
}

/// Reads the manifest of transaction `id`.
///
/// # Errors
/// [`Error::Io`] when it cannot be read, [`Error::Parse`] when it is not a manifest this
/// version understands.
pub fn read_manifest(host: &Host, id: &str) -> Result<Manifest> {
    let path = format!("{STORE}/{id}/{MANIFEST}");
    let text = host.read(&path).map_err(|e| Error::io(&path, e))?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| Error::parse(&path, e.to_string()))?;
    if m.format != FORMAT {
        return Err(Error::parse(
            &path,
            format!("manifest format {} (this nestcore reads {FORMAT})", m.format),
        ));
    }
    Ok(m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_the_standard_one() {
        assert_eq!(
            sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn transactions_are_numeric_folders_in_order() {
        let d = tempfile::tempdir().unwrap();
        for n in ["0002", "0010", "0001", "x", "0003.tmp"] {
            std::fs::create_dir_all(d.path().join("var/lib/nestcore/backup").join(n)).unwrap();
        }
        let h = Host::from_root(d.path()).unwrap();
        assert_eq!(transactions(&h), vec!["0001", "0002", "0010"]);
        let e = read_manifest(&h, "0010").unwrap_err();
        assert!(e.to_string().contains("0010/manifest.json"), "{e}");
    }
}
