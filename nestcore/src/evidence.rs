//! Evidence: where a fact was read and what was found there.
//!
//! A leaf module: every detection section (cpu, hypervisor, kvm) and the report use it, and it
//! uses none of them, so the module graph has no cycle.

use serde::Serialize;

/// One piece of evidence: where it was read and what was found there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// The source: a path as the host sees it ("/proc/cpuinfo"), a CPUID leaf ("cpuid 0x1"), an
    /// ioctl ("ioctl KVM_GET_API_VERSION"), an MSR.
    pub source: String,
    /// What was found there.
    pub detail: String,
}

impl Evidence {
    /// New evidence.
    pub fn new(source: impl Into<String>, detail: impl Into<String>) -> Evidence {
        Evidence {
            source: source.into(),
            detail: detail.into(),
        }
    }
}
