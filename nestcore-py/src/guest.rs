//! `guest_cpu()`, `ensure_nested()` and `recommend()`: the guest CPU configuration that gives
//! guests VT-x/AMD-V (nestcore::guest), in libvirt, QEMU and nova form.
//!
//! The host facts come from a `Report` when one is given (`HostFacts::from`), else from the vendor
//! named, else from a check of this machine (without the probe, the GIL released), as
//! `nestcore guest-cpu` takes them.

use pyo3::prelude::*;
use serde_json::json;

use nestcore::cpu::Vendor;
use nestcore::guest::{self, HostFacts, Needs};

use crate::errors::to_pyerr;
use crate::report::Report;
use crate::value::{value_class, Str, Tuple};

value_class! {
    /// The recommended guest CPU configuration in its three forms, why, and what to watch out for.
    Recommendation {
        libvirt_xml: Str,
        qemu_cpu: Str,
        nova_ini: Str,
        rationale: Tuple<Str>,
        caveats: Tuple<Str>,
    }
}

fn invalid(msg: String) -> nestcore::Error {
    nestcore::Error::InvalidInput(msg)
}

fn parse_vendor(vendor: &str) -> nestcore::Result<Vendor> {
    match vendor {
        "intel" => Ok(Vendor::Intel),
        "amd" => Ok(Vendor::Amd),
        other => Err(invalid(format!(
            "vendor {other:?}: expected \"intel\" or \"amd\""
        ))),
    }
}

/// The host facts: from `report`, else `vendor`, else this machine's vendor; a `vendor` given
/// with a report overrides the report's (as `nestcore guest-cpu --for-host --vendor`).
fn facts(py: Python<'_>, report: Option<&Bound<'_, Report>>, vendor: Option<&str>) -> PyResult<HostFacts> {
    let vendor = vendor
        .map(parse_vendor)
        .transpose()
        .map_err(|e| to_pyerr(py, &e))?;
    let mut facts = match (report, vendor) {
        (Some(r), _) => r.get().host_facts()?,
        (None, Some(v)) => HostFacts::new(v),
        (None, None) => {
            let r = py.detach(|| {
                nestcore::check_with(&nestcore::Host::live(), nestcore::CheckOptions::with_probe(false))
            });
            HostFacts::new(r.cpu.vendor)
        }
    };
    if let Some(v) = vendor {
        facts.vendor = v;
    }
    Ok(facts)
}

/// `facts`, refused when they do not tell whether guests need vmx or svm.
fn facts_with_extension(
    py: Python<'_>,
    report: Option<&Bound<'_, Report>>,
    vendor: Option<&str>,
) -> PyResult<HostFacts> {
    let f = facts(py, report, vendor)?;
    if f.guest_extension().is_none() {
        // The message of `nestcore guest-cpu`, so that `python -m nestcore` prints the same.
        return Err(to_pyerr(
            py,
            &invalid(
                "cannot tell whether guests need vmx or svm on this CPU: pass --vendor intel|amd".into(),
            ),
        ));
    }
    Ok(f)
}

/// The guest CPU configuration that gives guests VMX/SVM, exactly as `nestcore guest-cpu` prints
/// it: format "libvirt" (a <cpu> element), "qemu" (a -cpu argument) or "nova" (nova.conf's
/// [libvirt] keys). mode/model/features ("POLICY:NAME")/topology ("S,C,T" or "S,D,C,T") as the
/// command's flags; without mode and model, the recommendation for a single host.
///
/// The host: `report` (its vendor, extension and nesting state), else `vendor` ("intel" or
/// "amd"), else this machine's CPU vendor (checked without the probe).
///
/// Raises NestcoreInvalidInput (a ValueError) for a bad format, mode, feature, topology or
/// vendor, or when the vendor does not tell vmx from svm.
#[pyfunction]
#[pyo3(
    signature = (format="libvirt", mode=None, model=None, features=Vec::new(), topology=None, report=None, vendor=None),
    text_signature = "(format='libvirt', mode=None, model=None, features=[], topology=None, report=None, vendor=None)"
)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn guest_cpu(
    py: Python<'_>,
    format: &str,
    mode: Option<&str>,
    model: Option<&str>,
    features: Vec<String>,
    topology: Option<&str>,
    report: Option<Bound<'_, Report>>,
    vendor: Option<&str>,
) -> PyResult<String> {
    if !matches!(format, "libvirt" | "qemu" | "nova") {
        return Err(to_pyerr(
            py,
            &invalid(format!(
                "format {format:?}: expected \"libvirt\", \"qemu\" or \"nova\""
            )),
        ));
    }
    let facts = facts_with_extension(py, report.as_ref(), vendor)?;
    guest::guest_cpu_cli(format, mode, model, &features, topology, &facts).map_err(|e| to_pyerr(py, &e))
}

/// Edits a libvirt domain definition so that its guest gets VMX/SVM (disable=True: takes it
/// away), exactly as `nestcore guest-cpu --ensure-nested` prints it: everything outside the edited
/// <cpu> stays byte for byte. The vendor as for guest_cpu().
///
/// Raises NestcoreParseError (a ValueError) for XML that is not a domain, NestcoreInvalidInput
/// as guest_cpu().
#[pyfunction]
#[pyo3(signature = (domain_xml, vendor=None, disable=false, report=None))]
pub(crate) fn ensure_nested(
    py: Python<'_>,
    domain_xml: &str,
    vendor: Option<&str>,
    disable: bool,
    report: Option<Bound<'_, Report>>,
) -> PyResult<String> {
    let facts = facts_with_extension(py, report.as_ref(), vendor)?;
    guest::ensure_nested_cli(domain_xml, facts.vendor, disable).map_err(|e| to_pyerr(py, &e))
}

/// The recommended guest CPU configuration (libvirt, QEMU and nova forms) with the rationale and
/// caveats. migratable=True: guests must migrate between hosts, `model` the pool's common named
/// CPU model if there is one. The host as for guest_cpu().
///
/// Raises NestcoreInvalidInput for a bad vendor, or a model without migratable=True.
#[pyfunction]
#[pyo3(signature = (report=None, vendor=None, migratable=false, model=None))]
pub(crate) fn recommend(
    py: Python<'_>,
    report: Option<Bound<'_, Report>>,
    vendor: Option<&str>,
    migratable: bool,
    model: Option<&str>,
) -> PyResult<Recommendation> {
    if model.is_some() && !migratable {
        return Err(to_pyerr(
            py,
            &invalid("model names the common CPU model of a pool: it needs migratable=True".into()),
        ));
    }
    let facts = facts(py, report.as_ref(), vendor)?;
    let needs = if migratable {
        Needs::migratable(model)
    } else {
        Needs::single_host()
    };
    let rec = guest::recommend(&facts, &needs);
    Ok(Recommendation::new(json!({
        "libvirt_xml": rec.cpu.to_xml(),
        "qemu_cpu": rec.qemu.to_string(),
        "nova_ini": rec.nova.to_ini(),
        "rationale": rec.rationale,
        "caveats": rec.caveats,
    })))
}
