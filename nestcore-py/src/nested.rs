//! `plan_nested()`, `Plan.apply()` and `enable()`: turning nested virtualization on or off
//! (nestcore::nested and nestcore::plan).
//!
//! A [`Plan`] holds the core plan itself, so that `apply()` carries out exactly what was shown
//! (it re-plans nothing; a file changed since planning is refused by the core), plus its Python
//! view as JSON (the attributes, `to_dict()`, `to_json()`). It pickles as the core plan's JSON and
//! the root, want and layers it was made for.

use std::path::PathBuf;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use serde_json::{json, Value};

use nestcore::nested::{self, Options, Persist, Want};
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
    /// What `Plan.apply()` did: files written (and the backups of their originals), programs run
    /// with their exit status, commands deferred to the operator (a recorded root), files restored
    /// after a failure, whether the module parameter reads as wanted afterwards (None: nothing to
    /// verify, or deferred), and whether anything changed.
    ApplyReport {
        written: Tuple<Str>,
        backups: Tuple<Str>,
        commands: Tuple<Pair<Str, Int>>,
        deferred: Tuple<Str>,
        rolled_back: Tuple<Str>,
        verified: Opt<Bool>,
        changed: Bool,
    }
}

impl ApplyReport {
    fn from_core(r: &plan::ApplyReport) -> ApplyReport {
        ApplyReport::new(json!({
            "written": r.written.iter().map(|w| &w.path).collect::<Vec<_>>(),
            "backups": r.written.iter().filter_map(|w| w.backup.as_ref()).collect::<Vec<_>>(),
            "commands": r.commands.iter().map(|c| json!([c.command.to_string(), c.status])).collect::<Vec<_>>(),
            "deferred": r.deferred.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "rolled_back": r.rolled_back,
            "verified": r.verified,
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

fn persist_names(p: Persist) -> Vec<&'static str> {
    [
        (p.runtime, "runtime"),
        (p.modprobe, "modprobe"),
        (p.cmdline, "cmdline"),
    ]
    .into_iter()
    .filter_map(|(on, n)| on.then_some(n))
    .collect()
}

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

/// A plan to turn nested virtualization on or off, made by `plan_nested()`.
#[pyclass(frozen, module = "nestcore")]
pub(crate) struct Plan {
    core: plan::Plan,
    root: Option<PathBuf>,
    want: Want,
    persist: Persist,
    /// The Python view (attributes, `to_dict()`).
    v: Value,
}

/// What a pickled plan carries: root, want, layers, the core plan's JSON.
type PlanState = (Option<String>, String, Vec<&'static str>, String);

impl Plan {
    fn build(core: plan::Plan, root: Option<PathBuf>, want: Want, persist: Persist) -> Plan {
        let actions: Vec<Value> = core
            .actions
            .iter()
            .map(|a| {
                let (path, diff) = match a {
                    Action::WriteFile { path, diff, .. } => (Some(path.clone()), Some(diff.clone())),
                    _ => (None, None),
                };
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
            "want": want_name(want),
            "persist": persist_names(persist),
            "summary": core.summary,
            "is_empty": core.is_empty(),
            "reboot_required": reboot,
            "actions": actions,
            "blockers": core.blockers,
            "warnings": core.warnings,
            "timeline": core.timeline.iter().map(|(w, t)| json!([tag(w), t])).collect::<Vec<_>>(),
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

    /// "on" or "off".
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

    /// Why the plan cannot be applied as it is; `apply()` refuses while there are any.
    #[getter]
    fn blockers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Tuple<Str>>(py, "blockers")
    }

    /// What the planner noticed (the module chosen, conflicts, where the command line lives).
    #[getter]
    fn warnings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Tuple<Str>>(py, "warnings")
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
        self.core
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::WriteFile { diff, .. } => Some(diff.as_str()),
                _ => None,
            })
            .collect()
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
    /// Files are written atomically, each original saved once as `<file>.nestcore-bak`; a file
    /// that already holds its new content is left alone, one that changed since planning is
    /// refused (plan again). defer_commands=None is True for a recorded root (programs such as
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
            "Plan(root={}, want={}, persist={}, summary={}, is_empty={}, reboot_required={}, actions={}, blockers={}, warnings={}, timeline={})",
            Opt::<Str>::repr(py, field(v, "root"))?,
            Str::repr(py, field(v, "want"))?,
            Tuple::<Str>::repr(py, field(v, "persist"))?,
            Str::repr(py, field(v, "summary"))?,
            Bool::repr(py, field(v, "is_empty"))?,
            Bool::repr(py, field(v, "reboot_required"))?,
            Tuple::<PlanAction>::repr(py, field(v, "actions"))?,
            Tuple::<Str>::repr(py, field(v, "blockers"))?,
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
                want_name(self.want),
                persist_names(self.persist),
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
    let want = parse_want(want).map_err(|e| bad(e.to_string()))?;
    let persist = parse_persist(&persist).map_err(|e| bad(e.to_string()))?;
    let core: plan::Plan = serde_json::from_str(core).map_err(|e| bad(e.to_string()))?;
    Ok(Plan::build(core, root, want, persist))
}

/// Plans turning nested virtualization `want` ("on" or "off") for the layers in `persist` (any of
/// "runtime", "modprobe", "cmdline") on this machine (root=None) or a recorded root. Reads the
/// host only (the GIL is released meanwhile); `Plan.apply()` changes it.
///
/// Raises NestcoreInvalidInput (a ValueError) for another want or layer, NestcoreUnsupported when
/// the vendor module cannot be told or a runtime reload is impossible (built in, in use),
/// NestcoreParseError for a configuration nestcore cannot edit safely, an OSError subclass when
/// root cannot be read.
#[pyfunction]
#[pyo3(
    signature = (root=None, want="on", persist=vec!["modprobe".to_string()], neutralise_conflicts=false),
    text_signature = "(root=None, want='on', persist=['modprobe'], neutralise_conflicts=False)"
)]
pub(crate) fn plan_nested(
    py: Python<'_>,
    root: Option<PathBuf>,
    want: &str,
    persist: Vec<String>,
    neutralise_conflicts: bool,
) -> PyResult<Plan> {
    let err = |e: nestcore::Error| to_pyerr(py, &e);
    let want = parse_want(want).map_err(err)?;
    let persist = parse_persist(&persist).map_err(err)?;
    let mut opts = Options::default();
    opts.neutralise_conflicts = neutralise_conflicts;
    let r = root.as_deref();
    let core = py
        .detach(move || {
            let host = crate::host::host(r, None)?;
            nested::plan_with(&host, want, persist, opts)
        })
        .map_err(err)?;
    Ok(Plan::build(core, root, want, persist))
}

/// What `nestcore enable` prints and its exit status: the plan, and with apply=True what was
/// done (programs deferred for a recorded root, run on this machine). json=True prints it as
/// `nestcore enable --json` does. The GIL is released meanwhile.
///
/// Raises as plan_nested() and Plan.apply().
#[pyfunction]
#[pyo3(
    signature = (root=None, off=false, persist=vec!["modprobe".to_string()], apply=false, neutralise_conflicts=false, *, json=false),
    text_signature = "(root=None, off=False, persist=['modprobe'], apply=False, neutralise_conflicts=False, *, json=False)"
)]
pub(crate) fn enable(
    py: Python<'_>,
    root: Option<PathBuf>,
    off: bool,
    persist: Vec<String>,
    apply: bool,
    neutralise_conflicts: bool,
    json: bool,
) -> PyResult<(String, i32)> {
    let mut opts = Options::default();
    opts.neutralise_conflicts = neutralise_conflicts;
    let result = py.detach(move || {
        let host = crate::host::host(root.as_deref(), None)?;
        let names: Vec<&str> = persist.iter().map(String::as_str).collect();
        let exec: &dyn Executor = if host.is_live() {
            &SystemExecutor
        } else {
            &DeferringExecutor
        };
        nested::enable_cli_with(&host, off, &names, apply, json, opts, exec)
    });
    result.map_err(|e| to_pyerr(py, &e))
}
