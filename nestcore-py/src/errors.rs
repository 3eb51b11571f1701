//! nestcore errors as Python exceptions.
//!
//! The exception classes live in Python (`nestcore/_errors.py`) so that they can also subclass the
//! built-ins (FileNotFoundError, ValueError, ...). This is the only place where a Rust error
//! becomes a Python one: it hands the kind (the JSON name of `ErrorKind`), the message and the OS
//! details to `nestcore._errors._from_native`, whose table picks the class.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// The Python exception for `e`.
pub(crate) fn to_pyerr(py: Python<'_>, e: &nestcore::Error) -> PyErr {
    static FROM_NATIVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let kind = serde_json::to_value(e.kind())
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
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
    let made = FROM_NATIVE
        .import(py, "nestcore._errors", "_from_native")
        .and_then(|f| f.call1((kind, message, e.raw_os_error(), strerror, filename)));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}
