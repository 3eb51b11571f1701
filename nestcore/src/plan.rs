//! Plans and applying them: the only place nestcore changes a host.
//!
//! A [`Plan`] is a list of typed [`Action`]s, each with its reason, plus when each part takes
//! effect. [`Plan::apply`] then:
//!
//! - writes only under the host's root, resolving every path component itself (a symlink that
//!   leads out of the root, or a symlink in the place of the file to write, is refused);
//! - writes every file atomically: a temporary file in the same folder, fsync, rename, fsync of
//!   the folder; mode and owner kept;
//! - keeps what it changed in the backup store ([`crate::backup`], `/var/lib/nestcore/backup`
//!   under the root, never beside the file where a consumer would read it): each original,
//!   and a manifest that [`crate::nested::plan_undo`] reads back;
//! - is all-or-nothing across files: when a later step fails, what was written is restored and
//!   the error lists it;
//! - is idempotent: a file that already holds the new content is left alone;
//! - runs programs only through an [`Executor`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::Host;

/// The suffix of the backup [`write_in_place`] (`nestcore kargs --in-place`) keeps beside the one
/// file it was asked to edit (the first original only). [`Plan::apply`] uses the backup store
/// ([`crate::backup`]) instead; older versions of nestcore put such files next to what they
/// changed.
pub const BACKUP_SUFFIX: &str = ".nestcore-bak";

/// When a change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Immediately (a runtime module reload).
    Now,
    /// The next time the module loads (modprobe.d).
    AfterReload,
    /// At the next boot (kernel command line, initramfs).
    AfterReboot,
    /// When a service or a guest restarts (a guest's CPU: at its next full stop and start).
    AfterRestart,
}

/// A program to run: a name looked up in fixed sbin folders under the host root, and its
/// arguments. Never a shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Program name (`modprobe`, `grub2-mkconfig`, ...).
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
}

impl Command {
    /// A command from a program and arguments.
    pub fn new(program: &str, args: &[&str]) -> Command {
        Command {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.program)?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Write a file (create it when `old` is `None`).
    WriteFile {
        /// The path as the host sees it.
        path: String,
        /// The content at planning time (`None`: the file does not exist).
        old: Option<String>,
        /// The new content.
        new: String,
        /// Unified diff from old to new.
        diff: String,
        /// Why.
        reason: String,
        /// When it takes effect.
        when: When,
    },
    /// Unload and reload a kernel module with parameters (`modprobe -r M`, `modprobe M P=V`).
    ReloadModule {
        /// The module.
        module: String,
        /// Parameters for the reload.
        params: Vec<(String, String)>,
        /// The value the module has now (to restore when the reload fails half way).
        previous: Option<String>,
        /// Whether the module is loaded now (else only load it).
        loaded: bool,
        /// Why.
        reason: String,
    },
    /// Remove a file (an undo of a file an apply created).
    RemoveFile {
        /// The path as the host sees it.
        path: String,
        /// Its content at planning time.
        old: String,
        /// Unified diff from old to nothing.
        diff: String,
        /// Why.
        reason: String,
        /// When it takes effect.
        when: When,
    },
    /// Run a program (regenerate a boot configuration or an initramfs).
    Run {
        /// The command.
        command: Command,
        /// Why.
        reason: String,
        /// When its result takes effect.
        when: When,
    },
}

impl Action {
    /// The commands this action runs.
    pub fn commands(&self) -> Vec<Command> {
        match self {
            Action::WriteFile { .. } | Action::RemoveFile { .. } => Vec::new(),
            Action::ReloadModule {
                module,
                params,
                loaded,
                ..
            } => {
                let mut v = Vec::new();
                if *loaded {
                    v.push(Command::new("modprobe", &["-r", module]));
                }
                let mut load = Command::new("modprobe", &[module]);
                load.args
                    .extend(params.iter().map(|(k, val)| format!("{k}={val}")));
                v.push(load);
                v
            }
            Action::Run { command, .. } => vec![command.clone()],
        }
    }

    /// One line saying what the action does.
    pub fn describe(&self) -> String {
        match self {
            Action::WriteFile {
                path, old, reason, ..
            } => {
                format!(
                    "{} {path}: {reason}",
                    if old.is_some() { "edit" } else { "create" }
                )
            }
            Action::RemoveFile { path, reason, .. } => format!("remove {path}: {reason}"),
            Action::ReloadModule { reason, .. } | Action::Run { reason, .. } => {
                let cmds: Vec<String> = self.commands().iter().map(|c| c.to_string()).collect();
                format!("run `{}`: {reason}", cmds.join("` then `"))
            }
        }
    }
}

impl Action {
    /// The file this action writes or removes, if it is a file action.
    pub fn path(&self) -> Option<&str> {
        match self {
            Action::WriteFile { path, .. } | Action::RemoveFile { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The unified diff of a file action.
    pub fn diff(&self) -> Option<&str> {
        match self {
            Action::WriteFile { diff, .. } | Action::RemoveFile { diff, .. } => Some(diff),
            _ => None,
        }
    }
}

/// Why a plan cannot be applied as it is, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    /// A stable code: the verdict's finding code when the verdict says nesting cannot work here
    /// (`cpu.firmware_disabled`, `cpu.extension_missing`, `cpu.extension_hidden_by_hypervisor`,
    /// `kvm.pvm_backend`), else the planner's (`plan.modprobe_conflict`, `plan.no_boot_loader`,
    /// `plan.kernelopts_without_grubenv`, `plan.builtin_module`, `plan.overridden`,
    /// `plan.no_vendor_module`, `plan.running_cmdline`, `plan.changed_since_apply`,
    /// `plan.backup_missing`), and for the fixes of `nestcore guests` `guests.nova_managed`,
    /// `guests.uneditable`, `guests.kvm_unusable`, `guests.no_definition_file`,
    /// `guests.definition_differs`, `guests.missing_file`, `guests.args_override`,
    /// `guests.not_a_vmid`.
    pub code: String,
    /// Why, in one sentence.
    pub reason: String,
    /// What to do about it.
    pub remedy: Option<String>,
}

impl Blocker {
    /// A blocker.
    pub fn new(code: &str, reason: impl Into<String>, remedy: Option<String>) -> Blocker {
        Blocker {
            code: code.to_string(),
            reason: reason.into(),
            remedy,
        }
    }
}

impl std::fmt::Display for Blocker {
    /// The reason, then the remedy: `reason. Remedy: remedy`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)?;
        if let Some(r) = &self.remedy {
            write!(f, ". Remedy: {r}")?;
        }
        Ok(())
    }
}

/// A check made after applying: the module parameter must read as wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verify {
    /// sysfs file (as the host sees it).
    pub path: String,
    /// The wanted boolean value.
    pub want: bool,
}

/// What to change, why, and when it takes effect.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Plan {
    /// One sentence: what the plan achieves, or that nothing needs to change.
    pub summary: String,
    /// The steps, in the order [`Plan::apply`] runs them (files first, then programs).
    pub actions: Vec<Action>,
    /// What is true now, after a module reload, and after a reboot.
    pub timeline: Vec<(When, String)>,
    /// Information: how the planner decided (the vendor module and its evidence, where the
    /// kernel command line lives, layers included because they set the opposite).
    #[serde(default)]
    pub notes: Vec<String>,
    /// What deserves attention: conflicts the plan overrides, another layer that will override
    /// the one the plan writes, blockers forced past.
    pub warnings: Vec<String>,
    /// Why the plan cannot be applied as it is; [`Plan::apply`] refuses while there are any.
    pub blockers: Vec<Blocker>,
    /// Checked after the actions ran.
    pub verify: Option<Verify>,
    /// For an undo ([`crate::nested::plan_undo`]): the transaction of the backup store it puts
    /// back; applying marks it undone instead of recording a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
}

/// A file written (or removed) by [`Plan::apply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    /// The path as the host sees it.
    pub path: String,
    /// The copy of the original in the backup store (as the host sees it), when there was an
    /// original that is not nestcore's own text (that one is regenerated) and the plan is not
    /// an undo.
    pub backup: Option<String>,
    /// Whether the file was created.
    pub created: bool,
    /// Whether the file was removed (an undo of a created file).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

/// A program run by [`Plan::apply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRun {
    /// The command.
    pub command: Command,
    /// Its exit status.
    pub status: i32,
}

/// What [`Plan::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ApplyReport {
    /// Files written.
    pub written: Vec<Written>,
    /// Files that already had their new content.
    pub unchanged: Vec<String>,
    /// Programs run.
    pub commands: Vec<CommandRun>,
    /// Commands not run because the executor defers them ([`DeferringExecutor`]), in order.
    pub deferred: Vec<Command>,
    /// Files restored after a failure (empty on success).
    pub rolled_back: Vec<String>,
    /// The result of [`Plan::verify`], when there was one.
    pub verified: Option<bool>,
    /// The manifest of the backup store's transaction that records this apply (as the host sees
    /// it), `None` when nothing changed or for an undo.
    pub transaction: Option<String>,
    /// For an undo: the transaction put back (and marked undone).
    pub undone: Option<String>,
}

impl ApplyReport {
    /// Whether apply changed nothing.
    pub fn is_noop(&self) -> bool {
        self.written.is_empty() && self.commands.is_empty()
    }
}

/// The output of a program.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    /// Exit status (-1 when killed by a signal).
    pub status: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs programs for [`Plan::apply`]. Tests replace it with [`RecordingExecutor`].
pub trait Executor {
    /// Runs `cmd` on `host`.
    ///
    /// # Errors
    /// When the program cannot be found or started. A non-zero exit is an `Ok` output.
    fn run(&self, host: &Host, cmd: &Command) -> Result<CommandOutput>;

    /// True for an executor that runs nothing and leaves the commands to the operator (see
    /// [`DeferringExecutor`]): apply then records them in [`ApplyReport::deferred`].
    fn defers(&self) -> bool {
        false
    }
}

/// Runs nothing: for a recorded root, where running `update-grub` or `modprobe` would act on the
/// machine nestcore runs on instead of the root. Files are still written inside the root; the
/// commands are listed in [`ApplyReport::deferred`] for the operator to run there (in a chroot,
/// or on the real host).
#[derive(Debug, Default, Clone, Copy)]
pub struct DeferringExecutor;

impl Executor for DeferringExecutor {
    fn run(&self, _host: &Host, cmd: &Command) -> Result<CommandOutput> {
        Err(Error::Unsupported(format!("{cmd} was deferred, not run")))
    }

    fn defers(&self) -> bool {
        true
    }
}

/// The folders (under the host root) searched for programs, in order.
pub const SBIN_DIRS: [&str; 6] = [
    "/usr/sbin",
    "/sbin",
    "/usr/bin",
    "/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
];

/// Whether `program` is a plain program name: `[A-Za-z0-9._+-]`, not starting with `.` or `-`
/// (no path, no `..`, nothing a shell or an option parser would read).
pub fn is_program_name(program: &str) -> bool {
    !program.is_empty()
        && !program.starts_with(['.', '-'])
        && program
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
}

/// The absolute path (as the host sees it) of `program` in [`SBIN_DIRS`], if any.
pub fn find_program(host: &Host, program: &str) -> Option<String> {
    if !is_program_name(program) {
        return None;
    }
    SBIN_DIRS
        .iter()
        .map(|d| format!("{d}/{program}"))
        .find(|p| host.metadata(p).is_ok_and(|m| m.is_file()))
}

/// Runs programs for real: by absolute path found in [`SBIN_DIRS`], without a shell, with a
/// minimal environment. Only on the live host (a fixture's programs are not this machine's).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemExecutor;

impl Executor for SystemExecutor {
    fn run(&self, host: &Host, cmd: &Command) -> Result<CommandOutput> {
        if !is_program_name(&cmd.program) {
            return Err(Error::InvalidInput(format!(
                "Refusing to run {:?}: not a plain program name",
                cmd.program
            )));
        }
        if !host.is_live() {
            return Err(Error::Unsupported(format!(
                "Refusing to run `{cmd}` for a recorded host"
            )));
        }
        let path = find_program(host, &cmd.program).ok_or_else(|| {
            Error::Unsupported(format!("{} not found in {}", cmd.program, SBIN_DIRS.join(", ")))
        })?;
        let out = std::process::Command::new(host.path(&path))
            .args(&cmd.args)
            .env_clear()
            .env("PATH", SBIN_DIRS.join(":"))
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::io(&path, e))?;
        Ok(CommandOutput {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// A handler that simulates a program in tests.
pub type Handler = Box<dyn Fn(&Host, &Command) -> Result<CommandOutput> + Send + Sync>;

/// Records commands instead of running them; handlers can simulate their effect (rewrite a
/// fixture's sysfs file) or their failure.
#[derive(Default)]
pub struct RecordingExecutor {
    calls: Mutex<Vec<Command>>,
    handlers: Vec<(String, Handler)>,
}

impl std::fmt::Debug for RecordingExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingExecutor")
            .field("calls", &self.calls())
            .finish()
    }
}

impl RecordingExecutor {
    /// An executor where every program succeeds and does nothing.
    pub fn new() -> RecordingExecutor {
        RecordingExecutor::default()
    }

    /// Simulates `program` with `handler`.
    pub fn on(
        mut self,
        program: &str,
        handler: impl Fn(&Host, &Command) -> Result<CommandOutput> + Send + Sync + 'static,
    ) -> RecordingExecutor {
        self.handlers.push((program.to_string(), Box::new(handler)));
        self
    }

    /// The commands run so far.
    pub fn calls(&self) -> Vec<Command> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Executor for RecordingExecutor {
    fn run(&self, host: &Host, cmd: &Command) -> Result<CommandOutput> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(cmd.clone());
        match self.handlers.iter().find(|(p, _)| *p == cmd.program) {
            Some((_, h)) => h(host, cmd),
            None => Ok(CommandOutput::default()),
        }
    }
}

/// A file-system operation of [`Plan::apply`], for fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsOp {
    /// Creating a temporary file.
    Create,
    /// Writing its content.
    Write,
    /// Setting its mode and owner.
    Chmod,
    /// fsync of the file.
    Fsync,
    /// Renaming it over the target.
    Rename,
    /// fsync of the folder.
    FsyncDir,
    /// Removing a file (rollback of a created file).
    Remove,
    /// Creating a missing folder.
    Mkdir,
}

/// Called before every file-system operation of [`Plan::apply_with`]; an error makes the
/// operation fail as if the system had refused it.
pub trait FaultHook: Sync {
    /// Checks one operation on `path` (the real path).
    ///
    /// # Errors
    /// The injected failure.
    fn check(&self, op: FsOp, path: &Path) -> io::Result<()>;
}

/// No faults.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFaults;

impl FaultHook for NoFaults {
    fn check(&self, _: FsOp, _: &Path) -> io::Result<()> {
        Ok(())
    }
}

/// Fails the `n`-th (0-based) operation; counts operations.
#[derive(Debug, Default)]
pub struct FailNth {
    n: usize,
    seen: AtomicUsize,
}

impl FailNth {
    /// Fails operation number `n` (0-based).
    pub fn new(n: usize) -> FailNth {
        FailNth {
            n,
            seen: AtomicUsize::new(0),
        }
    }

    /// How many operations were checked.
    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

impl FaultHook for FailNth {
    fn check(&self, op: FsOp, path: &Path) -> io::Result<()> {
        if self.seen.fetch_add(1, Ordering::SeqCst) == self.n {
            return Err(io::Error::other(format!(
                "injected fault: {op:?} {}",
                path.display()
            )));
        }
        Ok(())
    }
}

/// Resolves `abs` (a path as the host sees it) under `root`, component by component: a symlink
/// on the way is followed as the host would (absolute targets start again at the root), one that
/// leads out of the root is refused, and the last component must not be a symlink.
///
/// # Errors
/// [`Error::InvalidInput`] for a relative path or `..` in `abs`; [`Error::Unsupported`] for a
/// symlink that escapes the root, a symlink loop, or a symlink in the place of the file.
pub fn resolve_under_root(root: &Path, abs: &str) -> Result<PathBuf> {
    use crate::host::resolve::{self, Failure, Mode};
    match resolve::resolve(root, abs, Mode::Write) {
        Ok(c) => Ok(resolve::real_path(root, &c)),
        Err(Failure::Relative) => Err(Error::InvalidInput(format!("Path {abs:?} is not absolute"))),
        Err(Failure::Dots) => Err(Error::InvalidInput(format!(
            "Path {abs:?} must not contain . or .."
        ))),
        Err(Failure::LeavesRoot) => Err(Error::Unsupported(format!(
            "{abs} leads out of the root through a symlink"
        ))),
        Err(Failure::FinalSymlink) => Err(Error::Unsupported(format!(
            "{abs} is a symlink: nestcore does not write through symlinks"
        ))),
        Err(Failure::Loop) => Err(Error::Unsupported(format!("Too many symlinks resolving {abs}"))),
        Err(Failure::Io(real, e)) => Err(Error::io(real, e)),
    }
}

/// The content of the regular file `real`, `None` when it does not exist. Anything else in its
/// place (a FIFO, a device, a folder) is an `InvalidInput` error, found without opening it for
/// reading: opening a planted FIFO would block apply forever.
fn read_regular(real: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::symlink_metadata(real) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    // O_NONBLOCK and O_NOFOLLOW: should it be swapped for a FIFO or a symlink since the check,
    // the open neither blocks nor follows.
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(real)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut buf = Vec::new();
    io::Read::read_to_end(&mut f, &mut buf)?;
    Ok(Some(buf))
}

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The original metadata to restore (mode, owner).
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
}

fn meta_of(m: &fs::Metadata) -> Meta {
    Meta {
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
    }
}

/// Writes `content` to `real` atomically with mode and owner from `like` (0644 when new).
fn atomic_write(real: &Path, content: &[u8], like: Option<Meta>, hook: &dyn FaultHook) -> io::Result<()> {
    let dir = real
        .parent()
        .ok_or_else(|| io::Error::other("no parent folder"))?;
    let name = real
        .file_name()
        .ok_or_else(|| io::Error::other("no file name"))?
        .to_string_lossy();
    let tmp = dir.join(format!(
        ".{name}.nestcore-tmp.{}.{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    hook.check(FsOp::Create, &tmp)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    let res = (|| -> io::Result<()> {
        hook.check(FsOp::Write, &tmp)?;
        f.write_all(content)?;
        hook.check(FsOp::Chmod, &tmp)?;
        let m = like.unwrap_or(Meta {
            mode: 0o644,
            uid: u32::MAX,
            gid: u32::MAX,
        });
        f.set_permissions(fs::Permissions::from_mode(m.mode))?;
        let cur = f.metadata()?;
        if like.is_some() && (cur.uid() != m.uid || cur.gid() != m.gid) {
            std::os::unix::fs::fchown(&f, Some(m.uid), Some(m.gid))?;
        }
        hook.check(FsOp::Fsync, &tmp)?;
        f.sync_all()?;
        hook.check(FsOp::Rename, real)?;
        fs::rename(&tmp, real)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    hook.check(FsOp::FsyncDir, dir)?;
    File::open(dir)?.sync_all()
}

/// Removes temporary files a killed apply left next to `real`.
fn sweep_temps(real: &Path) {
    let (Some(dir), Some(name)) = (real.parent(), real.file_name()) else {
        return;
    };
    let prefix = format!(".{}.nestcore-tmp.", name.to_string_lossy());
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Where an action comes in [`Plan::apply`]: files (0), then programs (1), the module reload
/// last (2). The one rule the apply and the planners' listing share.
fn apply_rank(a: &Action) -> u8 {
    match a {
        _ if a.path().is_some() => 0,
        Action::ReloadModule { .. } => 2,
        _ => 1,
    }
}

/// One file change that can be undone: a target, or a file of the backup store.
struct Journal {
    host_path: String,
    real: PathBuf,
    previous: Option<(Vec<u8>, Meta)>,
}

/// Makes the folders of `real` (below `root`) exist, 0755 whatever the umask.
fn ensure_dir(real: &Path, hook: &dyn FaultHook) -> io::Result<()> {
    let Some(dir) = real.parent() else { return Ok(()) };
    if dir.is_dir() {
        return Ok(());
    }
    hook.check(FsOp::Mkdir, dir)?;
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir)
}

/// A transaction of the backup store being written: its folder (removed again when the apply
/// fails) and its manifest.
struct Txn {
    real: PathBuf,
    manifest: crate::backup::Manifest,
}

impl Txn {
    /// Creates the next numbered folder of the store (exclusively: a concurrent apply takes
    /// the next number).
    fn begin(root: &Path, summary: &str, hook: &dyn FaultHook) -> Result<Txn> {
        use crate::backup::{Manifest, TxState, FORMAT, STORE};
        let store = resolve_under_root(root, STORE)?;
        if !store.is_dir() {
            hook.check(FsOp::Mkdir, &store).map_err(|e| Error::io(STORE, e))?;
            // /var/lib as any system has it (0755, whatever the umask); nestcore's own folders
            // readable by root only: the originals keep their modes, the folders hide them.
            if let Some(lib) = store.parent().and_then(Path::parent) {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(lib)
                    .map_err(|e| Error::io(STORE, e))?;
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&store)
                .map_err(|e| Error::io(STORE, e))?;
        }
        let mut next = fs::read_dir(&store)
            .map_err(|e| Error::io(STORE, e))?
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()))
            .max()
            .unwrap_or(0)
            + 1;
        loop {
            let id = format!("{next:04}");
            let real = store.join(&id);
            hook.check(FsOp::Mkdir, &real).map_err(|e| Error::io(STORE, e))?;
            match std::fs::DirBuilder::new().mode(0o700).create(&real) {
                Ok(()) => {
                    return Ok(Txn {
                        real,
                        manifest: Manifest {
                            format: FORMAT,
                            id,
                            state: TxState::Pending,
                            summary: summary.to_string(),
                            files: Vec::new(),
                            modules: Vec::new(),
                            commands: Vec::new(),
                            deferred: false,
                        },
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => next += 1,
                Err(e) => return Err(Error::io(format!("{STORE}/{id}"), e)),
            }
        }
    }

    /// Keeps the original of `path` in the store; returns where, as the host sees it.
    fn save(&self, path: &str, bytes: &[u8], meta: Meta, hook: &dyn FaultHook) -> Result<String> {
        let host = crate::backup::copy_path(&self.manifest.id, path);
        let real = self.real.join("files").join(path.trim_start_matches('/'));
        ensure_dir(&real, hook).map_err(|e| Error::io(&host, e))?;
        atomic_write(&real, bytes, Some(meta), hook).map_err(|e| Error::io(&host, e))?;
        Ok(host)
    }

    /// Writes the manifest (atomically).
    fn write_manifest(&self, hook: &dyn FaultHook) -> Result<()> {
        let host = format!("{}/{}", self.manifest.dir(), crate::backup::MANIFEST);
        let json = serde_json::to_string_pretty(&self.manifest)
            .map_err(|e| Error::InvalidInput(e.to_string()))?
            + "\n";
        let meta = Meta {
            mode: 0o600,
            uid: u32::MAX,
            gid: u32::MAX,
        };
        atomic_write(
            &self.real.join(crate::backup::MANIFEST),
            json.as_bytes(),
            Some(meta),
            hook,
        )
        .map_err(|e| Error::io(&host, e))
    }

    /// How much the manifest holds now (before a plan of a batch records its part).
    fn mark(&self) -> Mark {
        Mark {
            files: self.manifest.files.len(),
            modules: self.manifest.modules.len(),
            commands: self.manifest.commands.len(),
        }
    }

    /// Drops what a plan of a batch recorded after `mark` (it failed and every file it wrote
    /// was restored): its entries, and the copies of its originals; the manifest is rewritten.
    fn forget(&mut self, root: &Path, mark: Mark, hook: &dyn FaultHook) {
        for f in self.manifest.files.drain(mark.files..) {
            if let Some(copy) = f.before.and_then(|o| o.copy) {
                if let Ok(real) = resolve_under_root(root, &copy) {
                    let _ = fs::remove_file(real);
                }
            }
        }
        self.manifest.modules.truncate(mark.modules);
        self.manifest.commands.truncate(mark.commands);
        let _ = self.write_manifest(hook);
    }

    /// Removes the transaction (the apply failed and every file it wrote was restored).
    fn abort(self) {
        let _ = fs::remove_dir_all(&self.real);
    }
}

/// The lengths of a manifest's lists, to drop what one plan of a batch added.
#[derive(Debug, Clone, Copy)]
struct Mark {
    files: usize,
    modules: usize,
    commands: usize,
}

/// A target file, resolved and checked before anything is written.
struct Target {
    path: String,
    real: PathBuf,
    current: Option<Vec<u8>>,
    /// The new content; `None` removes the file.
    new: Option<String>,
}

impl Plan {
    /// Whether the plan does nothing.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Orders the actions as [`Plan::apply`] takes them: every file first, then the programs,
    /// the module reload last; a stable sort, so each group keeps its order.
    pub(crate) fn put_actions_in_apply_order(&mut self) {
        self.actions.sort_by_key(apply_rank);
    }

    /// A human-readable rendering: summary, actions with diffs, timeline, notes, warnings,
    /// blockers (each with its remedy).
    pub fn render(&self) -> String {
        let mut s = format!("{}\n", self.summary);
        for (i, a) in self.actions.iter().enumerate() {
            s.push_str(&format!("\n{}. {}\n", i + 1, a.describe()));
            if let Some(diff) = a.diff() {
                s.push_str(diff);
            }
        }
        if !self.timeline.is_empty() {
            s.push_str("\nWhen:\n");
            for (w, t) in &self.timeline {
                let w = match w {
                    When::Now => "now",
                    When::AfterReload => "after the module reloads",
                    When::AfterReboot => "after a reboot",
                    When::AfterRestart => "after a restart",
                };
                s.push_str(&format!("  {w}: {t}\n"));
            }
        }
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        for w in &self.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        for b in &self.blockers {
            s.push_str(&format!("blocked: {}\n", b.reason));
            if let Some(r) = &b.remedy {
                s.push_str(&format!("  remedy: {r}\n"));
            }
        }
        s
    }

    /// Applies the plan to `host`, running programs through `exec`.
    ///
    /// # Errors
    /// [`Error::Unsupported`] while the plan has blockers; [`Error::Apply`] when a step failed
    /// (what was written is restored and listed); [`Error::Io`] / [`Error::Unsupported`] when a
    /// target cannot be resolved safely before anything was written.
    pub fn apply(&self, host: &Host, exec: &dyn Executor) -> Result<ApplyReport> {
        self.apply_with(host, exec, &NoFaults)
    }

    /// [`Plan::apply`] with a hook called before every file-system operation (fault injection).
    ///
    /// # Errors
    /// As [`Plan::apply`].
    pub fn apply_with(&self, host: &Host, exec: &dyn Executor, hook: &dyn FaultHook) -> Result<ApplyReport> {
        self.apply_in(host, exec, hook, &mut None, None)
    }

    /// The apply: with the transaction in `slot` (begun here when `None` and there is something
    /// to record); `batch`: the transaction is shared by several plans with that summary (see
    /// [`apply_batch`]), completed by the batch, not here.
    fn apply_in(
        &self,
        host: &Host,
        exec: &dyn Executor,
        hook: &dyn FaultHook,
        slot: &mut Option<Txn>,
        batch: Option<&str>,
    ) -> Result<ApplyReport> {
        if !self.blockers.is_empty() {
            return Err(Error::Unsupported(format!(
                "The plan is blocked: {}",
                self.blockers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        let root = host.root().to_path_buf();
        let mut report = ApplyReport::default();
        // 1. Resolve and check every target before writing anything.
        let mut todo: Vec<Target> = Vec::new();
        for a in &self.actions {
            let (path, old, new) = match a {
                Action::WriteFile { path, old, new, .. } => (path, old.as_deref(), Some(new.as_str())),
                Action::RemoveFile { path, old, .. } => (path, Some(old.as_str()), None),
                _ => continue,
            };
            let real = resolve_under_root(&root, path)?;
            let current = read_regular(&real).map_err(|e| match e.kind() {
                io::ErrorKind::InvalidInput => Error::Unsupported(format!("{path} is not a regular file")),
                _ => Error::io(path, e),
            })?;
            if current.as_deref() == new.map(str::as_bytes) {
                report.unchanged.push(path.clone());
                continue;
            }
            if current.as_deref() != old.map(str::as_bytes) {
                return Err(Error::InvalidInput(format!(
                    "{path} changed since the plan was made: plan again"
                )));
            }
            todo.push(Target {
                path: path.clone(),
                real,
                current,
                new: new.map(str::to_string),
            });
        }
        let runs: Vec<&Action> = {
            // Programs: boot configuration and initramfs first, the runtime reload last. A
            // module whose parameters already read as wanted is not reloaded again.
            let mut r: Vec<&Action> = Vec::new();
            for a in self.actions.iter().filter(|a| a.path().is_none()) {
                match reloaded_already(host, a) {
                    Some(sysfs) => report.unchanged.extend(sysfs),
                    None => r.push(a),
                }
            }
            r.sort_by_key(|a| apply_rank(a));
            r
        };
        // 2. The backup store: a new transaction with every original, before the first target
        // (an undo instead marks its transaction undone at the end; in a batch, the batch's
        // transaction, shared with the plans before).
        // A failure: the files written are restored; the programs that had succeeded (`ran`)
        // run again, so what they generated matches the restored files; what this plan recorded
        // in the transaction is dropped only when every file was restored, else kept (pending)
        // for undo.
        let fail = |slot: &mut Option<Txn>,
                    mark: Option<Mark>,
                    journal: &mut Vec<Journal>,
                    ran: &[&Action],
                    step: String,
                    e: Error| {
            let wrote = !journal.is_empty();
            let (rolled, not_restored) = rollback(journal, hook);
            let reran = if wrote && !exec.defers() {
                rerun(ran, host, exec)
            } else {
                Vec::new()
            };
            let kept = match slot.as_mut() {
                Some(t) if !not_restored.is_empty() && mark.is_some() => Some(t.manifest.id.as_str().into()),
                // A batch's transaction holds the other plans too: drop this plan's part only.
                Some(t) if batch.is_some() => {
                    if let Some(m) = mark {
                        t.forget(&root, m, hook);
                    }
                    None
                }
                Some(_) => {
                    if let Some(t) = slot.take() {
                        t.abort();
                    }
                    None
                }
                // An undo: the transaction it puts back is still recorded, not undone.
                None if !not_restored.is_empty() => self.undoes.as_deref().map(Into::into),
                None => None,
            };
            Error::Apply {
                step,
                rolled_back: rolled,
                not_restored,
                kept,
                reran,
                source: Box::new(e),
            }
        };
        let mut journal: Vec<Journal> = Vec::new();
        // A transaction records what can be undone: files changed, modules reloaded. Programs
        // alone (regenerating what an earlier apply already wrote) record nothing.
        let undoable = !todo.is_empty() || runs.iter().any(|a| matches!(a, Action::ReloadModule { .. }));
        if self.undoes.is_none() && undoable && slot.is_none() {
            match Txn::begin(&root, batch.unwrap_or(&self.summary), hook) {
                Ok(t) => *slot = Some(t),
                Err(e) => {
                    return Err(fail(
                        slot,
                        None,
                        &mut journal,
                        &[],
                        "creating the backup store's transaction".into(),
                        e,
                    ))
                }
            }
        }
        let mut mark = None;
        if let (Some(t), None, true) = (slot.as_mut(), &self.undoes, undoable) {
            mark = Some(t.mark());
            if let Err(e) = record(t, &todo, &runs, exec.defers(), hook) {
                return Err(fail(
                    slot,
                    mark,
                    &mut journal,
                    &[],
                    "keeping the originals in the backup store".into(),
                    e,
                ));
            }
        }
        // 3. Write, journaling what to undo.
        for t in &todo {
            if let Err(e) = write_one(t, hook, &mut journal) {
                return Err(fail(
                    slot,
                    mark,
                    &mut journal,
                    &[],
                    format!("writing {}", t.path),
                    e,
                ));
            }
            let backup = slot.as_ref().filter(|_| mark.is_some()).and_then(|x| {
                x.manifest
                    .files
                    .iter()
                    .rev()
                    .find(|f| f.path == t.path)
                    .and_then(|f| f.before.as_ref())
                    .and_then(|o| o.copy.clone())
            });
            report.written.push(Written {
                path: t.path.clone(),
                backup,
                created: t.current.is_none(),
                removed: t.new.is_none(),
            });
        }
        // 4. Programs.
        let mut ran: Vec<&Action> = Vec::new();
        for a in runs {
            if let Err(e) = run_action(a, host, exec, &mut report) {
                return Err(fail(slot, mark, &mut journal, &ran, a.describe(), e));
            }
            ran.push(a);
        }
        // 5. Verify (nothing to verify when the reload was deferred).
        if let (Some(v), false) = (&self.verify, exec.defers()) {
            let got = host
                .read_trimmed(&v.path)
                .ok()
                .and_then(|s| crate::modprobe::parse_bool(&s));
            report.verified = Some(got == Some(v.want));
            if got != Some(v.want) {
                let e = Error::Unsupported(format!(
                    "{} reads {:?} after the reload, wanted {}",
                    v.path,
                    got,
                    if v.want { "Y/1" } else { "N/0" }
                ));
                return Err(fail(
                    slot,
                    mark,
                    &mut journal,
                    &ran,
                    format!("verifying {}", v.path),
                    e,
                ));
            }
        }
        // 6. The store says it finished (a batch's transaction: when the batch has; an undo:
        // that its transaction is undone).
        if let (Some(t), Some(_)) = (slot.as_mut(), mark) {
            if batch.is_none() {
                t.manifest.state = crate::backup::TxState::Applied;
                if let Err(e) = t.write_manifest(hook) {
                    return Err(fail(
                        slot,
                        mark,
                        &mut journal,
                        &ran,
                        "completing the backup store's manifest".into(),
                        e,
                    ));
                }
            }
            report.transaction = Some(format!("{}/{}", t.manifest.dir(), crate::backup::MANIFEST));
        }
        if let Some(id) = &self.undoes {
            if let Err(e) = mark_undone(host, &root, id, hook) {
                return Err(fail(
                    slot,
                    None,
                    &mut journal,
                    &ran,
                    format!("marking apply {id} undone"),
                    e,
                ));
            }
            report.undone = Some(id.clone());
        }
        Ok(report)
    }
}

/// Applies `plans` one after the other, each all-or-nothing on its own (a plan that fails is
/// rolled back, the others stay done), and records them in one transaction of the backup store
/// whose summary is `summary`: one undo step for the whole batch (`nestcore guests --apply`).
/// Returns each plan's result, in order, and the transaction's manifest (as the host sees it)
/// when anything was recorded. Undo plans ([`Plan::undoes`]) are not batched: apply them alone.
pub fn apply_batch(
    summary: &str,
    plans: &[&Plan],
    host: &Host,
    exec: &dyn Executor,
) -> (Vec<Result<ApplyReport>>, Option<String>) {
    apply_batch_with(summary, plans, host, exec, &NoFaults)
}

/// [`apply_batch`] with a fault hook, as [`Plan::apply_with`].
pub fn apply_batch_with(
    summary: &str,
    plans: &[&Plan],
    host: &Host,
    exec: &dyn Executor,
    hook: &dyn FaultHook,
) -> (Vec<Result<ApplyReport>>, Option<String>) {
    let mut slot: Option<Txn> = None;
    let mut out: Vec<Result<ApplyReport>> = plans
        .iter()
        .map(|p| p.apply_in(host, exec, hook, &mut slot, Some(summary)))
        .collect();
    let Some(mut t) = slot else {
        return (out, None);
    };
    if t.manifest.files.is_empty() && t.manifest.modules.is_empty() {
        t.abort();
        return (out, None);
    }
    // Pending stays when a plan failed with a file it could not restore (undo handles it), or
    // when the manifest cannot be completed.
    let kept = out
        .iter()
        .any(|r| matches!(r, Err(Error::Apply { kept: Some(_), .. })));
    if !kept {
        t.manifest.state = crate::backup::TxState::Applied;
        let _ = t.write_manifest(hook);
    }
    let manifest = format!("{}/{}", t.manifest.dir(), crate::backup::MANIFEST);
    for r in out.iter_mut().flatten() {
        if r.transaction.is_some() {
            r.transaction = Some(manifest.clone());
        }
    }
    (out, Some(manifest))
}

/// For a module reload whose every parameter already reads as wanted (a plan applied again):
/// the sysfs files that say so.
fn reloaded_already(host: &Host, a: &Action) -> Option<Vec<String>> {
    let Action::ReloadModule { module, params, .. } = a else {
        return None;
    };
    let files: Vec<String> = params
        .iter()
        .map(|(p, _)| format!("/sys/module/{module}/parameters/{p}"))
        .collect();
    let done = params.iter().zip(&files).all(|((_, want), f)| {
        let now = host.read_trimmed(f).ok();
        let b = |v: &str| crate::modprobe::parse_bool(v);
        now.as_deref().and_then(b).is_some() && now.as_deref().and_then(b) == b(want)
    });
    done.then_some(files)
}

/// Fills the transaction's manifest (originals copied, except nestcore's own text) and writes
/// it, state pending, before the first target.
fn record(
    t: &mut Txn,
    todo: &[Target],
    runs: &[&Action],
    deferred: bool,
    hook: &dyn FaultHook,
) -> Result<()> {
    use crate::backup::{sha256, FileChange, Generated, ModuleChange, Original};
    for target in todo {
        let before = match &target.current {
            None => None,
            Some(bytes) => {
                let m = fs::symlink_metadata(&target.real).map_err(|e| Error::io(&target.path, e))?;
                let meta = meta_of(&m);
                let generated = (target.path == crate::modprobe::DROP_IN)
                    .then(|| crate::modprobe::own_drop_in(&String::from_utf8_lossy(bytes)))
                    .flatten()
                    .map(|(module, value)| Generated { module, value });
                let copy = match generated {
                    Some(_) => None,
                    None => Some(t.save(&target.path, bytes, meta, hook)?),
                };
                Some(Original {
                    sha256: sha256(bytes),
                    mode: meta.mode,
                    uid: meta.uid,
                    gid: meta.gid,
                    copy,
                    generated,
                })
            }
        };
        t.manifest.files.push(FileChange {
            path: target.path.clone(),
            before,
            after_sha256: target.new.as_deref().map(|n| sha256(n.as_bytes())),
        });
    }
    for a in runs {
        match a {
            Action::ReloadModule {
                module,
                params,
                previous,
                loaded,
                ..
            } => {
                for (param, value) in params {
                    t.manifest.modules.push(ModuleChange {
                        module: module.clone(),
                        param: param.clone(),
                        before: previous.clone(),
                        after: value.clone(),
                        was_loaded: *loaded,
                    });
                }
            }
            Action::Run { command, .. } => t.manifest.commands.push(
                std::iter::once(command.program.clone())
                    .chain(command.args.iter().cloned())
                    .collect(),
            ),
            _ => {}
        }
    }
    t.manifest.deferred = deferred;
    t.write_manifest(hook)
}

/// Marks transaction `id` of the store undone (its manifest rewritten atomically).
fn mark_undone(host: &Host, root: &Path, id: &str, hook: &dyn FaultHook) -> Result<()> {
    let mut m = crate::backup::read_manifest(host, id)?;
    m.state = crate::backup::TxState::Undone;
    let real = resolve_under_root(root, &format!("{}/{}", m.dir(), crate::backup::MANIFEST))?;
    let t = Txn {
        real: real.parent().map(Path::to_path_buf).unwrap_or_default(),
        manifest: m,
    };
    t.write_manifest(hook)
}

fn write_one(t: &Target, hook: &dyn FaultHook, journal: &mut Vec<Journal>) -> Result<()> {
    let path = t.path.as_str();
    let real = t.real.as_path();
    sweep_temps(real);
    let previous = match fs::symlink_metadata(real) {
        Ok(m) if m.is_file() => Some((fs::read(real).map_err(|e| Error::io(path, e))?, meta_of(&m))),
        Ok(_) => return Err(Error::Unsupported(format!("{path} is not a regular file"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(path, e)),
    };
    if previous.is_none() {
        ensure_dir(real, hook).map_err(|e| Error::io(path, e))?;
    }
    let meta = previous.as_ref().map(|p| p.1);
    // Journal before the change: a failure after it (fsync of the folder) still needs undoing.
    journal.push(Journal {
        host_path: path.to_string(),
        real: real.to_path_buf(),
        previous,
    });
    match &t.new {
        Some(new) => atomic_write(real, new.as_bytes(), meta, hook).map_err(|e| Error::io(path, e)),
        None => remove_file(real, hook).map_err(|e| Error::io(path, e)),
    }
}

/// Removes `real` and syncs its folder.
fn remove_file(real: &Path, hook: &dyn FaultHook) -> io::Result<()> {
    hook.check(FsOp::Remove, real)?;
    match fs::remove_file(real) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        r => r?,
    }
    let dir = real
        .parent()
        .ok_or_else(|| io::Error::other("no parent folder"))?;
    hook.check(FsOp::FsyncDir, dir)?;
    File::open(dir)?.sync_all()
}

/// Restores journaled files in reverse order; returns the host paths restored, and those whose
/// restore failed too (each with the reason).
fn rollback(journal: &mut Vec<Journal>, hook: &dyn FaultHook) -> (Vec<String>, Vec<String>) {
    let (mut restored, mut failed) = (Vec::new(), Vec::new());
    while let Some(j) = journal.pop() {
        let res = match &j.previous {
            Some((bytes, meta)) => {
                if fs::read(&j.real).ok().as_deref() == Some(bytes.as_slice()) {
                    Ok(())
                } else {
                    atomic_write(&j.real, bytes, Some(*meta), hook)
                }
            }
            None => match fs::remove_file(&j.real) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            },
        };
        match res {
            Ok(()) => restored.push(j.host_path),
            Err(e) => failed.push(format!("{} ({e})", j.host_path)),
        }
    }
    (restored, failed)
}

/// Runs the programs of the `Run` actions in `ran` again (after a rollback), each result as
/// `` `command` (exit N) `` or `` `command` (failed: why) ``. Module reloads are not repeated.
fn rerun(ran: &[&Action], host: &Host, exec: &dyn Executor) -> Vec<String> {
    ran.iter()
        .filter(|a| matches!(a, Action::Run { .. }))
        .flat_map(|a| a.commands())
        .map(|c| match exec.run(host, &c) {
            Ok(o) => format!("`{c}` (exit {})", o.status),
            Err(e) => format!("`{c}` (failed: {e})"),
        })
        .collect()
}

fn run_action(a: &Action, host: &Host, exec: &dyn Executor, report: &mut ApplyReport) -> Result<()> {
    let cmds = a.commands();
    if exec.defers() {
        report.deferred.extend(cmds.iter().cloned());
        return Ok(());
    }
    for (i, c) in cmds.iter().enumerate() {
        let out = exec.run(host, c)?;
        report.commands.push(CommandRun {
            command: c.clone(),
            status: out.status,
        });
        if out.status != 0 {
            // A reload that unloaded the module but could not load it again: load it back
            // with its previous value so the host keeps KVM.
            if let Action::ReloadModule {
                module,
                previous: Some(prev),
                loaded: true,
                ..
            } = a
            {
                if i > 0 {
                    let back = Command::new("modprobe", &[module, &format!("nested={prev}")]);
                    if let Ok(o) = exec.run(host, &back) {
                        report.commands.push(CommandRun {
                            command: back,
                            status: o.status,
                        });
                    }
                }
            }
            return Err(Error::CommandFailed {
                command: c.to_string(),
                status: out.status,
                stderr: out.stderr.trim().chars().take(500).collect(),
            });
        }
    }
    Ok(())
}

/// Writes `new` to the file at `path` the way [`Plan::apply`] does (temporary file, fsync,
/// rename, folder fsync; mode and owner kept; the original saved once as
/// `<path>.nestcore-bak`), for `nestcore kargs --in-place`. Returns the backup path, or `None`
/// when the file already held `new`.
///
/// # Errors
/// [`Error::Unsupported`] when `path` is a symlink or not a regular file; [`Error::Io`] when
/// reading or writing fails (the file is then unchanged).
pub fn write_in_place(path: &Path, new: &str) -> Result<Option<PathBuf>> {
    let m = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if !m.is_file() {
        return Err(Error::Unsupported(format!(
            "{} is not a regular file (nestcore does not write through symlinks)",
            path.display()
        )));
    }
    let old = fs::read(path).map_err(|e| Error::io(path, e))?;
    if old == new.as_bytes() {
        return Ok(None);
    }
    let mut backup = path.as_os_str().to_owned();
    backup.push(BACKUP_SUFFIX);
    let backup = PathBuf::from(backup);
    match fs::symlink_metadata(&backup) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            atomic_write(&backup, &old, Some(meta_of(&m)), &NoFaults).map_err(|e| Error::io(&backup, e))?
        }
        Ok(b) if b.is_file() => {}
        Ok(_) => {
            return Err(Error::Unsupported(format!(
                "{} is not a regular file",
                backup.display()
            )))
        }
        Err(e) => return Err(Error::io(&backup, e)),
    }
    atomic_write(path, new.as_bytes(), Some(meta_of(&m)), &NoFaults).map_err(|e| Error::io(path, e))?;
    Ok(Some(backup))
}

/// The unified diff of removing `path` (whose content is `old`): every line removed, to
/// `/dev/null`.
pub fn removal_diff(path: &str, old: &str) -> String {
    let d = unified_diff(path, Some(old), "");
    d.replacen(&format!("+++ {path}\n"), "+++ /dev/null\n", 1)
}

/// A unified diff (3 lines of context) from `old` to `new`, labelled with `path`.
pub fn unified_diff(path: &str, old: Option<&str>, new: &str) -> String {
    let a: Vec<&str> = old.map(|o| o.split_inclusive('\n').collect()).unwrap_or_default();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    // Longest common subsequence table (files here are small; beyond that, replace whole).
    let (n, m) = (a.len(), b.len());
    let mut ops: Vec<(char, &str)> = Vec::new();
    if n.saturating_mul(m) <= 4_000_000 {
        let mut lcs = vec![vec![0u32; m + 1]; n + 1];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i][j] = if a[i] == b[j] {
                    lcs[i + 1][j + 1] + 1
                } else {
                    lcs[i + 1][j].max(lcs[i][j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && a[i] == b[j] {
                ops.push((' ', a[i]));
                i += 1;
                j += 1;
            } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
                ops.push(('-', a[i]));
                i += 1;
            } else {
                ops.push(('+', b[j]));
                j += 1;
            }
        }
    } else {
        ops.extend(a.iter().map(|l| ('-', *l)));
        ops.extend(b.iter().map(|l| ('+', *l)));
    }
    if ops.iter().all(|(c, _)| *c == ' ') {
        return String::new();
    }
    let mut out = format!(
        "--- {}\n+++ {path}\n",
        if old.is_some() { path } else { "/dev/null" }
    );
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| *c != ' ')
        .map(|(i, _)| i)
        .collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(3);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 6 {
            end = changed[k];
            k += 1;
        }
        let end = (end + 4).min(ops.len());
        let (mut oa, mut ob) = (1, 1);
        for (c, _) in &ops[..start] {
            if *c != '+' {
                oa += 1;
            }
            if *c != '-' {
                ob += 1;
            }
        }
        let la = ops[start..end].iter().filter(|(c, _)| *c != '+').count();
        let lb = ops[start..end].iter().filter(|(c, _)| *c != '-').count();
        out.push_str(&format!(
            "@@ -{},{la} +{},{lb} @@\n",
            if la == 0 { oa - 1 } else { oa },
            if lb == 0 { ob - 1 } else { ob }
        ));
        for (c, l) in &ops[start..end] {
            out.push(*c);
            out.push_str(l);
            if !l.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn diff_shapes() {
        assert_eq!(unified_diff("/f", Some("a\n"), "a\n"), "");
        assert_eq!(
            unified_diff("/f", None, "x\n"),
            "--- /dev/null\n+++ /f\n@@ -0,0 +1,1 @@\n+x\n"
        );
        let d = unified_diff(
            "/f",
            Some("1\n2\n3\n4\n5\n6\n7\n8\n9\n"),
            "1\n2\n3\n4\nfive\n6\n7\n8\n9\n",
        );
        assert_eq!(
            d,
            "--- /f\n+++ /f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn resolves_symlinks_inside_root_only() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("usr/lib/modprobe.d")).unwrap();
        std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib", r.join("lib2")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc", r.join("usr/evil")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("usr/lib/modprobe.d/x.conf")).unwrap();
        assert_eq!(
            resolve_under_root(r, "/lib/modprobe.d/a.conf").unwrap(),
            r.join("usr/lib/modprobe.d/a.conf")
        );
        assert_eq!(
            resolve_under_root(r, "/lib2/modprobe.d/a.conf").unwrap(),
            r.join("usr/lib/modprobe.d/a.conf")
        );
        assert!(resolve_under_root(r, "/usr/evil/shadow").is_err());
        assert!(resolve_under_root(r, "/lib/modprobe.d/x.conf").is_err());
        assert!(resolve_under_root(r, "/a/../b").is_err());
        assert!(resolve_under_root(r, "rel").is_err());
    }

    fn write_plan(path: &str, old: Option<&str>, new: &str) -> Action {
        Action::WriteFile {
            path: path.into(),
            old: old.map(str::to_string),
            new: new.into(),
            diff: unified_diff(path, old, new),
            reason: "test".into(),
            when: When::AfterReload,
        }
    }

    #[test]
    fn apply_writes_backs_up_and_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::write(d.path().join("etc/a"), "old\n").unwrap();
        fs::set_permissions(d.path().join("etc/a"), fs::Permissions::from_mode(0o640)).unwrap();
        let host = Host::from_root(d.path()).unwrap();
        let plan = Plan {
            actions: vec![
                write_plan("/etc/a", Some("old\n"), "new\n"),
                write_plan("/etc/new.d/b", None, "b\n"),
            ],
            ..Plan::default()
        };
        let exec = RecordingExecutor::new();
        let r = plan.apply(&host, &exec).unwrap();
        assert_eq!(r.written.len(), 2);
        assert_eq!(fs::read_to_string(d.path().join("etc/a")).unwrap(), "new\n");
        // The original is in the backup store, never beside the file.
        assert!(!d.path().join("etc/a.nestcore-bak").exists());
        let store = d.path().join("var/lib/nestcore/backup/0001");
        assert_eq!(fs::read_to_string(store.join("files/etc/a")).unwrap(), "old\n");
        assert_eq!(
            r.written[0].backup.as_deref(),
            Some("/var/lib/nestcore/backup/0001/files/etc/a")
        );
        assert_eq!(r.written[1].backup, None);
        assert!(r.written[1].created);
        assert_eq!(
            r.transaction.as_deref(),
            Some("/var/lib/nestcore/backup/0001/manifest.json")
        );
        let m = crate::backup::read_manifest(&host, "0001").unwrap();
        assert_eq!(m.state, crate::backup::TxState::Applied);
        assert_eq!(m.files.len(), 2);
        assert_eq!(m.files[0].before.as_ref().unwrap().mode, 0o640);
        assert_eq!(
            m.files[0].after_sha256.as_deref(),
            Some(crate::backup::sha256(b"new\n").as_str())
        );
        assert!(m.files[1].before.is_none());
        assert_eq!(
            fs::metadata(d.path().join("etc/a")).unwrap().mode() & 0o777,
            0o640
        );
        assert_eq!(
            fs::metadata(store.join("files/etc/a")).unwrap().mode() & 0o777,
            0o640
        );
        let again = plan.apply(&host, &exec).unwrap();
        assert!(again.is_noop());
        assert_eq!(again.unchanged.len(), 2);
        assert_eq!(again.transaction, None, "nothing changed: no transaction");
        assert_eq!(crate::backup::transactions(&host), vec!["0001"]);
    }

    #[test]
    fn stale_plan_and_symlink_refused() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::write(d.path().join("etc/a"), "changed\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("etc/l")).unwrap();
        let host = Host::from_root(d.path()).unwrap();
        let exec = RecordingExecutor::new();
        let p = Plan {
            actions: vec![write_plan("/etc/a", Some("old\n"), "new\n")],
            ..Plan::default()
        };
        assert!(p.apply(&host, &exec).is_err());
        let p = Plan {
            actions: vec![write_plan("/etc/l", None, "x\n")],
            ..Plan::default()
        };
        assert_eq!(
            p.apply(&host, &exec).unwrap_err().kind(),
            crate::ErrorKind::Unsupported
        );
        let p = Plan {
            blockers: vec![Blocker::new("test", "no", None)],
            ..Plan::default()
        };
        assert!(p.apply(&host, &exec).is_err());
    }

    #[test]
    fn every_fault_leaves_old_or_new() {
        for n in 0.. {
            let d = tempfile::tempdir().unwrap();
            fs::create_dir_all(d.path().join("etc")).unwrap();
            fs::write(d.path().join("etc/a"), "old a\n").unwrap();
            fs::write(d.path().join("etc/b"), "old b\n").unwrap();
            let host = Host::from_root(d.path()).unwrap();
            let plan = Plan {
                actions: vec![
                    write_plan("/etc/a", Some("old a\n"), "new a\n"),
                    write_plan("/etc/b", Some("old b\n"), "new b\n"),
                    write_plan("/etc/c", None, "new c\n"),
                ],
                ..Plan::default()
            };
            let hook = FailNth::new(n);
            let res = plan.apply_with(&host, &RecordingExecutor::new(), &hook);
            let read = |f: &str| fs::read_to_string(d.path().join(f)).ok();
            match res {
                Ok(_) => {
                    assert!(n >= hook.seen(), "fault {n} was not reported");
                    assert_eq!(read("etc/a").as_deref(), Some("new a\n"));
                    break;
                }
                Err(Error::Apply { not_restored, .. }) => {
                    assert_eq!(read("etc/a").as_deref(), Some("old a\n"), "fault {n}");
                    assert_eq!(read("etc/b").as_deref(), Some("old b\n"), "fault {n}");
                    assert_eq!(read("etc/c"), None, "fault {n}");
                    assert!(not_restored.is_empty(), "{not_restored:?}");
                    let names: Vec<_> = fs::read_dir(d.path().join("etc"))
                        .unwrap()
                        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .collect();
                    assert!(names.iter().all(|x| !x.contains("nestcore-tmp")), "{names:?}");
                }
                Err(e) => panic!("fault {n}: unexpected {e}"),
            }
        }
    }

    #[test]
    fn a_batch_is_one_transaction_without_the_plan_that_failed() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        for f in ["a", "b", "c"] {
            fs::write(d.path().join("etc").join(f), format!("old {f}\n")).unwrap();
        }
        let host = Host::from_root(d.path()).unwrap();
        let one = |f: &str, run: Option<&str>| {
            let mut actions = vec![write_plan(
                &format!("/etc/{f}"),
                Some(&format!("old {f}\n")),
                &format!("new {f}\n"),
            )];
            if let Some(r) = run {
                actions.push(Action::Run {
                    command: Command::new(r, &[]),
                    reason: "test".into(),
                    when: When::AfterRestart,
                });
            }
            Plan {
                actions,
                ..Plan::default()
            }
        };
        let (a, b, c) = (one("a", None), one("b", Some("fails")), one("c", Some("ok")));
        let exec = RecordingExecutor::new().on("fails", |_h, _c| {
            Ok(CommandOutput {
                status: 1,
                ..CommandOutput::default()
            })
        });
        let (res, txn) = apply_batch("batch", &[&a, &b, &c], &host, &exec);
        assert!(res[0].is_ok() && res[1].is_err() && res[2].is_ok(), "{res:?}");
        let read = |f: &str| fs::read_to_string(d.path().join("etc").join(f)).unwrap();
        assert_eq!(
            (read("a"), read("b"), read("c")),
            ("new a\n".into(), "old b\n".into(), "new c\n".into())
        );
        assert_eq!(
            txn.as_deref(),
            Some("/var/lib/nestcore/backup/0001/manifest.json")
        );
        assert_eq!(crate::backup::transactions(&host), vec!["0001"]);
        let m = crate::backup::read_manifest(&host, "0001").unwrap();
        assert_eq!(m.state, crate::backup::TxState::Applied);
        assert_eq!(m.summary, "batch");
        let files: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(files, ["/etc/a", "/etc/c"]);
        assert_eq!(m.commands, vec![vec!["ok".to_string()]]);
        let store = d.path().join("var/lib/nestcore/backup/0001/files/etc");
        assert!(store.join("a").exists() && !store.join("b").exists() && store.join("c").exists());
        for r in res.iter().flatten() {
            assert_eq!(r.transaction, txn);
        }
        // Nothing recorded at all: no transaction.
        let (res, txn) = apply_batch("again", &[&a, &c], &host, &RecordingExecutor::new());
        assert!(res.iter().all(Result::is_ok) && txn.is_none());
        assert_eq!(crate::backup::transactions(&host), vec!["0001"]);
    }

    #[test]
    fn in_place_with_backup() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("grub.conf");
        fs::write(&f, "a\n").unwrap();
        let b = write_in_place(&f, "b\n").unwrap().unwrap();
        assert_eq!(fs::read_to_string(&b).unwrap(), "a\n");
        assert_eq!(fs::read_to_string(&f).unwrap(), "b\n");
        assert_eq!(write_in_place(&f, "b\n").unwrap(), None);
        write_in_place(&f, "c\n").unwrap();
        assert_eq!(
            fs::read_to_string(&b).unwrap(),
            "a\n",
            "the first original is kept"
        );
        let l = d.path().join("link");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert!(write_in_place(&l, "x").is_err());
    }
}
