//! Python bindings for nestcore. Filled in by the Python issue (pyo3 + maturin).

/// Version of the nestcore core these bindings wrap.
pub fn core_version() -> &'static str {
    nestcore::VERSION
}
