//! `plan_nested()`, `plan_undo()`, `Plan.apply()` and `enable()`: turning nested
//! virtualization on or off, and back (nestcore::nested, nestcore::plan, nestcore::backup).
//!
//! A [`Plan`] holds the core plan itself, so that `apply()` carries out exactly what was shown
//! (it re-plans nothing; a file changed since planning is refused by the core), plus its Python
//! view as JSON (the attributes, `to_dict()`, `to_json()`). It pickles as the core plan's JSON and
//! the root, want ("on", "off", or "undo" for an undo plan) and layers it was made for.

use std::path::PathBuf;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use serde_json::{json, Value};

use nestcore::nested::{self, Dialect, Options, Persist, Want};
use nestcore::plan::{self, Action, DeferringExecutor, Executor, SystemExecutor, When};

use crate::errors::to_pyerr;
use crate::value::{self, field, value_class, Bool, Int, Opt, Pair, Shape, Str, Tuple};

value_class! {
    /// One step of a plan: its kind (the core's tag: "write_file", "reload_module", "run"), one
    /// line saying what it does, and for a file the path and the unified diff.
    PlanAction {
        kind: Str,
        description: Str,
        path: Opt<Str>,
        diff: Opt<Str>,
    }
}

value_class! {
    /// Why a plan cannot be applied as it is: a stable code (the check's finding code, such as
    /// "cpu.firmware_disabled", when the check says nesting cannot work here; else the planner's,
    /// such as "plan.modprobe_conflict"), the reason, and what to do about it (None when there is
    /// nothing to suggest). str() gives "reason. Remedy: remedy".
    PlanBlocker {
        code: Str,
        reason: Str,
        remedy: Opt<Str>,
    }
    methods {
        fn __str__(&self) -> String {
            let get = |k: &str| field(&self.v, k).as_str().map(str::to_string);
            let mut s = get("reason").unwrap_or_default();
            if let Some(r) = get("remedy") {
                s.push_str(". Remedy: ");
                s.push_str(&r);
            }
            s
        }
    }
}

value_class! {
    /// What `Plan.apply()` did: files written and removed (with the copies of their originals in
    /// the backup store, /var/lib/nestcore/backup under the root), programs run with their exit
    /// status, commands deferred to the operator (a recorded root), files restored after a
    /// failure, whether the module parameter reads as wanted afterwards (None: nothing to verify,
    /// or deferred), the backup store's manifest of this apply (None when nothing changed, or for
    /// an undo), the apply an undo put back, and whether anything changed.
    ApplyReport {
        written: Tuple<Str>,
        removed: Tuple<Str>,
        backups: Tuple<Str>,
        commands: Tuple<Pair<Str, Int>>,
        deferred: Tuple<Str>,
        rolled_back: Tuple<Str>,
        verified: Opt<Bool>,
        transaction: Opt<Str>,
        undone: Opt<Str>,
        changed: Bool,
    }
}

impl ApplyReport {
    fn from_core(r: &plan::ApplyReport) -> ApplyReport {
        ApplyReport::new(json!({
            "written": r.written.iter().filter(|w| !w.removed).map(|w| &w.path).collect::<Vec<_>>(),
            "removed": r.written.iter().filter(|w| w.removed).map(|w| &w.path).collect::<Vec<_>>(),
            "backups": r.written.iter().filter_map(|w| w.backup.as_ref()).collect::<Vec<_>>(),
            "commands": r.commands.iter().map(|c| json!([c.command.to_string(), c.status])).collect::<Vec<_>>(),
            "deferred": r.deferred.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "rolled_back": r.rolled_back,
            "verified": r.verified,
            "transaction": r.transaction,
            "undone": r.undone,
            "changed": !r.is_noop(),
        }))
    }
}

/// The JSON (serde) string of a core enum value (`When::AfterReboot` -> "after_reboot").
fn tag<T: ::serde::Serialize>(x: &T) -> String {
    serde_json::to_value(x)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn want_name(w: Want) -> String {
    tag(&w)
}

/// The `want` of an undo plan.
const UNDO: &str = "undo";

fn parse_want(want: &str) -> nestcore::Result<Want> {
    match want {
        "on" => Ok(Want::On),
        "off" => Ok(Want::Off),
        other => Err(nestcore::Error::InvalidInput(format!(
            "want {other:?}: expected \"on\" or \"off\""
        ))),
    }
}

fn parse_persist(persist: &[String]) -> nestcore::Result<Persist> {
    let names: Vec<&str> = persist.iter().map(String::as_str).collect();
    Persist::from_names(&names)
}

/// A plan to turn nested virtualization on or off, made by `plan_nested()`, or to put back the
/// last apply, made by `plan_undo()`.
#[pyclass(frozen, module = "nestcore")]
pub(crate) struct Plan {
    core: plan::Plan,
    root: Option<PathBuf>,
    /// "on", "off" or "undo".
    want: String,
    persist: Persist,
    /// The Python view (attributes, `to_dict()`).
    v: Value,
}

/// What a pickled plan carries: root, want, layers, the core plan's JSON.
type PlanState = (Option<String>, String, Vec<&'static str>, String);

impl Plan {
    fn build(core: plan::Plan, root: Option<PathBuf>, want: String, persist: Persist) -> Plan {
        let actions: Vec<Value> = core
            .actions
            .iter()
            .map(|a| {
                let (path, diff) = (a.path().map(str::to_string), a.diff().map(str::to_string));
                json!({
                    "kind": serde_json::to_value(a).ok().and_then(|v| v.get("kind").cloned()).unwrap_or(Value::Null),
                    "description": a.describe(),
                    "path": path,
                    "diff": diff,
                })
            })
            .collect();
        let reboot = core.timeline.iter().any(|(w, _)| *w == When::AfterReboot)
            || core.actions.iter().any(|a| {
                matches!(
                    a,
                    Action::WriteFile {
                        when: When::AfterReboot,
                        ..
                    } | Action::Run {
                        when: When::AfterReboot,
                        ..
                    }
                )
            });
        let v = json!({
            "root": root.as_ref().map(|r| r.to_string_lossy().into_owned()),
            "want": want,
            "persist": persist.names(),
            "summary": core.summary,
            "is_empty": core.is_empty(),
            "reboot_required": reboot,
            "actions": actions,
            "blockers": core.blockers,
            "notes": core.notes,
            "warnings": core.warnings,
            "timeline": core.timeline.iter().map(|(w, t)| json!([tag(w), t])).collect::<Vec<_>>(),
            "undoes": core.undoes,
        });
        Plan {
            core,
            root,
            want,
            persist,
            v,
        }
    }

    fn part<'py, S: Shape>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        S::to_py(py, field(&self.v, key))
    }
}

#[pymethods]
impl Plan {
    /// The recorded root the plan was made for (None: this machine); `apply()` acts on it.
    #[getter]
    fn root<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Opt<Str>>(py, "root")
    }

    /// "on" or "off"; "undo" for a plan made by `plan_undo()`.
    #[getter]
    fn want<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Str>(py, "want")
    }

    /// The layers planned, in the order runtime, modprobe, cmdline.
    #[getter]
    fn persist<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Tuple<Str>>(py, "persist")
    }

    /// One sentence: what the plan achieves, or that nothing needs to change.
    #[getter]
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Str>(py, "summary")
    }

    /// Whether the plan does nothing (the host is already as wanted for the layers asked).
    #[getter]
    fn is_empty<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Bool>(py, "is_empty")
    }

    /// The steps, in the order `apply()` runs them (files first, then programs).
    #[getter]
    fn actions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Tuple<PlanAction>>(py, "actions")
    }

    /// Why the plan cannot be applied as it is (PlanBlocker: code, reason, remedy); `apply()`
    /// refuses while there are any.
    #[getter]
    fn blockers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Tuple<PlanBlocker>>(py, "blockers")
    }

    /// How the planner decided: the module chosen and why, where the kernel command line lives,
    /// layers included because they set the opposite. Information, not warnings.
    #[getter]
    fn notes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Tuple<Str>>(py, "notes")
    }

    /// What deserves attention: conflicts the plan overrides, another layer that will override
    /// the one it writes, blockers forced past.
    #[getter]
    fn warnings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Tuple<Str>>(py, "warnings")
    }

    /// For a plan made by `plan_undo()`: the apply of the backup store it puts back ("0001").
    #[getter]
    fn undoes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Opt<Str>>(py, "undoes")
    }

    /// (when, what): when is "now", "after_reload" or "after_reboot".
    #[getter]
    fn timeline<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Tuple<Pair<Str, Str>>>(py, "timeline")
    }

    /// Whether anything takes effect only after a reboot (the kernel command line, an initramfs).
    #[getter]
    fn reboot_required<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Bool>(py, "reboot_required")
    }

    /// Every file's unified diff, concatenated ("" when the plan writes no file).
    fn diff(&self) -> String {
        self.core.actions.iter().filter_map(Action::diff).collect()
    }

    /// The plan as `nestcore enable` prints it (summary, numbered actions with diffs, timeline,
    /// warnings, blockers).
    fn text(&self) -> String {
        self.core.render()
    }

    /// The plan as plain Python data (the attributes; tuples become lists).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        value::json_to_py(py, &self.v)
    }

    /// `to_dict()` as pretty-printed JSON.
    fn to_json(&self) -> String {
        value::pretty(&self.v)
    }

    /// Carries the plan out on the root it was made for; the only call that changes a host.
    ///
    /// Files are written atomically; what the apply changes is kept in the backup store
    /// (/var/lib/nestcore/backup under the root: the originals and a manifest, which
    /// `plan_undo()` reads); a file that already holds its new content is left alone, one that
    /// changed since planning is refused (plan again). An undo plan marks its apply undone. defer_commands=None is True for a recorded root (programs such as
    /// update-grub or modprobe are listed in `deferred`, not run) and False for this machine (they
    /// run, without a shell). The GIL is released meanwhile.
    ///
    /// Raises NestcoreUnsupported while the plan has blockers, NestcoreApplyError (with
    /// `rolled_back`, the failure as `__cause__`) when a step failed after writing began, an
    /// OSError subclass when a target cannot be read.
    #[pyo3(signature = (defer_commands=None))]
    fn apply(&self, py: Python<'_>, defer_commands: Option<bool>) -> PyResult<ApplyReport> {
        let defer = defer_commands.unwrap_or(self.root.is_some());
        let root = self.root.as_deref();
        let core = &self.core;
        let result = py.detach(move || {
            let host = crate::host::host(root, None)?;
            let exec: &dyn Executor = if defer {
                &DeferringExecutor
            } else {
                &SystemExecutor
            };
            core.apply(&host, exec)
        });
        result
            .map(|r| ApplyReport::from_core(&r))
            .map_err(|e| to_pyerr(py, &e))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let v = &self.v;
        Ok(format!(
            "Plan(root={}, want={}, persist={}, summary={}, is_empty={}, reboot_required={}, actions={}, blockers={}, notes={}, warnings={}, timeline={})",
            Opt::<Str>::repr(py, field(v, "root"))?,
            Str::repr(py, field(v, "want"))?,
            Tuple::<Str>::repr(py, field(v, "persist"))?,
            Str::repr(py, field(v, "summary"))?,
            Bool::repr(py, field(v, "is_empty"))?,
            Bool::repr(py, field(v, "reboot_required"))?,
            Tuple::<PlanAction>::repr(py, field(v, "actions"))?,
            Tuple::<PlanBlocker>::repr(py, field(v, "blockers"))?,
            Tuple::<Str>::repr(py, field(v, "notes"))?,
            Tuple::<Str>::repr(py, field(v, "warnings"))?,
            Tuple::<Pair<Str, Str>>::repr(py, field(v, "timeline"))?,
        ))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(other) = other.cast::<Plan>() else {
            return Ok(py.NotImplemented());
        };
        let o = other.get();
        let equal = self.core == o.core && self.root == o.root && self.v == o.v;
        Ok(pyo3::types::PyBool::new(py, equal).to_owned().into_any().unbind())
    }

    fn __hash__(&self) -> u64 {
        value::hash_value(&self.v)
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, PlanState)> {
        static FROM_JSON: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let f = FROM_JSON.import(py, "nestcore._nestcore", "_plan_from_json")?;
        let core = serde_json::to_string(&self.core).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok((
            f.clone(),
            (
                self.root.as_ref().map(|r| r.to_string_lossy().into_owned()),
                self.want.clone(),
                self.persist.names(),
                core,
            ),
        ))
    }
}

/// Rebuilds a pickled plan.
#[pyfunction]
pub(crate) fn _plan_from_json(
    root: Option<PathBuf>,
    want: &str,
    persist: Vec<String>,
    core: &str,
) -> PyResult<Plan> {
    let bad = |e: String| PyValueError::new_err(format!("Invalid plan: {e}"));
    let want = if want == UNDO {
        UNDO.to_string()
    } else {
        want_name(parse_want(want).map_err(|e| bad(e.to_string()))?)
    };
    let persist = if persist.is_empty() {
        Persist::default()
    } else {
        parse_persist(&persist).map_err(|e| bad(e.to_string()))?
    };
    let core: plan::Plan = serde_json::from_str(core).map_err(|e| bad(e.to_string()))?;
    Ok(Plan::build(core, root, want, persist))
}

/// Plans turning nested virtualization `want` ("on" or "off") for the layers in `persist` (any of
/// "runtime", "modprobe", "cmdline") on this machine (root=None) or a recorded root (with its
/// CPUID dump in cpuid=, for the check). Reads the host only (the GIL is released meanwhile);
/// `Plan.apply()` changes it.
///
/// The plan looks at the whole host: "off" is off in every persistent layer that sets nesting on
/// (the running module keeps it until it loads again unless persist has "runtime"), a layer
/// that overrides the one written is named in the warnings, and "on" where the check says it
/// cannot work here (no VMX/SVM, disabled in the firmware, not passed on by the hypervisor
/// below, a PVM guest) is blocked with the check's reason and remedy; force=True plans it
/// anyway. dialect names whose words the messages use for options ("python": force=True;
/// "cli": --force; "ansible": force: true; "c"; "rust").
///
/// Raises NestcoreInvalidInput (a ValueError) for another want, layer or dialect,
/// NestcoreUnsupported when a runtime reload is impossible (built in, in use),
/// NestcoreParseError for a configuration nestcore cannot edit safely, an OSError subclass when
/// root cannot be read.
#[pyfunction]
#[pyo3(
    signature = (root=None, want="on", persist=vec!["modprobe".to_string()], neutralise_conflicts=false, *, force=false, cpuid=None, dialect="python"),
    text_signature = "(root=None, want='on', persist=['modprobe'], neutralise_conflicts=False, *, force=False, cpuid=None, dialect='python')"
)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_nested(
    py: Python<'_>,
    root: Option<PathBuf>,
    want: &str,
    persist: Vec<String>,
    neutralise_conflicts: bool,
    force: bool,
    cpuid: Option<PathBuf>,
    dialect: &str,
) -> PyResult<Plan> {
    let err = |e: nestcore::Error| to_pyerr(py, &e);
    let want = parse_want(want).map_err(err)?;
    let persist = parse_persist(&persist).map_err(err)?;
    let mut opts = Options::default();
    opts.neutralise_conflicts = neutralise_conflicts;
    opts.force = force;
    opts.dialect = Dialect::from_name(dialect).map_err(err)?;
    let r = root.as_deref();
    let c = cpuid.as_deref();
    let core = py
        .detach(move || {
            let host = crate::host::host(r, c)?;
            nested::plan_with(&host, want, persist, opts)
        })
        .map_err(err)?;
    Ok(Plan::build(core, root, want_name(want), persist))
}

/// The plan that puts back exactly what the newest `Plan.apply()` not yet undone on this
/// machine (root=None) or a recorded root changed, from its backup store
/// (/var/lib/nestcore/backup under the root): files restored byte for byte, files it created
/// removed, modules reloaded with the value before, the boot configuration regenerated. Reads
/// the host only; `Plan.apply()` carries it out and marks that apply undone, so the next
/// plan_undo() puts back the apply before it. No apply recorded (or all undone) gives an empty
/// plan; a file changed since the apply is a blocker.
///
/// Raises NestcoreIOError / NestcoreParseError when the store's manifest cannot be read.
#[pyfunction]
#[pyo3(signature = (root=None), text_signature = "(root=None)")]
pub(crate) fn plan_undo(py: Python<'_>, root: Option<PathBuf>) -> PyResult<Plan> {
    let r = root.as_deref();
    let core = py
        .detach(move || {
            let host = crate::host::host(r, None)?;
            nested::plan_undo(&host)
        })
        .map_err(|e| to_pyerr(py, &e))?;
    Ok(Plan::build(core, root, UNDO.to_string(), Persist::default()))
}

/// What `nestcore enable` prints and its exit status (its words: `--force`): the plan, and with
/// apply=True what was done (programs deferred for a recorded root, run on this machine).
/// undo=True is `nestcore enable --undo`, force=True `--force`, cpuid= `--cpuid`. json=True
/// prints it as `nestcore enable --json` does. The GIL is released meanwhile.
///
/// Raises as plan_nested(), plan_undo() and Plan.apply().
#[pyfunction]
#[pyo3(
    signature = (root=None, off=false, persist=vec!["modprobe".to_string()], apply=false, neutralise_conflicts=false, *, json=false, force=false, undo=false, cpuid=None),
    text_signature = "(root=None, off=False, persist=['modprobe'], apply=False, neutralise_conflicts=False, *, json=False, force=False, undo=False, cpuid=None)"
)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn enable(
    py: Python<'_>,
    root: Option<PathBuf>,
    off: bool,
    persist: Vec<String>,
    apply: bool,
    neutralise_conflicts: bool,
    json: bool,
    force: bool,
    undo: bool,
    cpuid: Option<PathBuf>,
) -> PyResult<(String, i32)> {
    let mut opts = Options::default();
    opts.neutralise_conflicts = neutralise_conflicts;
    opts.force = force;
    opts.dialect = Dialect::Cli;
    let result = py.detach(move || {
        let host = crate::host::host(root.as_deref(), cpuid.as_deref())?;
        let names: Vec<&str> = persist.iter().map(String::as_str).collect();
        let exec: &dyn Executor = if host.is_live() {
            &SystemExecutor
        } else {
            &DeferringExecutor
        };
        if undo {
            nested::undo_cli(&host, apply, json, exec)
        } else {
            nested::enable_cli_with(&host, off, &names, apply, json, opts, exec)
        }
    });
    result.map_err(|e| to_pyerr(py, &e))
}
