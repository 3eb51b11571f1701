//! Resolving a path the way a recorded host would see it: every symlink followed inside the
//! root, never out of it. One implementation for reads ([`super::Host`] when the kernel has no
//! `openat2`) and writes ([`crate::plan::resolve_under_root`]).

use std::io;
use std::path::{Component, Path, PathBuf};

/// How [`resolve`] treats a way out of the root and the last component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The kernel's `RESOLVE_IN_ROOT`: a `..` at the root stays at the root, an absolute symlink
    /// target starts again at the root, and a final symlink is followed.
    Read,
    /// As [`Mode::Read`], but a final symlink is kept (lstat semantics: a dangling link exists).
    ReadLink,
    /// As [`Mode::Read`], but a `..` (in the path or a symlink's target) that would leave the
    /// root is refused rather than clamped: a recorded root whose symlinks point above it was
    /// made elsewhere, and what they name is not in it (guest definitions).
    ReadInside,
    /// For writes: a `..` (in the path or a symlink's target) that would leave the root is
    /// refused, and so is a symlink in the place of the file.
    Write,
}

/// Why a path could not be resolved.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The path is not absolute.
    Relative,
    /// The path holds `.` or `..` (writes only: the planner never makes such paths).
    Dots,
    /// A symlink leads out of the root ([`Mode::ReadInside`] and writes).
    LeavesRoot,
    /// The last component is a symlink (writes only).
    FinalSymlink,
    /// More than 40 symlinks (the kernel's limit), or a loop.
    Loop,
    /// Reading a symlink failed.
    Io(PathBuf, io::Error),
}

impl From<Failure> for io::Error {
    fn from(f: Failure) -> io::Error {
        match f {
            Failure::Loop => io::Error::from_raw_os_error(libc::ELOOP),
            Failure::Io(_, e) => e,
            Failure::Relative | Failure::Dots => io::Error::from_raw_os_error(libc::EINVAL),
            Failure::LeavesRoot | Failure::FinalSymlink => io::Error::from_raw_os_error(libc::EXDEV),
        }
    }
}

/// The kernel's limit on symlinks in one lookup (MAXSYMLINKS).
const MAX_LINKS: usize = 40;

/// Resolves `abs` under `root` component by component and returns the components of the
/// result (a path as the host sees it, without symlinks except a final one in
/// [`Mode::ReadLink`]). Components that do not exist are kept as they are: the caller's open
/// then fails with NotFound.
pub(crate) fn resolve(root: &Path, abs: &str, mode: Mode) -> Result<Vec<String>, Failure> {
    if !abs.starts_with('/') {
        return Err(Failure::Relative);
    }
    let mut todo: Vec<String> = Vec::new();
    for c in Path::new(abs).components().rev() {
        match c {
            Component::Normal(s) => todo.push(s.to_string_lossy().into_owned()),
            Component::RootDir => {}
            Component::ParentDir if mode != Mode::Write => todo.push("..".into()),
            Component::CurDir if mode != Mode::Write => {}
            _ => return Err(Failure::Dots),
        }
    }
    let mut cur: Vec<String> = Vec::new();
    let mut real = root.to_path_buf();
    let mut links = 0;
    // Once a component is missing nothing below it can be a symlink: no more lstat calls.
    let mut missing = false;
    while let Some(c) = todo.pop() {
        if c == ".." {
            if cur.pop().is_none() {
                if matches!(mode, Mode::Write | Mode::ReadInside) {
                    return Err(Failure::LeavesRoot);
                }
            } else {
                real.pop();
            }
            missing = false;
            continue;
        }
        let last = todo.is_empty();
        real.push(&c);
        let is_link = !missing
            && match std::fs::symlink_metadata(&real) {
                Ok(m) => m.file_type().is_symlink(),
                Err(_) => {
                    missing = true;
                    false
                }
            };
        if !is_link || (last && mode == Mode::ReadLink) {
            cur.push(c);
            continue;
        }
        if last && mode == Mode::Write {
            return Err(Failure::FinalSymlink);
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(Failure::Loop);
        }
        let target = std::fs::read_link(&real).map_err(|e| Failure::Io(real.clone(), e))?;
        real.pop();
        if target.is_absolute() {
            cur.clear();
            real = root.to_path_buf();
        }
        for tc in target.components().rev() {
            match tc {
                Component::Normal(s) => todo.push(s.to_string_lossy().into_owned()),
                Component::ParentDir => todo.push("..".into()),
                _ => {}
            }
        }
    }
    Ok(cur)
}

/// The real path of resolved components under `root`.
pub(crate) fn real_path(root: &Path, components: &[String]) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(components);
    p
}

/// The path as the host sees it: `/` and the components.
pub(crate) fn host_path(components: &[String]) -> String {
    format!("/{}", components.join("/"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn reads_clamp_at_the_root_like_resolve_in_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("usr/lib/modprobe.d")).unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink("/usr/lib", r.join("lib2")).unwrap();
        symlink("../../../../../../etc", r.join("usr/evil")).unwrap();
        symlink("/etc/passwd", r.join("usr/lib/modprobe.d/x.conf")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        let read = |p: &str| resolve(r, p, Mode::Read).map(|c| host_path(&c));
        assert_eq!(
            read("/lib/modprobe.d/a.conf").unwrap(),
            "/usr/lib/modprobe.d/a.conf"
        );
        assert_eq!(
            read("/lib2/modprobe.d/a.conf").unwrap(),
            "/usr/lib/modprobe.d/a.conf"
        );
        // Out of the root: clamped, as the host would see it.
        assert_eq!(read("/usr/evil/shadow").unwrap(), "/etc/shadow");
        assert_eq!(read("/lib/modprobe.d/x.conf").unwrap(), "/etc/passwd");
        assert_eq!(read("/../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(read("/usr/./lib/../lib").unwrap(), "/usr/lib");
        assert!(matches!(resolve(r, "/loop", Mode::Read), Err(Failure::Loop)));
        assert!(matches!(resolve(r, "rel", Mode::Read), Err(Failure::Relative)));
        assert_eq!(
            resolve(r, "/lib/modprobe.d/x.conf", Mode::ReadLink)
                .map(|c| host_path(&c))
                .unwrap(),
            "/usr/lib/modprobe.d/x.conf"
        );
        // Writes refuse what reads clamp.
        assert!(matches!(
            resolve(r, "/usr/evil/shadow", Mode::Write),
            Err(Failure::LeavesRoot)
        ));
        assert!(matches!(
            resolve(r, "/lib/modprobe.d/x.conf", Mode::Write),
            Err(Failure::FinalSymlink)
        ));
        assert!(matches!(resolve(r, "/a/../b", Mode::Write), Err(Failure::Dots)));
        assert_eq!(
            real_path(r, &resolve(r, "/lib/modprobe.d/new.conf", Mode::Write).unwrap()),
            r.join("usr/lib/modprobe.d/new.conf")
        );
    }
}
