//! Are we a guest, of what, inside what container, on what cloud.
//!
//! The order of evidence (each step recorded in the report):
//! 1. CPUID hypervisor signatures, every base 0x40000000 + n·0x100 while its max leaf is valid
//!    (only when CPUID.1:ECX bit 31 says a hypervisor is present). A non-Hyper-V signature wins
//!    over "Microsoft Hv": QEMU/KVM and Xen put "Microsoft Hv" first when they offer Hyper-V
//!    enlightenments and their own signature at 0x40000100.
//! 2. DMI (/sys/class/dmi/id), which wins where a hypervisor imitates another: Parallels and
//!    VirtualBox expose a KVM signature; a KVM guest that shows only "Microsoft Hv" has QEMU DMI.
//! 3. Xen (/proc/xen, /sys/hypervisor), device tree, s390 /proc/sysinfo, PowerVM lparcfg, UML,
//!    and PCI vendor ids as a last resort.
//!
//! Containers are told apart by what their managers leave behind; clouds by DMI vendor strings.

use serde::Serialize;

use crate::cpu::{regs_string, CpuinfoBlock};
use crate::evidence::Evidence;
use crate::Host;

/// One CPUID hypervisor signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signature {
    /// The base leaf, e.g. "0x40000000".
    pub leaf: String,
    /// The 12-byte signature, NULs removed ("KVMKVMKVM").
    pub signature: String,
    /// The max leaf this base reports.
    pub max_leaf: String,
}

/// The DMI strings nestcore reads (never serial numbers or UUIDs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Dmi {
    /// /sys/class/dmi/id/sys_vendor.
    pub sys_vendor: Option<String>,
    /// /sys/class/dmi/id/product_name.
    pub product_name: Option<String>,
    /// /sys/class/dmi/id/product_version.
    pub product_version: Option<String>,
    /// /sys/class/dmi/id/board_vendor.
    pub board_vendor: Option<String>,
    /// /sys/class/dmi/id/bios_vendor.
    pub bios_vendor: Option<String>,
}

impl Dmi {
    fn fields(&self) -> [(&'static str, Option<&str>); 5] {
        [
            ("product_name", self.product_name.as_deref()),
            ("sys_vendor", self.sys_vendor.as_deref()),
            ("board_vendor", self.board_vendor.as_deref()),
            ("bios_vendor", self.bios_vendor.as_deref()),
            ("product_version", self.product_version.as_deref()),
        ]
    }

    fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, v)| v.is_none())
    }
}

/// Xen specifics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XenInfo {
    /// "dom0" (the control domain) or "domU".
    pub role: &'static str,
    /// "pv", "hvm", "pvh" or "unknown".
    pub mode: &'static str,
}

/// lscpu's "Virtualization type": how this system is virtualized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VirtType {
    /// Not virtualized (bare metal, or the Xen control domain of a PV host).
    #[default]
    None,
    /// Full (hardware-assisted) virtualization: KVM, Hyper-V, VMware, VirtualBox, Xen HVM, ...
    Full,
    /// Paravirtualization: Xen PV and PVH, UML, POWER (PowerVM, KVM pseries).
    Para,
    /// A container (OpenVZ, Linux-VServer, WSL 1, docker, ...) and no hypervisor seen below it.
    Container,
}

impl VirtType {
    /// "none", "full", "para" or "container".
    pub fn as_str(self) -> &'static str {
        match self {
            VirtType::None => "none",
            VirtType::Full => "full",
            VirtType::Para => "para",
            VirtType::Container => "container",
        }
    }
}

/// What nestcore knows about the virtualization below and around this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[non_exhaustive]
pub struct VirtReport {
    /// systemd-detect-virt's id of the hypervisor below: none, kvm, qemu, bochs, xen, uml,
    /// vmware, oracle, microsoft, zvm, parallels, bhyve, qnx, acrn, powervm, apple, sre, google,
    /// amazon, vm-other.
    pub hypervisor: String,
    /// A readable name of the hypervisor ("KVM", "Microsoft Hyper-V", ...), when one was found.
    pub hypervisor_name: Option<String>,
    /// lscpu's "Virtualization type": full, para, container or none.
    #[serde(rename = "type")]
    pub virt_type: VirtType,
    /// Every CPUID hypervisor signature, in leaf order.
    pub signatures: Vec<Signature>,
    /// DMI strings, when /sys/class/dmi/id exists.
    pub dmi: Option<Dmi>,
    /// Xen role and mode, under Xen.
    pub xen: Option<XenInfo>,
    /// systemd-detect-virt's container id: none, docker, podman, lxc, lxc-libvirt,
    /// systemd-nspawn, openvz, rkt, wsl, proot, pouch, container-other.
    pub container: String,
    /// The cloud, when DMI tells: aws, gcp, azure (Hyper-V with Azure's chassis asset tag), alibaba,
    /// oracle, openstack, digitalocean, ...
    pub cloud: Option<String>,
    /// What proved it.
    pub evidence: Vec<Evidence>,
}

/// Maps a CPUID signature to (systemd id, readable name).
pub fn signature_id(sig: &str) -> (&'static str, &'static str) {
    match sig {
        "KVMKVMKVM" => ("kvm", "KVM"),
        "Linux KVM Hv" => ("kvm", "KVM (Hyper-V personality)"),
        "TCGTCGTCGTCG" => ("qemu", "QEMU TCG"),
        "Microsoft Hv" => ("microsoft", "Microsoft Hyper-V"),
        "VMwareVMware" => ("vmware", "VMware"),
        "XenVMMXenVMM" => ("xen", "Xen"),
        "bhyve bhyve" | "bhyve bhyve " | "BHyVE BHyVE" | "BHyVE BHyVE " => ("bhyve", "bhyve"),
        "QNXQVMBSQG" => ("qnx", "QNX hypervisor"),
        "ACRNACRNACRN" => ("acrn", "ACRN"),
        "SRESRESRESRE" => ("sre", "SRE"),
        "Apple VZ" => ("apple", "Apple Virtualization"),
        "LKVMLKVMLKVM" => ("kvm", "KVM (kvmtool)"),
        "OpenBSDVMM58" => ("vm-other", "OpenBSD vmm"),
        "UnisysSpar64" => ("vm-other", "Unisys s-Par"),
        "VBoxVBoxVBox" => ("oracle", "VirtualBox"),
        "prl hyperv" | "prl hyperv  " => ("parallels", "Parallels"),
        _ => ("vm-other", "unknown hypervisor"),
    }
}

/// Maps DMI strings by prefix (systemd's table, plus QEMU's old "Bochs" default which is QEMU).
fn dmi_id(dmi: &Dmi) -> Option<(&'static str, &'static str, &'static str, String)> {
    const TABLE: &[(&str, &str, &str)] = &[
        ("KVM", "kvm", "KVM"),
        ("OpenStack", "kvm", "KVM (OpenStack)"),
        ("KubeVirt", "kvm", "KVM (KubeVirt)"),
        ("Amazon EC2", "amazon", "Amazon EC2"),
        ("QEMU", "qemu", "QEMU"),
        ("VMware", "vmware", "VMware"),
        ("VMW", "vmware", "VMware"),
        ("innotek GmbH", "oracle", "VirtualBox"),
        ("VirtualBox", "oracle", "VirtualBox"),
        ("Oracle Corporation", "oracle", "VirtualBox"),
        ("Xen", "xen", "Xen"),
        // QEMU's SMBIOS said "Bochs" before it said "QEMU"; the Bochs emulator itself has no SMBIOS
        // of this kind. virt-what calls these machines qemu, as we do.
        ("Bochs", "qemu", "QEMU"),
        ("Parallels", "parallels", "Parallels"),
        ("BHYVE", "bhyve", "bhyve"),
        ("Hyper-V", "microsoft", "Microsoft Hyper-V"),
        ("Apple Virtualization", "apple", "Apple Virtualization"),
        ("Google Compute Engine", "google", "Google Compute Engine"),
        ("Alibaba Cloud ECS", "kvm", "KVM (Alibaba Cloud)"),
        ("Nutanix", "kvm", "KVM (Nutanix AHV)"),
        ("RHEV Hypervisor", "kvm", "KVM (RHEV)"),
        ("oVirt Node", "kvm", "KVM (oVirt)"),
        ("UpCloud", "kvm", "KVM (UpCloud)"),
        ("DigitalOcean", "kvm", "KVM (DigitalOcean)"),
    ];
    for (field, value) in dmi.fields() {
        let Some(v) = value else { continue };
        for (prefix, id, name) in TABLE {
            if v.starts_with(prefix) {
                return Some((id, name, field, v.to_string()));
            }
        }
    }
    // Hyper-V's own firmware: "Microsoft Corporation" / "Virtual Machine" (also Azure).
    if dmi.sys_vendor.as_deref() == Some("Microsoft Corporation")
        && dmi.product_name.as_deref() == Some("Virtual Machine")
    {
        return Some((
            "microsoft",
            "Microsoft Hyper-V",
            "product_name",
            "Virtual Machine".into(),
        ));
    }
    None
}

fn cloud_of(dmi: &Dmi) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("Amazon EC2", "aws"),
        ("Google", "gcp"),
        ("Alibaba Cloud", "alibaba"),
        ("OracleCloud", "oracle"),
        ("OpenStack", "openstack"),
        ("DigitalOcean", "digitalocean"),
        ("Hetzner", "hetzner"),
        ("UpCloud", "upcloud"),
        ("Tencent Cloud", "tencent"),
        ("Scaleway", "scaleway"),
        ("Linode", "linode"),
        ("Vultr", "vultr"),
        ("Nutanix", "nutanix"),
    ];
    for (_, v) in dmi.fields() {
        let Some(v) = v else { continue };
        if let Some((_, c)) = TABLE.iter().find(|(p, _)| v.starts_with(p)) {
            return Some(c);
        }
    }
    None
}

/// Walks the hypervisor leaves. At most 16 bases.
fn signatures(host: &Host) -> Vec<Signature> {
    let mut out = Vec::new();
    let mut base = 0x4000_0000u32;
    while base < 0x4001_0000 {
        let Some(r) = host.cpuid(base, 0) else { break };
        let max = r[0];
        let sig = regs_string(&[r[1], r[2], r[3]]);
        // A base is valid when its max leaf lies in [base, base + 0xff] (KVM once reported 0 in
        // EAX, meaning base + 1), and its signature is printable text.
        let valid_max = (base..base + 0x100).contains(&max) || (max == 0 && base == 0x4000_0000);
        let printable = sig.len() >= 4 && sig.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        if !valid_max || !printable {
            break;
        }
        out.push(Signature {
            leaf: format!("{base:#010x}"),
            signature: sig,
            max_leaf: format!("{max:#010x}"),
        });
        base += 0x100;
    }
    out
}

fn read_dmi(host: &Host) -> Option<Dmi> {
    let read = |f: &str| {
        host.read_trimmed(&format!("/sys/class/dmi/id/{f}"))
            .ok()
            .filter(|s| !s.is_empty())
    };
    let dmi = Dmi {
        sys_vendor: read("sys_vendor"),
        product_name: read("product_name"),
        product_version: read("product_version"),
        board_vendor: read("board_vendor"),
        bios_vendor: read("bios_vendor"),
    };
    (!dmi.is_empty()).then_some(dmi)
}

/// Xen feature bits of /sys/hypervisor/properties/features (xen/include/public/features.h), read
/// the way lscpu (lscpu-virt.c) and systemd (virt.c) read them.
const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
const XENFEAT_DOM0: u32 = 11;

/// Xen's platform PCI device (vendor 5853, device 0001): QEMU gives it to HVM guests only.
const XEN_PLATFORM_PCI: &str = "58530001";

/// Whether /proc/bus/pci/devices lists `id` (vendor and device, 8 hex digits).
fn has_pci_device(host: &Host, id: &str) -> bool {
    host.read("/proc/bus/pci/devices")
        .map(|t| t.lines().any(|l| l.split('\t').nth(1) == Some(id)))
        .unwrap_or(false)
}

/// Xen's role and guest mode. Decided on old roots too: /sys/hypervisor/guest_type (Linux 4.17+)
/// first, then the feature bits, then a Xen CPUID signature or the platform PCI device (HVM only),
/// and last /proc/xen alone, which lscpu reads as PV.
fn xen(host: &Host, sig_xen: bool, ev: &mut Vec<Evidence>) -> Option<XenInfo> {
    let proc_xen = host.exists("/proc/xen");
    let hv_type = host.read_trimmed("/sys/hypervisor/type").ok();
    if !proc_xen && hv_type.as_deref() != Some("xen") && !sig_xen {
        return None;
    }
    let caps = host.read("/proc/xen/capabilities").unwrap_or_default();
    let features = host
        .read_trimmed("/sys/hypervisor/properties/features")
        .ok()
        .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok());
    let feat = |b: u32| features.is_some_and(|f| f >> b & 1 == 1);
    let dom0 = caps.split(',').any(|c| c.trim() == "control_d") || feat(XENFEAT_DOM0);
    let role = if dom0 { "dom0" } else { "domU" };
    let (mode, why): (&'static str, String) =
        match host.read_trimmed("/sys/hypervisor/guest_type").ok().as_deref() {
            Some("PV") => ("pv", "/sys/hypervisor/guest_type PV".into()),
            Some("HVM") => ("hvm", "/sys/hypervisor/guest_type HVM".into()),
            Some("PVH") => ("pvh", "/sys/hypervisor/guest_type PVH".into()),
            _ => match features {
                Some(f) if feat(XENFEAT_MMU_PT_UPDATE_PRESERVE_AD) => {
                    ("pv", format!("features {f:#x}: mmu_pt_update_preserve_ad (PV)"))
                }
                Some(f) if feat(XENFEAT_SUPERVISOR_MODE_KERNEL) && feat(XENFEAT_HVM_CALLBACK_VECTOR) => (
                    "pvh",
                    format!("features {f:#x}: supervisor_mode_kernel and hvm_callback_vector (PVH)"),
                ),
                _ if sig_xen => (
                    "hvm",
                    "a Xen CPUID signature (CPUID is not intercepted for PV user space)".into(),
                ),
                _ if has_pci_device(host, XEN_PLATFORM_PCI) => (
                    "hvm",
                    "the Xen platform PCI device 5853:0001 (HVM guests only)".into(),
                ),
                _ if proc_xen => (
                    "pv",
                    "/proc/xen without a Xen CPUID signature or platform PCI device (PV)".into(),
                ),
                _ => (
                    "unknown",
                    "no guest_type, feature bits, signature or platform device".into(),
                ),
            },
        };
    ev.push(Evidence::new(
        if proc_xen {
            "/proc/xen"
        } else if sig_xen {
            "cpuid 0x40000000"
        } else {
            "/sys/hypervisor/type"
        },
        format!(
            "Xen present; /proc/xen/capabilities {:?} ({role}); mode {mode} from {why}",
            caps.trim()
        ),
    ));
    Some(XenInfo { role, mode })
}

fn device_tree(host: &Host) -> Option<(&'static str, &'static str, String)> {
    if let Ok(c) = host.read("/proc/device-tree/hypervisor/compatible") {
        let c = c.replace('\0', " ");
        let id = if c.contains("linux,kvm") {
            ("kvm", "KVM")
        } else if c.contains("xen") {
            ("xen", "Xen")
        } else if c.contains("vmware") {
            ("vmware", "VMware")
        } else {
            ("vm-other", "unknown hypervisor")
        };
        return Some((
            id.0,
            id.1,
            format!("/proc/device-tree/hypervisor/compatible: {}", c.trim()),
        ));
    }
    if host.exists("/proc/device-tree/ibm,partition-name") && host.exists("/proc/device-tree/hmc-managed?") {
        return Some((
            "powervm",
            "IBM PowerVM",
            "/proc/device-tree/ibm,partition-name and hmc-managed?".into(),
        ));
    }
    if let Ok(c) = host.read("/proc/device-tree/compatible") {
        let c = c.replace('\0', " ");
        if c.contains("qemu,pseries") {
            return Some((
                "qemu",
                "QEMU",
                format!("/proc/device-tree/compatible: {}", c.trim()),
            ));
        }
        if c.contains("linux,dummy-virt") {
            return Some((
                "kvm",
                "KVM (kvmtool)",
                format!("/proc/device-tree/compatible: {}", c.trim()),
            ));
        }
    }
    if let Ok(names) = host.read_dir("/proc/device-tree") {
        if let Some(n) = names.iter().find(|n| n.starts_with("fw-cfg")) {
            return Some(("qemu", "QEMU", format!("/proc/device-tree/{n} (QEMU fw_cfg)")));
        }
    }
    None
}

fn s390(host: &Host) -> Option<(&'static str, &'static str, String)> {
    let text = host.read("/proc/sysinfo").ok()?;
    let cp = text
        .lines()
        .find(|l| l.contains("Control Program:"))
        .map(|l| l.trim().to_string());
    Some(match cp {
        Some(l) if l.contains("KVM") => ("kvm", "KVM", format!("/proc/sysinfo: {l}")),
        Some(l) if l.contains("z/VM") => ("zvm", "IBM z/VM", format!("/proc/sysinfo: {l}")),
        Some(l) => ("vm-other", "unknown hypervisor", format!("/proc/sysinfo: {l}")),
        // LPAR: PR/SM is firmware, not a guest hypervisor in systemd's sense.
        None => (
            "none",
            "IBM PR/SM (LPAR)",
            "/proc/sysinfo: no Control Program line (LPAR)".into(),
        ),
    })
}

fn ppc(host: &Host, info: &CpuinfoBlock) -> Option<(&'static str, &'static str, String)> {
    if host.exists("/proc/ppc64/lparcfg") {
        let text = host.read("/proc/ppc64/lparcfg").unwrap_or_default();
        // Under KVM (pseries), lparcfg exists too but has no partition entitlement of PowerVM.
        if text.contains("partition_entitled_capacity") || text.contains("shared_processor_mode") {
            return Some((
                "powervm",
                "IBM PowerVM",
                "/proc/ppc64/lparcfg: PowerVM partition".into(),
            ));
        }
    }
    if info.arch() != Some("ppc64le") {
        return None;
    }
    // On POWER the `machine` line follows all processor blocks: read the whole file here (only on
    // POWER, and bounded by MAX_READ).
    let all = host.read("/proc/cpuinfo").unwrap_or_default();
    let machine = all
        .lines()
        .find_map(|l| l.strip_prefix("machine"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim())
        .unwrap_or_default();
    if machine.contains("emulated by qemu") {
        // pseries under QEMU: KVM (HV or PR) unless told otherwise.
        return Some(("kvm", "KVM", format!("/proc/cpuinfo machine: {machine}")));
    }
    None
}

fn pci(host: &Host) -> Option<(&'static str, &'static str, String)> {
    // Devices that exist only inside guests (lscpu's list plus VirtualBox's guest service and
    // VMware's older SVGA): a vendor id alone would also match real hardware of those vendors.
    const DEVICES: &[(&str, &str, &str)] = &[
        ("58530001", "xen", "Xen"),
        ("15ad0710", "vmware", "VMware"),
        ("15ad0405", "vmware", "VMware"),
        ("80eebeef", "oracle", "VirtualBox"),
        ("80eecafe", "oracle", "VirtualBox"),
        ("14145353", "microsoft", "Microsoft Hyper-V"),
    ];
    let text = host.read("/proc/bus/pci/devices").ok()?;
    for line in text.lines() {
        let id = line.split('\t').nth(1).unwrap_or_default();
        if let Some((dev, hv, name)) = DEVICES.iter().find(|(d, _, _)| *d == id) {
            return Some((
                hv,
                name,
                format!(
                    "/proc/bus/pci/devices: PCI device {}:{} exists only in {name} guests",
                    &dev[..4],
                    &dev[4..]
                ),
            ));
        }
    }
    None
}

fn container(host: &Host, kernel: Option<&str>, ev: &mut Vec<Evidence>) -> &'static str {
    let map = |name: &str| -> &'static str {
        match name.trim() {
            "" => "none",
            "docker" => "docker",
            "podman" => "podman",
            "lxc" => "lxc",
            "lxc-libvirt" => "lxc-libvirt",
            "systemd-nspawn" => "systemd-nspawn",
            "rkt" => "rkt",
            "wsl" => "wsl",
            "proot" => "proot",
            "pouch" => "pouch",
            "openvz" => "openvz",
            _ => "container-other",
        }
    };
    if host.exists("/proc/vz") && !host.exists("/proc/bc") {
        ev.push(Evidence::new(
            "/proc/vz",
            "exists without /proc/bc: an OpenVZ container",
        ));
        return "openvz";
    }
    if let Some(rel) = kernel {
        if rel.contains("Microsoft") || rel.contains("WSL") {
            ev.push(Evidence::new(
                "/proc/sys/kernel/osrelease",
                format!("{rel:?}: Windows Subsystem for Linux"),
            ));
            return "wsl";
        }
    }
    for f in ["/run/systemd/container", "/run/host/container-manager"] {
        if let Ok(v) = host.read_trimmed(f) {
            if !v.is_empty() {
                ev.push(Evidence::new(f, v.clone()));
                return map(&v);
            }
        }
    }
    match host.read_bytes("/proc/1/environ") {
        Ok(env) => {
            if let Some(v) = env
                .split(|&b| b == 0)
                .find_map(|kv| kv.strip_prefix(b"container="))
            {
                let v = String::from_utf8_lossy(v).into_owned();
                ev.push(Evidence::new("/proc/1/environ", format!("container={v}")));
                return map(&v);
            }
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            ev.push(Evidence::new("/proc/1/environ", format!("unreadable: {e}")));
        }
        Err(_) => {}
    }
    if host.exists("/run/.containerenv") {
        ev.push(Evidence::new("/run/.containerenv", "exists: a podman container"));
        return "podman";
    }
    if host.exists("/.dockerenv") {
        ev.push(Evidence::new("/.dockerenv", "exists: a docker container"));
        return "docker";
    }
    for f in ["/proc/self/cgroup", "/proc/1/cgroup"] {
        let Ok(bytes) = host.read_bytes(f) else { continue };
        // procfs-core's parser (hierarchy:controllers:path per line), over the Host's bytes.
        let groups = match <procfs_core::ProcessCGroups as procfs_core::FromRead>::from_read(bytes.as_slice())
        {
            Ok(g) => g,
            Err(e) => {
                ev.push(Evidence::new(f, format!("unparsable: {e}")));
                continue;
            }
        };
        for g in &groups.0 {
            let p = g.pathname.as_str();
            let hit = if p.contains("/docker/") || p.contains("docker-") {
                Some("docker")
            } else if p.contains("/libpod") {
                Some("podman")
            } else if p.contains("/lxc/") || p.contains("lxc.payload") {
                Some("lxc")
            } else if p.contains("kubepods") || p.contains("crio-") {
                Some("container-other")
            } else {
                None
            };
            if let Some(c) = hit {
                ev.push(Evidence::new(
                    f,
                    format!(
                        "cgroup path names a {c} container: {}:{}:{p}",
                        g.hierarchy,
                        g.controllers.join(",")
                    ),
                ));
                return c;
            }
        }
    }
    // Linux-VServer's VxID/s_context and OpenVZ's envID: procfs-core's Status drops fields it does
    // not know (these three) and needs ~30 others a recorded root may lack, so this scan stays.
    if let Ok(status) = host.read("/proc/self/status") {
        for l in status.lines() {
            if let Some(v) = l.strip_prefix("VxID:").or_else(|| l.strip_prefix("s_context:")) {
                if v.trim() != "0" {
                    ev.push(Evidence::new(
                        "/proc/self/status",
                        format!("{}: a Linux-VServer guest", l.trim()),
                    ));
                    return "container-other";
                }
            }
            if let Some(v) = l.strip_prefix("envID:") {
                if v.trim() != "0" {
                    ev.push(Evidence::new(
                        "/proc/self/status",
                        format!("{}: an OpenVZ container", l.trim()),
                    ));
                    return "openvz";
                }
            }
        }
    }
    if let Ok(v) = host.read("/proc/version") {
        if v.contains("BrandZ") {
            ev.push(Evidence::new(
                "/proc/version",
                "BrandZ virtual linux: an illumos LX zone",
            ));
            return "container-other";
        }
    }
    "none"
}

/// EC2: a virtual instance (`amazon`) or bare metal (`none`), decided as systemd does: the SMBIOS
/// BIOS characteristics extension byte 2, bit 4 ("this is a virtual machine") in
/// /sys/firmware/dmi/entries/0-0/raw when readable (root only), else ".metal" (at the end, or
/// before a "-") in the product name.
fn amazon(host: &Host, dmi: Option<&Dmi>, ev: &mut Vec<Evidence>) -> (&'static str, &'static str) {
    match smbios_vm_bit(host) {
        Some(true) => {
            ev.push(Evidence::new(
                SMBIOS_0_0,
                "BIOS characteristics: a virtual machine",
            ));
            return ("amazon", "Amazon EC2");
        }
        Some(false) => {
            ev.push(Evidence::new(
                SMBIOS_0_0,
                "BIOS characteristics: not a virtual machine (EC2 bare metal)",
            ));
            return ("none", "none");
        }
        None => {}
    }
    let product = dmi.and_then(|d| d.product_name.as_deref()).unwrap_or_default();
    let metal = product
        .find(".metal")
        .map(|i| &product[i + ".metal".len()..])
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'));
    if metal {
        ev.push(Evidence::new(
            "/sys/class/dmi/id/product_name",
            format!("{product:?}: an EC2 .metal instance, bare metal"),
        ));
        ("none", "none")
    } else {
        ("amazon", "Amazon EC2")
    }
}

const SMBIOS_0_0: &str = "/sys/firmware/dmi/entries/0-0/raw";

/// SMBIOS type 0, BIOS characteristics extension byte 2 (offset 0x13), bit 4: a virtual machine.
/// `None` when the table is unreadable (not root) or too short.
fn smbios_vm_bit(host: &Host) -> Option<bool> {
    let raw = host.read_bytes(SMBIOS_0_0).ok()?;
    if raw.len() < 20 || raw[1] < 20 {
        return None;
    }
    Some(raw[19] >> 4 & 1 == 1)
}

/// lscpu's "Virtualization type" for what was detected.
fn virt_type(hypervisor: &str, xen: Option<&XenInfo>, container: &str, arch: Option<&str>) -> VirtType {
    if let Some(x) = xen {
        return match x.mode {
            "pv" | "pvh" if x.role == "dom0" && hypervisor == "none" => VirtType::None,
            "pv" | "pvh" => VirtType::Para,
            _ if x.role == "dom0" && hypervisor == "none" => VirtType::None,
            _ => VirtType::Full,
        };
    }
    match hypervisor {
        // lscpu: an s390 LPAR runs on PR/SM, a firmware hypervisor ("IBM, PR/SM, full"), which
        // systemd does not count as a VM.
        "none" if arch == Some("s390x") => VirtType::Full,
        "none" if container != "none" => VirtType::Container,
        "none" => VirtType::None,
        // lscpu: PowerVM (pHyp) and KVM on POWER (pseries) are paravirtualized, and so is UML.
        "powervm" | "uml" => VirtType::Para,
        "kvm" | "qemu" if arch == Some("ppc64le") => VirtType::Para,
        _ => VirtType::Full,
    }
}

/// Azure is Hyper-V with this chassis asset tag (DMI type 3): what cloud-init and waagent check.
const AZURE_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";

/// Detects the hypervisor, container and cloud.
///
/// `kernel` is the kernel release (/proc/sys/kernel/osrelease), which tells WSL.
pub fn detect(
    host: &Host,
    info: &CpuinfoBlock,
    hypervisor_bit: Option<bool>,
    kernel: Option<&str>,
) -> VirtReport {
    let mut ev = Vec::new();
    let sigs = if hypervisor_bit == Some(true) {
        signatures(host)
    } else {
        Vec::new()
    };
    for s in &sigs {
        ev.push(Evidence::new(
            format!("cpuid {}", s.leaf),
            format!("signature {:?} (max leaf {})", s.signature, s.max_leaf),
        ));
    }
    if hypervisor_bit == Some(true) && sigs.is_empty() {
        ev.push(Evidence::new(
            "cpuid 0x40000000",
            "hypervisor bit set but no valid signature",
        ));
    }
    // A non-Hyper-V signature is the real hypervisor: Hyper-V personalities come first.
    let primary = sigs
        .iter()
        .find(|s| s.signature != "Microsoft Hv")
        .or_else(|| sigs.first())
        .map(|s| signature_id(&s.signature));

    let dmi = read_dmi(host);
    let dmi_hit = dmi.as_ref().and_then(dmi_id);
    if let Some((id, _, field, v)) = &dmi_hit {
        ev.push(Evidence::new(
            format!("/sys/class/dmi/id/{field}"),
            format!("{v:?}: {id}"),
        ));
    }
    let sig_xen = sigs.iter().any(|s| s.signature == "XenVMMXenVMM");
    let mut xen = xen(host, sig_xen, &mut ev);

    let decided: Option<(&str, &str)> = {
        let dmi_id_only = dmi_hit.as_ref().map(|(id, name, _, _)| (*id, *name));
        match (primary, dmi_id_only) {
            // systemd (virt.c detect_vm): a DMI match of oracle, xen, amazon, parallels or google
            // ends detection, whatever CPUID says: VirtualBox and Parallels imitate KVM's
            // signature, EC2 (Nitro) and GCE run KVM, Xen may show Hyper-V's signature.
            (_, Some((d @ ("oracle" | "parallels" | "xen" | "google"), n))) => Some((d, n)),
            (_, Some(("amazon", _))) => Some(amazon(host, dmi.as_ref(), &mut ev)),
            // A KVM guest whose only signature is Hyper-V's (KVM leaf hidden): DMI says QEMU/KVM.
            (Some(("microsoft", _)), Some((d @ ("qemu" | "kvm"), _))) => Some((
                if d == "qemu" { "kvm" } else { d },
                "KVM (Hyper-V enlightenments)",
            )),
            (Some(p), _) => Some(p),
            // The Xen control domain is not a guest (systemd); a domU is Xen whatever DMI says.
            (None, _) if xen.as_ref().is_some_and(|x| x.role == "dom0") => Some(("none", "none")),
            (None, Some(d)) if xen.is_none() => Some(d),
            _ => None,
        }
    };

    let (hypervisor, name): (String, Option<String>) = if let Some((id, n)) = decided {
        (id.to_string(), (id != "none").then(|| n.to_string()))
    } else if let Some(x) = &xen {
        ("xen".into(), Some(format!("Xen ({} {})", x.role, x.mode)))
    } else {
        let other = device_tree(host)
            .or_else(|| s390(host))
            .or_else(|| ppc(host, info))
            .or_else(|| {
                let uml =
                    info.get("vendor_id") == Some("User Mode Linux") || info.get("model name") == Some("UML");
                uml.then(|| {
                    (
                        "uml",
                        "User Mode Linux",
                        "/proc/cpuinfo: User Mode Linux".to_string(),
                    )
                })
            });
        let other = other.or_else(|| {
            let t = host
                .read_trimmed("/sys/hypervisor/type")
                .ok()
                .filter(|t| !t.is_empty())?;
            Some((
                "vm-other",
                "unknown hypervisor",
                format!("/sys/hypervisor/type: {t}"),
            ))
        });
        let other = other.or_else(|| {
            // sun4v logical domains: the machine description device exists only there.
            (hypervisor_bit.is_none()
                && info.arch().is_none_or(|a| !a.starts_with("x86"))
                && host.exists("/dev/mdesc"))
            .then(|| {
                (
                    "vm-other",
                    "Oracle LDoms",
                    "/dev/mdesc (the sun4v machine description): a logical domain".to_string(),
                )
            })
        });
        // Xen HVM guests with PV drivers but no /proc/xen (and Xen on ia64).
        let other = other.or_else(|| {
            host.is_dir("/sys/bus/xen").then(|| {
                (
                    "xen",
                    "Xen (HVM)",
                    "/sys/bus/xen exists: Xen PV drivers in an HVM guest".to_string(),
                )
            })
        });
        // PCI devices that only guests have, where nothing better exists (old VirtualBox sets no
        // hypervisor bit).
        let other = other.or_else(|| pci(host));
        match other {
            Some((id, n, why)) => {
                if id == "xen" && xen.is_none() {
                    // Xen without /proc/xen (an HVM guest without xenfs): the platform PCI device
                    // or the Xen bus exist only in HVM guests.
                    xen = Some(XenInfo {
                        role: "domU",
                        mode: "hvm",
                    });
                }
                ev.push(Evidence::new("platform", why));
                (id.to_string(), (id != "none").then(|| n.to_string()))
            }
            None => {
                let flagged = hypervisor_bit == Some(true) || info.has_flag("hypervisor") == Some(true);
                if flagged {
                    ev.push(Evidence::new(
                        "hypervisor bit",
                        "set, but no signature, DMI or platform file names the hypervisor",
                    ));
                    ("vm-other".into(), Some("unknown hypervisor".into()))
                } else if dmi.is_some() && smbios_vm_bit(host) == Some(true) {
                    // systemd: firmware that says "virtual machine" and nothing else that names it.
                    ev.push(Evidence::new(
                        SMBIOS_0_0,
                        "BIOS characteristics: a virtual machine",
                    ));
                    ("vm-other".into(), Some("unknown hypervisor".into()))
                } else {
                    ("none".into(), None)
                }
            }
        }
    };

    let container = container(host, kernel, &mut ev).to_string();
    let mut cloud = dmi.as_ref().and_then(cloud_of).map(str::to_string);
    if hypervisor == "microsoft" && cloud.is_none() {
        if let Ok(tag) = host.read_trimmed("/sys/class/dmi/id/chassis_asset_tag") {
            if tag == AZURE_ASSET_TAG {
                ev.push(Evidence::new(
                    "/sys/class/dmi/id/chassis_asset_tag",
                    format!("{tag}: Microsoft Azure"),
                ));
                cloud = Some("azure".into());
            }
        }
    }
    let virt_type = virt_type(&hypervisor, xen.as_ref(), &container, info.arch());
    VirtReport {
        hypervisor,
        hypervisor_name: name,
        virt_type,
        signatures: sigs,
        dmi,
        xen,
        container,
        cloud,
        evidence: ev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let p = d.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        }
        d
    }

    fn detect_root(files: &[(&str, &[u8])]) -> VirtReport {
        let d = root(files);
        let host = Host::from_root(d.path()).unwrap();
        let (info, _) = CpuinfoBlock::read(&host);
        detect(&host, &info, None, None)
    }

    #[test]
    fn ec2_metal_follows_systemd() {
        let dmi: &[(&str, &[u8])] = &[("/sys/class/dmi/id/sys_vendor", b"Amazon EC2\n")];
        // SMBIOS type 0 with extension byte 2 (offset 19): bit 4 set = a VM, clear = metal.
        let mut raw = vec![0u8; 24];
        raw[1] = 24;
        raw[19] = 1 << 4;
        let vm = [dmi, &[("/sys/firmware/dmi/entries/0-0/raw", raw.as_slice())]].concat();
        assert_eq!(detect_root(&vm).hypervisor, "amazon");
        raw[19] = 0;
        let metal = [dmi, &[("/sys/firmware/dmi/entries/0-0/raw", raw.as_slice())]].concat();
        assert_eq!(detect_root(&metal).hypervisor, "none");
        // Without the table: ".metal" at the end or before "-" of the product name.
        for (product, id) in [
            ("m5.metal", "none"),
            ("m7i.metal-24xl", "none"),
            ("m5.large", "amazon"),
            ("x.metalx", "amazon"),
        ] {
            let p = format!("{product}\n");
            let f = [dmi, &[("/sys/class/dmi/id/product_name", p.as_bytes())]].concat();
            let v = detect_root(&f);
            assert_eq!(v.hypervisor, id, "{product}");
            assert_eq!(v.cloud.as_deref(), Some("aws"));
        }
    }

    #[test]
    fn azure_is_hyperv_with_the_asset_tag() {
        let hv: &[(&str, &[u8])] = &[
            ("/sys/class/dmi/id/sys_vendor", b"Microsoft Corporation\n"),
            ("/sys/class/dmi/id/product_name", b"Virtual Machine\n"),
        ];
        let v = detect_root(hv);
        assert_eq!((v.hypervisor.as_str(), v.cloud.as_deref()), ("microsoft", None));
        let az = [
            hv,
            &[(
                "/sys/class/dmi/id/chassis_asset_tag",
                b"7783-7084-3265-9085-8269-3286-77\n".as_slice(),
            )],
        ]
        .concat();
        let v = detect_root(&az);
        assert_eq!(
            (v.hypervisor.as_str(), v.cloud.as_deref()),
            ("microsoft", Some("azure"))
        );
        assert_eq!(v.virt_type, VirtType::Full);
    }

    #[test]
    fn dmi_ends_detection_like_systemd() {
        // GCE runs KVM, but DMI says Google: systemd-detect-virt says google.
        let d = root(&[("/sys/class/dmi/id/product_name", b"Google Compute Engine\n")]);
        let regs = |s: &[u8; 12]| -> [u32; 3] {
            [0, 4, 8].map(|i| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]))
        };
        let k = regs(b"KVMKVMKVM\0\0\0");
        let dump = crate::host::CpuidDump::from_leaves(
            crate::host::CpuidFormat::CpuidR,
            [crate::host::CpuidLeaf {
                leaf: 0x4000_0000,
                subleaf: 0,
                eax: 0x4000_0001,
                ebx: k[0],
                ecx: k[1],
                edx: k[2],
            }],
        );
        let host = Host::from_root(d.path())
            .unwrap()
            .with_cpuid(crate::host::CpuidSource::Recorded(dump));
        let (info, _) = CpuinfoBlock::read(&host);
        let v = detect(&host, &info, Some(true), None);
        assert_eq!(v.hypervisor, "google");
        assert_eq!(v.cloud.as_deref(), Some("gcp"));
    }

    #[test]
    fn xen_mode_on_old_roots() {
        let pv = detect_root(&[("/proc/xen/capabilities", b"")]);
        assert_eq!((pv.hypervisor.as_str(), pv.virt_type), ("xen", VirtType::Para));
        assert_eq!(pv.xen.as_ref().map(|x| (x.role, x.mode)), Some(("domU", "pv")));
        let dom0 = detect_root(&[("/proc/xen/capabilities", b"control_d\n")]);
        assert_eq!(
            (dom0.hypervisor.as_str(), dom0.virt_type),
            ("none", VirtType::None)
        );
        assert_eq!(dom0.xen.as_ref().map(|x| x.role), Some("dom0"));
        let pci: &[u8] = b"0010\t58530001\t1c\t\tf2000008\n";
        let hvm = detect_root(&[("/proc/xen/capabilities", b""), ("/proc/bus/pci/devices", pci)]);
        assert_eq!(
            (hvm.virt_type, hvm.xen.as_ref().map(|x| x.mode)),
            (VirtType::Full, Some("hvm"))
        );
        let only = detect_root(&[("/proc/bus/pci/devices", pci)]);
        assert_eq!(
            (only.hypervisor.as_str(), only.virt_type),
            ("xen", VirtType::Full)
        );
        // Feature bits (lscpu): mmu_pt_update_preserve_ad = PV, supervisor_mode_kernel and
        // hvm_callback_vector = PVH; XENFEAT_dom0 = the control domain.
        for (features, mode, role) in [
            ("20", "pv", "domU"),
            ("108", "pvh", "domU"),
            ("820", "pv", "dom0"),
        ] {
            let f = format!("{features}\n");
            let v = detect_root(&[
                ("/sys/hypervisor/type", b"xen\n"),
                ("/sys/hypervisor/properties/features", f.as_bytes()),
            ]);
            assert_eq!(
                v.xen.as_ref().map(|x| (x.mode, x.role)),
                Some((mode, role)),
                "{features}"
            );
        }
    }

    #[test]
    fn virt_type_follows_lscpu() {
        assert_eq!(virt_type("none", None, "none", Some("x86_64")), VirtType::None);
        assert_eq!(
            virt_type("none", None, "docker", Some("x86_64")),
            VirtType::Container
        );
        assert_eq!(virt_type("kvm", None, "docker", Some("x86_64")), VirtType::Full);
        assert_eq!(
            virt_type("powervm", None, "none", Some("ppc64le")),
            VirtType::Para
        );
        assert_eq!(virt_type("kvm", None, "none", Some("ppc64le")), VirtType::Para);
        assert_eq!(virt_type("none", None, "none", Some("s390x")), VirtType::Full);
        assert_eq!(virt_type("uml", None, "none", None), VirtType::Para);
    }

    #[test]
    fn signature_table() {
        assert_eq!(signature_id("KVMKVMKVM").0, "kvm");
        assert_eq!(signature_id("Microsoft Hv").0, "microsoft");
        assert_eq!(signature_id("garbage!").0, "vm-other");
    }

    #[test]
    fn dmi_prefixes() {
        let d = Dmi {
            sys_vendor: Some("innotek GmbH".into()),
            ..Default::default()
        };
        assert_eq!(dmi_id(&d).unwrap().0, "oracle");
        let d = Dmi {
            product_name: Some("Standard PC".into()),
            sys_vendor: Some("QEMU".into()),
            ..Default::default()
        };
        assert_eq!(dmi_id(&d).unwrap().0, "qemu");
        let d = Dmi {
            sys_vendor: Some("LENOVO".into()),
            ..Default::default()
        };
        assert!(dmi_id(&d).is_none());
        let d = Dmi {
            sys_vendor: Some("Amazon EC2".into()),
            ..Default::default()
        };
        assert_eq!(cloud_of(&d), Some("aws"));
    }
}
