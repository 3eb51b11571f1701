//! From detection to verdict: `kvm_usable`, `nested_for_guests`, and findings with codes,
//! evidence and remedies. Pure: reads nothing, so every rule is testable on built reports.

use crate::cpu::{CpuReport, Extension, FirmwareState};
use crate::evidence::Evidence;
use crate::hypervisor::VirtReport;
use crate::kvm::{DeviceState, KvmReport, ModuleState, Tri};
use crate::layer::{self, Layer};
use crate::report::{CmdlineReport, Finding, Level, NestedForGuests, Verdict};

const C_HW: &str = "Checking for hardware virtualization";
const C_MOD: &str = "Checking for the KVM module";
const C_DEV: &str = "Checking if /dev/kvm is usable";
const C_NESTED: &str = "Checking if guests can get VMX/SVM (nested)";
const C_PERF: &str = "Checking nested performance features";
const C_PROBE: &str = "Checking that a guest runs (functional probe)";

struct Builder {
    findings: Vec<Finding>,
}

impl Builder {
    fn add(
        &mut self,
        code: &'static str,
        level: Level,
        check: &'static str,
        message: String,
        evidence: Vec<Evidence>,
        remedy: Option<String>,
    ) {
        self.findings.push(Finding {
            code,
            level,
            check,
            message,
            evidence,
            remedy,
            layer: None,
        });
    }

    /// Marks the last finding as one whose fix is on the layer below (hypervisor id `id`).
    fn on_layer(&mut self, id: &str) {
        if let Some(f) = self.findings.last_mut() {
            f.layer = Some(id.to_string());
        }
    }
}

fn guest_of(virt: &VirtReport, cpu: &CpuReport) -> bool {
    // Xen's dom0 counts: it runs on Xen, which holds VT-x/AMD-V.
    virt.hypervisor != "none"
        || virt.xen.is_some()
        || cpu.hypervisor_bit == Some(true)
        || cpu.flags_hypervisor == Some(true)
}

fn cpu_ev(cpu: &CpuReport) -> Vec<Evidence> {
    cpu.evidence
        .iter()
        .filter(|e| {
            e.source.starts_with("cpuid 0x1")
                || e.source.starts_with("cpuid 0x8")
                || e.source == "/proc/cpuinfo"
                || e.source.starts_with("MSR")
        })
        .cloned()
        .collect()
}

fn kvm_ev(kvm: &KvmReport, prefix: &str) -> Vec<Evidence> {
    kvm.evidence
        .iter()
        .filter(|e| e.source.starts_with(prefix))
        .cloned()
        .collect()
}

/// The vendor module the verdict speaks of: the extension's, else the vendor's.
fn vendor_module_name(cpu: &CpuReport) -> &'static str {
    match cpu.extension {
        Extension::Vmx | Extension::Svm => cpu.extension.kvm_module(),
        _ => cpu.vendor.kvm_module().unwrap_or("kvm_intel"),
    }
}

/// `kvm.modprobe_invalid`: modprobe.d lines that set the vendor module's `nested` to a value
/// the module refuses to load with ([`crate::kvm::param_load_value`], the judge of the kernel
/// command line's `kvm.cmdline_invalid` too). kmod hands the kernel every options line of the
/// module and the kernel refuses the load at an invalid value, so such a line fails every load
/// wherever it sorts. None for a built-in module, which never reads modprobe.d.
pub fn modprobe_finding(
    cpu: &CpuReport,
    kvm: &KvmReport,
    cfg: &crate::modprobe::ModprobeConfig,
) -> Option<Finding> {
    let m = vendor_module_name(cpu);
    if kvm.module(m).is_some_and(|x| x.state == ModuleState::Builtin) {
        return None;
    }
    let refused: Vec<(&crate::modprobe::OptionSource, String)> = cfg
        .contributions(m, "nested")
        .into_iter()
        .filter_map(
            |o| match crate::kvm::param_load_value(m, "nested", o.value.as_deref()) {
                Some(Err(why)) => Some((o, why)),
                _ => None,
            },
        )
        .collect();
    let (first, why) = refused.first()?;
    let v = first.value.as_deref().unwrap_or("");
    Some(Finding {
        code: "kvm.modprobe_invalid",
        level: Level::Warn,
        check: C_NESTED,
        message: format!(
            "{} sets {m} nested{}, which {m} refuses to load with: {why} (the kernel logs \"{m}: `{v}' invalid \
             for parameter `nested'\" and modprobe fails){}",
            first.location(),
            first.value.as_deref().map(|v| format!("={v}")).unwrap_or_default(),
            match refused.len() {
                1 => String::new(),
                n => format!("; {} more such lines", n - 1),
            }
        ),
        evidence: refused
            .iter()
            .map(|(o, _)| Evidence::new(o.location(), o.text.clone()))
            .collect(),
        remedy: Some(format!(
            "Write `options {m} nested=1` (or =0) instead: `nestcore enable --neutralise-conflicts --apply` comments the \
             line out and writes /etc/modprobe.d/nestcore-kvm.conf"
        )),
        layer: None,
    })
}

/// Builds the verdict.
pub fn judge(
    cpu: &CpuReport,
    virt: &VirtReport,
    kvm: &KvmReport,
    cmdline: &CmdlineReport,
    live: bool,
) -> Verdict {
    let mut b = Builder { findings: Vec::new() };
    let ext = cpu.extension;
    let guest = guest_of(virt, cpu);
    let pvm = kvm.backend.as_deref() == Some("kvm_pvm");
    let vendor_mod_name = vendor_module_name(cpu);
    let vendor_mod = kvm.module(vendor_mod_name).filter(|m| m.state.is_present());
    let hv_name = match (&virt.hypervisor_name, &virt.xen) {
        (Some(n), _) => n.clone(),
        (None, Some(x)) => format!("Xen ({})", x.role),
        (None, None) => virt.hypervisor.clone(),
    };
    let vendor_ext = cpu.vendor.extension().unwrap_or(Extension::Vmx);
    let ext_name = match vendor_ext {
        Extension::Svm => "svm (AMD-V)",
        _ => "vmx (VT-x)",
    };

    // 1. Hardware extension.
    let mut firmware = cpu.firmware;
    if firmware == FirmwareState::Unknown && vendor_mod.is_some_and(|m| m.state == ModuleState::Loaded) {
        // kvm_intel/kvm_amd refuse to load when firmware disabled the extension.
        firmware = FirmwareState::Enabled;
    }
    match ext {
        Extension::Vmx | Extension::Svm if firmware == FirmwareState::Disabled => b.add(
            "cpu.firmware_disabled",
            Level::Fail,
            C_HW,
            format!(
                "The CPU has {} but firmware disabled it (CPUID reports it; the kernel's flags or the MSR do not)",
                ext.marketing_name()
            ),
            cpu_ev(cpu),
            Some(format!(
                "Enable {} in the firmware setup (BIOS/UEFI: \"Virtualization Technology\", \"SVM Mode\"), power-cycle, and check that /proc/cmdline has no clearcpuid= removing it",
                if ext == Extension::Vmx { "Intel Virtualization Technology (VT-x)" } else { "SVM mode (AMD-V)" }
            )),
        ),
        Extension::Vmx | Extension::Svm => b.add(
            "cpu.extension_present",
            Level::Pass,
            C_HW,
            format!("The CPU offers {} ({})", ext.marketing_name(), ext.as_str()),
            cpu_ev(cpu),
            None,
        ),
        Extension::None if guest => {
            let below = Layer::below(virt).unwrap_or(Layer::Other);
            b.add(
                "cpu.extension_hidden_by_hypervisor",
                if pvm { Level::Warn } else { Level::Fail },
                C_HW,
                if below == Layer::QemuTcg && vendor_ext == Extension::Vmx {
                    format!("This is a QEMU TCG guest (no KVM below), and TCG cannot emulate {ext_name}")
                } else {
                    format!("This is a {hv_name} guest and the hypervisor below does not pass {ext_name} to it")
                },
                cpu_ev(cpu),
                Some(layer::remedy(below, vendor_ext)),
            );
            b.on_layer(Layer::id(virt));
        }
        Extension::None => b.add(
            "cpu.extension_missing",
            Level::Fail,
            C_HW,
            "The CPU has neither VMX (VT-x) nor SVM (AMD-V): it cannot run KVM guests with hardware acceleration".into(),
            cpu_ev(cpu),
            Some("Use a CPU with VT-x or AMD-V; without one, QEMU can only emulate (TCG), much more slowly".into()),
        ),
        Extension::Unknown => b.add(
            "cpu.extension_unknown",
            Level::Info,
            C_HW,
            match cpu.arch.as_deref() {
                Some(a) if !a.starts_with("x86") => format!("VMX/SVM are x86 extensions; this is {a}: KVM support is judged from /dev/kvm and the kvm module"),
                _ => "Neither CPUID nor /proc/cpuinfo flags were available to tell VMX/SVM".into(),
            },
            cpu_ev(cpu),
            None,
        ),
    }

    // 2. Module / backend.
    if pvm {
        b.add(
            "kvm.pvm_backend",
            Level::Warn,
            C_MOD,
            "KVM is provided by kvm_pvm (pagetable-based virtualization without VMX/SVM): guests run, but cannot be given VMX/SVM".into(),
            kvm_ev(kvm, "/sys/module/kvm_pvm"),
            Some("Nested guests need VMX/SVM from the hypervisor below; PVM guests cannot host hardware-accelerated L2 guests".into()),
        );
        if guest {
            b.on_layer(Layer::id(virt));
        }
    } else if ext == Extension::None
        && kvm.backend.is_none()
        && (guest
            || kvm
                .module(vendor_mod_name)
                .is_some_and(|m| m.state == ModuleState::Loadable))
    {
        // Without VT-x/AMD-V the vendor module cannot load. Seen in the lab (QEMU TCG, Intel):
        // modprobe fails with "Operation not supported" and the kernel logs "kvm: no hardware
        // support for 'kvm_intel'" (6.1) or "kvm_intel: VMX not supported by CPU 0" (6.12).
        let installed = kvm
            .module(vendor_mod_name)
            .is_some_and(|x| x.state == ModuleState::Loadable);
        let ext = vendor_ext.marketing_name();
        b.add(
            "kvm.module_not_loaded",
            Level::Fail,
            C_MOD,
            if installed {
                format!(
                    "{vendor_mod_name} is installed for this kernel but cannot load without {ext}: modprobe fails \
                     (\"Operation not supported\"; the kernel logs that there is no hardware support)"
                )
            } else {
                format!(
                    "{vendor_mod_name} is not loaded: it cannot load without {ext} (modprobe {vendor_mod_name} fails \
                     with \"Operation not supported\")"
                )
            },
            kvm_ev(kvm, &format!("/sys/module/{vendor_mod_name}")),
            guest.then(|| {
                format!(
                    "Give this VM {ext} on the layer below first (see cpu.extension_hidden_by_hypervisor), then \
                     `modprobe {vendor_mod_name}`"
                )
            }),
        );
        if guest {
            b.on_layer(Layer::id(virt));
        }
    } else if matches!(ext, Extension::Vmx | Extension::Svm) {
        match vendor_mod.map(|m| m.state) {
            None | Some(ModuleState::Absent | ModuleState::Loadable) => {
                let installed = kvm.module(vendor_mod_name).is_some_and(|m| m.state == ModuleState::Loadable);
                b.add(
                    "kvm.module_not_loaded",
                    Level::Fail,
                    C_MOD,
                    format!(
                        "{vendor_mod_name} is not loaded{}",
                        if installed { " (it is installed for this kernel)" } else { "" }
                    ),
                    kvm_ev(kvm, &format!("/sys/module/{vendor_mod_name}")),
                    Some(if firmware == FirmwareState::Disabled {
                        format!("{vendor_mod_name} will not load until firmware enables {}", ext.marketing_name())
                    } else {
                        format!("modprobe {vendor_mod_name} (and add it to /etc/modules-load.d/ to load at boot); if modprobe cannot find it, install the kernel's modules package")
                    }),
                )
            }
            Some(ModuleState::Builtin) => b.add(
                "kvm.module_builtin",
                Level::Info,
                C_MOD,
                format!("{vendor_mod_name} is built into the kernel: it cannot be reloaded, so its parameters change only through the kernel command line"),
                kvm_ev(kvm, &format!("/sys/module/{vendor_mod_name}")),
                Some(format!("Set {}.nested=1 on the kernel command line and reboot", vendor_mod_name.replace('_', "-"))),
            ),
            Some(ModuleState::Loaded) => b.add(
                "kvm.module_loaded",
                Level::Pass,
                C_MOD,
                format!("{vendor_mod_name} is loaded"),
                kvm_ev(kvm, &format!("/sys/module/{vendor_mod_name}")),
                None,
            ),
        }
    } else if let Some(be) = &kvm.backend {
        b.add(
            "kvm.module_loaded",
            Level::Pass,
            C_MOD,
            format!("KVM is provided by {be}"),
            kvm_ev(kvm, "/sys/module/"),
            None,
        );
    }

    // 3. /dev/kvm.
    let dev_ev = || {
        kvm_ev(kvm, "/dev/kvm")
            .into_iter()
            .chain(kvm_ev(kvm, "ioctl KVM_GET_API"))
            .collect::<Vec<_>>()
    };
    let backend_possible = pvm || kvm.backend.is_some() || matches!(ext, Extension::Vmx | Extension::Svm);
    match kvm.device.state {
        DeviceState::Usable => b.add("kvm.device_usable", Level::Pass, C_DEV, "/dev/kvm opens and speaks KVM API version 12".into(), dev_ev(), None),
        DeviceState::Present => b.add(
            "kvm.device_present",
            Level::Info,
            C_DEV,
            "/dev/kvm is present in the recorded root (recorded hosts are never opened)".into(),
            dev_ev(),
            None,
        ),
        DeviceState::Absent => b.add(
            "kvm.device_missing",
            if backend_possible { Level::Fail } else { Level::Info },
            C_DEV,
            "/dev/kvm does not exist".into(),
            dev_ev(),
            Some(if kvm.backend.is_none() && backend_possible {
                format!("Load {vendor_mod_name} (modprobe {vendor_mod_name}); udev then creates /dev/kvm")
            } else if kvm.backend.is_some() {
                "The module is loaded but the node is missing: in a container pass it in (--device /dev/kvm); otherwise create it (mknod /dev/kvm c 10 232) or check udev".into()
            } else {
                "Without a KVM backend there is no /dev/kvm".into()
            }),
        ),
        DeviceState::PermissionDenied => {
            let a = kvm.device.access.as_ref();
            let why = a.map(|a| {
                format!(
                    " (/dev/kvm is {}:{} {}{}; this process is {}in that group)",
                    a.owner.clone().unwrap_or_else(|| a.owner_uid.to_string()),
                    a.group.clone().unwrap_or_else(|| a.group_gid.to_string()),
                    a.mode,
                    if a.acl.is_empty() { String::new() } else { format!(" with ACL {}", a.acl.join(" ")) },
                    match a.process_in_group {
                        Some(true) => "",
                        Some(false) => "not ",
                        None => "perhaps not ",
                    }
                )
            });
            let mut ev = dev_ev();
            ev.extend(kvm_ev(kvm, "/proc/self/status"));
            ev.extend(kvm_ev(kvm, "/etc/group"));
            b.add(
                "kvm.permission_denied",
                Level::Fail,
                C_DEV,
                format!(
                    "Opening /dev/kvm failed with EACCES: this user may not use it{}",
                    why.unwrap_or_default()
                ),
                ev,
                Some(crate::kvm::access::remedy(a)),
            )
        }
        DeviceState::Blocked => b.add(
            "kvm.device_cgroup",
            Level::Fail,
            C_DEV,
            "Opening /dev/kvm failed with EPERM: a device cgroup or security module blocks it".into(),
            dev_ev(),
            Some("In a container allow the device (docker/podman --device /dev/kvm, or the cgroup rule `c 10:232 rwm`); otherwise check SELinux/AppArmor denials".into()),
        ),
        DeviceState::NoDriver => b.add(
            "kvm.device_no_driver",
            Level::Fail,
            C_DEV,
            "/dev/kvm exists but no KVM driver answers it (ENXIO/ENODEV)".into(),
            dev_ev(),
            Some(format!("modprobe {vendor_mod_name}")),
        ),
        DeviceState::WrongApiVersion => b.add(
            "kvm.api_version",
            Level::Fail,
            C_DEV,
            format!("KVM_GET_API_VERSION returned {}, not 12", kvm.device.api_version.unwrap_or(-1)),
            dev_ev(),
            Some("The kernel's KVM is not the stable API this software needs; upgrade the kernel".into()),
        ),
        DeviceState::Error => b.add(
            "kvm.device_error",
            Level::Fail,
            C_DEV,
            format!("/dev/kvm could not be used: {}", kvm.device.error.clone().unwrap_or_default()),
            dev_ev(),
            None,
        ),
    }

    // 3b. Another hypervisor holding VT-x/AMD-V.
    let busy = kvm
        .probe
        .as_ref()
        .is_some_and(|p| p.stage == "create_vm" && p.errno == Some(libc::EBUSY));
    let vendor_loaded = vendor_mod.is_some();
    let virt_at_load = kvm
        .module("kvm")
        .and_then(|m| m.param_bool("enable_virt_at_load"));
    if busy || !kvm.other_hypervisors.is_empty() {
        let names: Vec<String> = kvm
            .other_hypervisors
            .iter()
            .map(|m| match m.as_str() {
                "vboxdrv" => "VirtualBox's vboxdrv".to_string(),
                other => format!("VMware's {other}"),
            })
            .collect();
        let others = if names.is_empty() {
            "another hypervisor".to_string()
        } else {
            names.join(" and ")
        };
        let mut ev = kvm_ev(kvm, "/sys/module");
        ev.extend(kvm_ev(kvm, "probe"));
        let at_load = virt_at_load == Some(true) && vendor_loaded;
        if at_load {
            ev.push(Evidence::new(
                "/sys/module/kvm/parameters/enable_virt_at_load",
                "Y",
            ));
        }
        let message = if busy {
            format!("KVM_CREATE_VM failed with EBUSY: {others} holds {} on this CPU, and only one hypervisor can at a time", vendor_ext.marketing_name())
        } else if at_load {
            format!(
                "{others} is loaded beside {vendor_mod_name}, and kvm.enable_virt_at_load is on (Linux 6.12+): KVM holds {} from the moment it loads, so VirtualBox/VMware VMs fail to start (VERR_VMX_IN_VMX_ROOT_MODE, VERR_SVM_IN_USE)",
                vendor_ext.marketing_name()
            )
        } else {
            format!("{others} is loaded beside KVM: only one hypervisor can use {} at a time, so whichever starts a VM second fails", vendor_ext.marketing_name())
        };
        b.add(
            if busy { "kvm.vtx_busy" } else { "kvm.other_hypervisor" },
            if busy { Level::Fail } else { Level::Warn },
            C_DEV,
            message,
            ev,
            Some(format!(
                "Use one hypervisor at a time: to run KVM guests, stop the VirtualBox/VMware VMs and unload their modules (`modprobe -r vboxnetadp vboxnetflt vboxdrv`, or `vmware-modconfig`/`systemctl stop vmware`); to run VirtualBox/VMware VMs, unload KVM (`modprobe -r {vendor_mod_name}`) or, on Linux 6.12 and later, set `options kvm enable_virt_at_load=0` in /etc/modprobe.d/ (or kvm.enable_virt_at_load=0 on the kernel command line) so that KVM takes {} only while one of its VMs runs",
                vendor_ext.marketing_name()
            )),
        );
    }

    // 4. Nested.
    let cmdline_key = format!("{vendor_mod_name}.nested");
    let cmdline_nested = cmdline.relevant.iter().find(|p| p.name == cmdline_key);
    // The module gets every occurrence in order and refuses to load at the first invalid one,
    // even when the last would do (lab scenario 09-kernel-cmdline).
    let refused = cmdline_nested.and_then(|p| {
        let last = std::slice::from_ref(&p.value);
        let values = if p.values.is_empty() { last } else { &p.values[..] };
        values.iter().find_map(|value| {
            match crate::kvm::param_load_value(vendor_mod_name, "nested", value.as_deref()) {
                Some(Err(why)) => Some((p, value, why)),
                _ => None,
            }
        })
    });
    if let Some((p, value, why)) = refused {
        let v = value.as_deref().unwrap_or("");
        b.add(
            "kvm.cmdline_invalid",
            Level::Warn,
            C_NESTED,
            format!(
                "The kernel command line sets {}{}{}, which {vendor_mod_name} refuses to load with: {why} \
                 (the kernel logs \"{vendor_mod_name}: `{v}' invalid for parameter `nested'\" and modprobe fails)",
                p.name,
                value.as_deref().map(|v| format!("={v}")).unwrap_or_default(),
                if p.values.len() > 1 {
                    format!(
                        " (one of the {} values written for it: kmod passes every one, and an invalid one refuses the load even when the last is valid)",
                        p.values.len()
                    )
                } else {
                    String::new()
                },
            ),
            vec![Evidence::new(
                "/proc/cmdline",
                format!("{}{}", p.name, value.as_deref().map(|v| format!("={v}")).unwrap_or_default()),
            )],
            Some(format!(
                "Write {}.nested=1 (or =0) on the kernel command line instead: `nestcore enable --persist cmdline` rewrites it",
                vendor_mod_name.replace('_', "-")
            )),
        );
    } else if let Some(p) = cmdline_nested {
        b.add(
            "kvm.cmdline_nested",
            Level::Info,
            C_NESTED,
            format!(
                "The kernel command line sets {}={}",
                p.name,
                p.value.as_deref().unwrap_or("")
            ),
            vec![Evidence::new(
                "/proc/cmdline",
                format!("{}={}", p.name, p.value.as_deref().unwrap_or("")),
            )],
            None,
        );
    }
    let nested_ev = || {
        let mut e = kvm_ev(kvm, &format!("/sys/module/{vendor_mod_name}"));
        e.extend(kvm_ev(kvm, "ioctl KVM_GET_SUPPORTED_CPUID"));
        e
    };
    let param_file = format!("/sys/module/{vendor_mod_name}/parameters/nested");
    let mut nested_for = NestedForGuests::Unknown;
    match ext {
        Extension::Vmx | Extension::Svm if firmware == FirmwareState::Disabled => {
            nested_for = NestedForGuests::Disabled
        }
        Extension::Vmx | Extension::Svm if vendor_mod.is_some() => match (kvm.nested, kvm.nested_effective) {
            (Tri::Enabled, Some(false)) => {
                nested_for = NestedForGuests::Unsupported;
                b.add(
                    "kvm.nested_not_offered",
                    Level::Fail,
                    C_NESTED,
                    format!("{param_file} is on, but KVM_GET_SUPPORTED_CPUID does not offer {} to guests", ext.as_str()),
                    nested_ev(),
                    Some(format!("Reload {vendor_mod_name} after the last VM stops, and check the kernel log for why nested was refused (e.g. missing VMX features on an L1)")),
                );
            }
            (Tri::Enabled, _) | (Tri::Unknown, Some(true)) => {
                nested_for = NestedForGuests::Available;
                b.add(
                    "nested.available",
                    Level::Pass,
                    C_NESTED,
                    format!(
                        "Nested virtualization is on: guests can be given {}{}",
                        ext.as_str(),
                        if kvm.nested_effective == Some(true) {
                            " (KVM offers it in KVM_GET_SUPPORTED_CPUID)"
                        } else {
                            ""
                        }
                    ),
                    nested_ev(),
                    None,
                );
            }
            (Tri::Disabled, _) | (Tri::Unknown, Some(false)) => {
                nested_for = NestedForGuests::Disabled;
                let busy = vendor_mod.is_some_and(|m| m.in_use());
                let builtin = vendor_mod.is_some_and(|m| m.state == ModuleState::Builtin);
                let dash = vendor_mod_name.replace('_', "-");
                b.add(
                    "kvm.nested_off",
                    Level::Fail,
                    C_NESTED,
                    format!("Nested virtualization is off ({param_file} = {})", if ext == Extension::Svm { "0" } else { "N" }),
                    nested_ev(),
                    Some(if builtin {
                        format!("Add {dash}.nested=1 to the kernel command line and reboot: `nestcore enable --persist cmdline --apply`")
                    } else {
                        format!(
                            "`nestcore enable --apply` writes `options {vendor_mod_name} nested=1` to /etc/modprobe.d/nestcore-kvm.conf; then {} (`--persist cmdline` adds {dash}.nested=1 to the boot configuration instead)",
                            if busy {
                                "reboot: the module is in use, so it cannot be reloaded now".to_string()
                            } else {
                                format!("reload it when no VM runs: modprobe -r {vendor_mod_name} && modprobe {vendor_mod_name} (`--persist modprobe,runtime` does both)")
                            }
                        )
                    }),
                );
            }
            (Tri::Unknown, None) => {}
        },
        Extension::None => nested_for = NestedForGuests::Unsupported,
        _ if pvm => nested_for = NestedForGuests::Unsupported,
        _ => {}
    }

    // 5. Nested performance.
    if nested_for == NestedForGuests::Available || nested_for == NestedForGuests::Disabled {
        let mut missing = Vec::new();
        let mut ev = Vec::new();
        if let Some(m) = vendor_mod {
            let names: &[&str] = if ext == Extension::Svm {
                &["npt"]
            } else {
                &["ept", "vpid", "enable_shadow_vmcs"]
            };
            for n in names {
                if m.param_bool(n) == Some(false) {
                    missing.push(format!("{vendor_mod_name}.{n} is off"));
                    ev.push(Evidence::new(
                        format!("/sys/module/{vendor_mod_name}/parameters/{n}"),
                        "off",
                    ));
                }
            }
        }
        if let Some(vf) = &cpu.vmx_features {
            for n in ["ept", "vpid", "shadow_vmcs"] {
                if !vf.iter().any(|f| f == n) {
                    missing.push(format!("the CPU lacks {n}"));
                    ev.push(Evidence::new("/proc/cpuinfo", format!("vmx flags without {n}")));
                }
            }
        }
        if let Some(s) = &cpu.svm_features {
            if !s.npt {
                missing.push("the CPU lacks NPT".into());
                ev.push(Evidence::new(
                    format!("{} (svm features)", s.source),
                    "npt absent",
                ));
            }
        }
        if missing.is_empty() {
            b.add(
                "kvm.nested_perf_ok",
                Level::Pass,
                C_PERF,
                "The features that keep nested guests fast are present".into(),
                vec![],
                None,
            );
        } else {
            b.add(
                "kvm.nested_perf_missing",
                Level::Warn,
                C_PERF,
                format!("Nested guests will be slow: {}", missing.join(", ")),
                ev,
                Some("If L2 is slow, check enable_shadow_vmcs and ept (Intel) or npt (AMD): turn the parameters on, or give this host's guests a CPU model with these features".into()),
            );
        }
    }

    // 6. Probe.
    if let Some(p) = &kvm.probe {
        if p.ok {
            b.add(
                "kvm.probe_ok",
                Level::Pass,
                C_PROBE,
                format!("A test VM ran to completion in {} µs", p.duration_us),
                kvm_ev(kvm, "probe"),
                None,
            );
        } else {
            b.add(
                "kvm.probe_failed",
                Level::Fail,
                C_PROBE,
                format!(
                    "A test VM failed at {}: {}",
                    p.stage,
                    p.error.clone().unwrap_or_default()
                ),
                kvm_ev(kvm, "probe"),
                Some("Check the kernel log (dmesg) for KVM errors".into()),
            );
        }
    }
    if let Some(c) = &kvm.device.capabilities {
        if !c.nested_state && nested_for == NestedForGuests::Available {
            b.add(
                "kvm.no_nested_state",
                Level::Info,
                C_NESTED,
                "KVM lacks KVM_CAP_NESTED_STATE: a guest running its own guests cannot be live-migrated"
                    .into(),
                kvm_ev(kvm, "ioctl KVM_CHECK_EXTENSION"),
                None,
            );
        }
    }

    // kvm_usable.
    let kvm_usable = match kvm.device.state {
        DeviceState::Usable => Some(kvm.probe.as_ref().is_none_or(|p| p.ok)),
        DeviceState::Present => {
            if kvm.backend.is_some() {
                Some(true)
            } else if !backend_possible && ext != Extension::Unknown {
                Some(false)
            } else {
                None
            }
        }
        DeviceState::Absent if !live && ext == Extension::Unknown && kvm.backend.is_none() => None,
        _ => Some(false),
    };

    Verdict {
        kvm_usable,
        nested_for_guests: nested_for,
        findings: b.findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{CpuReport, Vendor};
    use crate::kvm::{Capabilities, DeviceReport, ModuleReport, ParamValue, ProbeReport};
    use std::collections::BTreeMap;

    fn intel_cpu() -> CpuReport {
        CpuReport {
            vendor_id: Some("GenuineIntel".into()),
            vendor: Vendor::Intel,
            family: Some(6),
            model: Some(85),
            stepping: Some(7),
            brand: None,
            arch: Some("x86_64".into()),
            extension: Extension::Vmx,
            hypervisor_bit: Some(false),
            cpuid_vmx: Some(true),
            cpuid_svm: Some(false),
            flags_vmx: Some(true),
            flags_svm: Some(false),
            flags_hypervisor: Some(false),
            vmx_features: Some(vec!["ept".into(), "vpid".into(), "shadow_vmcs".into()]),
            svm_features: None,
            firmware: FirmwareState::Enabled,
            evidence: vec![],
        }
    }

    fn module(name: &str, nested: Option<bool>) -> ModuleReport {
        let mut parameters = BTreeMap::new();
        if let Some(n) = nested {
            parameters.insert("nested".to_string(), ParamValue::Bool(n));
        }
        ModuleReport {
            name: name.into(),
            state: ModuleState::Loaded,
            refcnt: Some(0),
            holders: vec![],
            parameters,
        }
    }

    fn kvm(state: DeviceState, nested: Tri, offers: Option<bool>) -> KvmReport {
        KvmReport {
            device: DeviceReport {
                path: "/dev/kvm",
                state,
                api_version: (state == DeviceState::Usable).then_some(12),
                errno: None,
                error: None,
                capabilities: Some(Capabilities {
                    nested_state: true,
                    get_msr_features: true,
                    hyperv_enlightened_vmcs: false,
                }),
                offers_extension: offers,
                access: None,
                vmm_capabilities: None,
            },
            backend: Some("kvm_intel".into()),
            modules: vec![module(
                "kvm_intel",
                match nested {
                    Tri::Enabled => Some(true),
                    Tri::Disabled => Some(false),
                    Tri::Unknown => None,
                },
            )],
            nested,
            nested_effective: offers,
            probe: None,
            other_hypervisors: vec![],
            evidence: vec![],
        }
    }

    fn judge_live(cpu: &CpuReport, k: &KvmReport) -> Verdict {
        let virt = VirtReport {
            hypervisor: "none".into(),
            container: "none".into(),
            ..Default::default()
        };
        judge(
            cpu,
            &virt,
            k,
            &CmdlineReport {
                present: true,
                relevant: vec![],
            },
            true,
        )
    }

    fn codes(v: &Verdict) -> Vec<&'static str> {
        v.findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn healthy_intel_host() {
        let v = judge_live(&intel_cpu(), &kvm(DeviceState::Usable, Tri::Enabled, Some(true)));
        assert_eq!(v.kvm_usable, Some(true));
        assert_eq!(v.nested_for_guests, NestedForGuests::Available);
        assert!(
            v.findings.iter().all(|f| f.level == Level::Pass),
            "{:?}",
            codes(&v)
        );
    }

    #[test]
    fn device_failures_each_have_their_code_and_a_remedy() {
        for (state, code) in [
            (DeviceState::PermissionDenied, "kvm.permission_denied"),
            (DeviceState::Blocked, "kvm.device_cgroup"),
            (DeviceState::WrongApiVersion, "kvm.api_version"),
            (DeviceState::Absent, "kvm.device_missing"),
            (DeviceState::NoDriver, "kvm.device_no_driver"),
        ] {
            let v = judge_live(&intel_cpu(), &kvm(state, Tri::Enabled, None));
            let f = v
                .finding(code)
                .unwrap_or_else(|| panic!("{state:?}: {:?}", codes(&v)));
            assert_eq!(f.level, Level::Fail);
            assert!(f.remedy.is_some());
            assert_eq!(v.kvm_usable, Some(false), "{state:?}");
            // The host's nesting answer does not depend on this user's access.
            assert_eq!(v.nested_for_guests, NestedForGuests::Available);
        }
    }

    #[test]
    fn nested_on_but_not_offered() {
        let v = judge_live(&intel_cpu(), &kvm(DeviceState::Usable, Tri::Enabled, Some(false)));
        assert!(v.finding("kvm.nested_not_offered").is_some());
        assert_eq!(v.nested_for_guests, NestedForGuests::Unsupported);
    }

    #[test]
    fn nested_off_remedy_depends_on_module_use() {
        let mut k = kvm(DeviceState::Usable, Tri::Disabled, None);
        let v = judge_live(&intel_cpu(), &k);
        assert_eq!(v.nested_for_guests, NestedForGuests::Disabled);
        assert!(v
            .finding("kvm.nested_off")
            .unwrap()
            .remedy
            .as_deref()
            .unwrap()
            .contains("modprobe -r kvm_intel"));
        k.modules[0].refcnt = Some(2);
        let v = judge_live(&intel_cpu(), &k);
        assert!(v
            .finding("kvm.nested_off")
            .unwrap()
            .remedy
            .as_deref()
            .unwrap()
            .contains("reboot"));
        k.modules[0].state = ModuleState::Builtin;
        let v = judge_live(&intel_cpu(), &k);
        assert!(v.finding("kvm.module_builtin").is_some());
        assert!(v
            .finding("kvm.nested_off")
            .unwrap()
            .remedy
            .as_deref()
            .unwrap()
            .contains("kvm-intel.nested=1"));
    }

    #[test]
    fn failed_probe_makes_kvm_unusable() {
        let mut k = kvm(DeviceState::Usable, Tri::Enabled, Some(true));
        k.probe = Some(ProbeReport {
            ok: false,
            duration_us: 10,
            instructions: 0,
            stage: "create_vm",
            error: Some("EINVAL".into()),
            errno: Some(22),
        });
        let v = judge_live(&intel_cpu(), &k);
        assert_eq!(v.finding("kvm.probe_failed").unwrap().level, Level::Fail);
        assert_eq!(v.kvm_usable, Some(false));
    }

    #[test]
    fn missing_performance_features_warn() {
        let mut cpu = intel_cpu();
        cpu.vmx_features = Some(vec!["vpid".into()]);
        let mut k = kvm(DeviceState::Usable, Tri::Enabled, Some(true));
        k.modules[0]
            .parameters
            .insert("enable_shadow_vmcs".into(), ParamValue::Bool(false));
        let v = judge_live(&cpu, &k);
        let f = v.finding("kvm.nested_perf_missing").unwrap();
        assert_eq!(f.level, Level::Warn);
        assert!(
            f.message.contains("ept") && f.message.contains("enable_shadow_vmcs"),
            "{}",
            f.message
        );
    }

    #[test]
    fn firmware_disabled_is_disabled_not_unsupported() {
        let mut cpu = intel_cpu();
        cpu.flags_vmx = Some(false);
        cpu.firmware = FirmwareState::Disabled;
        let mut k = kvm(DeviceState::Absent, Tri::Unknown, None);
        k.modules.clear();
        k.backend = None;
        let v = judge_live(&cpu, &k);
        assert!(v.finding("cpu.firmware_disabled").is_some());
        assert_eq!(v.nested_for_guests, NestedForGuests::Disabled);
        assert_eq!(v.kvm_usable, Some(false));
    }

    #[test]
    fn another_hypervisor_holding_vtx_is_named_with_the_choice() {
        let mut k = kvm(DeviceState::Usable, Tri::Enabled, Some(true));
        k.other_hypervisors = vec!["vboxdrv".into()];
        let v = judge_live(&intel_cpu(), &k);
        let f = v.finding("kvm.other_hypervisor").unwrap();
        assert_eq!(f.level, Level::Warn);
        assert!(f.message.contains("VirtualBox's vboxdrv"), "{}", f.message);
        assert!(!f.message.contains("enable_virt_at_load"), "{}", f.message);
        // Linux 6.12+: a loaded kvm_intel holds VT-x from load time.
        k.modules.push(ModuleReport {
            name: "kvm".into(),
            state: ModuleState::Loaded,
            refcnt: Some(1),
            holders: vec!["kvm_intel".into()],
            parameters: BTreeMap::from([("enable_virt_at_load".to_string(), ParamValue::Bool(true))]),
        });
        let v = judge_live(&intel_cpu(), &k);
        let f = v.finding("kvm.other_hypervisor").unwrap();
        assert!(
            f.message.contains("enable_virt_at_load") && f.message.contains("VERR_VMX_IN_VMX_ROOT_MODE"),
            "{}",
            f.message
        );
        assert!(f
            .remedy
            .as_deref()
            .unwrap()
            .contains("options kvm enable_virt_at_load=0"));
        // EBUSY from KVM_CREATE_VM in the probe.
        k.other_hypervisors.clear();
        k.probe = Some(ProbeReport {
            ok: false,
            duration_us: 10,
            instructions: 0,
            stage: "create_vm",
            error: Some("Device or resource busy (os error 16)".into()),
            errno: Some(libc::EBUSY),
        });
        let v = judge_live(&intel_cpu(), &k);
        let f = v.finding("kvm.vtx_busy").unwrap();
        assert_eq!(f.level, Level::Fail);
        assert!(f.message.contains("EBUSY"), "{}", f.message);
        assert!(v.finding("kvm.other_hypervisor").is_none());
    }

    #[test]
    fn permission_denied_names_the_group_and_says_log_in_again() {
        use crate::kvm::access::{judge as access, NodeFacts};
        let mut k = kvm(DeviceState::PermissionDenied, Tri::Enabled, None);
        let status = "Name:\tx\nState:\tR\nTgid:\t1\nPid:\t1\nPPid:\t0\nTracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nFDSize:\t64\nGroups:\t1000\nThreads:\t1\nSigQ:\t0/1\nSigPnd:\t0\nShdPnd:\t0\nSigBlk:\t0\nSigIgn:\t0\nSigCgt:\t0\nCapInh:\t0\nCapPrm:\t0\nCapEff:\t0\n";
        k.device.access = Some(access(
            NodeFacts {
                uid: 0,
                gid: 108,
                mode: 0o20660,
                acl: None,
            },
            1000,
            1000,
            Some(status),
            Some("kvm:x:108:ci\n"),
            Some("root:x:0:0::/:/bin/sh\nci:x:1000:1000::/home/ci:/bin/sh\n"),
        ));
        let v = judge_live(&intel_cpu(), &k);
        let f = v.finding("kvm.permission_denied").unwrap();
        assert!(
            f.message.contains("root:kvm 0660") && f.message.contains("not in that group"),
            "{}",
            f.message
        );
        let r = f.remedy.as_deref().unwrap();
        assert!(
            r.contains("ci is in group kvm")
                && r.contains("log in again")
                && r.contains("udevadm trigger --name-match=kvm"),
            "{r}"
        );
        assert_eq!(f.layer, None);
    }

    #[test]
    fn a_guest_without_the_extension_gets_its_layers_remedy() {
        let mut cpu = intel_cpu();
        cpu.extension = Extension::None;
        cpu.cpuid_vmx = Some(false);
        cpu.flags_vmx = Some(false);
        cpu.hypervisor_bit = Some(true);
        cpu.firmware = FirmwareState::NotApplicable;
        let mut k = kvm(DeviceState::Absent, Tri::Unknown, Some(false));
        k.backend = None;
        k.modules[0].state = ModuleState::Loadable;
        let virt = VirtReport {
            hypervisor: "vmware".into(),
            hypervisor_name: Some("VMware".into()),
            container: "none".into(),
            ..Default::default()
        };
        let v = judge(
            &cpu,
            &virt,
            &k,
            &CmdlineReport {
                present: true,
                relevant: vec![],
            },
            false,
        );
        let f = v.finding("cpu.extension_hidden_by_hypervisor").unwrap();
        assert_eq!(f.layer.as_deref(), Some("vmware"));
        assert!(f.remedy.as_deref().unwrap().contains("vhv.enable"));
        let m = v.finding("kvm.module_not_loaded").unwrap();
        assert!(
            m.message.contains("installed") && m.message.contains("cannot load without VT-x"),
            "{}",
            m.message
        );
        assert_eq!(m.layer.as_deref(), Some("vmware"));
        assert_eq!(v.nested_for_guests, NestedForGuests::Unsupported);
    }

    #[test]
    fn missing_nested_state_is_reported_for_migration() {
        let mut k = kvm(DeviceState::Usable, Tri::Enabled, Some(true));
        k.device.capabilities = Some(Capabilities {
            nested_state: false,
            get_msr_features: true,
            hyperv_enlightened_vmcs: false,
        });
        let v = judge_live(&intel_cpu(), &k);
        assert_eq!(v.finding("kvm.no_nested_state").unwrap().level, Level::Info);
    }
}
