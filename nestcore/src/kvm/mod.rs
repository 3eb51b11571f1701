//! KVM: /dev/kvm, the API, the vendor modules and their parameters, the guest probe.

use serde::Serialize;

/// What nestcore knows about KVM on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[non_exhaustive]
pub struct KvmReport {}
