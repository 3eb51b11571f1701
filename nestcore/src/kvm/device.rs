//! /dev/kvm: really open it, ask the API version, the capabilities that matter and whether
//! KVM_GET_SUPPORTED_CPUID offers VMX/SVM to guests.

use std::collections::BTreeMap;

use serde::Serialize;

use super::access::{self, AccessReport};
use crate::cpu::Extension;
use crate::evidence::Evidence;
use crate::Host;

/// The KVM capabilities a VMM checks before it starts, by name (`KVM_CAP_<name>`) and number
/// (include/uapi/linux/kvm.h; the x86_64 values of kvm-bindings, checked in a test).
pub const VMM_CAPABILITIES: &[(&str, u32)] = &[
    ("IRQCHIP", 0),
    ("USER_MEMORY", 3),
    ("SET_TSS_ADDR", 4),
    ("EXT_CPUID", 7),
    ("MP_STATE", 14),
    ("USER_NMI", 22),
    ("IRQ_ROUTING", 25),
    ("IRQFD", 32),
    ("PIT2", 33),
    ("PIT_STATE2", 35),
    ("IOEVENTFD", 36),
    ("SET_IDENTITY_MAP_ADDR", 37),
    ("ADJUST_CLOCK", 39),
    ("VCPU_EVENTS", 41),
    ("DEBUGREGS", 50),
    ("XSAVE", 55),
    ("XCRS", 56),
    ("GET_TSC_KHZ", 61),
    ("TSC_DEADLINE_TIMER", 72),
    ("SPLIT_IRQCHIP", 121),
    ("IMMEDIATE_EXIT", 136),
];

/// What opening /dev/kvm showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// No /dev/kvm.
    Absent,
    /// Present in a recorded root (never opened: only a live host is opened).
    Present,
    /// open() failed with EACCES: file permissions (the `kvm` group).
    PermissionDenied,
    /// open() failed with EPERM: a device cgroup or an LSM blocks it.
    Blocked,
    /// open() failed with ENXIO/ENODEV: the node exists but no KVM driver is loaded.
    NoDriver,
    /// Opened, but KVM_GET_API_VERSION is not 12.
    WrongApiVersion,
    /// Opened and the API version is 12.
    Usable,
    /// Any other failure.
    Error,
}

/// KVM capabilities that matter for nesting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// KVM_CAP_NESTED_STATE (157): nested state can be saved (migration of an L1 with L2s).
    pub nested_state: bool,
    /// KVM_CAP_GET_MSR_FEATURES (153).
    pub get_msr_features: bool,
    /// KVM_CAP_HYPERV_ENLIGHTENED_VMCS (163).
    pub hyperv_enlightened_vmcs: bool,
}

/// /dev/kvm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceReport {
    /// The path as the host sees it.
    pub path: &'static str,
    /// What opening it showed.
    pub state: DeviceState,
    /// KVM_GET_API_VERSION (must be 12).
    pub api_version: Option<i32>,
    /// errno of a failed open or ioctl.
    pub errno: Option<i32>,
    /// The failure, in words.
    pub error: Option<String>,
    /// Capabilities, when opened.
    pub capabilities: Option<Capabilities>,
    /// Whether KVM_GET_SUPPORTED_CPUID sets VMX (Intel) / SVM (AMD) for guests.
    pub offers_extension: Option<bool>,
    /// Who may open the device and why this process may not: read when open() failed with
    /// EACCES (live hosts only).
    pub access: Option<AccessReport>,
    /// KVM_CHECK_EXTENSION of each capability in [`VMM_CAPABILITIES`], when opened. In the
    /// JSON under `vmm.kvm_capabilities`.
    #[serde(skip)]
    pub vmm_capabilities: Option<BTreeMap<String, bool>>,
}

impl DeviceReport {
    fn new(state: DeviceState) -> DeviceReport {
        DeviceReport {
            path: "/dev/kvm",
            state,
            api_version: None,
            errno: None,
            error: None,
            capabilities: None,
            offers_extension: None,
            access: None,
            vmm_capabilities: None,
        }
    }
}

/// Inspects /dev/kvm: opened on a live host, looked up in a recorded root.
pub(crate) fn inspect(host: &Host, want: Option<Extension>, ev: &mut Vec<Evidence>) -> DeviceReport {
    if !host.is_live() {
        let present = host.exists("/dev/kvm");
        ev.push(Evidence::new(
            "/dev/kvm",
            if present {
                "present in the recorded root (not opened: recorded hosts get no ioctls)"
            } else {
                "absent"
            },
        ));
        return DeviceReport::new(if present {
            DeviceState::Present
        } else {
            DeviceState::Absent
        });
    }
    live(host, want, ev)
}

#[cfg(target_os = "linux")]
fn live(host: &Host, want: Option<Extension>, ev: &mut Vec<Evidence>) -> DeviceReport {
    use std::os::unix::ffi::OsStrExt;

    let path = host.path("/dev/kvm");
    let Ok(cpath) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return DeviceReport::new(DeviceState::Error);
    };
    let kvm = match kvm_ioctls::Kvm::new_with_path(&cpath) {
        Ok(k) => k,
        Err(e) => {
            let errno = e.errno();
            let state = match errno {
                libc::ENOENT => DeviceState::Absent,
                libc::EACCES => DeviceState::PermissionDenied,
                libc::EPERM => DeviceState::Blocked,
                libc::ENXIO | libc::ENODEV => DeviceState::NoDriver,
                _ => DeviceState::Error,
            };
            let io = std::io::Error::from_raw_os_error(errno);
            let detail = format!("open(O_RDWR|O_CLOEXEC) failed: {io}");
            ev.push(Evidence::new("/dev/kvm", detail.clone()));
            let mut r = DeviceReport::new(state);
            r.errno = Some(errno);
            r.error = Some(detail);
            if state == DeviceState::PermissionDenied {
                r.access = access::inspect(host, ev);
            }
            return r;
        }
    };
    let api = kvm.get_api_version();
    ev.push(Evidence::new("ioctl KVM_GET_API_VERSION", format!("{api}")));
    if api != 12 {
        let mut r = DeviceReport::new(DeviceState::WrongApiVersion);
        r.api_version = Some(api);
        r.error = Some(format!("API version {api}, expected 12"));
        return r;
    }
    let caps = Capabilities {
        nested_state: kvm.check_extension_raw(157) > 0,
        get_msr_features: kvm.check_extension_raw(153) > 0,
        hyperv_enlightened_vmcs: kvm.check_extension_raw(163) > 0,
    };
    ev.push(Evidence::new(
        "ioctl KVM_CHECK_EXTENSION",
        format!(
            "NESTED_STATE {}, GET_MSR_FEATURES {}, HYPERV_ENLIGHTENED_VMCS {}",
            caps.nested_state, caps.get_msr_features, caps.hyperv_enlightened_vmcs
        ),
    ));
    // The capabilities VMMs check, on the descriptor already open: about 0.1 µs each.
    let vmm: BTreeMap<String, bool> = VMM_CAPABILITIES
        .iter()
        .map(|(name, cap)| {
            (
                (*name).to_string(),
                kvm.check_extension_raw(libc::c_ulong::from(*cap)) > 0,
            )
        })
        .collect();
    let absent: Vec<&str> = vmm
        .iter()
        .filter(|(_, v)| !**v)
        .map(|(k, _)| k.as_str())
        .collect();
    ev.push(Evidence::new(
        "ioctl KVM_CHECK_EXTENSION",
        format!(
            "{} capabilities VMMs check: {}",
            vmm.len(),
            if absent.is_empty() {
                "all present".to_string()
            } else {
                format!("absent {}", absent.join(", "))
            }
        ),
    ));
    let offers = want.and_then(|w| supported_cpuid_offers(&kvm, Some(w), ev));
    let mut r = DeviceReport::new(DeviceState::Usable);
    r.api_version = Some(api);
    r.capabilities = Some(caps);
    r.offers_extension = offers;
    r.vmm_capabilities = Some(vmm);
    r
}

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "x86")))]
fn supported_cpuid_offers(
    kvm: &kvm_ioctls::Kvm,
    want: Option<Extension>,
    ev: &mut Vec<Evidence>,
) -> Option<bool> {
    let cpuid = match kvm.get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES) {
        Ok(c) => c,
        Err(e) => {
            ev.push(Evidence::new(
                "ioctl KVM_GET_SUPPORTED_CPUID",
                format!("failed: {e}"),
            ));
            return None;
        }
    };
    let entries = cpuid.as_slice();
    let ecx = |f: u32| {
        entries
            .iter()
            .find(|e| e.function == f && e.index == 0)
            .map(|e| e.ecx)
    };
    let vmx = ecx(1).map(|c| c >> 5 & 1 == 1);
    let svm = ecx(0x8000_0001).map(|c| c >> 2 & 1 == 1);
    ev.push(Evidence::new(
        "ioctl KVM_GET_SUPPORTED_CPUID",
        format!(
            "{} entries; offers guests vmx: {}, svm: {}",
            entries.len(),
            vmx.map_or("?".into(), |b| b.to_string()),
            svm.map_or("?".into(), |b| b.to_string())
        ),
    ));
    match want {
        Some(Extension::Vmx) => vmx,
        Some(Extension::Svm) => svm,
        _ => match (vmx, svm) {
            (Some(a), Some(b)) => Some(a || b),
            (a, b) => a.or(b),
        },
    }
}

#[cfg(all(target_os = "linux", not(any(target_arch = "x86_64", target_arch = "x86"))))]
fn supported_cpuid_offers(_: &kvm_ioctls::Kvm, _: Option<Extension>, _: &mut Vec<Evidence>) -> Option<bool> {
    None
}

#[cfg(not(target_os = "linux"))]
fn live(_host: &Host, _want: Option<Extension>, ev: &mut Vec<Evidence>) -> DeviceReport {
    ev.push(Evidence::new("/dev/kvm", "KVM exists only on Linux"));
    DeviceReport::new(DeviceState::Absent)
}
