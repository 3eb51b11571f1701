//! KVM: /dev/kvm, the API, the vendor modules and their typed parameters, the guest probe.
//!
//! Only a live host opens /dev/kvm; a recorded root reports the device as present or absent.

pub mod access;
mod device;
mod probe;

use std::collections::BTreeMap;

use serde::Serialize;

pub use access::AccessReport;
pub use device::{Capabilities, DeviceReport, DeviceState, VMM_CAPABILITIES};
pub use probe::ProbeReport;

use crate::cpu::{CpuReport, Extension, Vendor};
use crate::evidence::Evidence;
use crate::Host;

/// A tri-state for settings whose truth can be unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tri {
    /// On.
    Enabled,
    /// Off.
    Disabled,
    /// Not known (module not loaded, parameter absent).
    Unknown,
}

/// How a module is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleState {
    /// Loaded as a loadable module (/sys/module/X/initstate exists).
    Loaded,
    /// Built into the kernel (parameters in /sys/module/X but no initstate).
    Builtin,
    /// Not loaded, but installed for the running kernel (`modprobe X` would load it).
    Loadable,
    /// Not loaded, and not found installed for the running kernel.
    Absent,
}

impl ModuleState {
    /// Loaded or built in: the module's code is running.
    pub fn is_present(self) -> bool {
        matches!(self, ModuleState::Loaded | ModuleState::Builtin)
    }
}

/// A typed module parameter value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// A bool parameter (`Y`/`N`, or `1`/`0` for int-typed booleans such as kvm_amd's `nested`).
    Bool(bool),
    /// An integer parameter.
    Int(i64),
    /// Anything else, verbatim.
    Text(String),
}

impl ParamValue {
    /// True/false for a boolean-ish value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ParamValue::Bool(b) => Some(*b),
            ParamValue::Int(i) => Some(*i != 0),
            ParamValue::Text(_) => None,
        }
    }
}

/// Reads a parameter's value as the kernel prints it in /sys/module/M/parameters (`Y`/`N` for a
/// bool, `1`/`0` for an int used as one) or as nestcore recorded it. Not a judge of a value a
/// module is loaded with (modprobe.d, the kernel command line, `modprobe M p=v`): that is
/// [`param_load_value`], by the parameter's kernel type, for every layer.
pub fn parse_bool(s: &str) -> Option<bool> {
    crate::modprobe::parse_bool(s)
}

/// How a module takes `param=value` when it loads (from the kernel command line through kmod,
/// from modprobe.d, or `modprobe M param=value`), by the parameter's kernel type: `Some(Ok(on))`,
/// `Some(Err(why))` when the module refuses to load with it (kernel/params.c logs "M: `V' invalid
/// for parameter `P'" and modprobe fails), `None` for a parameter whose type nestcore does not
/// know. `value` is `None` for a bare name. Seen in the lab on Linux 6.1 and 6.12: kvm_amd's
/// `nested` is an int, so `Y`, `N`, `on`, an empty value and a bare name are refused, and `010`
/// is 8.
pub fn param_load_value(module: &str, param: &str, value: Option<&str>) -> Option<Result<bool, String>> {
    let kind = PARAMS
        .iter()
        .find(|(m, _)| *m == module)?
        .1
        .iter()
        .find(|(p, _)| *p == param)?
        .1;
    Some(match (kind, value) {
        // param_set_bool: a bare name is true.
        (Kind::Bool, None) => Ok(true),
        (Kind::Bool, Some(v)) => {
            kstrtobool(v).ok_or_else(|| format!("`{v}' is not a boolean (y, n, 1, 0, on, off)"))
        }
        (Kind::IntBool, None) => Err("a value is required (an integer)".into()),
        (Kind::IntBool, Some(v)) => kstrtoint(v)
            .map(|i| i != 0)
            .ok_or_else(|| format!("`{v}' is not an integer")),
    })
}

/// The kernel's kstrtobool: only the first characters count: y/Y/t/T/1 and n/N/f/F/0, or on/off
/// (the lab's 6.1 and 6.12 take `t` and refuse `e`; older kernels refuse t/f too, which is
/// accepted here so as never to call a value wrong that a current kernel takes).
fn kstrtobool(s: &str) -> Option<bool> {
    let b = s.as_bytes();
    match b.first()? {
        b'y' | b'Y' | b'1' | b't' | b'T' => Some(true),
        b'n' | b'N' | b'0' | b'f' | b'F' => Some(false),
        b'o' | b'O' => match b.get(1)? {
            b'n' | b'N' => Some(true),
            b'f' | b'F' => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The kernel's kstrtoint with base 0: an optional sign, `0x` for hex, a leading `0` for octal,
/// then digits only (one trailing newline allowed), within i32.
fn kstrtoint(s: &str) -> Option<i64> {
    let s = s.strip_suffix('\n').unwrap_or(s);
    let (neg, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (16, h)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let n = i64::from_str_radix(digits, radix).ok()?;
    let n = if neg { -n } else { n };
    (i64::from(i32::MIN)..=i64::from(i32::MAX))
        .contains(&n)
        .then_some(n)
}

#[derive(Clone, Copy)]
enum Kind {
    Bool,
    /// An int that is used as a boolean (kvm_amd's nested, npt, avic, ...).
    IntBool,
}

/// The parameters nestcore reads for each module, with their kernel types. A fixed list keeps the
/// cost flat (a few system calls each) instead of reading all ~30 parameters of kvm_intel.
const PARAMS: &[(&str, &[(&str, Kind)])] = &[
    (
        "kvm_intel",
        &[
            ("nested", Kind::Bool),
            ("ept", Kind::Bool),
            ("vpid", Kind::Bool),
            ("enable_shadow_vmcs", Kind::Bool),
            ("enable_apicv", Kind::Bool),
            ("unrestricted_guest", Kind::Bool),
            ("flexpriority", Kind::Bool),
            ("pml", Kind::Bool),
        ],
    ),
    (
        "kvm_amd",
        &[
            ("nested", Kind::IntBool),
            ("npt", Kind::IntBool),
            ("avic", Kind::IntBool),
            ("nrips", Kind::IntBool),
            ("vgif", Kind::IntBool),
            ("vls", Kind::IntBool),
            ("sev", Kind::IntBool),
        ],
    ),
    // The core module has nothing nesting depends on: only its state is read (and
    // enable_virt_at_load, in detect(), when another hypervisor's module is loaded).
    ("kvm", &[]),
    ("kvm_pvm", &[]),
];

/// One kernel module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleReport {
    /// Module name (`kvm_intel`).
    pub name: String,
    /// Loaded, built in or absent.
    pub state: ModuleState,
    /// /sys/module/X/refcnt for a loaded module.
    pub refcnt: Option<u32>,
    /// /sys/module/X/holders/ for a loaded module.
    pub holders: Vec<String>,
    /// Typed parameters (the ones that matter for nesting and its performance).
    pub parameters: BTreeMap<String, ParamValue>,
}

impl ModuleReport {
    /// A parameter as a bool.
    pub fn param_bool(&self, name: &str) -> Option<bool> {
        self.parameters.get(name).and_then(ParamValue::as_bool)
    }

    /// Whether the module is in use (refcnt > 0 or holders).
    pub fn in_use(&self) -> bool {
        self.refcnt.unwrap_or(0) > 0 || !self.holders.is_empty()
    }
}

/// Reads one module from /sys/module.
pub fn read_module(host: &Host, name: &str) -> ModuleReport {
    let base = format!("/sys/module/{name}");
    let mut m = ModuleReport {
        name: name.to_string(),
        state: ModuleState::Absent,
        refcnt: None,
        holders: Vec::new(),
        parameters: BTreeMap::new(),
    };
    let initstate = host.read_trimmed(&format!("{base}/initstate"));
    let params_known = PARAMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
        .unwrap_or(&[]);
    match initstate {
        Ok(_) => {
            m.state = ModuleState::Loaded;
            m.refcnt = host
                .read_trimmed(&format!("{base}/refcnt"))
                .ok()
                .and_then(|s| s.parse().ok());
            m.holders = host
                .read_dir(&format!("{base}/holders"))
                .map(|v| v.into_iter().filter(|n| !n.starts_with('.')).collect())
                .unwrap_or_default();
        }
        Err(_) => {
            // kvm, kvm_intel and kvm_amd always have parameters, so a built-in one shows its
            // parameters folder (and no initstate).
            if host.is_dir(&format!("{base}/parameters")) {
                m.state = ModuleState::Builtin;
            }
        }
    }
    if m.state.is_present() {
        for (p, kind) in params_known {
            let Ok(raw) = host.read_trimmed(&format!("{base}/parameters/{p}")) else {
                continue;
            };
            let v = match kind {
                Kind::Bool => parse_bool(&raw).map(ParamValue::Bool),
                Kind::IntBool => raw
                    .parse::<i64>()
                    .ok()
                    .map(|i| ParamValue::Bool(i != 0))
                    .or_else(|| parse_bool(&raw).map(ParamValue::Bool)),
            };
            m.parameters
                .insert((*p).to_string(), v.unwrap_or(ParamValue::Text(raw)));
        }
    }
    m
}

/// What nestcore knows about KVM on this host.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct KvmReport {
    /// /dev/kvm: state, API version, capabilities.
    pub device: DeviceReport,
    /// The backend module that provides KVM: "kvm_intel", "kvm_amd", "kvm_pvm", or `None`.
    pub backend: Option<String>,
    /// The modules inspected (kvm, the vendor module(s), kvm_pvm when present).
    pub modules: Vec<ModuleReport>,
    /// The vendor module's `nested` parameter.
    pub nested: Tri,
    /// Whether KVM_GET_SUPPORTED_CPUID offers VMX/SVM to guests: the authoritative answer to "will
    /// my guests get VMX/SVM". `None` when not asked (recorded root, /dev/kvm not usable).
    pub nested_effective: Option<bool>,
    /// The functional probe, when it ran.
    pub probe: Option<ProbeReport>,
    /// Other hypervisors' kernel modules that are loaded (VirtualBox's `vboxdrv`, VMware's
    /// `vmmon` and `vmx86`): only one hypervisor can own VT-x/AMD-V on a CPU at a time.
    pub other_hypervisors: Vec<String>,
    /// What proved it.
    pub evidence: Vec<Evidence>,
}

impl KvmReport {
    /// The module named `name`, if inspected.
    pub fn module(&self, name: &str) -> Option<&ModuleReport> {
        self.modules.iter().find(|m| m.name == name)
    }
}

/// Options for [`detect`].
#[derive(Debug, Clone, Default)]
pub struct KvmOptions {
    /// Run the functional probe (live host only).
    pub probe: bool,
    /// The running kernel's release, to tell an unloaded module that is installed (loadable)
    /// from one that is not.
    pub kernel: Option<String>,
}

/// Whether `/lib/modules/<kernel>/kernel/arch/x86/kvm/<module>.ko[.xz|.zst|.gz]` exists.
fn installed(host: &Host, kernel: &str, module: &str) -> bool {
    let file = module.replace('_', "-");
    ["", ".xz", ".zst", ".gz"].iter().any(|ext| {
        host.exists(&format!(
            "/lib/modules/{kernel}/kernel/arch/x86/kvm/{file}.ko{ext}"
        ))
    })
}

/// Detects KVM's state.
pub fn detect(host: &Host, cpu: &CpuReport, opts: KvmOptions) -> KvmReport {
    let mut ev = Vec::new();
    let vendor_modules: &[&str] = match cpu.vendor.kvm_module() {
        Some(m) => {
            if m == "kvm_intel" {
                &["kvm_intel"]
            } else {
                &["kvm_amd"]
            }
        }
        // Vendor not known: look at both, unless this is known not to be x86.
        None if matches!(cpu.vendor, Vendor::Unknown | Vendor::Other)
            && cpu.arch.as_deref().is_none_or(|a| a.starts_with("x86")) =>
        {
            &["kvm_intel", "kvm_amd"]
        }
        None => &[],
    };
    let mut modules: Vec<ModuleReport> = Vec::new();
    modules.push(read_module(host, "kvm"));
    for name in vendor_modules {
        let mut m = read_module(host, name);
        if m.state == ModuleState::Absent {
            if let Some(k) = &opts.kernel {
                if installed(host, k, name) {
                    m.state = ModuleState::Loadable;
                }
            }
        }
        modules.push(m);
    }
    if host.exists("/sys/module/kvm_pvm") {
        modules.push(read_module(host, "kvm_pvm"));
    }
    for m in &modules {
        let detail = match m.state {
            ModuleState::Loaded => format!(
                "loaded, refcnt {}, holders [{}]{}",
                m.refcnt.map_or("?".into(), |r| r.to_string()),
                m.holders.join(", "),
                params_text(m)
            ),
            ModuleState::Builtin => format!("built into the kernel{}", params_text(m)),
            ModuleState::Loadable if cpu.extension == Extension::None => {
                "not loaded (installed for this kernel, but it cannot load: the CPU offers no VMX/SVM)".into()
            }
            ModuleState::Loadable => "not loaded (installed for this kernel: modprobe would load it)".into(),
            ModuleState::Absent => "not loaded".into(),
        };
        ev.push(Evidence::new(format!("/sys/module/{}", m.name), detail));
    }

    let present = |n: &str| modules.iter().any(|m| m.name == n && m.state.is_present());
    let backend = ["kvm_intel", "kvm_amd", "kvm_pvm"]
        .into_iter()
        .find(|n| present(n))
        .map(str::to_string)
        .or_else(|| {
            // arm64, s390, ppc: KVM is the core module itself.
            (present("kvm") && !cpu.arch.as_deref().is_some_and(|a| a.starts_with("x86")))
                .then(|| "kvm".to_string())
        });

    let vendor_mod = modules
        .iter()
        .find(|m| (m.name == "kvm_intel" || m.name == "kvm_amd") && m.state.is_present());
    let nested = match vendor_mod.and_then(|m| m.param_bool("nested")) {
        Some(true) => Tri::Enabled,
        Some(false) => Tri::Disabled,
        None => Tri::Unknown,
    };

    // KVM_GET_SUPPORTED_CPUID is the authoritative answer, but costly in a guest: the kernel runs
    // CPUID for every leaf it reports (~75), and each traps to the hypervisor below (~270 µs on
    // a KVM guest, against ~10 µs on bare metal). Ask it only when the cheaper evidence leaves
    // the answer open: VMX/SVM present and the vendor module's nested not off. KVM sets VMX/SVM
    // there only when nested is on (vmx.c vmx_set_cpu_caps, svm.c svm_set_cpu_caps).
    let want = match cpu.extension {
        Extension::Svm | Extension::Vmx if nested != Tri::Disabled && vendor_mod.is_some() => {
            Some(cpu.extension)
        }
        _ => None,
    };
    let device = device::inspect(host, want, &mut ev);
    let nested_effective = device.offers_extension.or_else(|| {
        // Not asked, or not answered: false is still known where KVM cannot offer VMX/SVM at all.
        let why = if cpu.extension == Extension::None {
            Some("the CPU, as this host sees it, has neither VMX nor SVM".to_string())
        } else if matches!(cpu.extension, Extension::Vmx | Extension::Svm)
            && cpu.firmware == crate::cpu::FirmwareState::Disabled
        {
            Some(format!("firmware disabled {}", cpu.extension.marketing_name()))
        } else if vendor_mod.is_some() && nested == Tri::Disabled {
            vendor_mod.map(|m| {
                format!(
                    "/sys/module/{}/parameters/nested is off, and KVM sets {} in KVM_GET_SUPPORTED_CPUID only when it is on (vmx_set_cpu_caps, svm_set_cpu_caps)",
                    m.name,
                    if m.name == "kvm_amd" { "SVM" } else { "VMX" }
                )
            })
        } else if vendor_mod.is_none() && modules.iter().any(|m| m.name == "kvm_pvm" && m.state.is_present()) {
            Some("KVM is kvm_pvm, which has no VMX/SVM to offer guests".to_string())
        } else {
            None
        };
        why.map(|w| {
            ev.push(Evidence::new(
                "ioctl KVM_GET_SUPPORTED_CPUID",
                format!("not asked; nested_effective is false, derived: {w}"),
            ));
            false
        })
    });
    let probe = if opts.probe && host.is_live() && device.state == DeviceState::Usable {
        let p = probe::run(&host.path("/dev/kvm"));
        ev.push(Evidence::new(
            "probe",
            match &p.error {
                None => format!(
                    "VM with one vCPU ran {} guest instructions to completion in {} µs",
                    p.instructions, p.duration_us
                ),
                Some(e) => format!("failed at {}: {e}", p.stage),
            },
        ));
        Some(p)
    } else {
        None
    };

    // Other hypervisors' modules: a stat each (cheaper than having the kernel format every line of
    // /proc/modules), and /sys/module/X exists for every loaded module.
    let other_hypervisors: Vec<String> = ["vboxdrv", "vmmon", "vmx86"]
        .into_iter()
        .filter(|m| host.exists(&format!("/sys/module/{m}")))
        .map(str::to_string)
        .collect();
    if !other_hypervisors.is_empty() {
        ev.push(Evidence::new(
            "/sys/module",
            format!(
                "other hypervisors' modules loaded: {}",
                other_hypervisors.join(", ")
            ),
        ));
        // Since Linux 6.12 kvm takes VT-x/AMD-V when it loads unless enable_virt_at_load is off,
        // which keeps VirtualBox and VMware from starting VMs. Read only when it matters.
        if let Some(m) = modules
            .iter_mut()
            .find(|m| m.name == "kvm" && m.state.is_present())
        {
            if let Ok(raw) = host.read_trimmed("/sys/module/kvm/parameters/enable_virt_at_load") {
                let v = parse_bool(&raw).map_or(ParamValue::Text(raw), ParamValue::Bool);
                m.parameters.insert("enable_virt_at_load".into(), v);
            }
        }
    }

    KvmReport {
        device,
        backend,
        modules,
        nested,
        nested_effective,
        probe,
        other_hypervisors,
        evidence: ev,
    }
}

fn params_text(m: &ModuleReport) -> String {
    if m.parameters.is_empty() {
        return String::new();
    }
    let p: Vec<String> = m
        .parameters
        .iter()
        .map(|(k, v)| match v {
            ParamValue::Bool(b) => format!("{k}={}", if *b { "on" } else { "off" }),
            ParamValue::Int(i) => format!("{k}={i}"),
            ParamValue::Text(t) => format!("{k}={t}"),
        })
        .collect();
    format!("; {}", p.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools() {
        for t in ["Y", "y", "1", "on"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["N", "n", "0", "off"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    /// What Linux 6.1 and 6.12 did with these values in the lab (scenario 04-cmdline).
    #[test]
    fn load_values_as_the_kernel_takes_them() {
        let amd = |v| param_load_value("kvm_amd", "nested", v);
        for (v, on) in [
            ("1", true),
            ("0", false),
            ("0x1", true),
            ("010", true),
            ("-1", true),
            ("+0", false),
        ] {
            assert_eq!(amd(Some(v)), Some(Ok(on)), "{v}");
        }
        for v in ["Y", "N", "on", "", "1x", "0x", "08", "99999999999", "-"] {
            assert!(matches!(amd(Some(v)), Some(Err(_))), "{v}");
        }
        assert!(matches!(amd(None), Some(Err(_))));
        let intel = |v| param_load_value("kvm_intel", "nested", v);
        assert_eq!(intel(None), Some(Ok(true)));
        for (v, on) in [
            ("Y", true),
            ("yes", true),
            ("1", true),
            ("on", true),
            ("N", false),
            ("0", false),
            ("off", false),
        ] {
            assert_eq!(intel(Some(v)), Some(Ok(on)), "{v}");
        }
        for v in ["", "2", "maybe", "o", "e", "d"] {
            assert!(matches!(intel(Some(v)), Some(Err(_))), "{v}");
        }
        assert_eq!(param_load_value("kvm_amd", "unknown_param", Some("x")), None);
        assert_eq!(param_load_value("vboxdrv", "nested", Some("x")), None);
    }

    #[test]
    fn module_states_from_a_tree() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, c: &str| {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        };
        w("sys/module/kvm_amd/initstate", "live\n");
        w("sys/module/kvm_amd/refcnt", "2\n");
        w("sys/module/kvm_amd/parameters/nested", "1\n");
        w("sys/module/kvm_amd/parameters/npt", "garbage\n");
        w("sys/module/kvm_intel/parameters/nested", "Y\n");
        w(
            "lib/modules/6.1.0/modules.builtin",
            "kernel/arch/x86/kvm/kvm.ko\n",
        );
        std::fs::create_dir_all(d.path().join("sys/module/kvm_amd/holders")).unwrap();
        let host = Host::from_root(d.path()).unwrap();
        let amd = read_module(&host, "kvm_amd");
        assert_eq!(amd.state, ModuleState::Loaded);
        assert_eq!(amd.refcnt, Some(2));
        assert!(amd.in_use());
        assert_eq!(amd.param_bool("nested"), Some(true));
        assert_eq!(
            amd.parameters.get("npt"),
            Some(&ParamValue::Text("garbage".into()))
        );
        let intel = read_module(&host, "kvm_intel");
        assert_eq!(intel.state, ModuleState::Builtin);
        assert_eq!(read_module(&host, "kvm").state, ModuleState::Absent);
    }
}

#[cfg(test)]
mod loadable_tests {
    use super::*;

    /// Writes `c` to `p` under `root`, creating the folders.
    fn write(root: &std::path::Path, p: &str, c: &str) {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }

    #[test]
    fn an_installed_module_is_loadable_not_absent() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, c: &str| write(d.path(), p, c);
        w(
            "proc/cpuinfo",
            "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vmx lm\n\n",
        );
        w("proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
        let host = Host::from_root(d.path()).unwrap();
        let absent = crate::check(&host);
        assert_eq!(absent.kvm.module("kvm_intel").unwrap().state, ModuleState::Absent);
        w(
            "lib/modules/6.1.0-18-amd64/kernel/arch/x86/kvm/kvm-intel.ko.zst",
            "",
        );
        let r = crate::check(&host);
        assert_eq!(r.kvm.module("kvm_intel").unwrap().state, ModuleState::Loadable);
        assert!(!ModuleState::Loadable.is_present());
        let f = r.verdict.finding("kvm.module_not_loaded").unwrap();
        assert!(f.message.contains("installed"), "{}", f.message);
        assert_eq!(r.kvm.nested, Tri::Unknown);
        // Not loaded, nested unknown: whether KVM would offer VMX is truly unknown.
        assert_eq!(r.kvm.nested_effective, None);
    }

    #[test]
    fn virtualbox_beside_kvm_reads_enable_virt_at_load() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, c: &str| write(d.path(), p, c);
        w(
            "proc/cpuinfo",
            "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vmx lm\n\n",
        );
        w("sys/module/kvm/initstate", "live\n");
        w("sys/module/kvm/parameters/enable_virt_at_load", "Y\n");
        w("sys/module/kvm_intel/initstate", "live\n");
        w("sys/module/kvm_intel/parameters/nested", "Y\n");
        let host = Host::from_root(d.path()).unwrap();
        let r = crate::check(&host);
        assert!(r.kvm.other_hypervisors.is_empty());
        assert!(
            r.kvm.module("kvm").unwrap().parameters.is_empty(),
            "not read when nothing else is loaded"
        );
        w("sys/module/vboxdrv/initstate", "live\n");
        let r = crate::check(&host);
        assert_eq!(r.kvm.other_hypervisors, vec!["vboxdrv".to_string()]);
        assert_eq!(
            r.kvm.module("kvm").unwrap().param_bool("enable_virt_at_load"),
            Some(true)
        );
        let f = r.verdict.finding("kvm.other_hypervisor").unwrap();
        assert!(f.message.contains("enable_virt_at_load"), "{}", f.message);
    }

    #[test]
    fn nested_effective_is_derived_false_with_its_reason() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, c: &str| write(d.path(), p, c);
        w(
            "proc/cpuinfo",
            "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nflags\t\t: fpu svm lm\n\n",
        );
        w("sys/module/kvm_amd/initstate", "live\n");
        w("sys/module/kvm_amd/parameters/nested", "0\n");
        let host = Host::from_root(d.path()).unwrap();
        let r = crate::check(&host);
        assert_eq!(r.kvm.nested, Tri::Disabled);
        assert_eq!(r.kvm.nested_effective, Some(false));
        assert!(r
            .kvm
            .evidence
            .iter()
            .any(|e| e.detail.contains("derived") && e.detail.contains("kvm_amd/parameters/nested is off")));
        // No extension at all: false, from the CPU.
        w(
            "proc/cpuinfo",
            "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nflags\t\t: fpu lm\n\n",
        );
        std::fs::remove_dir_all(d.path().join("sys")).unwrap();
        let r = crate::check(&host);
        assert_eq!(r.kvm.nested_effective, Some(false));
        assert!(r
            .kvm
            .evidence
            .iter()
            .any(|e| e.detail.contains("neither VMX nor SVM")));
    }
}
