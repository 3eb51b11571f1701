//! nestcore errors as Python exceptions.
//!
//! The exception classes live in Python (`nestcore/_errors.py`) so that they can also subclass the
//! built-ins (FileNotFoundError, ValueError, ...). This is the only place where a Rust error
//! becomes a Python one: it hands the kind (the JSON name of `ErrorKind`, or `command_failed` /
//! `apply` for the two errors of applying a plan), the message, the OS details and the fields of
//! those two errors to `nestcore._errors._from_native`, whose table picks the class.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};

/// The Python exception for `e`.
pub(crate) fn to_pyerr(py: Python<'_>, e: &nestcore::Error) -> PyErr {
    match build(py, e) {
        Ok(err) | Err(err) => err,
    }
}

fn build(py: Python<'_>, e: &nestcore::Error) -> PyResult<PyErr> {
    static FROM_NATIVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    // The errors of applying a plan carry fields of their own; every other kind is the JSON name
    // of `ErrorKind`.
    let extra = PyDict::new(py);
    let mut cause = None;
    let kind = match e {
        nestcore::Error::CommandFailed {
            command,
            status,
            stderr,
        } => {
            extra.set_item("command", command)?;
            extra.set_item("status", status)?;
            extra.set_item("stderr", stderr)?;
            "command_failed".to_string()
        }
        nestcore::Error::Apply {
            step,
            rolled_back,
            not_restored,
            kept,
            reran,
            source,
        } => {
            extra.set_item("step", step)?;
            extra.set_item("rolled_back", PyTuple::new(py, rolled_back)?)?;
            extra.set_item("not_restored", PyTuple::new(py, not_restored)?)?;
            extra.set_item("kept", kept.as_deref())?;
            extra.set_item("reran", PyTuple::new(py, reran)?)?;
            // `raise NestcoreApplyError from <the failure>`: the cause keeps its own class
            // (a NestcoreCommandError, a PermissionError, ...).
            cause = Some(to_pyerr(py, source));
            "apply".to_string()
        }
        _ => serde_json::to_value(e.kind())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
    };
    // The message as the CLI prints it: the error, then its sources.
    let mut message = e.to_string();
    let mut src = std::error::Error::source(e);
    let mut strerror = None;
    while let Some(s) = src {
        message.push_str(&format!(": {s}"));
        if strerror.is_none() {
            // "No such file or directory (os error 2)" -> "No such file or directory", as
            // Python's own OSError says it.
            let text = s.to_string();
            strerror = Some(match text.rfind(" (os error ") {
                Some(i) => text[..i].to_string(),
                None => text,
            });
        }
        src = s.source();
    }
    let filename = e.path().map(|p| p.as_os_str().to_os_string());
    let exc = FROM_NATIVE
        .import(py, "nestcore._errors", "_from_native")?
        .call1((kind, message, e.raw_os_error(), strerror, filename, extra))?;
    let err = PyErr::from_value(exc);
    if cause.is_some() {
        err.set_cause(py, cause);
    }
    Ok(err)
}
