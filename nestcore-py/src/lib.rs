//! Python bindings for nestcore: the native module `nestcore._nestcore`, re-exported by the Python
//! package `nestcore` (nestcore-py/python/nestcore), which also defines the exceptions.
//!
//! Layout, so that later APIs are added the same way:
//! - `value`: the frozen result classes over the JSON contract (`value_class!`), with
//!   `to_dict()`, `to_json()`, equality, hashing, pickling and `__repr__`;
//! - `host`: the `root=` / `cpuid=` arguments as a `nestcore::Host`;
//! - `errors`: the one conversion of `nestcore::Error` into the Python exceptions;
//! - one module per API (`report` for `check()`, `snapshot`, `nested` for `plan_nested()`,
//!   `Plan.apply()` and `enable()`, `guest` for the guest CPU configuration, `guests` for
//!   `guests()`, `kargs` for kernel arguments), each releasing the GIL around the
//!   host I/O and registered in `_nestcore` below.
//!
//! A new API (say `nested_plan()` over `nestcore::nested`) is a module with its `value_class!`
//! types and a `#[pyfunction]`, added to `_nestcore` and to `from_json` (pickling), to
//! `_nestcore.pyi` and to `__init__.py`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

mod errors;
mod guest;
mod guests;
mod host;
mod kargs;
mod nested;
mod report;
mod snapshot;
mod value;

use value::Shape;

/// Rebuilds a pickled result object from its class name and JSON (see `value_class!`).
#[pyfunction]
fn _from_json<'py>(py: Python<'py>, kind: &str, json: &str) -> PyResult<Bound<'py, PyAny>> {
    macro_rules! classes {
        ($($name:ident => $ty:ty),* $(,)?) => {
            match kind {
                $(stringify!($name) => {
                    let v = value::parse_checked::<$ty>(json, stringify!($name))?;
                    <$ty>::to_py(py, &v)
                })*
                _ => Err(PyValueError::new_err(format!("Unknown nestcore class {kind:?}"))),
            }
        };
    }
    use report::*;
    classes!(
        Evidence => Evidence,
        HostInfo => HostInfo,
        SvmFeatures => SvmFeatures,
        CpuReport => CpuReport,
        Signature => Signature,
        Dmi => Dmi,
        XenInfo => XenInfo,
        VirtReport => VirtReport,
        Capabilities => Capabilities,
        AccessReport => AccessReport,
        DeviceReport => DeviceReport,
        ModuleReport => ModuleReport,
        ProbeReport => ProbeReport,
        KvmReport => KvmReport,
        VmmReadiness => VmmReadiness,
        VmmReport => VmmReport,
        CmdlineParam => CmdlineParam,
        CmdlineReport => CmdlineReport,
        Finding => Finding,
        Verdict => Verdict,
        Snapshot => snapshot::Snapshot,
        PlanAction => nested::PlanAction,
        PlanBlocker => nested::PlanBlocker,
        ApplyReport => nested::ApplyReport,
        Recommendation => guest::Recommendation,
        Guests => guests::Guests,
        Guest => guests::Guest,
        GuestsHost => guests::GuestsHost,
        GuestSource => guests::GuestSource,
        GuestReason => guests::GuestReason,
        GuestAction => guests::GuestAction,
        GuestFix => guests::GuestFix,
        GuestCounts => guests::GuestCounts,
        GuestApplied => guests::GuestApplied,
    )
}

/// The native module `nestcore._nestcore`.
/// Runs the `nestcore` command with `argv` (without the program name) and returns its exit
/// status: `python -m nestcore` is the same program as the `nestcore` binary, byte for byte, with
/// every subcommand. It writes to the process's standard output and error (file descriptors 1
/// and 2, not `sys.stdout`) and releases the GIL meanwhile.
#[pyfunction]
fn _main(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> u8 {
    let args = std::iter::once(std::ffi::OsString::from("python -m nestcore")).chain(argv);
    py.detach(move || nestcore::cli::main(args))
}

#[pymodule]
fn _nestcore(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", nestcore::VERSION)?;
    m.add("SCHEMA_VERSION", nestcore::report::SCHEMA_VERSION)?;
    m.add_function(wrap_pyfunction!(report::check, m)?)?;
    m.add_function(wrap_pyfunction!(snapshot::snapshot, m)?)?;
    m.add_function(wrap_pyfunction!(_from_json, m)?)?;
    m.add_function(wrap_pyfunction!(_main, m)?)?;
    m.add_function(wrap_pyfunction!(report::_report_from_json, m)?)?;
    m.add_class::<report::Report>()?;
    m.add_class::<report::HostInfo>()?;
    m.add_class::<report::CpuReport>()?;
    m.add_class::<report::SvmFeatures>()?;
    m.add_class::<report::VirtReport>()?;
    m.add_class::<report::Signature>()?;
    m.add_class::<report::Dmi>()?;
    m.add_class::<report::XenInfo>()?;
    m.add_class::<report::KvmReport>()?;
    m.add_class::<report::DeviceReport>()?;
    m.add_class::<report::AccessReport>()?;
    m.add_class::<report::Capabilities>()?;
    m.add_class::<report::ModuleReport>()?;
    m.add_class::<report::ProbeReport>()?;
    m.add_class::<report::VmmReport>()?;
    m.add_class::<report::VmmReadiness>()?;
    m.add_class::<report::CmdlineReport>()?;
    m.add_class::<report::CmdlineParam>()?;
    m.add_class::<report::Verdict>()?;
    m.add_class::<report::Finding>()?;
    m.add_class::<report::Evidence>()?;
    m.add_class::<snapshot::Snapshot>()?;
    m.add_function(wrap_pyfunction!(nested::plan_nested, m)?)?;
    m.add_function(wrap_pyfunction!(nested::plan_undo, m)?)?;
    m.add_function(wrap_pyfunction!(nested::enable, m)?)?;
    m.add_function(wrap_pyfunction!(nested::_plan_from_json, m)?)?;
    m.add_class::<nested::Plan>()?;
    m.add_class::<nested::PlanAction>()?;
    m.add_class::<nested::PlanBlocker>()?;
    m.add_class::<nested::ApplyReport>()?;
    m.add_function(wrap_pyfunction!(guest::guest_cpu, m)?)?;
    m.add_function(wrap_pyfunction!(guest::ensure_nested, m)?)?;
    m.add_function(wrap_pyfunction!(guest::recommend, m)?)?;
    m.add_class::<guest::Recommendation>()?;
    m.add_function(wrap_pyfunction!(guests::guests, m)?)?;
    m.add_function(wrap_pyfunction!(guests::guests_cli, m)?)?;
    m.add_class::<guests::Guests>()?;
    m.add_class::<guests::Guest>()?;
    m.add_class::<guests::GuestsHost>()?;
    m.add_class::<guests::GuestSource>()?;
    m.add_class::<guests::GuestReason>()?;
    m.add_class::<guests::GuestAction>()?;
    m.add_class::<guests::GuestFix>()?;
    m.add_class::<guests::GuestCounts>()?;
    m.add_class::<guests::GuestApplied>()?;
    m.add_function(wrap_pyfunction!(kargs::kargs_edit, m)?)?;
    m.add_function(wrap_pyfunction!(kargs::cmdline_edit, m)?)?;
    m.add_function(wrap_pyfunction!(kargs::parse_cmdline, m)?)?;
    Ok(())
}
