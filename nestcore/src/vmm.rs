//! Which VMMs can run here: QEMU/libvirt, Firecracker, cloud-hypervisor, kata-containers and
//! Incus, each ready or not and what is missing.
//!
//! Kept cheap: the KVM capabilities are `KVM_CHECK_EXTENSION` ioctls on the /dev/kvm that the KVM
//! check already opened (about 0.1 µs each), the rest a few `stat`s. A recorded root is never
//! opened, so there whatever only an ioctl tells is "unknown", not "missing".

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cpu::{CpuReport, Extension};
use crate::hypervisor::VirtReport;
use crate::kvm::{DeviceState, KvmReport};
use crate::Host;

pub use crate::kvm::VMM_CAPABILITIES as CAPABILITIES;

/// Firecracker's x86_64 `DEFAULT_CAPABILITIES` (src/vmm/src/vstate/kvm.rs): it refuses to start
/// with "Missing KVM capabilities" when one is absent.
pub const FIRECRACKER: &[&str] = &[
    "IRQCHIP",
    "IOEVENTFD",
    "IRQFD",
    "USER_MEMORY",
    "SET_TSS_ADDR",
    "PIT2",
    "PIT_STATE2",
    "ADJUST_CLOCK",
    "DEBUGREGS",
    "MP_STATE",
    "VCPU_EVENTS",
    "XCRS",
    "XSAVE",
    "EXT_CPUID",
];

/// cloud-hypervisor's x86_64 `check_required_kvm_extensions` (hypervisor/src/kvm/x86_64/mod.rs).
pub const CLOUD_HYPERVISOR: &[&str] = &[
    "ADJUST_CLOCK",
    "EXT_CPUID",
    "GET_TSC_KHZ",
    "IMMEDIATE_EXIT",
    "IOEVENTFD",
    "IRQCHIP",
    "IRQFD",
    "IRQ_ROUTING",
    "MP_STATE",
    "SET_IDENTITY_MAP_ADDR",
    "SET_TSS_ADDR",
    "SPLIT_IRQCHIP",
    "TSC_DEADLINE_TIMER",
    "USER_MEMORY",
    "USER_NMI",
    "VCPU_EVENTS",
    "XSAVE",
];

/// One VMM: can it run here?
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VmmReadiness {
    /// "qemu" (QEMU and libvirt), "firecracker", "cloud-hypervisor", "kata-containers", "incus".
    pub name: &'static str,
    /// Ready to run VMs: `None` when something only a live host can tell is unknown.
    pub ready: Option<bool>,
    /// What it requires and this host lacks.
    pub missing: Vec<String>,
    /// What it can use and this host lacks (it runs without, slower or with fewer devices).
    pub optional_missing: Vec<String>,
    /// What it requires that could not be told here (a recorded root gets no ioctls).
    pub unknown: Vec<String>,
}

/// Which VMMs can run here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[non_exhaustive]
pub struct VmmReport {
    /// `KVM_CHECK_EXTENSION` for each capability a VMM checks ([`CAPABILITIES`]), when /dev/kvm
    /// was opened; `None` otherwise (recorded root, /dev/kvm not usable).
    pub kvm_capabilities: Option<BTreeMap<String, bool>>,
    /// One entry per VMM.
    pub vmms: Vec<VmmReadiness>,
}

impl VmmReport {
    /// The entry for `name`, if assessed.
    pub fn vmm(&self, name: &str) -> Option<&VmmReadiness> {
        self.vmms.iter().find(|v| v.name == name)
    }
}

struct Need {
    missing: Vec<String>,
    optional_missing: Vec<String>,
    unknown: Vec<String>,
}

impl Need {
    fn new() -> Need {
        Need {
            missing: Vec::new(),
            optional_missing: Vec::new(),
            unknown: Vec::new(),
        }
    }

    fn done(self, name: &'static str) -> VmmReadiness {
        let ready = if !self.missing.is_empty() {
            Some(false)
        } else if !self.unknown.is_empty() {
            None
        } else {
            Some(true)
        };
        VmmReadiness {
            name,
            ready,
            missing: self.missing,
            optional_missing: self.optional_missing,
            unknown: self.unknown,
        }
    }
}

/// What the host offers, gathered once for every VMM.
struct Facts<'a> {
    device: DeviceState,
    caps: Option<&'a BTreeMap<String, bool>>,
    module: &'a dyn Fn(&str) -> bool,
    node: &'a dyn Fn(&str) -> bool,
}

impl Facts<'_> {
    /// /dev/kvm itself: every VMM needs it opened read-write.
    fn device(&self, n: &mut Need) {
        match self.device {
            DeviceState::Usable => {}
            DeviceState::Present => n
                .unknown
                .push("/dev/kvm access (a recorded root is never opened)".into()),
            s => n.missing.push(format!(
                "a usable /dev/kvm (it is {})",
                serde_json::to_value(s)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
                    .replace('_', " ")
            )),
        }
    }

    fn caps(&self, n: &mut Need, list: &[&str]) {
        match self.caps {
            Some(c) => {
                let absent: Vec<&str> = list
                    .iter()
                    .copied()
                    .filter(|k| c.get(*k) != Some(&true))
                    .collect();
                if !absent.is_empty() {
                    n.missing.push(format!("KVM capabilities {}", absent.join(", ")));
                }
            }
            None if self.device == DeviceState::Usable || self.device == DeviceState::Present => n
                .unknown
                .push("KVM capabilities (only KVM_CHECK_EXTENSION on a live /dev/kvm tells)".into()),
            // Without a usable device the device itself is what is missing.
            None => {}
        }
    }

    /// A kernel module, present when loaded or built in (its /sys/module folder), or when its
    /// device node exists (udev's static nodes load it on first open).
    fn module(&self, n: &mut Need, name: &str, node: Option<&str>, required: bool) {
        let have = (self.module)(name) || node.is_some_and(|p| (self.node)(p));
        if !have {
            let what = match node {
                Some(p) => format!("module {name} ({p})"),
                None => format!("module {name}"),
            };
            if required {
                n.missing.push(what);
            } else {
                n.optional_missing.push(what);
            }
        }
    }
}

/// Assesses each VMM from the KVM check's results and a few cheap lookups.
pub fn assess(host: &Host, cpu: &CpuReport, virt: &VirtReport, kvm: &KvmReport) -> VmmReport {
    let caps = kvm.device.vmm_capabilities.clone();
    // Each module and node is looked up once (a stat each), however many VMMs need it.
    let seen: std::cell::RefCell<Vec<(String, bool)>> = std::cell::RefCell::new(Vec::new());
    let once = |key: &str, look: &dyn Fn() -> bool| -> bool {
        if let Some((_, v)) = seen.borrow().iter().find(|(k, _)| k == key) {
            return *v;
        }
        let v = look();
        seen.borrow_mut().push((key.to_string(), v));
        v
    };
    let module = |m: &str| {
        kvm.module(m).map_or_else(
            || once(m, &|| host.exists(&format!("/sys/module/{m}"))),
            |r| r.state.is_present(),
        )
    };
    let node = |p: &str| once(p, &|| host.exists(p));
    let f = Facts {
        device: kvm.device.state,
        caps: caps.as_ref(),
        module: &module,
        node: &node,
    };
    let mut vmms = Vec::new();

    // QEMU and libvirt: /dev/kvm (QEMU checks its own capabilities, all present since Linux 3.x);
    // vhost-net is what virt-host-validate warns about.
    let mut n = Need::new();
    f.device(&mut n);
    f.module(&mut n, "vhost_net", Some("/dev/vhost-net"), false);
    vmms.push(n.done("qemu"));

    let mut n = Need::new();
    f.device(&mut n);
    f.caps(&mut n, FIRECRACKER);
    vmms.push(n.done("firecracker"));

    let mut n = Need::new();
    f.device(&mut n);
    f.caps(&mut n, CLOUD_HYPERVISOR);
    vmms.push(n.done("cloud-hypervisor"));

    // kata-containers (kata-runtime check, kata-check_amd64.go): CPU flags vmx/svm, lm, sse4_1;
    // modules kvm, kvm_intel/kvm_amd, vhost, vhost_net (vhost_vsock optional); kvm_intel
    // unrestricted_guest=Y outside a VM; and a VM it can create.
    let mut n = Need::new();
    match cpu.extension {
        Extension::Vmx | Extension::Svm => {}
        Extension::None => n.missing.push("CPU flag vmx or svm".into()),
        Extension::Unknown => n.unknown.push("CPU flag vmx or svm".into()),
    }
    if cpu.arch.as_deref() == Some("x86") {
        n.missing.push("a 64-bit CPU (flag lm)".into());
    }
    f.module(&mut n, "kvm", None, true);
    let vendor = match cpu.extension {
        Extension::Svm => "kvm_amd",
        _ => "kvm_intel",
    };
    f.module(&mut n, vendor, None, true);
    // vhost_net needs vhost (a module dependency): when vhost_net is there, so is vhost.
    let before = n.missing.len();
    f.module(&mut n, "vhost_net", Some("/dev/vhost-net"), true);
    if n.missing.len() > before {
        f.module(&mut n, "vhost", None, true);
    }
    f.module(&mut n, "vhost_vsock", Some("/dev/vhost-vsock"), false);
    let on_vmm = virt.hypervisor != "none" || cpu.hypervisor_bit == Some(true);
    if vendor == "kvm_intel" && !on_vmm {
        if let Some(m) = kvm.module("kvm_intel").filter(|m| m.state.is_present()) {
            if m.param_bool("unrestricted_guest") == Some(false) {
                n.missing.push("kvm_intel unrestricted_guest=Y".into());
            }
        }
    }
    f.device(&mut n);
    vmms.push(n.done("kata-containers"));

    // Incus virtual machines: /dev/kvm, vhost_vsock and /dev/vsock (the agent's channel).
    let mut n = Need::new();
    f.device(&mut n);
    f.module(&mut n, "vhost_vsock", Some("/dev/vhost-vsock"), true);
    if !(f.node)("/dev/vsock") {
        n.missing.push("/dev/vsock".into());
    }
    vmms.push(n.done("incus"));

    VmmReport {
        kvm_capabilities: caps,
        vmms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_capability_is_checked() {
        for n in FIRECRACKER.iter().chain(CLOUD_HYPERVISOR) {
            assert!(CAPABILITIES.iter().any(|(c, _)| c == n), "{n}");
        }
        assert_eq!(FIRECRACKER.len(), 14);
        assert_eq!(CLOUD_HYPERVISOR.len(), 17);
    }

    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn numbers_are_the_kernels() {
        use kvm_bindings as k;
        let want = [
            ("IRQCHIP", k::KVM_CAP_IRQCHIP),
            ("USER_MEMORY", k::KVM_CAP_USER_MEMORY),
            ("SET_TSS_ADDR", k::KVM_CAP_SET_TSS_ADDR),
            ("EXT_CPUID", k::KVM_CAP_EXT_CPUID),
            ("MP_STATE", k::KVM_CAP_MP_STATE),
            ("USER_NMI", k::KVM_CAP_USER_NMI),
            ("IRQ_ROUTING", k::KVM_CAP_IRQ_ROUTING),
            ("IRQFD", k::KVM_CAP_IRQFD),
            ("PIT2", k::KVM_CAP_PIT2),
            ("PIT_STATE2", k::KVM_CAP_PIT_STATE2),
            ("IOEVENTFD", k::KVM_CAP_IOEVENTFD),
            ("SET_IDENTITY_MAP_ADDR", k::KVM_CAP_SET_IDENTITY_MAP_ADDR),
            ("ADJUST_CLOCK", k::KVM_CAP_ADJUST_CLOCK),
            ("VCPU_EVENTS", k::KVM_CAP_VCPU_EVENTS),
            ("DEBUGREGS", k::KVM_CAP_DEBUGREGS),
            ("XSAVE", k::KVM_CAP_XSAVE),
            ("XCRS", k::KVM_CAP_XCRS),
            ("GET_TSC_KHZ", k::KVM_CAP_GET_TSC_KHZ),
            ("TSC_DEADLINE_TIMER", k::KVM_CAP_TSC_DEADLINE_TIMER),
            ("SPLIT_IRQCHIP", k::KVM_CAP_SPLIT_IRQCHIP),
            ("IMMEDIATE_EXIT", k::KVM_CAP_IMMEDIATE_EXIT),
        ];
        assert_eq!(want.len(), CAPABILITIES.len());
        for ((n, v), (m, w)) in CAPABILITIES.iter().zip(want) {
            assert_eq!((*n, *v), (m, w));
        }
    }
}
