//! `nestcore_report`: running the check, and the report's answers as JSON, text and typed values.

use std::ffi::{c_char, c_int};

use nestcore::cpu::Extension;
use nestcore::kvm::{DeviceState, Tri};
use nestcore::report::{Finding, Level, NestedForGuests};
use nestcore::{CheckOptions, Report};

use crate::args::{self, Out};
use crate::host::nestcore_host;
use crate::status::{call, guard, nestcore_status, FfiError, FfiResult};

/// The report of one check: every answer with its evidence, the verdict and its findings. Made by
/// `nestcore_check()`, released by `nestcore_report_free()`.
///
/// Immutable: any number of threads may read one report at the same time, as long as none of them
/// frees it meanwhile. It does not borrow the host it was made from.
pub struct nestcore_report {
    pub(crate) report: Report,
}

/// The hardware virtualization extension (`cpu.extension` in the JSON report).
/// New values may be added; treat an unknown value like NESTCORE_EXTENSION_UNKNOWN.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nestcore_extension {
    /// Not known (no CPUID and no flags, or not x86).
    Unknown = 0,
    /// Intel VT-x (and Zhaoxin/Centaur).
    Vmx = 1,
    /// AMD-V (and Hygon).
    Svm = 2,
    /// The CPU, as this host sees it, has neither.
    None = 3,
}

/// A yes/no answer that can be unknown (a JSON `bool | null`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nestcore_answer {
    /// Not enough evidence (JSON null).
    Unknown = 0,
    /// No (JSON false).
    No = 1,
    /// Yes (JSON true).
    Yes = 2,
}

/// A setting that can be on, off or unknown (for example the vendor module's `nested` parameter,
/// `kvm.nested` in the JSON report).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nestcore_setting {
    /// Not known (module not loaded, parameter absent).
    Unknown = 0,
    /// Off.
    Disabled = 1,
    /// On.
    Enabled = 2,
}

/// Can this host's guests get VMX/SVM (`verdict.nested_for_guests` in the JSON report)?
/// New values may be added; treat an unknown value like NESTCORE_NESTED_UNKNOWN.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nestcore_nested {
    /// Not enough evidence.
    Unknown = 0,
    /// Yes: guests can be given VMX/SVM now.
    Available = 1,
    /// The hardware can, but a setting (module parameter, firmware) turns it off.
    Disabled = 2,
    /// Not on this host: no extension, hidden by the hypervisor below, or a backend without it.
    Unsupported = 3,
}

/// What opening /dev/kvm showed (`kvm.device.state` in the JSON report).
/// New values may be added; treat an unknown value like NESTCORE_DEVICE_STATE_ERROR.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nestcore_device_state {
    /// No /dev/kvm.
    Absent = 0,
    /// Present in a recorded root (a recorded root is never opened).
    Present = 1,
    /// open() failed with EACCES: file permissions (the `kvm` group).
    PermissionDenied = 2,
    /// open() failed with EPERM: a device cgroup or an LSM blocks it.
    Blocked = 3,
    /// The node exists but no KVM driver is loaded (ENXIO/ENODEV).
    NoDriver = 4,
    /// Opened, but KVM_GET_API_VERSION is not 12.
    WrongApiVersion = 5,
    /// Opened and the API version is 12.
    Usable = 6,
    /// Any other failure.
    Error = 7,
}

/// How serious a finding is. The values are ordered: `level >= NESTCORE_LEVEL_WARN` selects
/// warnings and failures.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nestcore_level {
    /// A check that passed.
    Pass = 0,
    /// Information worth knowing.
    Info = 1,
    /// Works, but something is missing or suboptimal.
    Warn = 2,
    /// Blocks running KVM guests or giving them VMX/SVM.
    Fail = 3,
}

fn extension(e: Extension) -> nestcore_extension {
    match e {
        Extension::Vmx => nestcore_extension::Vmx,
        Extension::Svm => nestcore_extension::Svm,
        Extension::None => nestcore_extension::None,
        Extension::Unknown => nestcore_extension::Unknown,
    }
}

fn answer(b: Option<bool>) -> nestcore_answer {
    match b {
        Some(true) => nestcore_answer::Yes,
        Some(false) => nestcore_answer::No,
        None => nestcore_answer::Unknown,
    }
}

fn setting(t: Tri) -> nestcore_setting {
    match t {
        Tri::Enabled => nestcore_setting::Enabled,
        Tri::Disabled => nestcore_setting::Disabled,
        Tri::Unknown => nestcore_setting::Unknown,
    }
}

fn nested(n: NestedForGuests) -> nestcore_nested {
    match n {
        NestedForGuests::Available => nestcore_nested::Available,
        NestedForGuests::Disabled => nestcore_nested::Disabled,
        NestedForGuests::Unsupported => nestcore_nested::Unsupported,
        NestedForGuests::Unknown => nestcore_nested::Unknown,
    }
}

fn device_state(s: DeviceState) -> nestcore_device_state {
    match s {
        DeviceState::Absent => nestcore_device_state::Absent,
        DeviceState::Present => nestcore_device_state::Present,
        DeviceState::PermissionDenied => nestcore_device_state::PermissionDenied,
        DeviceState::Blocked => nestcore_device_state::Blocked,
        DeviceState::NoDriver => nestcore_device_state::NoDriver,
        DeviceState::WrongApiVersion => nestcore_device_state::WrongApiVersion,
        DeviceState::Usable => nestcore_device_state::Usable,
        DeviceState::Error => nestcore_device_state::Error,
    }
}

fn level(l: Level) -> nestcore_level {
    match l {
        Level::Pass => nestcore_level::Pass,
        Level::Info => nestcore_level::Info,
        Level::Warn => nestcore_level::Warn,
        Level::Fail => nestcore_level::Fail,
    }
}

/// A `nestcore_level` that came in from C as an integer.
fn level_in(value: u32, name: &str) -> FfiResult<Level> {
    match value {
        0 => Ok(Level::Pass),
        1 => Ok(Level::Info),
        2 => Ok(Level::Warn),
        3 => Ok(Level::Fail),
        v => Err(FfiError::invalid(format!(
            "Argument `{name}` is not a nestcore_level (0 to 3): {v}"
        ))),
    }
}

/// Runs `f` on the report behind `report` and writes its answer to `out`: the shape of every
/// scalar accessor.
///
/// # Safety
/// `report` must be NULL or a live report; `out` NULL or writable.
unsafe fn read<T>(
    report: *const nestcore_report,
    out: *mut T,
    f: impl FnOnce(&Report) -> FfiResult<T>,
) -> nestcore_status {
    // SAFETY: forwarded from the caller.
    unsafe { args::read_with(report, "report", out, |h| f(&h.report)) }
}

/// Like [`read`] for an owned string (or NULL when the answer is absent).
///
/// # Safety
/// `report` must be NULL or a live report; `out` NULL or writable.
unsafe fn read_string(
    report: *const nestcore_report,
    out: *mut *mut c_char,
    f: impl FnOnce(&Report) -> FfiResult<Option<&str>>,
) -> nestcore_status {
    call(|| {
        // SAFETY: the caller promises `out` is NULL or writable.
        let out = unsafe { Out::new_nulled(out, "out") }?;
        // SAFETY: the caller promises a live report or NULL.
        let r = unsafe { args::handle(report, "report") }?;
        let s = f(&r.report)?.map_or(std::ptr::null_mut(), args::owned_string);
        // SAFETY: non-NULL (checked), writable by the caller's promise.
        unsafe { out.set(s) };
        Ok(())
    })
}

fn finding(r: &Report, index: usize) -> FfiResult<&Finding> {
    r.verdict.findings.get(index).ok_or_else(|| {
        FfiError::invalid(format!(
            "Finding index {index} is out of range (the report has {} findings)",
            r.verdict.findings.len()
        ))
    })
}

/// Checks `host`: the CPU, the hypervisor below, KVM and the kernel command line, judged into a
/// verdict with findings. Absence is data, not an error: a missing module or file shows up in the
/// report, so this only fails on bad arguments.
///
/// `probe` (0 or 1; any other value is NESTCORE_STATUS_INVALID_ARGUMENT) runs the functional probe
/// on a live host: a throw-away VM that runs a few guest instructions. Recorded hosts are never
/// probed. On success `*out` receives a report to release with `nestcore_report_free()`; on failure
/// it is set to NULL.
///
/// # Safety
/// `host` must be NULL (an error) or a live host from this library; `out` must be NULL (an error)
/// or point to a writable `nestcore_report *`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_check(
    host: *const nestcore_host,
    probe: c_int,
    out: *mut *mut nestcore_report,
) -> nestcore_status {
    call(|| {
        // SAFETY: the caller promises `out` is NULL or writable.
        let out = unsafe { Out::new_nulled(out, "out") }?;
        // SAFETY: the caller promises a live host or NULL.
        let host = unsafe { args::handle(host, "host") }?;
        let probe = args::flag(probe, "probe")?;
        let report = nestcore::check_with(&host.host, CheckOptions::with_probe(probe));
        // SAFETY: non-NULL (checked), writable by the caller's promise.
        unsafe { out.set(Box::into_raw(Box::new(nestcore_report { report }))) };
        Ok(())
    })
}

/// Releases a report. NULL is a no-op.
///
/// # Safety
/// `report` must be NULL or a report from this library, not yet freed, and not in use by another
/// thread; it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_free(report: *mut nestcore_report) {
    guard((), || {
        if !report.is_null() {
            // SAFETY: by the contract, `report` came from `Box::into_raw` here and is freed once.
            drop(unsafe { Box::from_raw(report) });
        }
    });
}

/// The whole report as JSON (pretty-printed), as described by schema/report.schema.json
/// (`schema_version` 1). `*out` receives an owned string to release with `nestcore_string_free()`
/// (NULL on failure).
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_to_json(
    report: *const nestcore_report,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_owned(report, out, Report::to_json) }
}

/// The report as the text that `nestcore check` prints: one PASS/INFO/WARN/FAIL line per check,
/// the remedy under each problem. `color` (0 or 1) adds ANSI colours (for a terminal only).
/// `*out` receives an owned string to release with `nestcore_string_free()` (NULL on failure).
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_to_text(
    report: *const nestcore_report,
    color: c_int,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe {
        read_owned_with(report, out, |r| {
            let color = args::flag(color, "color")?;
            Ok(nestcore::render_text(r, color))
        })
    }
}

/// # Safety
/// `report` must be NULL or a live report; `out` NULL or writable.
unsafe fn read_owned(
    report: *const nestcore_report,
    out: *mut *mut c_char,
    f: impl FnOnce(&Report) -> String,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_owned_with(report, out, |r| Ok(f(r))) }
}

/// # Safety
/// `report` must be NULL or a live report; `out` NULL or writable.
unsafe fn read_owned_with(
    report: *const nestcore_report,
    out: *mut *mut c_char,
    f: impl FnOnce(&Report) -> FfiResult<String>,
) -> nestcore_status {
    call(|| {
        // SAFETY: the caller promises `out` is NULL or writable.
        let out = unsafe { Out::new_nulled(out, "out") }?;
        // SAFETY: the caller promises a live report or NULL.
        let r = unsafe { args::handle(report, "report") }?;
        let s = f(&r.report)?;
        // SAFETY: non-NULL (checked), writable by the caller's promise.
        unsafe { out.set(args::owned_string(&s)) };
        Ok(())
    })
}

/// Exit status that `nestcore check` would use: 0 when KVM is usable and nested virtualization
/// is available to guests, 1 otherwise.
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_exit_code(
    report: *const nestcore_report,
    out: *mut c_int,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(report, out, |r| Ok(r.exit_code())) }
}

/// Can this host run KVM guests (`verdict.kvm_usable`)? NESTCORE_ANSWER_UNKNOWN when it cannot be
/// told (a recorded root without the evidence).
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_kvm_usable(
    report: *const nestcore_report,
    out: *mut nestcore_answer,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(report, out, |r| Ok(answer(r.verdict.kvm_usable))) }
}

/// Can this host's guests get VMX/SVM (`verdict.nested_for_guests`)?
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_nested_for_guests(
    report: *const nestcore_report,
    out: *mut nestcore_nested,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(report, out, |r| Ok(nested(r.verdict.nested_for_guests))) }
}

/// The hardware virtualization extension (`cpu.extension`).
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_cpu_extension(
    report: *const nestcore_report,
    out: *mut nestcore_extension,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(report, out, |r| Ok(extension(r.cpu.extension))) }
}

/// The CPUID vendor string (`cpu.vendor_id`, e.g. "GenuineIntel"). `*out` receives an owned string
/// to release with `nestcore_string_free()`, or NULL when the vendor is unknown (also a success).
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_cpu_vendor_id(
    report: *const nestcore_report,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(report, out, |r| Ok(r.cpu.vendor_id.as_deref())) }
}

/// The hypervisor below this host (`virtualization.hypervisor`): systemd-detect-virt's ids,
/// "none" on bare metal. `*out` receives an owned string to release with `nestcore_string_free()`.
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_hypervisor(
    report: *const nestcore_report,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(report, out, |r| Ok(Some(&r.virtualization.hypervisor))) }
}

/// The container this runs in (`virtualization.container`): "none", "docker", "lxc", ...
/// `*out` receives an owned string to release with `nestcore_string_free()`.
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_container(
    report: *const nestcore_report,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(report, out, |r| Ok(Some(&r.virtualization.container))) }
}

/// The vendor KVM module's `nested` parameter (`kvm.nested`).
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_kvm_nested(
    report: *const nestcore_report,
    out: *mut nestcore_setting,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(report, out, |r| Ok(setting(r.kvm.nested))) }
}

/// Whether KVM_GET_SUPPORTED_CPUID offers VMX/SVM to guests (`kvm.nested_effective`): the
/// authoritative "will my guests get VMX/SVM". NESTCORE_ANSWER_UNKNOWN when not asked (recorded
/// root, /dev/kvm not usable).
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_kvm_nested_effective(
    report: *const nestcore_report,
    out: *mut nestcore_answer,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(report, out, |r| Ok(answer(r.kvm.nested_effective))) }
}

/// What opening /dev/kvm showed (`kvm.device.state`).
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_kvm_device_state(
    report: *const nestcore_report,
    out: *mut nestcore_device_state,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(report, out, |r| Ok(device_state(r.kvm.device.state))) }
}

/// The number of findings (passes included), for the per-index accessors.
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_findings_count(
    report: *const nestcore_report,
    out: *mut usize,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(report, out, |r| Ok(r.verdict.findings.len())) }
}

/// The number of findings at `min_level` (a nestcore_level, 0 to 3) or worse: with
/// NESTCORE_LEVEL_WARN, the warnings and failures. Another value is
/// NESTCORE_STATUS_INVALID_ARGUMENT.
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_findings_count_at_least(
    report: *const nestcore_report,
    min_level: u32,
    out: *mut usize,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe {
        read(report, out, |r| {
            let min = level_in(min_level, "min_level")?;
            Ok(r.verdict.at_least(min).count())
        })
    }
}

/// The stable code of finding `index` (e.g. "kvm.nested_off"; codes are listed in the README).
/// `*out` receives an owned string to release with `nestcore_string_free()`. An index at or past
/// `nestcore_report_findings_count()` is NESTCORE_STATUS_INVALID_ARGUMENT.
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_finding_code(
    report: *const nestcore_report,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(report, out, |r| Ok(Some(finding(r, index)?.code))) }
}

/// The level of finding `index`.
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_finding_level(
    report: *const nestcore_report,
    index: usize,
    out: *mut nestcore_level,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(report, out, |r| Ok(level(finding(r, index)?.level))) }
}

/// The check that finding `index` answers, as a short title ("Checking for hardware
/// virtualization"). `*out` receives an owned string to release with `nestcore_string_free()`.
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_finding_check(
    report: *const nestcore_report,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(report, out, |r| Ok(Some(finding(r, index)?.check))) }
}

/// What finding `index` found, in one sentence. `*out` receives an owned string to release with
/// `nestcore_string_free()`.
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_finding_message(
    report: *const nestcore_report,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(report, out, |r| Ok(Some(&finding(r, index)?.message))) }
}

/// What to do about finding `index`. `*out` receives an owned string to release with
/// `nestcore_string_free()`, or NULL when the finding has no remedy (passes; also a success).
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_finding_remedy(
    report: *const nestcore_report,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(report, out, |r| Ok(finding(r, index)?.remedy.as_deref())) }
}

/// The layer finding `index` is about, when its remedy is for the hypervisor below this host:
/// that hypervisor's id as in `virtualization.hypervisor` ("microsoft", "vmware", "kvm", "xen",
/// ...). `*out` receives an owned string to release with `nestcore_string_free()`, or NULL when
/// the fix is on this host (also a success).
///
/// # Safety
/// `report` must be NULL (an error) or a live report; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_report_finding_layer(
    report: *const nestcore_report,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(report, out, |r| Ok(finding(r, index)?.layer.as_deref())) }
}
