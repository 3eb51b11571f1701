//! `guests()` and `guests_cli()`: which of a host's guests (libvirt domains, nova instances,
//! Proxmox VMs) will get VMX/SVM, why, and the fix for each; with apply=True, the fixes carried
//! out (nestcore::guests).
//!
//! The result mirrors `nestcore guests --json` (schema/guests.schema.json) attribute for
//! attribute, except that a fix's actions are the `GuestAction` view (kind, one line saying what
//! it does, path and diff for a file, reason, when) rather than the files' whole old and new text.

use std::path::PathBuf;

use pyo3::prelude::*;
use serde_json::{json, Value};

use nestcore::guests::{guests_cli as core_guests_cli, Options};
use nestcore::plan::{Action, DeferringExecutor, Executor, Plan, SystemExecutor};

use crate::errors::to_pyerr;
use crate::nested::ApplyReport;
use crate::value::{value_class, Bool, Int, Opt, Pair, Str, Tuple};

value_class! {
    /// The host as the guests' verdicts see it: its verdict (nested_for_guests), vendor and the
    /// extension guests need ("vmx", "svm", None when the vendor is not known).
    GuestsHost {
        root: Str,
        live: Bool,
        vendor: Str,
        extension: Opt<Str>,
        nested_for_guests: Str,
        kvm_usable: Opt<Bool>,
    }
}

value_class! {
    /// How one source ("libvirt", "nova", "proxmox") was read: "files", "virsh" or "none".
    GuestSource {
        source: Str,
        read: Str,
        paths: Tuple<Str>,
        detail: Str,
    }
}

value_class! {
    /// Why a guest gets the extension or not: a stable code and one sentence.
    GuestReason {
        code: Str,
        message: Str,
    }
}

value_class! {
    /// One step of a guest's fix: kind ("write_file", "run"), what it does, the file and its
    /// unified diff, why, and when it takes effect.
    GuestAction {
        kind: Str,
        description: Str,
        path: Opt<Str>,
        diff: Opt<Str>,
        reason: Str,
        when: Str,
    }
}

value_class! {
    /// A guest's fix: the plan's summary, actions, (when, what) timeline, warnings and blockers
    /// (a fix with blockers is not applied).
    GuestFix {
        summary: Str,
        actions: Tuple<GuestAction>,
        timeline: Tuple<Pair<Str, Str>>,
        warnings: Tuple<Str>,
        blockers: Tuple<crate::nested::PlanBlocker>,
    }
}

value_class! {
    /// One guest definition and its verdict: gets_extension is True, False, or None when it
    /// cannot be told; fix is None when no change of the guest's configuration is needed.
    Guest {
        source: Str,
        name: Str,
        path: Opt<Str>,
        id: Opt<Str>,
        scope: Opt<Str>,
        read_from: Str,
        managed_by: Opt<Str>,
        running: Opt<Bool>,
        cpu: Opt<Str>,
        gets_extension: Opt<Bool>,
        reason: GuestReason,
        fix: Opt<GuestFix>,
        caveats: Tuple<Str>,
    }
}

value_class! {
    /// Counts over the guests.
    GuestCounts {
        total: Int,
        gets_extension: Int,
        lacks_extension: Int,
        unknown: Int,
        fixable: Int,
    }
}

value_class! {
    /// What applying one guest's fix did (report), or why it failed (error; what it wrote was
    /// restored).
    GuestApplied {
        source: Str,
        name: Str,
        report: Opt<ApplyReport>,
        error: Opt<Str>,
    }
}

value_class! {
    /// Every guest of a host, judged (`nestcore guests --json`): with apply=True also what each
    /// fix did (applied) and the guests found again (after). exit_code is what `nestcore
    /// guests` exits with.
    Guests {
        schema_version: Int,
        nestcore_version: Str,
        host: GuestsHost,
        sources: Tuple<GuestSource>,
        guests: Tuple<Guest>,
        summary: GuestCounts,
        applied: Opt<Tuple<GuestApplied>>,
        after: Opt<Guests>,
        exit_code: Int,
    }
}

/// The Python view of a core JSON plan (a guest's fix).
fn fix_view(v: &Value) -> Value {
    let Ok(plan) = serde_json::from_value::<Plan>(v.clone()) else {
        return Value::Null;
    };
    let actions: Vec<Value> = plan
        .actions
        .iter()
        .map(|a| {
            let (path, diff, reason, when) = match a {
                Action::WriteFile {
                    path,
                    diff,
                    reason,
                    when,
                    ..
                } => (Some(path.clone()), Some(diff.clone()), reason.clone(), tag(when)),
                Action::Run { reason, when, .. } => (None, None, reason.clone(), tag(when)),
                Action::ReloadModule { reason, .. } => (None, None, reason.clone(), "now".to_string()),
                _ => (None, None, String::new(), String::new()),
            };
            json!({
                "kind": serde_json::to_value(a).ok().and_then(|v| v.get("kind").cloned()).unwrap_or(Value::Null),
                "description": a.describe(),
                "path": path,
                "diff": diff,
                "reason": reason,
                "when": when,
            })
        })
        .collect();
    json!({
        "summary": plan.summary,
        "actions": actions,
        "timeline": plan.timeline.iter().map(|(w, t)| json!([tag(w), t])).collect::<Vec<_>>(),
        "warnings": plan.warnings,
        "blockers": plan.blockers,
    })
}

/// The serde string of a core enum value (`When::AfterRestart` -> "after_restart").
fn tag<T: serde::Serialize>(x: &T) -> String {
    serde_json::to_value(x)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The Python view of `nestcore guests --json` output (or of its `after`).
fn view(mut v: Value) -> Value {
    if let Some(list) = v.get_mut("guests").and_then(Value::as_array_mut) {
        for g in list {
            let fix = g.get("fix").cloned().unwrap_or(Value::Null);
            g["fix"] = if fix.is_null() {
                Value::Null
            } else {
                fix_view(&fix)
            };
        }
    }
    if let Some(list) = v.get_mut("applied").and_then(Value::as_array_mut) {
        for a in list {
            let report = a.get("report").cloned().unwrap_or(Value::Null);
            a["report"] = match serde_json::from_value::<ApplyWire>(report) {
                Ok(r) => json!({
                    "written": r.written.iter().map(|w| &w.path).collect::<Vec<_>>(),
                    "backups": r.written.iter().filter_map(|w| w.backup.as_ref()).collect::<Vec<_>>(),
                    "commands": r.commands.iter().map(|c| json!([c.command.to_string(), c.status])).collect::<Vec<_>>(),
                    "deferred": r.deferred.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "rolled_back": r.rolled_back,
                    "verified": r.verified,
                    "changed": !r.written.is_empty() || !r.commands.is_empty(),
                }),
                Err(_) => Value::Null,
            };
        }
    }
    if let Some(after) = v.get_mut("after") {
        if !after.is_null() {
            let a = std::mem::take(after);
            let mut a = view(a);
            let code = if a["guests"]
                .as_array()
                .is_some_and(|l| l.iter().all(|g| g["gets_extension"] == true))
            {
                0
            } else {
                1
            };
            a["applied"] = Value::Null;
            a["after"] = Value::Null;
            a["exit_code"] = code.into();
            *after = a;
        }
    }
    v
}

/// The core's ApplyReport as it comes out in JSON.
#[derive(serde::Deserialize)]
struct ApplyWire {
    written: Vec<WrittenWire>,
    commands: Vec<nestcore::plan::CommandRun>,
    deferred: Vec<nestcore::plan::Command>,
    rolled_back: Vec<String>,
    verified: Option<bool>,
}

#[derive(serde::Deserialize)]
struct WrittenWire {
    path: String,
    backup: Option<String>,
}

/// The core run shared by `guests()` and `guests_cli()`.
fn run(
    root: Option<PathBuf>,
    cpuid: Option<PathBuf>,
    apply: bool,
    virsh: Option<bool>,
    defer_commands: Option<bool>,
    json: bool,
) -> nestcore::Result<(String, i32)> {
    let host = crate::host::host(root.as_deref(), cpuid.as_deref())?;
    let report = nestcore::check(&host);
    let opts = if virsh.unwrap_or(host.is_live()) {
        Options::with_virsh(&SystemExecutor)
    } else {
        Options::files()
    };
    let exec: &dyn Executor = if defer_commands.unwrap_or(!host.is_live()) {
        &DeferringExecutor
    } else {
        &SystemExecutor
    };
    core_guests_cli(&host, &report, &opts, apply, json, exec)
}

/// Every guest defined on this machine (root=None) or a recorded one, judged against the host's
/// own verdict, with the fix for each. virsh=None asks libvirt through virsh on this machine
/// only; apply=True carries the fixes out (atomic writes with backups) and finds the guests
/// again; defer_commands=None lists programs (virsh define, qm set, the nova-compute restart)
/// for a recorded root and runs them on this machine. Nothing changes without apply=True. The
/// GIL is released meanwhile.
///
/// Raises an OSError subclass when root or cpuid cannot be read, NestcoreParseError for a CPUID
/// dump that is not one. A guest definition that cannot be read is a guest with its reason, not
/// an exception.
#[pyfunction]
#[pyo3(
    signature = (root=None, cpuid=None, *, apply=false, virsh=None, defer_commands=None),
    text_signature = "(root=None, cpuid=None, *, apply=False, virsh=None, defer_commands=None)"
)]
pub(crate) fn guests(
    py: Python<'_>,
    root: Option<PathBuf>,
    cpuid: Option<PathBuf>,
    apply: bool,
    virsh: Option<bool>,
    defer_commands: Option<bool>,
) -> PyResult<Guests> {
    let (text, _) = py
        .detach(move || run(root, cpuid, apply, virsh, defer_commands, true))
        .map_err(|e| to_pyerr(py, &e))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    Ok(Guests::new(view(v)))
}

/// What `nestcore guests [--apply] [--json]` prints and its exit status (0: every guest found
/// gets the extension; 1: not; 2: a fix failed to apply), for root=None (this machine) or a
/// recorded root. The GIL is released meanwhile. Raises as guests().
#[pyfunction]
#[pyo3(
    signature = (root=None, cpuid=None, apply=false, *, json=false),
    text_signature = "(root=None, cpuid=None, apply=False, *, json=False)"
)]
pub(crate) fn guests_cli(
    py: Python<'_>,
    root: Option<PathBuf>,
    cpuid: Option<PathBuf>,
    apply: bool,
    json: bool,
) -> PyResult<(String, i32)> {
    py.detach(move || run(root, cpuid, apply, None, None, json))
        .map_err(|e| to_pyerr(py, &e))
}
