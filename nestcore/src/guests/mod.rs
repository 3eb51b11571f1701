//! Which of this host's guests will get VT-x/AMD-V, why, and the edit for each (`nestcore
//! guests`).
//!
//! [`scan`] reads every guest definition the host has, the way `check` reads the host:
//!
//! - libvirt: the persistent definitions of `qemu:///system` (/etc/libvirt/qemu/*.xml) and the
//!   session ones of root and of each user under /home (`~/.config/libvirt/qemu/*.xml`) where
//!   readable; with [`Options::virsh`] (the live host), the definitions libvirt holds, through
//!   `virsh dumpxml --inactive` (and `virsh domcapabilities` for the host-model CPU);
//! - OpenStack nova: `[libvirt]` of /etc/nova/nova.conf, nova-compute.conf and nova.conf.d/*.conf
//!   (what every instance of this compute node gets);
//! - Proxmox VE: /etc/pve/qemu-server/*.conf `cpu:` (and /etc/pve/virtual-guest/cpu-models.conf).
//!
//! Each [`Guest`] says whether it will get the extension at its next start given this host's
//! verdict ([`Guest::gets_extension`]: `Some(true)`, `Some(false)`, or `None` when it cannot be
//! told), why (a stable [`Reason::code`] and a message), and the fix as a [`Plan`] of ordinary
//! actions: the domain XML edited by [`crate::guest::libvirt::ensure_nested`] (byte-preserving)
//! plus `virsh define`; the nova.conf edit plus the nova-compute restart; `qm set VMID --cpu host`.
//! A definition that cannot be read or parsed is reported as its own guest with the reason; it
//! never stops the others.
//!
//! What QEMU gives a guest under KVM, which the verdicts follow: `host` / host-passthrough /
//! maximum pass VMX or SVM when the host offers it; no named model includes vmx, and QEMU turns
//! svm off in every named model under KVM (`kvm_default_props`, since QEMU 2.2), so a named model
//! (qemu64, kvm64, EPYC, Skylake, Proxmox's x86-64-v2-AES) gives neither unless the feature is
//! named; libvirt's host-model names vmx when KVM offers it (Intel) but never names svm (AMD: it
//! is implicit in the EPYC model, and so turned off).
//!
//! ```no_run
//! let host = nestcore::Host::live();
//! let report = nestcore::check(&host);
//! let guests = nestcore::guests::scan(&host, &report, &nestcore::guests::Options::default());
//! for g in &guests.guests {
//!     println!("{} {}: {:?} [{}] {}", g.source.as_str(), g.name, g.gets_extension, g.reason.code, g.reason.message);
//! }
//! ```

mod libvirt;
mod nova;
mod proxmox;
mod read;

use serde::Serialize;

use crate::cpu::{Extension, Vendor};
use crate::evidence::Evidence;
use crate::plan::{ApplyReport, Executor, Plan};
use crate::report::{Finding, Level, NestedForGuests, Report};
use crate::{Host, Result};

/// Version of the `nestcore guests --json` contract (schema/guests.schema.json).
pub const SCHEMA_VERSION: u32 = 1;

/// The stable code of `check`'s summary finding.
pub const SUMMARY_CODE: &str = "guests.summary";

/// Where a guest is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A libvirt domain.
    Libvirt,
    /// Every instance of an OpenStack nova compute node.
    Nova,
    /// A Proxmox VE virtual machine.
    Proxmox,
}

impl Source {
    /// `libvirt`, `nova` or `proxmox`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Libvirt => "libvirt",
            Source::Nova => "nova",
            Source::Proxmox => "proxmox",
        }
    }
}

/// What the definition was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// The file on disk.
    File,
    /// libvirt's API (`virsh dumpxml --inactive`).
    Virsh,
}

/// Why a guest gets the extension or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// A stable code (README, "nestcore guests": the code list).
    pub code: &'static str,
    /// One sentence.
    pub message: String,
}

/// One guest definition and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Guest {
    /// Where it is defined.
    pub source: Source,
    /// The domain name, the Proxmox VM's name (or VMID), or `instances` for nova.
    pub name: String,
    /// The definition's file as the host sees it (`None` for a domain known only to libvirt).
    pub path: Option<String>,
    /// The Proxmox VMID, or the nova instance UUID of a nova-managed domain.
    pub id: Option<String>,
    /// libvirt: `system` or `session:USER`.
    pub scope: Option<String>,
    /// The file, or libvirt's API.
    pub read_from: ReadFrom,
    /// `nova` for a domain nova manages (nova rewrites it: fix nova.conf instead).
    pub managed_by: Option<String>,
    /// Whether it runs now (`None`: not known).
    pub running: Option<bool>,
    /// The CPU configured, in a few words (`custom Skylake-Client-IBRS`, `host-passthrough`).
    pub cpu: Option<String>,
    /// Whether it gets VMX/SVM at its next start; `None` when that cannot be told.
    pub gets_extension: Option<bool>,
    /// Why.
    pub reason: Reason,
    /// The change that gives it the extension; `None` when none is needed (or none in the
    /// guest's own configuration would help: see the reason).
    pub fix: Option<Plan>,
    /// What to watch out for.
    pub caveats: Vec<String>,
}

/// The host as the guests' verdicts see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostView {
    /// The root folder ("/" live).
    pub root: String,
    /// Whether this is the live machine.
    pub live: bool,
    /// CPU vendor.
    pub vendor: Vendor,
    /// The extension guests need (`vmx`, `svm`; `None` when the vendor is not known).
    pub extension: Option<Extension>,
    /// The host's verdict: can its guests get VMX/SVM?
    pub nested_for_guests: NestedForGuests,
    /// Whether KVM is usable.
    pub kvm_usable: Option<bool>,
}

/// How one source was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRead {
    /// The source.
    pub source: Source,
    /// `files`, `virsh` (libvirt's API, with the files for what it does not list) or `none`
    /// (nothing defined there).
    pub read: &'static str,
    /// The folders and files read.
    pub paths: Vec<String>,
    /// Why this way (virsh missing or unreachable, ...).
    pub detail: String,
}

/// Counts over the guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    /// Guests found (unreadable definitions included).
    pub total: usize,
    /// Those that get the extension.
    pub gets_extension: usize,
    /// Those that do not.
    pub lacks_extension: usize,
    /// Those where it cannot be told (unreadable definitions included).
    pub unknown: usize,
    /// Those with a fix.
    pub fixable: usize,
}

/// Every guest of a host, judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct GuestsReport {
    /// The contract's version.
    pub schema_version: u32,
    /// nestcore's version.
    pub nestcore_version: &'static str,
    /// The host.
    pub host: HostView,
    /// How each source was read.
    pub sources: Vec<SourceRead>,
    /// The guests, libvirt first, then nova, then Proxmox; by name within each.
    pub guests: Vec<Guest>,
    /// Counts.
    pub summary: Counts,
}

/// What [`scan`] may do besides reading files.
#[derive(Clone, Copy, Default)]
#[non_exhaustive]
pub struct Options<'a> {
    /// Ask libvirt through `virsh` run by this executor (live host: [`crate::plan::SystemExecutor`];
    /// tests: a [`crate::plan::RecordingExecutor`] that answers for virsh). `None`: files only.
    pub virsh: Option<&'a dyn Executor>,
    /// Skip the session definitions (`~/.config/libvirt/qemu`) of root and the users in /home.
    pub no_session: bool,
    /// Judge only, build no fix (what `check`'s summary needs).
    pub(crate) judge_only: bool,
}

impl std::fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("virsh", &self.virsh.map(|_| "executor"))
            .field("no_session", &self.no_session)
            .field("judge_only", &self.judge_only)
            .finish()
    }
}

impl<'a> Options<'a> {
    /// Files only, session definitions included.
    pub fn files() -> Options<'static> {
        Options::default()
    }

    /// Ask libvirt through virsh run by `exec` as well.
    pub fn with_virsh(exec: &'a dyn Executor) -> Options<'a> {
        Options {
            virsh: Some(exec),
            no_session: false,
            judge_only: false,
        }
    }
}

/// What one configuration gives, before the host's verdict is taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gives {
    /// The extension, when the host offers it.
    Yes,
    /// Not the extension.
    No,
    /// Exactly when the host offers it (`optional`).
    FollowsHost,
    /// Cannot be told.
    Unknown,
}

/// A configuration's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    pub gives: Gives,
    pub code: &'static str,
    pub message: String,
}

impl Config {
    pub(crate) fn new(gives: Gives, code: &'static str, message: impl Into<String>) -> Config {
        Config {
            gives,
            code,
            message: message.into(),
        }
    }

    /// Whether a change of this configuration is needed.
    pub(crate) fn needs_fix(&self) -> bool {
        matches!(self.gives, Gives::No | Gives::Unknown)
    }
}

/// What the judges of each source know about the host.
pub(crate) struct Ctx<'a> {
    pub host: &'a Host,
    pub view: HostView,
    /// The libvirt host-model CPU's policy for the extension, from `virsh domcapabilities`:
    /// `Some(true)` names it, `Some(false)` withholds it (or leaves it to a model).
    pub host_model: Option<bool>,
    /// Whether to build fixes (`check`'s summary only judges).
    pub fixes: bool,
}

impl Ctx<'_> {
    /// The extension guests need.
    pub(crate) fn ext(&self) -> Option<Extension> {
        self.view.extension
    }
}

/// The guest's verdict: what its configuration gives, and what this host lets through.
pub(crate) fn conclude(ctx: &Ctx<'_>, cfg: &Config) -> (Option<bool>, Reason) {
    let reason = |code: &'static str, message: String| Reason { code, message };
    let own = || reason(cfg.code, cfg.message.clone());
    let ext = ctx.ext().map_or("VMX/SVM", Extension::as_str);
    if cfg.gives == Gives::No {
        return (Some(false), own());
    }
    let also = match cfg.gives {
        Gives::Yes | Gives::FollowsHost => {
            format!(" (the guest's own configuration passes it: {})", cfg.message)
        }
        _ => String::new(),
    };
    if ctx.view.kvm_usable == Some(false) {
        return (
            Some(false),
            reason(
                "host_kvm_unusable",
                format!("KVM is not usable on this host, so its guests run emulated and cannot get {ext}: see `nestcore check`{also}"),
            ),
        );
    }
    match ctx.view.nested_for_guests {
        NestedForGuests::Disabled => (
            Some(false),
            reason(
                "host_nested_disabled",
                format!("this host does not offer {ext} to its guests (nested virtualization is off): run `nestcore enable`{also}"),
            ),
        ),
        NestedForGuests::Unsupported => (
            Some(false),
            reason(
                "host_nested_unsupported",
                format!("this host cannot offer {ext} to its guests (see `nestcore check` for the layer below){also}"),
            ),
        ),
        NestedForGuests::Unknown => match cfg.gives {
            Gives::Yes | Gives::FollowsHost => (
                None,
                reason(
                    "host_nested_unknown",
                    format!("whether this host offers {ext} to its guests is not known (see `nestcore check`){also}"),
                ),
            ),
            _ => (None, own()),
        },
        NestedForGuests::Available => match cfg.gives {
            Gives::Yes | Gives::FollowsHost => (Some(true), own()),
            _ => (None, own()),
        },
    }
}

/// The caveats every guest that gets (or will get) the extension carries.
pub(crate) fn vendor_caveats(ctx: &Ctx<'_>) -> Vec<String> {
    match ctx.ext() {
        Some(Extension::Svm) => vec![
            "an AMD (SVM) L1 guest must not be live-migrated or saved while it runs an L2 guest".into(),
        ],
        Some(_) => vec![
            "an Intel (VMX) L1 guest with a running L2 guest migrates only with Linux 5.3+ and QEMU 4.2+ on both hosts".into(),
        ],
        None => Vec::new(),
    }
}

/// The caveat of a guest whose CPU changes while it runs.
pub(crate) fn cold_restart_caveat(name: &str, how: &str) -> String {
    format!("{name} is running: it sees the new CPU only after a full stop and start ({how}); a reboot from inside the guest keeps the old CPU")
}

/// A guest for a definition that could not be read or parsed.
pub(crate) fn broken(
    source: Source,
    name: String,
    path: Option<String>,
    code: &'static str,
    message: String,
) -> Guest {
    Guest {
        source,
        name,
        path,
        id: None,
        scope: None,
        read_from: ReadFrom::File,
        managed_by: None,
        running: None,
        cpu: None,
        gets_extension: None,
        reason: Reason { code, message },
        fix: None,
        caveats: Vec::new(),
    }
}

/// The host view from a report.
pub fn host_view(host: &Host, report: &Report) -> HostView {
    let facts = crate::guest::HostFacts::from(report);
    HostView {
        root: host.root().display().to_string(),
        live: host.is_live(),
        vendor: report.cpu.vendor,
        extension: facts.guest_extension(),
        nested_for_guests: report.verdict.nested_for_guests,
        kvm_usable: report.verdict.kvm_usable,
    }
}

/// Judges every guest defined on `host`, given the host's `report` (from [`crate::check`]).
/// Reads only; virsh runs only through [`Options::virsh`].
pub fn scan(host: &Host, report: &Report, opts: &Options<'_>) -> GuestsReport {
    scan_view(host, host_view(host, report), opts)
}

fn scan_view(host: &Host, view: HostView, opts: &Options<'_>) -> GuestsReport {
    let mut ctx = Ctx {
        host,
        view,
        host_model: None,
        fixes: !opts.judge_only,
    };
    let mut sources = Vec::new();
    let mut guests = Vec::new();
    let (read, mut lv) = libvirt::scan(&mut ctx, opts);
    sources.push(read);
    guests.append(&mut lv);
    let (read, mut nv) = nova::scan(&ctx);
    sources.push(read);
    guests.append(&mut nv);
    let (read, mut pv) = proxmox::scan(&ctx);
    sources.push(read);
    guests.append(&mut pv);
    let summary = count(&guests);
    GuestsReport {
        schema_version: SCHEMA_VERSION,
        nestcore_version: crate::VERSION,
        host: ctx.view,
        sources,
        guests,
        summary,
    }
}

fn count(guests: &[Guest]) -> Counts {
    Counts {
        total: guests.len(),
        gets_extension: guests.iter().filter(|g| g.gets_extension == Some(true)).count(),
        lacks_extension: guests.iter().filter(|g| g.gets_extension == Some(false)).count(),
        unknown: guests.iter().filter(|g| g.gets_extension.is_none()).count(),
        fixable: guests
            .iter()
            .filter(|g| {
                g.fix
                    .as_ref()
                    .is_some_and(|p| p.blockers.is_empty() && !p.is_empty())
            })
            .count(),
    }
}

impl GuestsReport {
    /// 0 when every guest found gets the extension (also when there is none), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.guests.iter().all(|g| g.gets_extension == Some(true)) {
            0
        } else {
            1
        }
    }

    /// The JSON form (pretty-printed).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// What `nestcore guests` prints: one block per guest with its reason, fix and caveats.
    pub fn render(&self) -> String {
        render(self)
    }
}

/// The result of applying one guest's fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// The guest's source.
    pub source: Source,
    /// The guest's name.
    pub name: String,
    /// What apply did, when it succeeded.
    pub report: Option<ApplyReport>,
    /// Why it failed (everything it wrote was restored).
    pub error: Option<String>,
}

/// Applies every guest's fix that has no blocker, one plan per guest (so that one guest's failed
/// `virsh define` restores its file and leaves the others done), through
/// [`crate::plan::apply_batch`]: atomic writes with backups, programs through `exec` (a
/// [`crate::plan::DeferringExecutor`] lists them for a recorded root), and one transaction of
/// the backup store for them all, so that one `nestcore enable --undo --apply` puts every guest
/// back (the guests whose fix failed are not part of it).
pub fn apply(report: &GuestsReport, host: &Host, exec: &dyn Executor) -> Vec<Applied> {
    let todo: Vec<&Guest> = report
        .guests
        .iter()
        .filter(|g| {
            g.fix
                .as_ref()
                .is_some_and(|p| !p.is_empty() && p.blockers.is_empty())
        })
        .collect();
    let plans: Vec<&Plan> = todo.iter().filter_map(|g| g.fix.as_ref()).collect();
    // The transaction holds the guests whose fix changes files; a fix by program alone (Proxmox's
    // `qm set`) leaves nothing in it to undo, so it is not named (its plan says how to go back).
    let names: Vec<String> = todo
        .iter()
        .filter(|g| {
            g.fix
                .as_ref()
                .is_some_and(|p| p.actions.iter().any(|a| a.path().is_some()))
        })
        .map(|g| format!("{} {}", g.source.as_str(), g.name))
        .collect();
    let summary = format!(
        "Fix {} guest{} for nested virtualization (nestcore guests --apply): {}",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    let (results, _) = crate::plan::apply_batch(&summary, &plans, host, exec);
    todo.iter()
        .zip(results)
        .map(|(g, res)| Applied {
            source: g.source,
            name: g.name.clone(),
            error: res.as_ref().err().map(|e| {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(e);
                while let Some(s) = src {
                    msg.push_str(&format!(": {s}"));
                    src = s.source();
                }
                msg
            }),
            report: res.ok(),
        })
        .collect()
}

fn mark(g: &Guest) -> &'static str {
    match (&g.gets_extension, g.reason.code) {
        (_, c) if read_fail_code(c) => "ERR ",
        (Some(true), _) => "YES ",
        (Some(false), _) => "NO  ",
        (None, _) => "??  ",
    }
}

fn read_fail_code(code: &str) -> bool {
    matches!(
        code,
        "unreadable" | "symlink_outside_root" | "too_large" | "not_a_file" | "malformed" | "invalid"
    )
}

fn render(r: &GuestsReport) -> String {
    let mut s = String::new();
    let ext = r.host.extension.map_or("VMX/SVM", Extension::as_str);
    s.push_str(&format!(
        "Host {}: nested virtualization for guests is {} ({ext})\n",
        r.host.root,
        r.host.nested_for_guests.as_str()
    ));
    for src in &r.sources {
        s.push_str(&format!("Read {}: {}", src.source.as_str(), src.read));
        if !src.detail.is_empty() {
            s.push_str(&format!(" ({})", src.detail));
        }
        s.push('\n');
    }
    for g in &r.guests {
        s.push_str(&format!("\n{}{} {}", mark(g), g.source.as_str(), g.name));
        if let Some(p) = &g.path {
            s.push_str(&format!(" ({p})"));
        }
        s.push('\n');
        if let Some(cpu) = &g.cpu {
            s.push_str(&format!("    cpu: {cpu}\n"));
        }
        s.push_str(&format!("    {} [{}]\n", g.reason.message, g.reason.code));
        if let Some(plan) = &g.fix {
            s.push_str("    fix:\n");
            for line in plan.render().lines() {
                if line.is_empty() {
                    s.push('\n');
                } else {
                    s.push_str(&format!("      {line}\n"));
                }
            }
        }
        for c in &g.caveats {
            s.push_str(&format!("    caveat: {c}\n"));
        }
    }
    s.push_str(&format!(
        "\n{} of {} guests will get {ext}",
        r.summary.gets_extension, r.summary.total
    ));
    if r.summary.unknown > 0 {
        s.push_str(&format!(" ({} cannot be told)", r.summary.unknown));
    }
    s.push_str(".\n");
    s
}

/// What `nestcore guests [--json] [--apply]` prints and its exit code: 0 when every guest found
/// gets the extension (after `apply`, as found again), 1 when any does not, 2 when a fix failed
/// to apply.
pub fn guests_cli(
    host: &Host,
    report: &Report,
    opts: &Options<'_>,
    apply_fixes: bool,
    json: bool,
    exec: &dyn Executor,
) -> Result<(String, i32)> {
    let before = scan(host, report, opts);
    let applied = if apply_fixes {
        Some(apply(&before, host, exec))
    } else {
        None
    };
    let after = applied
        .as_ref()
        .filter(|a| !a.is_empty())
        .map(|_| scan(host, report, opts));
    let now = after.as_ref().unwrap_or(&before);
    let failed = applied.iter().flatten().any(|a| a.error.is_some());
    let code = if failed { 2 } else { now.exit_code() };
    let text = if json {
        #[derive(Serialize)]
        struct Output<'a> {
            #[serde(flatten)]
            report: &'a GuestsReport,
            applied: Option<&'a Vec<Applied>>,
            after: Option<&'a GuestsReport>,
            exit_code: i32,
        }
        let v = Output {
            report: &before,
            applied: applied.as_ref(),
            after: after.as_ref().map(|a| a as &GuestsReport),
            exit_code: code,
        };
        serde_json::to_string_pretty(&v).map_err(|e| crate::Error::InvalidInput(e.to_string()))? + "\n"
    } else {
        let mut s = before.render();
        match &applied {
            Some(list) if list.is_empty() => s.push_str("Nothing to apply.\n"),
            Some(list) => {
                s.push_str("\nApplied:\n");
                for a in list {
                    match (&a.report, &a.error) {
                        (Some(r), _) => {
                            for w in &r.written {
                                s.push_str(&format!(
                                    "  {} {}: wrote {}{}\n",
                                    a.source.as_str(),
                                    a.name,
                                    w.path,
                                    w.backup
                                        .as_ref()
                                        .map(|b| format!(" (original saved as {b})"))
                                        .unwrap_or_default()
                                ));
                            }
                            for c in &r.commands {
                                s.push_str(&format!(
                                    "  {} {}: ran `{}` (exit {})\n",
                                    a.source.as_str(),
                                    a.name,
                                    c.command,
                                    c.status
                                ));
                            }
                            for c in &r.deferred {
                                s.push_str(&format!(
                                    "  {} {}: not run (a recorded root): `{c}`: run it in that system\n",
                                    a.source.as_str(),
                                    a.name
                                ));
                            }
                        }
                        (None, Some(e)) => {
                            s.push_str(&format!("  {} {}: FAILED: {e}\n", a.source.as_str(), a.name))
                        }
                        (None, None) => {}
                    }
                }
                if let Some(t) = list
                    .iter()
                    .find_map(|a| a.report.as_ref().and_then(|r| r.transaction.as_ref()))
                {
                    s.push_str(&format!(
                        "  recorded in {t}: `nestcore enable --undo` puts it back\n"
                    ));
                }
                if let Some(a) = &after {
                    s.push_str(&format!(
                        "Now {} of {} guests will get {}.\n",
                        a.summary.gets_extension,
                        a.summary.total,
                        a.host.extension.map_or("VMX/SVM", Extension::as_str)
                    ));
                }
            }
            None if before.summary.fixable > 0 => s.push_str("Nothing changed: run again with --apply.\n"),
            None => {}
        }
        s
    };
    Ok((text, code))
}

/// Whether `host` has any place where guests are defined (three `lstat`s): what `check` pays on
/// a host without guests.
pub fn any_defined(host: &Host) -> bool {
    ["/etc/libvirt/qemu", "/etc/pve/qemu-server", "/etc/nova"]
        .iter()
        .any(|p| host.exists(p))
}

/// `check`'s summary finding ("N of M defined guests will get VMX/SVM"), from the files of the
/// system-wide definitions only (no virsh, no session folders); `None` when no guest is
/// defined.
pub fn summary_finding(host: &Host, view: HostView) -> Option<Finding> {
    if !any_defined(host) {
        return None;
    }
    let opts = Options {
        virsh: None,
        no_session: true,
        judge_only: true,
    };
    let r = scan_view(host, view, &opts);
    if r.guests.is_empty() {
        return None;
    }
    let ext = r.host.extension.map_or("VMX/SVM", Extension::as_str);
    let c = r.summary;
    let mut message = format!(
        "{} of {} defined guests will get {ext}",
        c.gets_extension, c.total
    );
    if c.unknown > 0 {
        message.push_str(&format!(" ({} cannot be told)", c.unknown));
    }
    let evidence = r
        .sources
        .iter()
        .filter(|s| s.read != "none")
        .map(|s| {
            let n = r.guests.iter().filter(|g| g.source == s.source).count();
            Evidence::new(
                s.paths.join(", "),
                format!("{n} {} definition(s)", s.source.as_str()),
            )
        })
        .collect();
    let all = c.gets_extension == c.total;
    Some(Finding {
        code: SUMMARY_CODE,
        level: if all { Level::Pass } else { Level::Warn },
        check: "Checking which defined guests get VMX/SVM",
        message,
        evidence,
        remedy: (!all).then(|| {
            "Run `nestcore guests` for each guest's reason and fix (`nestcore guests --apply` carries the fixes out)".into()
        }),
        // The fix is on this host (its guest definitions), not on the layer below.
        layer: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

/// What a snapshot may keep of a guest definition `check` read: only what the verdict uses. A
/// domain keeps its type, name, `<vcpu>`, `<cpu>` and nova's marker (no UUID, MAC address,
/// disk path or VNC password); a nova file keeps its section headers and the keys nestcore reads
/// (no transport_url or password); a Proxmox VM keeps `name`, `cpu`, `kvm`, the `-cpu` of
/// `args` and its sections (no MAC address, disk or SMBIOS UUID). `None`: not a guest
/// definition, keep as it is.
pub(crate) fn snapshot_redact(path: &str, content: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(content);
    let domain = (path.starts_with("/etc/libvirt/qemu/") || path.contains("/.config/libvirt/qemu/"))
        && path.ends_with(".xml");
    if domain {
        return Some(redact_domain(&text).into_bytes());
    }
    if path.starts_with("/etc/nova/") {
        let mut out = String::new();
        let mut section = String::new();
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                section = t.to_string();
                out.push_str(t);
                out.push('\n');
                continue;
            }
            let key = t.split(['=', ':']).next().unwrap_or("").trim();
            let keep = (section == "[libvirt]"
                && matches!(
                    key,
                    "virt_type" | "cpu_mode" | "cpu_models" | "cpu_model" | "cpu_model_extra_flags"
                ))
                || (section == "[DEFAULT]" && key == "compute_driver");
            if keep && !line.starts_with([' ', '\t']) {
                out.push_str(line);
                out.push('\n');
            }
        }
        return Some(out.into_bytes());
    }
    if path.starts_with("/etc/pve/") && path.contains("/qemu-server/") {
        let mut out = String::new();
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                out.push_str(t);
                out.push('\n');
                continue;
            }
            match t.split_once(':') {
                Some((k @ ("name" | "cpu" | "kvm" | "delete"), v)) => out.push_str(&format!("{k}:{v}\n")),
                Some(("args", v)) => {
                    let mut it = v.split_whitespace();
                    while let Some(a) = it.next() {
                        if a == "-cpu" {
                            if let Some(c) = it.next() {
                                out.push_str(&format!("args: -cpu {c}\n"));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        return Some(out.into_bytes());
    }
    None
}

fn redact_domain(text: &str) -> String {
    use crate::guest::xml;
    let Ok(root) = xml::parse(text, "domain XML") else {
        return String::from("<!-- not well-formed XML: its content is not recorded -->\n");
    };
    let mut out = String::new();
    match root.attr("type") {
        Some(t) => out.push_str(&format!("<{} type='{}'>\n", root.name, xml::escape(t))),
        None => out.push_str(&format!("<{}>\n", root.name)),
    }
    for c in &root.children {
        match c.name.as_str() {
            "name" | "vcpu" | "cpu" => {
                out.push_str("  ");
                out.push_str(&text[c.span.clone()]);
                out.push('\n');
            }
            "metadata" if c.children.iter().any(|m| m.name.ends_with("instance")) => {
                out.push_str("  <uuid>00000000-0000-0000-0000-000000000000</uuid>\n");
                out.push_str("  <metadata>\n    <nova:instance xmlns:nova=\"http://openstack.org/xmlns/libvirt/nova/1.1\"/>\n  </metadata>\n");
            }
            _ => {}
        }
    }
    out.push_str(&format!("</{}>\n", root.name));
    out
}
