//! The report: every answer with its evidence, the verdict and its findings.
//!
//! The JSON form is a stable contract, described by `schema/report.schema.json` in the repository.
//! Fields may be added; existing fields and their vocabularies do not change within a
//! `schema_version`.

use serde::Serialize;

pub use crate::evidence::Evidence;

use crate::cpu::CpuReport;
use crate::hypervisor::VirtReport;
use crate::kvm::KvmReport;
use crate::vmm::VmmReport;

/// The JSON contract's version. Bumped only for incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// A check that passed.
    Pass,
    /// Information worth knowing.
    Info,
    /// Works, but something is missing or suboptimal.
    Warn,
    /// Blocks running KVM guests or giving them VMX/SVM.
    Fail,
}

impl Level {
    /// "PASS", "INFO", "WARN" or "FAIL".
    pub fn label(self) -> &'static str {
        match self {
            Level::Pass => "PASS",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

/// One finding of the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code, e.g. `nested.parameter_off`. Codes never change meaning.
    pub code: &'static str,
    /// Level.
    pub level: Level,
    /// The check this finding answers, as a short title ("Checking for hardware virtualization").
    pub check: &'static str,
    /// What was found, in one sentence.
    pub message: String,
    /// What proved it.
    pub evidence: Vec<Evidence>,
    /// What to do about it (empty for passes): one plain sentence.
    pub remedy: Option<String>,
    /// The layer the remedy is for, when it is the hypervisor below this host: its
    /// systemd-detect-virt id ("microsoft", "vmware", "kvm", ...), as in
    /// `virtualization.hypervisor`. `None` when the fix is on this host.
    pub layer: Option<String>,
}

/// Can this host's guests get VMX/SVM?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NestedForGuests {
    /// Yes: guests can be given VMX/SVM now.
    Available,
    /// The hardware can, but a setting (module parameter, firmware) turns it off.
    Disabled,
    /// Not on this host: no extension, hidden by the hypervisor below, or a backend without it.
    Unsupported,
    /// Not enough evidence.
    Unknown,
}

impl NestedForGuests {
    /// The JSON string.
    pub fn as_str(self) -> &'static str {
        match self {
            NestedForGuests::Available => "available",
            NestedForGuests::Disabled => "disabled",
            NestedForGuests::Unsupported => "unsupported",
            NestedForGuests::Unknown => "unknown",
        }
    }
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Can this host run KVM guests? `None` when it cannot be told (a recorded root without the
    /// evidence).
    pub kvm_usable: Option<bool>,
    /// Can its guests get VMX/SVM?
    pub nested_for_guests: NestedForGuests,
    /// Every finding, passes included, in check order.
    pub findings: Vec<Finding>,
}

impl Verdict {
    /// The findings at `level` or worse.
    pub fn at_least(&self, level: Level) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.level >= level)
    }

    /// The finding with `code`, if any.
    pub fn finding(&self, code: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.code == code)
    }
}

/// What was inspected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostInfo {
    /// The root folder ("/" live).
    pub root: String,
    /// Whether this is the live machine.
    pub live: bool,
    /// "native", "recorded" or "none".
    pub cpuid_source: &'static str,
    /// The kernel release (/proc/sys/kernel/osrelease), when readable.
    pub kernel: Option<String>,
}

/// The kernel command line, as far as virtualization is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CmdlineReport {
    /// Whether /proc/cmdline was readable.
    pub present: bool,
    /// The parameters that matter here (kvm*, kvm_intel.*, kvm_amd.*, nosvm-like options,
    /// clearcpuid), as `name=value` or `name`, effective values only (last occurrence wins).
    pub relevant: Vec<CmdlineParam>,
}

/// One relevant command-line parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CmdlineParam {
    /// Name, normalised (`-` to `_`).
    pub name: String,
    /// Effective value (`None` for a bare name).
    pub value: Option<String>,
    /// Every value written for it, in order, the effective one last: a module gets them all
    /// (kmod passes each occurrence) and refuses to load when any one is invalid. Not in the JSON.
    #[serde(skip)]
    pub values: Vec<Option<String>>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// Version of this JSON contract.
    pub schema_version: u32,
    /// nestcore's version.
    pub nestcore_version: &'static str,
    /// What was inspected.
    pub host: HostInfo,
    /// The processor.
    pub cpu: CpuReport,
    /// Hypervisor below us, container, cloud.
    pub virtualization: VirtReport,
    /// KVM: device, modules, parameters, probe.
    pub kvm: KvmReport,
    /// Which VMMs can run here (QEMU/libvirt, Firecracker, cloud-hypervisor, kata-containers,
    /// Incus) and what each lacks.
    pub vmm: VmmReport,
    /// The kernel command line.
    pub cmdline: CmdlineReport,
    /// The verdict.
    pub verdict: Verdict,
}

impl Report {
    /// The JSON form (pretty-printed).
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings, numbers and vectors cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Exit status for `nestcore check`: 0 when KVM is usable and nested virtualization is available
    /// to guests, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.verdict.kvm_usable == Some(true)
            && self.verdict.nested_for_guests == NestedForGuests::Available
        {
            0
        } else {
            1
        }
    }
}
