//! The layer below: which hypervisor runs this guest, and the exact switch on it that gives the
//! guest VT-x/AMD-V.
//!
//! A guest without `vmx`/`svm` can only be fixed on the layer below, and every layer has its own
//! switch: `Set-VMProcessor -ExposeVirtualizationExtensions` on Hyper-V, `vhv.enable` on VMware,
//! `.wslconfig` for WSL 2, a VM size on Azure, `nestedhvm=1` on Xen, and so on. Where a guest
//! cannot tell layers apart (QEMU's DMI is the same under plain libvirt, Proxmox VE and OpenStack),
//! the remedy names each briefly. Pure: decided from the report's sections, reads nothing.
//!
//! ```
//! use nestcore::layer::{Layer, remedy};
//! use nestcore::cpu::Extension;
//!
//! let r = remedy(Layer::HyperV, Extension::Vmx);
//! assert!(r.contains("Set-VMProcessor -VMName <VM> -ExposeVirtualizationExtensions $true"));
//! ```

use crate::cpu::Extension;
use crate::hypervisor::VirtReport;

/// The platform below a guest, as far as its remedy differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layer {
    /// KVM managed by libvirt, plain QEMU, Proxmox VE or OpenStack: a guest cannot tell which.
    Kvm,
    /// An OpenStack instance (DMI says OpenStack): nova on the compute hosts decides.
    OpenStack,
    /// A KVM cloud whose provider controls the host (DigitalOcean, Hetzner, Alibaba, ...).
    KvmCloud(&'static str),
    /// QEMU without KVM (CPUID signature "TCGTCGTCGTCG").
    QemuTcg,
    /// QEMU, but whether with KVM or TCG is not known (DMI only, no CPUID).
    Qemu,
    /// Microsoft Hyper-V (Windows Server, Windows client).
    HyperV,
    /// Windows Subsystem for Linux 2 (a Hyper-V utility VM).
    Wsl2,
    /// Microsoft Azure (Hyper-V with Azure's chassis asset tag).
    Azure,
    /// VMware ESXi, Workstation or Fusion.
    Vmware,
    /// Oracle VirtualBox.
    VirtualBox,
    /// Parallels Desktop.
    Parallels,
    /// A Xen HVM (or PVH) guest.
    XenHvm,
    /// A Xen PV guest: no hardware virtualization at all.
    XenPv,
    /// Xen's control domain (dom0): Xen itself holds VT-x/AMD-V.
    XenDom0,
    /// Google Compute Engine.
    GoogleCloud,
    /// Amazon EC2.
    Aws,
    /// Another hypervisor (its readable name).
    Other,
}

impl Layer {
    /// The hypervisor id a finding about this layer carries (`Finding::layer`): the
    /// `virtualization.hypervisor` id, and "xen" for the control domain (which systemd calls
    /// "none").
    pub fn id(virt: &VirtReport) -> &str {
        if virt.hypervisor == "none" && virt.xen.is_some() {
            "xen"
        } else {
            &virt.hypervisor
        }
    }

    /// The layer below a guest described by `virt`; `None` when no hypervisor is below.
    pub fn below(virt: &VirtReport) -> Option<Layer> {
        let cloud = virt.cloud.as_deref();
        let sig = |s: &str| virt.signatures.iter().any(|x| x.signature == s);
        Some(match virt.hypervisor.as_str() {
            "none" if virt.xen.as_ref().is_some_and(|x| x.role == "dom0") => Layer::XenDom0,
            "none" => return None,
            "microsoft" if virt.container == "wsl" => Layer::Wsl2,
            "microsoft" if cloud == Some("azure") => Layer::Azure,
            "microsoft" => Layer::HyperV,
            "google" => Layer::GoogleCloud,
            "amazon" => Layer::Aws,
            "vmware" => Layer::Vmware,
            "oracle" => Layer::VirtualBox,
            "parallels" => Layer::Parallels,
            "xen" => match virt.xen.as_ref().map(|x| x.mode) {
                Some("pv") => Layer::XenPv,
                _ => Layer::XenHvm,
            },
            "qemu" if sig("TCGTCGTCGTCG") => Layer::QemuTcg,
            "qemu" | "bochs" => Layer::Qemu,
            "kvm" => match cloud {
                Some("gcp") => Layer::GoogleCloud,
                Some("aws") => Layer::Aws,
                Some("openstack") => Layer::OpenStack,
                Some(c) => Layer::KvmCloud(cloud_name(c)),
                None => Layer::Kvm,
            },
            _ => Layer::Other,
        })
    }
}

fn cloud_name(id: &str) -> &'static str {
    match id {
        "alibaba" => "Alibaba Cloud",
        "oracle" => "Oracle Cloud",
        "digitalocean" => "DigitalOcean",
        "hetzner" => "Hetzner Cloud",
        "upcloud" => "UpCloud",
        "tencent" => "Tencent Cloud",
        "scaleway" => "Scaleway",
        "linode" => "Linode",
        "vultr" => "Vultr",
        "nutanix" => "Nutanix AHV",
        _ => "a KVM cloud",
    }
}

/// The KVM recipe, for each manager a guest cannot tell apart.
fn kvm_recipe(e: &str) -> String {
    format!(
        "turn nesting on in the KVM host's {m} (`nestcore enable` there writes `options {m} nested=1`) and give this VM the CPU extension, then power it off and on: libvirt <cpu mode='host-passthrough'/> (or a custom model with <feature policy='require' name='{e}'/>), plain QEMU -cpu host (or -cpu MODEL,{e}=on), Proxmox VE `qm set VMID --cpu host`, OpenStack nova.conf [libvirt] cpu_mode = host-passthrough (or cpu_model_extra_flags = {e})",
        m = if e == "svm" { "kvm_amd" } else { "kvm_intel" }
    )
}

/// The exact remedy on `layer` that gives its guest `ext` (VMX or SVM; anything else is read as
/// the vendor's usual VMX). One plain sentence, usable as a plan blocker's reason.
pub fn remedy(layer: Layer, ext: Extension) -> String {
    let e = if ext == Extension::Svm { "svm" } else { "vmx" };
    match layer {
        Layer::Kvm => format!(
            "On the host below (KVM; from inside it cannot be told whether libvirt, plain QEMU, Proxmox VE or OpenStack manages this VM): {}",
            kvm_recipe(e)
        ),
        Layer::OpenStack => format!(
            "This is an OpenStack instance: on the compute hosts the operator sets nova.conf [libvirt] cpu_mode = host-passthrough (or cpu_mode = custom with cpu_model_extra_flags = {e}) and `options {} nested=1`, restarts nova-compute, and this instance is hard-rebooted (or resized) to get the new CPU",
            if e == "svm" { "kvm_amd" } else { "kvm_intel" }
        ),
        Layer::KvmCloud(name) => format!(
            "This is a {name} instance on KVM: the provider controls the host below, so choose an offering with nested virtualization (or a bare-metal server); on a KVM host you control: {}",
            kvm_recipe(e)
        ),
        Layer::QemuTcg if e == "svm" => "This VM runs under QEMU's TCG emulator (no KVM): TCG emulates SVM, so add svm=on to its -cpu (slow); for speed start it with KVM acceleration on the host below (-accel kvm, libvirt <domain type='kvm'>) with -cpu host and kvm_amd nested=1 there".into(),
        Layer::QemuTcg => "This VM runs under QEMU's TCG emulator (no KVM), and TCG cannot emulate VMX at all: start it with KVM acceleration on the host below (-accel kvm with -cpu host or -cpu MODEL,vmx=on; libvirt <domain type='kvm'> with <cpu mode='host-passthrough'/>) and kvm_intel nested=1 there, or run it on an AMD host, where TCG emulates SVM (-cpu MODEL,svm=on)".into(),
        Layer::Qemu => format!(
            "On the QEMU host below (DMI says QEMU; without CPUID it cannot be told whether KVM or TCG runs this VM): with KVM, {}; under TCG, VMX cannot be emulated at all (use -accel kvm; on an AMD host TCG emulates SVM with -cpu MODEL,svm=on)",
            kvm_recipe(e)
        ),
        Layer::HyperV => "On the Windows Hyper-V host, with this VM off: `Set-VMProcessor -VMName <VM> -ExposeVirtualizationExtensions $true`, then start it (Intel hosts: Windows Server 2016 or Windows 10 and later, VM configuration version 8.0 or later; AMD EPYC/Ryzen hosts: Windows Server 2022 or Windows 11 and later, VM configuration version 10.0 or later)".into(),
        Layer::Wsl2 => "WSL 2 gives its VM nested virtualization on Windows 11 only (Windows 10 cannot): in %UserProfile%\\.wslconfig, section [wsl2], set nestedVirtualization=true (the default; not in /etc/wsl.conf), then run `wsl --shutdown` in Windows and start the distribution again".into(),
        Layer::Azure => "This is an Azure VM (Hyper-V, no per-VM switch): resize it to a VM size whose family supports nested virtualization (Dv3/Ev3 and later, e.g. `az vm resize --size Standard_D4s_v5`) with security type Standard (not Trusted launch); the new size exposes VT-x/AMD-V after the restart".into(),
        Layer::Vmware => "On the VMware host, with this VM powered off: enable \"Expose hardware assisted virtualization to the guest OS\" (vSphere/ESXi, virtual hardware 9 or later) or \"Virtualize Intel VT-x/EPT or AMD-V/RVI\" (Workstation, Fusion), i.e. vhv.enable = \"TRUE\" in the .vmx; Workstation on a Windows host with Hyper-V, VBS or Memory integrity on (\"Host VBS mode\") cannot nest until those are turned off".into(),
        Layer::VirtualBox => "On the VirtualBox host, with this VM off: `VBoxManage modifyvm <VM> --nested-hw-virt on` (\"Enable Nested VT-x/AMD-V\"; AMD hosts since VirtualBox 6.0, Intel since 6.1); it is unavailable while the Windows host runs Hyper-V or VBS".into(),
        Layer::Parallels => "In Parallels Desktop, with this VM shut down: Configure > Hardware > CPU & Memory > Advanced, check \"Enable nested virtualization\"; on Apple silicon it needs an M3 or later and macOS 15 or later, for Linux guests".into(),
        Layer::XenHvm => "On the Xen host: add nestedhvm=1 to this guest's xl.cfg (HVM guests only; experimental upstream), then restart the domain (`xl shutdown` and `xl create`)".into(),
        Layer::XenPv => "This is a Xen PV guest, which cannot use VT-x/AMD-V at all: on the Xen host run it as an HVM guest (type = \"hvm\" and nestedhvm=1 in its xl.cfg)".into(),
        Layer::XenDom0 => "This is Xen's control domain (dom0): Xen itself holds VT-x/AMD-V, so KVM cannot run here; run nested workloads in Xen HVM guests (nestedhvm=1 in their xl.cfg), or boot this machine without Xen to use KVM".into(),
        Layer::GoogleCloud => "On Google Cloud: create the VM with nested virtualization (`gcloud compute instances create NAME --enable-nested-virtualization ...`; Intel CPU platforms only, and the L1 must run KVM); the organization policy constraints/compute.disableNestedVirtualization must not block it".into(),
        Layer::Aws => "On AWS EC2 virtual instances have no VT-x: use a *.metal instance type, or an 8th-generation Intel type (c8i, m8i, r8i and their flex variants) launched with `--cpu-options NestedVirtualization=enabled` (which turns off Virtual Secure Mode)".into(),
        Layer::Other => format!(
            "Turn on nested virtualization in the hypervisor below and expose {e} to this VM there; if it has no such setting, run the nested guests on bare metal"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::{Signature, XenInfo};

    fn virt(id: &str) -> VirtReport {
        VirtReport {
            hypervisor: id.into(),
            container: "none".into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_layer_is_told_apart() {
        assert_eq!(Layer::below(&virt("none")), None);
        let mut dom0 = virt("none");
        dom0.xen = Some(XenInfo {
            role: "dom0",
            mode: "pv",
        });
        assert_eq!(Layer::below(&dom0), Some(Layer::XenDom0));
        assert_eq!(Layer::id(&dom0), "xen");
        assert_eq!(Layer::below(&virt("kvm")), Some(Layer::Kvm));
        assert_eq!(Layer::below(&virt("microsoft")), Some(Layer::HyperV));
        let mut wsl = virt("microsoft");
        wsl.container = "wsl".into();
        assert_eq!(Layer::below(&wsl), Some(Layer::Wsl2));
        let mut az = virt("microsoft");
        az.cloud = Some("azure".into());
        assert_eq!(Layer::below(&az), Some(Layer::Azure));
        let mut pv = virt("xen");
        pv.xen = Some(XenInfo {
            role: "domU",
            mode: "pv",
        });
        assert_eq!(Layer::below(&pv), Some(Layer::XenPv));
        pv.xen = Some(XenInfo {
            role: "domU",
            mode: "hvm",
        });
        assert_eq!(Layer::below(&pv), Some(Layer::XenHvm));
        let mut tcg = virt("qemu");
        assert_eq!(Layer::below(&tcg), Some(Layer::Qemu));
        tcg.signatures.push(Signature {
            leaf: "0x40000000".into(),
            signature: "TCGTCGTCGTCG".into(),
            max_leaf: "0x40000001".into(),
        });
        assert_eq!(Layer::below(&tcg), Some(Layer::QemuTcg));
        let mut os = virt("kvm");
        os.cloud = Some("openstack".into());
        assert_eq!(Layer::below(&os), Some(Layer::OpenStack));
        os.cloud = Some("hetzner".into());
        assert_eq!(Layer::below(&os), Some(Layer::KvmCloud("Hetzner Cloud")));
        assert_eq!(Layer::below(&virt("google")), Some(Layer::GoogleCloud));
        assert_eq!(Layer::below(&virt("amazon")), Some(Layer::Aws));
        assert_eq!(Layer::below(&virt("bhyve")), Some(Layer::Other));
    }

    #[test]
    fn remedies_name_the_layers_switch_and_stay_one_line() {
        for (layer, needle) in [
            (Layer::Kvm, "Proxmox VE `qm set VMID --cpu host`"),
            (
                Layer::Kvm,
                "OpenStack nova.conf [libvirt] cpu_mode = host-passthrough",
            ),
            (Layer::Kvm, "<feature policy='require' name='vmx'/>"),
            (Layer::OpenStack, "cpu_model_extra_flags = vmx"),
            (Layer::QemuTcg, "TCG cannot emulate VMX at all"),
            (Layer::Qemu, "KVM or TCG"),
            (Layer::HyperV, "-ExposeVirtualizationExtensions $true"),
            (Layer::Wsl2, "nestedVirtualization=true"),
            (Layer::Wsl2, "Windows 10 cannot"),
            (Layer::Azure, "VM size"),
            (Layer::Vmware, "vhv.enable = \"TRUE\""),
            (Layer::VirtualBox, "--nested-hw-virt on"),
            (Layer::Parallels, "nested"),
            (Layer::XenHvm, "nestedhvm=1"),
            (Layer::XenPv, "cannot use VT-x/AMD-V at all"),
            (Layer::XenDom0, "Xen itself holds VT-x/AMD-V"),
            (Layer::GoogleCloud, "--enable-nested-virtualization"),
            (Layer::Aws, "*.metal"),
            (Layer::Aws, "NestedVirtualization=enabled"),
        ] {
            let r = remedy(layer, Extension::Vmx);
            assert!(r.contains(needle), "{layer:?}: {r}");
            assert!(
                !r.chars().any(char::is_control),
                "{layer:?}: control character in {r:?}"
            );
            assert!(!r.contains("nestcore enable` on that host"), "{r}");
        }
        // AMD guests get svm, and TCG's SVM emulation.
        assert!(remedy(Layer::Kvm, Extension::Svm).contains("name='svm'"));
        assert!(remedy(Layer::Kvm, Extension::Svm).contains("kvm_amd nested=1"));
        assert!(remedy(Layer::QemuTcg, Extension::Svm).contains("TCG emulates SVM"));
        // Only the KVM family gets the libvirt/QEMU recipe.
        for l in [
            Layer::HyperV,
            Layer::Vmware,
            Layer::VirtualBox,
            Layer::Azure,
            Layer::Aws,
            Layer::Wsl2,
        ] {
            assert!(!remedy(l, Extension::Vmx).contains("host-passthrough"), "{l:?}");
        }
    }
}
