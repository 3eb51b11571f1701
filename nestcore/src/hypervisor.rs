//! Are we a guest, of what, inside what container, on what cloud.

use serde::Serialize;

use crate::report::Evidence;

/// What nestcore knows about the virtualization below and around this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[non_exhaustive]
pub struct VirtReport {
    /// systemd-detect-virt's id of the hypervisor below ("none" on bare metal).
    pub hypervisor: String,
    /// What proved it.
    pub evidence: Vec<Evidence>,
}
