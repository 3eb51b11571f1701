//! `check()` and the report classes: one frozen class per object of the JSON contract
//! (schema/report.schema.json), named after its Rust struct.

use std::path::PathBuf;
use std::sync::OnceLock;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use serde_json::Value;

use crate::value::{self, field, value_class, Bool, Int, List, Opt, ScalarMap, Shape, Str};

value_class! {
    /// One piece of evidence: where it was read and what was found there.
    Evidence {
        source: Str,
        detail: Str,
    }
}

value_class! {
    /// What was inspected: the root folder, live or recorded, the CPUID source, the kernel.
    HostInfo {
        root: Str,
        live: Bool,
        cpuid_source: Str,
        kernel: Opt<Str>,
    }
}

value_class! {
    /// AMD SVM sub-features (CPUID 0x8000000A or the kernel's flags).
    SvmFeatures {
        npt: Bool,
        svm_lock: Bool,
        nrips: Bool,
        vmcb_clean: Bool,
        decode_assists: Bool,
        avic: Bool,
        v_vmsave_vmload: Bool,
        vgif: Bool,
        asids: Opt<Int>,
        source: Str,
    }
}

value_class! {
    /// The processor: vendor, family/model/stepping, VMX/SVM from CPUID and from the kernel's flags.
    CpuReport {
        vendor_id: Opt<Str>,
        vendor: Str,
        family: Opt<Int>,
        model: Opt<Int>,
        stepping: Opt<Int>,
        brand: Opt<Str>,
        arch: Opt<Str>,
        extension: Str,
        hypervisor_bit: Opt<Bool>,
        cpuid_vmx: Opt<Bool>,
        cpuid_svm: Opt<Bool>,
        flags_vmx: Opt<Bool>,
        flags_svm: Opt<Bool>,
        flags_hypervisor: Opt<Bool>,
        vmx_features: Opt<List<Str>>,
        svm_features: Opt<SvmFeatures>,
        firmware: Str,
        evidence: List<Evidence>,
    }
}

value_class! {
    /// A hypervisor CPUID signature (leaf 0x40000000 and the bases above it).
    Signature {
        leaf: Str,
        signature: Str,
        max_leaf: Str,
    }
}

value_class! {
    /// The DMI (SMBIOS) strings that tell hypervisors apart.
    Dmi {
        sys_vendor: Opt<Str>,
        product_name: Opt<Str>,
        product_version: Opt<Str>,
        board_vendor: Opt<Str>,
        bios_vendor: Opt<Str>,
    }
}

value_class! {
    /// Xen: domain role and guest mode.
    XenInfo {
        role: Str,
        mode: Str,
    }
}

value_class! {
    /// The hypervisor below, the container, the cloud.
    VirtReport {
        hypervisor: Str,
        hypervisor_name: Opt<Str>,
        signatures: List<Signature>,
        dmi: Opt<Dmi>,
        xen: Opt<XenInfo>,
        container: Str,
        cloud: Opt<Str>,
        evidence: List<Evidence>,
    }
    renamed {
        /// lscpu's "Virtualization type": "full", "para", "container" or "none".
        virt_type as "type": Str,
    }
}

value_class! {
    /// KVM capabilities read with KVM_CHECK_EXTENSION.
    Capabilities {
        nested_state: Bool,
        get_msr_features: Bool,
        hyperv_enlightened_vmcs: Bool,
    }
}

value_class! {
    /// Who may open /dev/kvm and why this process may not (after EACCES).
    AccessReport {
        owner_uid: Int,
        owner: Opt<Str>,
        group_gid: Int,
        group: Opt<Str>,
        mode: Str,
        acl: List<Str>,
        uid: Int,
        user: Opt<Str>,
        process_groups: Opt<List<Int>>,
        user_in_group: Opt<Bool>,
        process_in_group: Opt<Bool>,
        allowed_by_mode: Opt<Bool>,
    }
}

value_class! {
    /// /dev/kvm: its state, API version and capabilities.
    DeviceReport {
        path: Str,
        state: Str,
        api_version: Opt<Int>,
        errno: Opt<Int>,
        error: Opt<Str>,
        capabilities: Opt<Capabilities>,
        offers_extension: Opt<Bool>,
        access: Opt<AccessReport>,
    }
}

value_class! {
    /// A KVM kernel module: state, users and typed parameters.
    ModuleReport {
        name: Str,
        state: Str,
        refcnt: Opt<Int>,
        holders: List<Str>,
        parameters: ScalarMap,
    }
}

value_class! {
    /// The functional probe: a throw-away VM that runs a few guest instructions.
    ProbeReport {
        ok: Bool,
        duration_us: Int,
        instructions: Int,
        stage: Str,
        error: Opt<Str>,
        errno: Opt<Int>,
    }
}

value_class! {
    /// KVM: the device, the backend and its modules, the nested parameter, the probe.
    KvmReport {
        device: DeviceReport,
        backend: Opt<Str>,
        modules: List<ModuleReport>,
        nested: Str,
        nested_effective: Opt<Bool>,
        probe: Opt<ProbeReport>,
        other_hypervisors: List<Str>,
        evidence: List<Evidence>,
    }
}

value_class! {
    /// One VMM (QEMU/libvirt, Firecracker, cloud-hypervisor, kata-containers, Incus): ready or
    /// not, and what is missing.
    VmmReadiness {
        name: Str,
        ready: Opt<Bool>,
        missing: List<Str>,
        optional_missing: List<Str>,
        unknown: List<Str>,
    }
}

value_class! {
    /// Which VMMs can run here, and the KVM capabilities they check.
    VmmReport {
        kvm_capabilities: Opt<ScalarMap>,
        vmms: List<VmmReadiness>,
    }
}

value_class! {
    /// One relevant kernel command-line parameter (name normalised, effective value).
    CmdlineParam {
        name: Str,
        value: Opt<Str>,
    }
}

value_class! {
    /// The kernel command line, as far as virtualization is concerned.
    CmdlineReport {
        present: Bool,
        relevant: List<CmdlineParam>,
    }
}

value_class! {
    /// One finding of the verdict: a stable code, a level, the evidence and the remedy.
    Finding {
        code: Str,
        level: Str,
        check: Str,
        message: Str,
        evidence: List<Evidence>,
        remedy: Opt<Str>,
        layer: Opt<Str>,
    }
}

/// The rank of a level name ("pass" < "info" < "warn" < "fail").
fn level_rank(level: &str) -> Option<u8> {
    ["pass", "info", "warn", "fail"]
        .iter()
        .position(|l| *l == level)
        .and_then(|p| u8::try_from(p).ok())
}

value_class! {
    /// The verdict: can this host run KVM guests, can they get VMX/SVM, and every finding.
    Verdict {
        kvm_usable: Opt<Bool>,
        nested_for_guests: Str,
        findings: List<Finding>,
    }
    methods {
        /// The findings at `level` ("pass", "info", "warn" or "fail") or worse, in check order.
        fn at_least(&self, level: &str) -> PyResult<Vec<Finding>> {
            let min = level_rank(level).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "Invalid level {level:?}: expected \"pass\", \"info\", \"warn\" or \"fail\""
                ))
            })?;
            Ok(self.findings_where(|f| {
                level_rank(field(f, "level").as_str().unwrap_or("")).is_some_and(|r| r >= min)
            }))
        }

        /// The finding with `code`, or None.
        fn finding(&self, code: &str) -> Option<Finding> {
            self.findings_where(|f| field(f, "code").as_str() == Some(code))
                .into_iter()
                .next()
        }
    }
}

impl Verdict {
    fn findings_where(&self, keep: impl Fn(&Value) -> bool) -> Vec<Finding> {
        field(&self.v, "findings")
            .as_array()
            .map(|a| a.iter().filter(|f| keep(f)).cloned().map(Finding::new).collect())
            .unwrap_or_default()
    }
}

/// Where a [`Report`] came from, which decides how `text()` and `exit_code` are answered.
enum Origin {
    /// A fresh check: the Rust report itself (the JSON is derived lazily).
    Core(Box<nestcore::Report>),
    /// Unpickled: the core report is not deserializable (its vocabularies are `&'static str`), so
    /// the pickle carries what only the core can compute: both texts and the exit code.
    Restored {
        text: String,
        color_text: String,
        exit_code: i32,
    },
}

/// What a pickled report carries: its JSON, both texts and the exit code (see [`Origin`]).
type ReportState = (String, String, String, i32);

/// The whole report of `check()`.
#[pyclass(frozen, module = "nestcore")]
pub(crate) struct Report {
    origin: Origin,
    value: OnceLock<Value>,
}

/// The report's shape, for validating pickles (the same fields as the class below).
struct ReportShape;

impl Shape for ReportShape {
    fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
        value::json_to_py(py, v)
    }
    fn validate(v: &Value, path: &str) -> Result<(), String> {
        if !v.is_object() {
            return Err(format!("{path}: expected an object"));
        }
        let at = |k: &str| (field(v, k), format!("{path}.{k}"));
        let (x, p) = at("schema_version");
        Int::validate(x, &p)?;
        let (x, p) = at("nestcore_version");
        Str::validate(x, &p)?;
        let (x, p) = at("host");
        HostInfo::validate(x, &p)?;
        let (x, p) = at("cpu");
        CpuReport::validate(x, &p)?;
        let (x, p) = at("virtualization");
        VirtReport::validate(x, &p)?;
        let (x, p) = at("kvm");
        KvmReport::validate(x, &p)?;
        let (x, p) = at("vmm");
        VmmReport::validate(x, &p)?;
        let (x, p) = at("cmdline");
        CmdlineReport::validate(x, &p)?;
        let (x, p) = at("verdict");
        Verdict::validate(x, &p)
    }
}

impl Report {
    pub(crate) fn from_core(report: nestcore::Report) -> Report {
        Report {
            origin: Origin::Core(Box::new(report)),
            value: OnceLock::new(),
        }
    }

    pub(crate) fn restore(json: &str, text: String, color_text: String, exit_code: i32) -> PyResult<Report> {
        let v = value::parse_checked::<ReportShape>(json, "report")?;
        Ok(Report {
            origin: Origin::Restored {
                text,
                color_text,
                exit_code,
            },
            value: OnceLock::from(v),
        })
    }

    fn value(&self) -> &Value {
        self.value.get_or_init(|| match &self.origin {
            Origin::Core(r) => r.to_value(),
            // Restored reports are built with their value set.
            Origin::Restored { .. } => Value::Null,
        })
    }

    fn part<'py, S: Shape>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        S::to_py(py, field(self.value(), key))
    }

    /// The facts about the host that guest CPU recommendations use (`HostFacts::from(&Report)`;
    /// for an unpickled report, read from its JSON the same way).
    pub(crate) fn host_facts(&self) -> PyResult<nestcore::guest::HostFacts> {
        if let Origin::Core(r) = &self.origin {
            return Ok(nestcore::guest::HostFacts::from(r.as_ref()));
        }
        let v = self.value();
        let cpu = field(v, "cpu");
        let verdict = field(v, "verdict");
        let bad = |e: serde_json::Error| PyValueError::new_err(format!("Invalid report: {e}"));
        let vendor = serde_json::from_value(field(cpu, "vendor").clone()).map_err(bad)?;
        let mut facts = nestcore::guest::HostFacts::new(vendor);
        facts.extension = serde_json::from_value(field(cpu, "extension").clone()).map_err(bad)?;
        facts.nested_available = match field(verdict, "nested_for_guests").as_str() {
            Some("available") => Some(true),
            Some("disabled" | "unsupported") => Some(false),
            _ => None,
        };
        facts.kvm_usable = field(verdict, "kvm_usable").as_bool();
        Ok(facts)
    }
}

#[pymethods]
impl Report {
    /// Version of the JSON contract (1).
    #[getter]
    fn schema_version<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Int>(py, "schema_version")
    }

    /// The nestcore version that made the report.
    #[getter]
    fn nestcore_version<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Str>(py, "nestcore_version")
    }

    /// What was inspected.
    #[getter]
    fn host<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<HostInfo>(py, "host")
    }

    /// The processor.
    #[getter]
    fn cpu<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<CpuReport>(py, "cpu")
    }

    /// The hypervisor below, the container, the cloud.
    #[getter]
    fn virtualization<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<VirtReport>(py, "virtualization")
    }

    /// KVM: device, modules, parameters, probe.
    #[getter]
    fn kvm<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<KvmReport>(py, "kvm")
    }

    /// Which VMMs can run here.
    #[getter]
    fn vmm<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<VmmReport>(py, "vmm")
    }

    /// The kernel command line.
    #[getter]
    fn cmdline<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<CmdlineReport>(py, "cmdline")
    }

    /// The verdict and its findings.
    #[getter]
    fn verdict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.part::<Verdict>(py, "verdict")
    }

    /// The exit status of `nestcore check`: 0 when KVM is usable and nested virtualization is
    /// available to guests, 1 otherwise.
    #[getter]
    fn exit_code(&self) -> i32 {
        match &self.origin {
            Origin::Core(r) => r.exit_code(),
            Origin::Restored { exit_code, .. } => *exit_code,
        }
    }

    /// The readable report, exactly as `nestcore check` prints it; `color` adds ANSI colours.
    #[pyo3(signature = (color=false))]
    fn text(&self, color: bool) -> String {
        match &self.origin {
            Origin::Core(r) => nestcore::render_text(r, color),
            Origin::Restored { text, color_text, .. } => {
                if color {
                    color_text.clone()
                } else {
                    text.clone()
                }
            }
        }
    }

    /// The JSON form as plain Python data (dicts, lists, str, int, bool, None).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        value::json_to_py(py, self.value())
    }

    /// The JSON report, exactly as `nestcore check --json` prints it (without the final newline).
    fn to_json(&self) -> String {
        match &self.origin {
            Origin::Core(r) => r.to_json(),
            Origin::Restored { .. } => value::pretty(self.value()),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let v = self.value();
        Ok(format!(
            "Report(schema_version={}, nestcore_version={}, host={}, cpu={}, virtualization={}, kvm={}, vmm={}, cmdline={}, verdict={})",
            Int::repr(py, field(v, "schema_version"))?,
            Str::repr(py, field(v, "nestcore_version"))?,
            HostInfo::repr(py, field(v, "host"))?,
            CpuReport::repr(py, field(v, "cpu"))?,
            VirtReport::repr(py, field(v, "virtualization"))?,
            KvmReport::repr(py, field(v, "kvm"))?,
            VmmReport::repr(py, field(v, "vmm"))?,
            CmdlineReport::repr(py, field(v, "cmdline"))?,
            Verdict::repr(py, field(v, "verdict"))?,
        ))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(other) = other.cast::<Report>() else {
            return Ok(py.NotImplemented());
        };
        let other = other.get();
        let equal = match (&self.origin, &other.origin) {
            (Origin::Core(a), Origin::Core(b)) => a == b,
            _ => self.value() == other.value(),
        };
        Ok(pyo3::types::PyBool::new(py, equal).to_owned().into_any().unbind())
    }

    fn __hash__(&self) -> u64 {
        value::hash_value(self.value())
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, ReportState)> {
        static FROM_JSON: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let f = FROM_JSON.import(py, "nestcore._nestcore", "_report_from_json")?;
        Ok((
            f.clone(),
            (
                self.value().to_string(),
                self.text(false),
                self.text(true),
                self.exit_code(),
            ),
        ))
    }
}

/// Checks a host and returns its Report.
///
/// root=None checks this machine; a folder checks a recorded one (laid out like /). cpuid is a
/// recorded CPUID dump (cpuid -r output, libvirt <cpudata> XML or nestcore JSON). probe runs the
/// functional probe (a throw-away VM with one vCPU) and applies to the live host only. The GIL is
/// released while the host is read.
///
/// Raises NestcoreNotFoundError (a FileNotFoundError) when root or cpuid does not exist,
/// NestcoreIOError (an OSError) when root is not a folder, NestcoreParseError (a ValueError) when
/// cpuid is not a dump, NestcorePermissionError (a PermissionError) when access is denied.
#[pyfunction]
#[pyo3(signature = (root=None, cpuid=None, probe=true))]
pub(crate) fn check(
    py: Python<'_>,
    root: Option<PathBuf>,
    cpuid: Option<PathBuf>,
    probe: bool,
) -> PyResult<Report> {
    // The host is read without the GIL: other Python threads run meanwhile.
    let probe = probe && root.is_none();
    let result = py.detach(move || {
        let host = crate::host::host(root.as_deref(), cpuid.as_deref())?;
        Ok::<_, nestcore::Error>(nestcore::check_with(
            &host,
            nestcore::CheckOptions::with_probe(probe),
        ))
    });
    result
        .map(Report::from_core)
        .map_err(|e| crate::errors::to_pyerr(py, &e))
}

/// Rebuilds a pickled report.
#[pyfunction]
pub(crate) fn _report_from_json(
    json: &str,
    text: String,
    color_text: String,
    exit_code: i32,
) -> PyResult<Report> {
    Report::restore(json, text, color_text, exit_code)
}
