//! The host under inspection: a filesystem root and a CPUID source.
//!
//! Nothing outside this module names a path relative to the process's own `/` or executes CPUID:
//! every read goes through a [`Host`], which is what lets a recorded machine (a folder laid out like
//! `/` plus a CPUID dump) be checked exactly like the live one.

mod cpuid;

pub use cpuid::{CpuidDump, CpuidFormat, CpuidLeaf, CpuidSource};

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The most nestcore reads of any one file. Larger files are cut here (and say so in the evidence):
/// a 100 MB /proc/cpuinfo must not be read whole.
pub const MAX_READ: usize = 256 * 1024;

/// A machine to inspect: the live one, or a recorded one.
///
/// ```
/// let host = nestcore::Host::from_root("/tmp").unwrap();
/// assert!(!host.is_live());
/// ```
#[derive(Debug)]
pub struct Host {
    root: PathBuf,
    live: bool,
    cpuid: CpuidSource,
    recorder: Option<Mutex<Vec<Recorded>>>,
}

/// One read that a recording host saw, for `snapshot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// A file read with the content returned.
    File(String, Vec<u8>),
    /// A folder listed, with the names returned.
    Dir(String, Vec<String>),
    /// A path found to exist (its type only).
    Exists(String, bool),
}

impl Host {
    /// The machine nestcore runs on: root `/`, the CPUID instruction (on x86), ioctls allowed.
    pub fn live() -> Host {
        Host {
            root: PathBuf::from("/"),
            live: true,
            cpuid: CpuidSource::native(),
            recorder: None,
        }
    }

    /// A recorded machine: `root` is a folder laid out like `/`. No CPUID source until
    /// [`Host::with_cpuid`] or [`Host::with_cpuid_file`] adds one; ioctls never happen.
    ///
    /// # Errors
    /// [`Error::Io`] when `root` is not a readable folder.
    pub fn from_root(root: impl AsRef<Path>) -> Result<Host> {
        let root = root.as_ref();
        let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
        if !meta.is_dir() {
            return Err(Error::io(
                root,
                io::Error::new(io::ErrorKind::NotADirectory, "not a folder"),
            ));
        }
        Ok(Host {
            root: root.to_path_buf(),
            live: false,
            cpuid: CpuidSource::None,
            recorder: None,
        })
    }

    /// Replaces the CPUID source.
    pub fn with_cpuid(mut self, cpuid: CpuidSource) -> Host {
        self.cpuid = cpuid;
        self
    }

    /// Reads a recorded CPUID dump (`cpuid -r`, libvirt `<cpudata>` XML or nestcore JSON, detected
    /// from the content) and uses it as this host's CPUID source.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::Parse`] when it is not a dump.
    pub fn with_cpuid_file(self, path: impl AsRef<Path>) -> Result<Host> {
        let dump = CpuidDump::from_file(path.as_ref())?;
        Ok(self.with_cpuid(CpuidSource::Recorded(dump)))
    }

    /// Starts remembering every read (for [`crate::snapshot`]).
    pub(crate) fn recording(mut self) -> Host {
        self.recorder = Some(Mutex::new(Vec::new()));
        self
    }

    pub(crate) fn take_recorded(&self) -> Vec<Recorded> {
        self.recorder
            .as_ref()
            .map(|m| std::mem::take(&mut *m.lock().unwrap_or_else(|p| p.into_inner())))
            .unwrap_or_default()
    }

    fn record(&self, r: impl FnOnce() -> Recorded) {
        if let Some(m) = &self.recorder {
            m.lock().unwrap_or_else(|p| p.into_inner()).push(r());
        }
    }

    /// The filesystem root ("/" for the live host).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True for the machine nestcore runs on (ioctls and MSR reads allowed).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The CPUID source.
    pub fn cpuid_source(&self) -> &CpuidSource {
        &self.cpuid
    }

    /// Executes (or looks up) CPUID `leaf`/`subleaf`; `None` when there is no CPUID source or the
    /// recorded dump lacks that leaf.
    pub fn cpuid(&self, leaf: u32, subleaf: u32) -> Option<[u32; 4]> {
        self.cpuid.query(leaf, subleaf)
    }

    /// The real path of `abs` (a path as the host sees it, such as "/proc/cpuinfo").
    pub fn path(&self, abs: &str) -> PathBuf {
        let rel = abs.trim_start_matches('/');
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    fn open(&self, abs: &str) -> io::Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            // A FIFO planted in a recorded root must not block us; regular, proc and sysfs files
            // ignore the flag.
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(self.path(abs))
    }

    /// Reads a whole small file as text (invalid UTF-8 replaced), at most [`MAX_READ`] bytes.
    ///
    /// sysfs attributes, /proc/sys values and /proc/cmdline are produced by one `show()` call, so
    /// for those a short read is the end of the file and saves a system call.
    ///
    /// # Errors
    /// The I/O error (NotFound for a missing file, IsADirectory for a folder, ...).
    pub fn read(&self, abs: &str) -> io::Result<String> {
        let bytes = self.read_bytes(abs)?;
        Ok(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// Like [`Host::read`], trimmed of surrounding white space.
    ///
    /// # Errors
    /// As [`Host::read`].
    pub fn read_trimmed(&self, abs: &str) -> io::Result<String> {
        self.read(abs).map(|s| s.trim().to_string())
    }

    /// Reads a small file as bytes, at most [`MAX_READ`].
    ///
    /// # Errors
    /// As [`Host::read`].
    pub fn read_bytes(&self, abs: &str) -> io::Result<Vec<u8>> {
        let mut f = self.open(abs)?;
        let sysfs = one_shot(abs);
        let mut buf = Vec::with_capacity(if sysfs { 4096 } else { 8192 });
        loop {
            if buf.len() == buf.capacity() {
                if buf.len() >= MAX_READ {
                    break;
                }
                buf.reserve(buf.len().min(MAX_READ - buf.len()).max(4096));
            }
            let spare = buf.capacity() - buf.len();
            let start = buf.len();
            buf.resize(start + spare, 0);
            let n = match f.read(&mut buf[start..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    buf.truncate(start);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            buf.truncate(start + n);
            if n == 0 || (sysfs && n < spare) {
                break;
            }
        }
        buf.truncate(MAX_READ);
        self.record(|| Recorded::File(abs.to_string(), buf.clone()));
        Ok(buf)
    }

    /// Reads lines of a text file from its start until `stop` returns true for a line (that line is
    /// not included) or [`MAX_READ`] bytes were read: the first processor block of /proc/cpuinfo
    /// costs the same on 2 CPUs as on 4096.
    ///
    /// # Errors
    /// The I/O error.
    pub fn read_until(&self, abs: &str, mut stop: impl FnMut(&str) -> bool) -> io::Result<String> {
        let f = self.open(abs)?;
        let mut r = BufReader::with_capacity(16 * 1024, f);
        let mut out = String::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = match r
                .by_ref()
                .take((MAX_READ - out.len()) as u64)
                .read_until(b'\n', &mut line)
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            if stop(&text) {
                break;
            }
            out.push_str(&text);
            if out.len() >= MAX_READ {
                break;
            }
        }
        self.record(|| Recorded::File(abs.to_string(), out.clone().into_bytes()));
        Ok(out)
    }

    /// Whether `abs` exists (without following a final symlink's target: a dangling link exists).
    pub fn exists(&self, abs: &str) -> bool {
        let e = std::fs::symlink_metadata(self.path(abs));
        if let Ok(m) = &e {
            let d = m.is_dir();
            self.record(|| Recorded::Exists(abs.to_string(), d));
        }
        e.is_ok()
    }

    /// Whether `abs` is a folder (following symlinks).
    pub fn is_dir(&self, abs: &str) -> bool {
        let d = std::fs::metadata(self.path(abs))
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if d {
            self.record(|| Recorded::Exists(abs.to_string(), true));
        }
        d
    }

    /// The metadata of `abs` (following symlinks).
    ///
    /// # Errors
    /// The I/O error.
    pub fn metadata(&self, abs: &str) -> io::Result<std::fs::Metadata> {
        let m = std::fs::metadata(self.path(abs));
        if let Ok(m) = &m {
            let d = m.is_dir();
            self.record(|| Recorded::Exists(abs.to_string(), d));
        }
        m
    }

    /// The value of extended attribute `name` of `abs` (following symlinks), at most 64 KiB: the
    /// POSIX ACL of a device node (`system.posix_acl_access`).
    ///
    /// # Errors
    /// The I/O error (ENODATA when the attribute is not set).
    pub fn xattr(&self, abs: &str, name: &str) -> io::Result<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.path(abs).as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let name = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: both strings are NUL-terminated and live across the call; `buf` is writable for
        // its full length, which is what we pass.
        let n = unsafe {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The names in folder `abs`, sorted; at most 4096 of them.
    ///
    /// # Errors
    /// The I/O error.
    pub fn read_dir(&self, abs: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.path(abs))?.take(4096) {
            let entry = entry?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        self.record(|| Recorded::Dir(abs.to_string(), names.clone()));
        Ok(names)
    }
}

/// Files the kernel produces in one piece: a short read is the whole file.
fn one_shot(abs: &str) -> bool {
    abs.starts_with("/sys/") || abs.starts_with("/proc/sys/") || abs == "/proc/cmdline"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_under_root_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::write(dir.path().join("proc/cmdline"), "ro quiet\n").unwrap();
        let host = Host::from_root(dir.path()).unwrap();
        assert_eq!(host.read_trimmed("/proc/cmdline").unwrap(), "ro quiet");
        assert!(host.read("/proc/missing").is_err());
        assert!(!host.is_live());
        assert!(host.cpuid(0, 0).is_none());
    }

    #[test]
    fn folder_in_place_of_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/cpuinfo")).unwrap();
        let host = Host::from_root(dir.path()).unwrap();
        assert!(host.read("/proc/cpuinfo").is_err());
        assert!(host.read_until("/proc/cpuinfo", |l| l.trim().is_empty()).is_err());
    }

    #[test]
    fn fifo_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: c is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let host = Host::from_root(dir.path()).unwrap();
        assert_eq!(host.read("/fifo").unwrap(), "");
    }

    #[test]
    fn huge_file_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![b'a'; MAX_READ * 3]).unwrap();
        let host = Host::from_root(dir.path()).unwrap();
        assert_eq!(host.read_bytes("/big").unwrap().len(), MAX_READ);
        assert_eq!(host.read_until("/big", |_| false).unwrap().len(), MAX_READ);
    }

    #[test]
    fn root_must_be_a_folder() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(Host::from_root(f.path()).is_err());
        assert_eq!(
            Host::from_root("/nonexistent/x").unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
    }
}
