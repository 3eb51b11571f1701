//! Guest CPU configurations that give guests VT-x/AMD-V: libvirt `<cpu>` XML, QEMU `-cpu`
//! arguments, nova settings, and editing a libvirt domain definition. Text in, text out.

use std::ffi::{c_char, c_int};

use nestcore::cpu::Vendor;
use nestcore::guest::{self, HostFacts};

use crate::args;
use crate::report::nestcore_report;
use crate::status::{nestcore_status, FfiError, FfiResult};

/// Whose extension guests get: VT-x (vmx) for Intel, AMD-V (svm) for AMD. Comes in as a
/// `uint32_t`; another value is NESTCORE_STATUS_INVALID_ARGUMENT.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nestcore_vendor {
    /// The vendor of the report passed along (an error where there is none).
    FromReport = 0,
    /// Intel (and Zhaoxin/Centaur): vmx, kvm_intel.
    Intel = 1,
    /// AMD (and Hygon): svm, kvm_amd.
    Amd = 2,
}

/// The form of a guest CPU configuration. Comes in as a `uint32_t`; another value is
/// NESTCORE_STATUS_INVALID_ARGUMENT.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nestcore_guest_format {
    /// A libvirt `<cpu>` element (one line of XML).
    Libvirt = 0,
    /// A QEMU `-cpu` argument ("host", "Skylake-Server,+vmx").
    Qemu = 1,
    /// nova.conf `[libvirt]` keys (`cpu_mode`, `cpu_models`, `cpu_model_extra_flags`).
    Nova = 2,
}

/// A `nestcore_vendor` that came in as an integer: `None` for "from the report".
fn vendor_in(value: u32) -> FfiResult<Option<Vendor>> {
    match value {
        v if v == nestcore_vendor::FromReport as u32 => Ok(None),
        v if v == nestcore_vendor::Intel as u32 => Ok(Some(Vendor::Intel)),
        v if v == nestcore_vendor::Amd as u32 => Ok(Some(Vendor::Amd)),
        v => Err(FfiError::invalid(format!(
            "Argument `vendor` is not a nestcore_vendor (0 to 2): {v}"
        ))),
    }
}

/// A `nestcore_guest_format` that came in as an integer, as the core's format name.
fn format_in(value: u32) -> FfiResult<&'static str> {
    match value {
        v if v == nestcore_guest_format::Libvirt as u32 => Ok("libvirt"),
        v if v == nestcore_guest_format::Qemu as u32 => Ok("qemu"),
        v if v == nestcore_guest_format::Nova as u32 => Ok("nova"),
        v => Err(FfiError::invalid(format!(
            "Argument `format` is not a nestcore_guest_format (0 to 2): {v}"
        ))),
    }
}

/// The host facts for a guest CPU: those of the report when there is one, the vendor (and its
/// extension) overriding the report's.
fn facts(report: Option<&nestcore_report>, vendor: Option<Vendor>) -> FfiResult<HostFacts> {
    let mut facts = match (report, vendor) {
        (Some(r), _) => HostFacts::from(&r.report),
        (None, Some(v)) => HostFacts::new(v),
        (None, None) => {
            return Err(FfiError::invalid(
                "Argument `vendor` is NESTCORE_VENDOR_FROM_REPORT but `report_or_null` is NULL: \
                 pass a report or NESTCORE_VENDOR_INTEL / NESTCORE_VENDOR_AMD",
            ))
        }
    };
    if let Some(v) = vendor {
        let by_vendor = HostFacts::new(v);
        facts.vendor = by_vendor.vendor;
        facts.extension = by_vendor.extension;
    }
    if facts.guest_extension().is_none() {
        return Err(FfiError::invalid(
            "Cannot tell whether guests need vmx or svm on this CPU (the report has no x86 vendor): \
             pass NESTCORE_VENDOR_INTEL or NESTCORE_VENDOR_AMD",
        ));
    }
    Ok(facts)
}

/// The guest CPU configuration that gives guests VT-x/AMD-V, as `nestcore guest-cpu` prints it
/// (with a final newline): a libvirt `<cpu>` element, a QEMU `-cpu` argument or nova.conf keys
/// (`format`, a nestcore_guest_format).
///
/// Without `mode_or_null` and `model_or_null`: the recommendation for guests that stay on one
/// host (host-passthrough; QEMU `host`). `mode_or_null` is "custom", "host-model",
/// "host-passthrough" or "maximum"; a `model_or_null` ("Skylake-Server-v4") without a mode means
/// custom. `features` holds `features_len` strings "POLICY:NAME" (policy force, require,
/// optional, disable or forbid; NULL allowed when `features_len` is 0). Unless a feature names
/// the extension, custom and host-model CPUs get `require` of vmx or svm. `topology_or_null` is
/// "S,C,T", "S,D,C,T" or "S,D,Cl,C,T" (sockets, dies, clusters, cores, threads).
///
/// The extension comes from `vendor` (a nestcore_vendor): NESTCORE_VENDOR_INTEL gives vmx,
/// NESTCORE_VENDOR_AMD svm, NESTCORE_VENDOR_FROM_REPORT the extension of `report_or_null` (then
/// required; a report without an x86 vendor is NESTCORE_STATUS_INVALID_ARGUMENT).
///
/// Fails with NESTCORE_STATUS_INVALID_ARGUMENT for an unknown vendor, format or mode, a malformed
/// feature or topology, or a combination that libvirt rejects or the format cannot express
/// (host-model with a model; `optional` in QEMU; maximum in nova). `*out` receives the text, an
/// owned string to release with `nestcore_string_free()` (NULL on failure).
///
/// # Safety
/// `report_or_null` must be NULL or a live report; the strings NULL or NUL-terminated;
/// `features` NULL or `features_len` pointers to NUL-terminated strings; `out` must be NULL (an
/// error) or point to a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_guest_cpu(
    report_or_null: *const nestcore_report,
    vendor: u32,
    format: u32,
    mode_or_null: *const c_char,
    model_or_null: *const c_char,
    features: *const *const c_char,
    features_len: usize,
    topology_or_null: *const c_char,
    out: *mut *mut c_char,
) -> nestcore_status {
    let generate = || {
        // SAFETY: the caller promises a live report or NULL.
        let report = unsafe { report_or_null.as_ref() };
        let vendor = vendor_in(vendor)?;
        let format = format_in(format)?;
        // SAFETY: the caller promises NUL-terminated strings or NULL (here and below).
        let mode = unsafe { args::utf8_opt(mode_or_null, "mode_or_null") }?;
        // SAFETY: as above.
        let model = unsafe { args::utf8_opt(model_or_null, "model_or_null") }?;
        // SAFETY: the caller promises NULL or `features_len` pointers to such strings.
        let features = unsafe { args::utf8_array(features, features_len, "features") }?;
        // SAFETY: as above.
        let topology = unsafe { args::utf8_opt(topology_or_null, "topology_or_null") }?;
        let facts = facts(report, vendor)?;
        let features: Vec<String> = features.into_iter().map(str::to_owned).collect();
        Ok(guest::guest_cpu_cli(
            format, mode, model, &features, topology, &facts,
        )?)
    };
    // SAFETY: the caller promises `out` is NULL or writable.
    unsafe { args::string_result(out, generate) }
}

/// Edits a libvirt domain definition so that its guest gets VT-x/AMD-V (`disable` 0), or no
/// longer does (`disable` 1), as `nestcore guest-cpu --ensure-nested [--disable]` does: the
/// `<cpu>` element is added or edited (a `require`/`disable` feature for vmx or svm, by
/// `vendor`: NESTCORE_VENDOR_INTEL or NESTCORE_VENDOR_AMD), and every other byte of the document
/// stays as it was.
///
/// Fails with NESTCORE_STATUS_INVALID_ARGUMENT for NESTCORE_VENDOR_FROM_REPORT (there is no report
/// here) or another value, a `disable` other than 0 or 1; NESTCORE_STATUS_PARSE for XML that is
/// not a domain definition. `*out` receives the edited XML, an owned string to release with
/// `nestcore_string_free()` (NULL on failure).
///
/// # Safety
/// `domain_xml` must be NULL (an error) or NUL-terminated; `out` must be NULL (an error) or point
/// to a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_ensure_nested(
    domain_xml: *const c_char,
    vendor: u32,
    disable: c_int,
    out: *mut *mut c_char,
) -> nestcore_status {
    let edit = || {
        // SAFETY: the caller promises a NUL-terminated string or NULL.
        let xml = unsafe { args::utf8(domain_xml, "domain_xml") }?;
        let vendor = vendor_in(vendor)?.ok_or_else(|| {
            FfiError::invalid(
                "Argument `vendor` must be NESTCORE_VENDOR_INTEL or NESTCORE_VENDOR_AMD here (there is no report)",
            )
        })?;
        let disable = args::flag(disable, "disable")?;
        Ok(guest::ensure_nested_cli(xml, vendor, disable)?)
    };
    // SAFETY: the caller promises `out` is NULL or writable.
    unsafe { args::string_result(out, edit) }
}
