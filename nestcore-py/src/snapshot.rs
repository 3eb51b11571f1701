//! `snapshot(dir)`: record the live host into a folder.

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::value::{value_class, List, Opt, Str};

value_class! {
    /// What `snapshot()` wrote: the folder, the host's files recorded (as the host sees them),
    /// the CPUID dump, and every file written into the folder (markers, dump and report included).
    Snapshot {
        dir: Str,
        files: List<Str>,
        cpuid: Opt<Str>,
        written: List<Str>,
    }
}

/// Records this host's relevant files and CPUID into dir (created if missing; must be empty),
/// without serial numbers, UUIDs or MAC addresses, and returns a Snapshot. Then
/// check(snap.dir, snap.cpuid) reproduces this host's answers (except what only ioctls tell).
///
/// Raises NestcoreInvalidInput (a ValueError) when dir is not empty, an OSError subclass when it
/// cannot be written.
#[pyfunction]
pub(crate) fn snapshot(py: Python<'_>, dir: PathBuf) -> PyResult<Snapshot> {
    let result = py.detach(move || nestcore::snapshot::snapshot(&dir));
    let s = result.map_err(|e| crate::errors::to_pyerr(py, &e))?;
    let v = serde_json::to_value(&s).map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    Ok(Snapshot::new(v))
}
