//! The one public error type of nestcore.
//!
//! Absence is data, not an error: a missing module or file during detection shows up in the report
//! as `unknown` or `absent` with its evidence. [`Error`] is for what a caller asked for and could not
//! get: a CPUID dump that does not parse, a root folder that does not exist, a plan that cannot apply.

use std::path::PathBuf;

/// A stable classification of [`Error`], mapped in exactly one place by the C and Python layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// A file or folder that the caller named does not exist.
    NotFound,
    /// The operating system refused access (EACCES, EPERM).
    PermissionDenied,
    /// Input that does not parse: a CPUID dump, a configuration file, an argument.
    Parse,
    /// An argument that is well-formed but not acceptable (out of range, wrong combination).
    InvalidInput,
    /// Any other I/O failure.
    Io,
    /// The operation is not possible on this host or platform.
    Unsupported,
}

/// An error from nestcore, with the path or the input that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("Cannot access {path}")]
    Io {
        /// The path that failed, as the caller or the host sees it.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Input did not parse.
    #[error("Cannot parse {what}: {reason}")]
    Parse {
        /// What was being parsed (a file name, "CPUID dump", ...).
        what: String,
        /// Why, with the offending line or value.
        reason: String,
    },
    /// An argument that is not acceptable.
    #[error("Invalid input: {0}")]
    InvalidInput(String),
    /// Not possible on this host or platform.
    #[error("Unsupported: {0}")]
    Unsupported(String),
    /// A program run while applying a plan exited with a failure.
    #[error("Command `{command}` failed with status {status}: {stderr}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit status (-1 when killed by a signal).
        status: i32,
        /// The end of its standard error.
        stderr: String,
    },
    /// Applying a plan failed at `step`. What was written is restored where it could be; a file
    /// whose restore failed too is listed in `not_restored`, and its original stays in the backup
    /// store's transaction `kept`, for `nestcore enable --undo --apply`. The programs that had
    /// succeeded before the failure (initramfs, boot configuration) were run again after the
    /// restore, so what they generate matches the restored files: `reran`.
    #[error("{}", apply_message(step, rolled_back, not_restored, kept.as_deref(), reran))]
    Apply {
        /// The step that failed.
        step: String,
        /// Files restored to their content before the apply (host paths).
        rolled_back: Vec<String>,
        /// Files that could not be restored, each with the reason (`path (reason)`).
        not_restored: Vec<String>,
        /// The backup store's transaction that holds the originals of `not_restored` (kept, not
        /// removed: `nestcore enable --undo --apply` restores them from it). A `Box<str>`, not a
        /// `String`, to keep [`Error`] small.
        kept: Option<Box<str>>,
        /// The programs run again after the restore, each with its result
        /// (`` `update-initramfs -u -k all` (exit 0) ``).
        reran: Vec<String>,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
}

/// The message of [`Error::Apply`].
fn apply_message(
    step: &str,
    rolled_back: &[String],
    not_restored: &[String],
    kept: Option<&str>,
    reran: &[String],
) -> String {
    let mut s = format!("Applying the plan failed while {step}; restored: ");
    s.push_str(&match (rolled_back.is_empty(), not_restored.is_empty()) {
        (true, true) => "nothing needed".to_string(),
        (true, false) => "none".to_string(),
        (false, _) => rolled_back.join(", "),
    });
    if !not_restored.is_empty() {
        s.push_str(&format!("; not restored: {}", not_restored.join(", ")));
        match kept {
            Some(id) => s.push_str(&format!(
                "; `nestcore enable --undo --apply` restores them from the kept backup {id}"
            )),
            None => s.push_str("; no backup of them is kept: put them back by hand"),
        }
    }
    if !reran.is_empty() {
        s.push_str(&format!("; ran again: {}", reran.join(", ")));
    }
    s
}

impl Error {
    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::Io,
            },
            Error::Parse { .. } => ErrorKind::Parse,
            Error::InvalidInput(_) => ErrorKind::InvalidInput,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::CommandFailed { .. } => ErrorKind::Io,
            Error::Apply { source, .. } => source.kind(),
        }
    }

    /// The path involved, when there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Io { path, .. } => Some(path),
            Error::Apply { source, .. } => source.path(),
            _ => None,
        }
    }

    /// The OS error number, when the error came from the OS.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Parse {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// Result with nestcore's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
