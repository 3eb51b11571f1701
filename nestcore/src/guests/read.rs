//! Reading guest definitions safely: every path resolved under the host's root by hand (a
//! symlink that leads out of a recorded root is refused, not followed onto this machine), only
//! regular files, nothing larger than [`crate::host::MAX_READ`]. A failure is a value for the one
//! guest it concerns, never an error for the whole scan.

use std::io;

use crate::host::resolve::{self, Failure, Mode};
use crate::host::MAX_READ;
use crate::Host;

/// Why a definition could not be read, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadFail {
    /// `unreadable`, `symlink_outside_root`, `too_large` or `not_a_file`.
    pub code: &'static str,
    /// One sentence with the path.
    pub message: String,
}

impl ReadFail {
    fn new(code: &'static str, message: String) -> ReadFail {
        ReadFail { code, message }
    }
}

/// `abs` with every symlink resolved the way the host would resolve it (absolute targets start
/// again at the root), as a path the host sees. On the live host (`/`) a `..` above the root
/// stays at the root, as the kernel does; in a recorded root it leads out and is refused.
pub(crate) fn resolve(host: &Host, abs: &str) -> Result<String, ReadFail> {
    let mode = if host.is_live() {
        Mode::Read
    } else {
        Mode::ReadInside
    };
    resolve::resolve(host.root(), abs, mode)
        .map(|c| resolve::host_path(&c))
        .map_err(|f| match f {
            Failure::LeavesRoot => ReadFail::new(
                "symlink_outside_root",
                format!(
                    "{abs} leads out of the root {} through a symlink: not read",
                    host.root().display()
                ),
            ),
            Failure::Loop => ReadFail::new("unreadable", format!("{abs}: too many symlinks")),
            other => ReadFail::new("unreadable", format!("{abs}: {}", io::Error::from(other))),
        })
}

/// The text of the regular file `abs` (resolved under the root), invalid UTF-8 replaced.
pub(crate) fn read_file(host: &Host, abs: &str) -> Result<String, ReadFail> {
    let real_abs = resolve(host, abs)?;
    let meta = std::fs::metadata(host.path(&real_abs)).map_err(|e| io_fail(abs, &e))?;
    if !meta.is_file() {
        return Err(ReadFail::new(
            "not_a_file",
            format!("{abs} is not a regular file: not read"),
        ));
    }
    if meta.len() > MAX_READ as u64 {
        return Err(ReadFail::new(
            "too_large",
            format!(
                "{abs} is {} bytes, more than nestcore reads of one file ({MAX_READ}): not read",
                meta.len()
            ),
        ));
    }
    let bytes = host.read_bytes(&real_abs).map_err(|e| io_fail(abs, &e))?;
    // Not read lossily: a fix computed from replaced characters could never be applied (the
    // file's bytes would not be what was read), and would write the replacements.
    String::from_utf8(bytes).map_err(|e| {
        ReadFail::new(
            "malformed",
            format!(
                "{abs} is not valid UTF-8 at byte {}: not read",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// The names in folder `abs` (resolved under the root), sorted; `Ok(None)` when it does not
/// exist.
pub(crate) fn list_dir(host: &Host, abs: &str) -> Result<Option<Vec<String>>, ReadFail> {
    let real_abs = resolve(host, abs)?;
    match host.read_dir(&real_abs) {
        Ok(names) => Ok(Some(names)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Err(ReadFail::new(
            "not_a_file",
            format!("{abs} is not a folder: not read"),
        )),
        Err(e) => Err(io_fail(abs, &e)),
    }
}

fn io_fail(abs: &str, e: &io::Error) -> ReadFail {
    ReadFail::new("unreadable", format!("cannot read {abs}: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root_only() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc/pve/nodes/pve1/qemu-server")).unwrap();
        std::fs::write(r.join("etc/pve/nodes/pve1/qemu-server/100.conf"), "cpu: host\n").unwrap();
        // Proxmox's own layout: an absolute symlink, which must resolve inside the root.
        std::os::unix::fs::symlink("/etc/pve/nodes/pve1/qemu-server", r.join("etc/pve/qemu-server")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc/passwd", r.join("etc/pve/evil.conf")).unwrap();
        std::fs::write(r.join("big"), vec![b'x'; MAX_READ + 1]).unwrap();
        let host = Host::from_root(r).unwrap();
        assert_eq!(
            read_file(&host, "/etc/pve/qemu-server/100.conf").unwrap(),
            "cpu: host\n"
        );
        assert_eq!(
            list_dir(&host, "/etc/pve/qemu-server").unwrap().unwrap(),
            vec!["100.conf"]
        );
        assert_eq!(
            read_file(&host, "/etc/pve/evil.conf").unwrap_err().code,
            "symlink_outside_root"
        );
        assert_eq!(read_file(&host, "/big").unwrap_err().code, "too_large");
        assert_eq!(read_file(&host, "/etc").unwrap_err().code, "not_a_file");
        assert_eq!(read_file(&host, "/missing").unwrap_err().code, "unreadable");
        assert_eq!(list_dir(&host, "/missing").unwrap(), None);
        assert_eq!(list_dir(&host, "/big").unwrap_err().code, "not_a_file");
    }
}
