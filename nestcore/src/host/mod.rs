//! The host under inspection: a filesystem root and a CPUID source.
//!
//! Nothing outside this module names a path relative to the process's own `/` or executes CPUID:
//! every read goes through a [`Host`], which is what lets a recorded machine (a folder laid out like
//! `/` plus a CPUID dump) be checked exactly like the live one.

mod cpuid;
pub(crate) mod resolve;

pub use cpuid::{CpuidDump, CpuidFormat, CpuidLeaf, CpuidSource};

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rustix::fs::{Mode as FileMode, OFlags, ResolveFlags};

use crate::error::{Error, Result};

/// The most nestcore reads of any one file. Larger files are cut here (and say so in the evidence):
/// a 100 MB /proc/cpuinfo must not be read whole.
pub const MAX_READ: usize = 256 * 1024;

/// A machine to inspect: the live one, or a recorded one.
///
/// Every read of a recorded host stays inside its root: symlinks are resolved as that host
/// would see them (an absolute target starts at the root, a `..` at the root stays there), with
/// `openat2(RESOLVE_IN_ROOT)` where the kernel has it and the same rules by hand where it does
/// not. The live host (root `/`) needs no resolution.
///
/// ```
/// let host = nestcore::Host::from_root("/tmp").unwrap();
/// assert!(!host.is_live());
/// ```
#[derive(Debug)]
pub struct Host {
    root: PathBuf,
    /// The root folder, open, for `openat2` (recorded hosts only).
    root_fd: Option<OwnedFd>,
    live: bool,
    cpuid: CpuidSource,
    recorder: Option<Mutex<Vec<Recorded>>>,
}

/// Set once `openat2` proved missing (ENOSYS: a kernel before 5.6, or a seccomp filter that
/// says so): every later read of a recorded root resolves by hand.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// How a recorded root is opened: [`Host::open_in_root`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// Read a file (never blocks on a FIFO, never becomes a controlling terminal).
    File,
    /// List a folder.
    Dir,
    /// Only look at it (fstat), following a final symlink.
    Stat,
    /// Only look at it, a final symlink itself (lstat).
    StatLink,
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
            root_fd: None,
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
        let root_fd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            FileMode::empty(),
        )
        .map_err(|e| Error::io(root, e.into()))?;
        Ok(Host {
            root: root.to_path_buf(),
            root_fd: Some(root_fd),
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

    /// `abs` resolved inside the root as this host sees it (every symlink followed, none out of
    /// the root), as a path the host sees: `/etc/grub.conf` that links to `../boot/grub/grub.conf`
    /// is `/boot/grub/grub.conf`. Components that do not exist are kept.
    ///
    /// # Errors
    /// InvalidInput for a relative path, ELOOP for a symlink loop, the error reading a link.
    pub fn resolve(&self, abs: &str) -> io::Result<String> {
        resolve::resolve(&self.root, abs, resolve::Mode::Read)
            .map(|c| resolve::host_path(&c))
            .map_err(io::Error::from)
    }

    fn open(&self, abs: &str) -> io::Result<File> {
        if self.root_fd.is_none() {
            return std::fs::OpenOptions::new()
                .read(true)
                // A FIFO must not block us; regular, proc and sysfs files ignore the flag.
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(self.path(abs));
        }
        self.open_in_root(abs, Open::File).map(File::from)
    }

    /// Opens `abs` of a recorded root without leaving it: `openat2(RESOLVE_IN_ROOT |
    /// RESOLVE_NO_MAGICLINKS)` on the root's folder, or, where the kernel lacks openat2 (or a
    /// seccomp filter refuses it), [`resolve::resolve`] then an open that does not follow a
    /// final symlink (so a symlink swapped in after the resolution is refused, not followed).
    fn open_in_root(&self, abs: &str, how: Open) -> io::Result<OwnedFd> {
        self.open_in_root_with(abs, how, !NO_OPENAT2.load(Ordering::Relaxed))
    }

    /// [`Host::open_in_root`], `openat2` tried first when `try_openat2` (tests compare both).
    fn open_in_root_with(&self, abs: &str, how: Open, try_openat2: bool) -> io::Result<OwnedFd> {
        let flags = OFlags::CLOEXEC
            | match how {
                Open::File => OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
                Open::Dir => OFlags::RDONLY | OFlags::DIRECTORY,
                Open::Stat => OFlags::PATH,
                Open::StatLink => OFlags::PATH | OFlags::NOFOLLOW,
            };
        if let Some(fd) = &self.root_fd {
            if try_openat2 {
                let rel = abs.trim_start_matches('/');
                let rel = if rel.is_empty() { "." } else { rel };
                let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
                for _ in 0..4 {
                    match rustix::fs::openat2(fd, rel, flags, FileMode::empty(), resolve) {
                        Ok(f) => return Ok(f),
                        // A rename raced with the lookup of `..`: the kernel asks to retry.
                        Err(rustix::io::Errno::AGAIN) => continue,
                        Err(rustix::io::Errno::NOSYS) => {
                            NO_OPENAT2.store(true, Ordering::Relaxed);
                            break;
                        }
                        // A seccomp filter (EPERM) or a kernel that knows openat2 without these
                        // flags (EINVAL): the same rules by hand, for this call.
                        Err(rustix::io::Errno::PERM | rustix::io::Errno::INVAL) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        let mode = if how == Open::StatLink {
            resolve::Mode::ReadLink
        } else {
            resolve::Mode::Read
        };
        let real = resolve::real_path(&self.root, &resolve::resolve(&self.root, abs, mode)?);
        let flags = if how == Open::StatLink {
            flags
        } else {
            flags | OFlags::NOFOLLOW
        };
        match rustix::fs::open(&real, flags, FileMode::empty()) {
            // O_PATH|O_NOFOLLOW opens a symlink itself; O_NOFOLLOW alone refuses one (ELOOP).
            Ok(f) => Ok(f),
            Err(e) => Err(e.into()),
        }
    }

    /// The metadata of `abs`: through the root for a recorded host; `follow` follows a final
    /// symlink.
    fn stat(&self, abs: &str, follow: bool) -> io::Result<std::fs::Metadata> {
        if self.root_fd.is_none() {
            let p = self.path(abs);
            return if follow {
                std::fs::metadata(p)
            } else {
                std::fs::symlink_metadata(p)
            };
        }
        let how = if follow { Open::Stat } else { Open::StatLink };
        File::from(self.open_in_root(abs, how)?).metadata()
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

    /// Reads a file that nestcore may edit: like [`Host::read`], but text that is not UTF-8 is
    /// an error rather than replaced, since an edit computed from a lossy reading could never
    /// be applied (the file's bytes would not be what the plan read).
    ///
    /// # Errors
    /// [`Error::Io`] as [`Host::read`]; [`Error::Parse`] naming the first byte that is not
    /// UTF-8.
    pub fn read_text(&self, abs: &str) -> crate::Result<String> {
        let bytes = self.read_bytes(abs).map_err(|e| crate::Error::io(abs, e))?;
        String::from_utf8(bytes).map_err(|e| {
            crate::Error::parse(
                abs,
                format!(
                    "not valid UTF-8 at byte {}: nestcore edits text files only (convert the file to UTF-8)",
                    e.utf8_error().valid_up_to()
                ),
            )
        })
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
        let e = self.stat(abs, false);
        if let Ok(m) = &e {
            let d = m.is_dir();
            self.record(|| Recorded::Exists(abs.to_string(), d));
        }
        e.is_ok()
    }

    /// Whether `abs` is a folder (following symlinks).
    pub fn is_dir(&self, abs: &str) -> bool {
        let d = self.stat(abs, true).map(|m| m.is_dir()).unwrap_or(false);
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
        let m = self.stat(abs, true);
        if let Ok(m) = &m {
            let d = m.is_dir();
            self.record(|| Recorded::Exists(abs.to_string(), d));
        }
        m
    }

    /// The value of extended attribute `name` of `abs` (following symlinks, inside a recorded
    /// root), at most 64 KiB: the POSIX ACL of a device node (`system.posix_acl_access`).
    ///
    /// # Errors
    /// The I/O error (ENODATA when the attribute is not set).
    pub fn xattr(&self, abs: &str, name: &str) -> io::Result<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        // In a recorded root, symlinks resolve inside it (getxattr would follow them onto this
        // machine); what is left has no symlink to follow.
        let inside = if self.is_live() {
            abs.to_string()
        } else {
            self.resolve(abs)?
        };
        let path = std::ffi::CString::new(self.path(&inside).as_os_str().as_bytes())
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
        if self.root_fd.is_none() {
            for entry in std::fs::read_dir(self.path(abs))?.take(4096) {
                let entry = entry?;
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        } else {
            let dir = rustix::fs::Dir::new(self.open_in_root(abs, Open::Dir)?)?;
            for entry in dir {
                let entry = entry?;
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                names.push(String::from_utf8_lossy(name).into_owned());
                if names.len() >= 4096 {
                    break;
                }
            }
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

    /// Issue 13, item 7: reads of a recorded root resolve every symlink inside it, as that host
    /// would (openat2 RESOLVE_IN_ROOT), and the hand-made fallback answers exactly the same.
    #[test]
    fn xattr_never_leaves_the_root() {
        // Review B11: xattr used the path as it is, so a recorded root's /dev/kvm symlinked to
        // a file of this machine gave that file's attribute.
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "").unwrap();
        let c = std::ffi::CString::new(outside.to_str().unwrap()).unwrap();
        let (name, value) = (c"user.nestcore_test", b"outside");
        // SAFETY: NUL-terminated strings and a buffer of the length given, live across the call.
        let set = unsafe { libc::setxattr(c.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
        if set != 0 {
            println!("skipped: this file system takes no user.* attributes");
            return;
        }
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("dev")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("dev/kvm")).unwrap();
        let host = Host::from_root(&root).unwrap();
        let got = host.xattr("/dev/kvm", "user.nestcore_test");
        assert!(
            got.is_err(),
            "read the attribute of a file outside the root: {got:?}"
        );
        // Inside the root it is read, through a symlink too.
        std::fs::write(root.join("dev/real"), "").unwrap();
        let c = std::ffi::CString::new(root.join("dev/real").to_str().unwrap()).unwrap();
        // SAFETY: as above.
        let set = unsafe { libc::setxattr(c.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
        assert_eq!(set, 0);
        std::fs::remove_file(root.join("dev/kvm")).unwrap();
        std::os::unix::fs::symlink("/dev/real", root.join("dev/kvm")).unwrap();
        assert_eq!(host.xattr("/dev/kvm", "user.nestcore_test").unwrap(), value);
    }

    #[test]
    fn reads_never_leave_the_root_with_or_without_openat2() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "OUTSIDE\n").unwrap();
        let root = dir.path().join("root");
        for d in [
            "etc/modprobe.d",
            "usr/lib/modprobe.d",
            "proc",
            "sys/module/kvm_intel/parameters",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("etc/secret"), "INSIDE\n").unwrap();
        std::fs::write(
            root.join("usr/lib/modprobe.d/kvm.conf"),
            "options kvm_intel nested=1\n",
        )
        .unwrap();
        let out = outside.to_str().unwrap().to_string();
        let links: &[(&str, String)] = &[
            ("proc/cmdline", "../../outside/secret".into()),
            ("proc/cpuinfo", format!("{out}/secret")),
            ("etc/up", "../../../../../etc/secret".into()),
            ("etc/abs", "/etc/secret".into()),
            ("lib", "usr/lib".into()),
            ("etc/modprobe.d/dir", "/../../..".into()),
            ("etc/modprobe.d/outside-dir", out.clone()),
            ("sys/module/kvm_intel/parameters/nested", "nested".into()),
            ("etc/dangling", "/nonexistent/file".into()),
            ("etc/loop-a", "loop-b".into()),
            ("etc/loop-b", "loop-a".into()),
        ];
        for (at, to) in links {
            symlink(to, root.join(at)).unwrap();
        }
        let host = Host::from_root(&root).unwrap();
        let paths = [
            "/proc/cmdline",
            "/proc/cpuinfo",
            "/etc/up",
            "/etc/abs",
            "/lib/modprobe.d/kvm.conf",
            "/etc/modprobe.d/dir/etc/secret",
            "/etc/modprobe.d/outside-dir/secret",
            "/etc/modprobe.d/dir",
            "/sys/module/kvm_intel/parameters/nested",
            "/etc/dangling",
            "/etc/loop-a",
            "/../../etc/secret",
            "/",
        ];
        let mut openat2_used = false;
        for p in paths {
            let mut answers = Vec::new();
            for try_openat2 in [true, false] {
                let read = host.open_in_root_with(p, Open::File, try_openat2).and_then(|fd| {
                    let mut s = String::new();
                    File::from(fd).read_to_string(&mut s).map(|_| s)
                });
                let stat = host
                    .open_in_root_with(p, Open::StatLink, try_openat2)
                    .and_then(|fd| File::from(fd).metadata())
                    .map(|m| m.file_type().is_symlink());
                let dir = host
                    .open_in_root_with(p, Open::Dir, try_openat2)
                    .and_then(|fd| Ok(rustix::fs::Dir::new(fd)?.count()));
                let show = |r: &io::Result<String>| match r {
                    Ok(s) => format!("ok {s:?}"),
                    Err(e) => format!("err {:?}", e.raw_os_error()),
                };
                let read_s = show(&read);
                assert!(
                    !read_s.contains("OUTSIDE"),
                    "{p} (openat2 {try_openat2}) read outside the root"
                );
                answers.push((
                    read_s,
                    format!("{:?}", stat.map_err(|e| e.raw_os_error())),
                    format!("{:?}", dir.map_err(|e| e.raw_os_error())),
                ));
                openat2_used |= try_openat2 && !NO_OPENAT2.load(Ordering::Relaxed);
            }
            assert_eq!(answers[0], answers[1], "{p}: openat2 and the fallback disagree");
        }
        assert_eq!(host.read("/etc/up").unwrap(), "INSIDE\n");
        assert_eq!(host.read("/etc/modprobe.d/dir/etc/secret").unwrap(), "INSIDE\n");
        assert!(host.read("/proc/cmdline").is_err());
        assert_eq!(host.read_dir("/lib/modprobe.d").unwrap(), vec!["kvm.conf"]);
        assert!(host.exists("/etc/dangling") && !host.is_dir("/etc/dangling"));
        assert!(host.is_dir("/etc/modprobe.d/dir"));
        assert_eq!(
            host.resolve("/lib/modprobe.d/kvm.conf").unwrap(),
            "/usr/lib/modprobe.d/kvm.conf"
        );
        assert_eq!(host.resolve("/etc/up").unwrap(), "/etc/secret");
        println!("openat2 used: {openat2_used}");
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
