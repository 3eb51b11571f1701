//! The processor: vendor, family/model/stepping, VMX/SVM per CPUID and per the kernel's flags,
//! their sub-features, and whether firmware turned them off.

use serde::Serialize;

use crate::evidence::Evidence;
use crate::Host;

/// CPU vendor, from the CPUID vendor id (or /proc/cpuinfo's `vendor_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Vendor {
    /// GenuineIntel.
    Intel,
    /// AuthenticAMD.
    Amd,
    /// HygonGenuine (AMD-derived: SVM, kvm_amd).
    Hygon,
    /// "  Shanghai  " (Zhaoxin: VMX, kvm_intel).
    Zhaoxin,
    /// CentaurHauls (VIA/Centaur: VMX, kvm_intel).
    Centaur,
    /// A vendor id nestcore does not know.
    Other,
    /// No vendor id available.
    Unknown,
}

impl Vendor {
    /// The vendor for a 12-byte vendor id.
    pub fn from_vendor_id(id: &str) -> Vendor {
        match id {
            "GenuineIntel" => Vendor::Intel,
            "AuthenticAMD" => Vendor::Amd,
            "HygonGenuine" => Vendor::Hygon,
            "  Shanghai  " | "Shanghai" => Vendor::Zhaoxin,
            "CentaurHauls" => Vendor::Centaur,
            _ => Vendor::Other,
        }
    }

    /// The hardware extension this vendor's KVM module uses, if it is an x86 vendor.
    pub fn extension(self) -> Option<Extension> {
        match self {
            Vendor::Intel | Vendor::Zhaoxin | Vendor::Centaur => Some(Extension::Vmx),
            Vendor::Amd | Vendor::Hygon => Some(Extension::Svm),
            Vendor::Other | Vendor::Unknown => None,
        }
    }

    /// The KVM vendor module: `kvm_intel` or `kvm_amd`.
    pub fn kvm_module(self) -> Option<&'static str> {
        self.extension().map(Extension::kvm_module)
    }
}

/// The hardware virtualization extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Extension {
    /// Intel VT-x (and Zhaoxin/Centaur).
    Vmx,
    /// AMD-V (and Hygon).
    Svm,
    /// The CPU (as this host sees it) has neither.
    None,
    /// Not known (no CPUID and no flags, or not x86).
    Unknown,
}

impl Extension {
    /// "vmx", "svm", "none" or "unknown".
    pub fn as_str(self) -> &'static str {
        match self {
            Extension::Vmx => "vmx",
            Extension::Svm => "svm",
            Extension::None => "none",
            Extension::Unknown => "unknown",
        }
    }

    /// `kvm_intel` for VMX, `kvm_amd` for SVM (and, for none/unknown, `kvm_intel` as a harmless
    /// default that callers should not reach).
    pub fn kvm_module(self) -> &'static str {
        match self {
            Extension::Svm => "kvm_amd",
            _ => "kvm_intel",
        }
    }

    /// The marketing name: "VT-x" or "AMD-V".
    pub fn marketing_name(self) -> &'static str {
        match self {
            Extension::Vmx => "VT-x",
            Extension::Svm => "AMD-V",
            Extension::None => "none",
            Extension::Unknown => "unknown",
        }
    }
}

/// Whether firmware (BIOS/UEFI) left the extension usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FirmwareState {
    /// Enabled (proved by the kernel's flags, a loaded KVM module or the MSR).
    Enabled,
    /// Disabled by firmware (or cleared by the kernel).
    Disabled,
    /// Not known.
    Unknown,
    /// There is no extension to enable.
    NotApplicable,
}

/// SVM features from CPUID 0x8000000A (or the kernel's flags without CPUID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[non_exhaustive]
pub struct SvmFeatures {
    /// Nested page tables (EDX bit 0).
    pub npt: bool,
    /// SVM lock (EDX bit 2).
    pub svm_lock: bool,
    /// Next-RIP save (EDX bit 3).
    pub nrips: bool,
    /// VMCB clean bits (EDX bit 5).
    pub vmcb_clean: bool,
    /// Decode assists (EDX bit 7).
    pub decode_assists: bool,
    /// AVIC (EDX bit 13).
    pub avic: bool,
    /// Virtualized VMSAVE/VMLOAD (EDX bit 15).
    pub v_vmsave_vmload: bool,
    /// Virtual GIF (EDX bit 16).
    pub vgif: bool,
    /// Number of ASIDs (EBX), when read from CPUID.
    pub asids: Option<u32>,
    /// "cpuid" or "flags".
    pub source: &'static str,
}

/// What nestcore knows about the CPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CpuReport {
    /// The 12-character vendor id ("GenuineIntel"), `None` when unknown.
    pub vendor_id: Option<String>,
    /// The vendor.
    pub vendor: Vendor,
    /// Display family (base + extended).
    pub family: Option<u32>,
    /// Display model (base + extended << 4).
    pub model: Option<u32>,
    /// Stepping.
    pub stepping: Option<u32>,
    /// Brand string (from /proc/cpuinfo's `model name`, else CPUID 0x80000002..4).
    pub brand: Option<String>,
    /// The architecture ("x86_64", "aarch64", ...), when known.
    pub arch: Option<String>,
    /// The extension the hardware (as this host sees it) offers.
    pub extension: Extension,
    /// CPUID.1:ECX bit 31: running under a hypervisor. `None` without CPUID.
    pub hypervisor_bit: Option<bool>,
    /// CPUID says VMX.
    pub cpuid_vmx: Option<bool>,
    /// CPUID says SVM.
    pub cpuid_svm: Option<bool>,
    /// /proc/cpuinfo `flags` has `vmx`.
    pub flags_vmx: Option<bool>,
    /// /proc/cpuinfo `flags` has `svm`.
    pub flags_svm: Option<bool>,
    /// /proc/cpuinfo `flags` has `hypervisor`.
    pub flags_hypervisor: Option<bool>,
    /// The `vmx flags` line (Linux 5.8+): `None` when absent (unknown).
    pub vmx_features: Option<Vec<String>>,
    /// SVM features, when the CPU has SVM.
    pub svm_features: Option<SvmFeatures>,
    /// Firmware state of the extension.
    pub firmware: FirmwareState,
    /// What proved each answer.
    pub evidence: Vec<Evidence>,
}

/// The first processor block of /proc/cpuinfo, as key/value pairs (keys trimmed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuinfoBlock {
    fields: Vec<(String, String)>,
    /// True when the file could be read.
    pub present: bool,
}

impl CpuinfoBlock {
    /// Parses the text of one block (or a whole file: only keys up to the first blank line after
    /// content are kept, so a file with many CPUs gives the first one).
    pub fn parse(text: &str) -> CpuinfoBlock {
        let mut fields = Vec::new();
        for line in text.lines() {
            if line.trim().is_empty() {
                if fields.is_empty() {
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        CpuinfoBlock {
            fields,
            present: true,
        }
    }

    /// Reads the first block of /proc/cpuinfo of `host`.
    ///
    /// Hand-parsed on purpose: procfs-core's `CpuInfo` reads and parses every processor block,
    /// while everything nestcore needs is in the first. Stopping there keeps the cost flat in the
    /// number of CPUs (docs/benchmarks.md: the kernel formats each block it is asked for, and
    /// `parse/cpuinfo-1024-cpus-procfs-core` against `parse/cpuinfo-block`).
    pub fn read(host: &Host) -> (CpuinfoBlock, Option<Evidence>) {
        let mut seen = false;
        // Stop at the first blank line after content: later CPUs are never read.
        let r = host.read_until("/proc/cpuinfo", |l| {
            if l.trim().is_empty() {
                seen
            } else {
                seen = true;
                false
            }
        });
        match r {
            Ok(text) => (CpuinfoBlock::parse(&text), None),
            Err(e) => (
                CpuinfoBlock::default(),
                Some(Evidence::new("/proc/cpuinfo", format!("unreadable: {e}"))),
            ),
        }
    }

    /// The first value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The whitespace-separated words of `key`'s value (e.g. `flags`).
    pub fn words(&self, key: &str) -> Option<Vec<&str>> {
        self.get(key).map(|v| v.split_whitespace().collect())
    }

    /// Whether `flag` is among the `flags` words; `None` without a flags line.
    pub fn has_flag(&self, flag: &str) -> Option<bool> {
        self.get("flags").map(|v| v.split_whitespace().any(|w| w == flag))
    }

    /// Guesses the architecture from the keys the kernel prints for it.
    pub fn arch(&self) -> Option<&'static str> {
        if !self.present || self.fields.is_empty() {
            return None;
        }
        if self.get("flags").is_some()
            && (self.get("vendor_id").is_some() || self.get("cpu family").is_some())
        {
            let lm = self.has_flag("lm").unwrap_or(false);
            return Some(if lm { "x86_64" } else { "x86" });
        }
        if self.get("CPU implementer").is_some() || self.get("Features").is_some() {
            return Some("aarch64");
        }
        if self.get("vendor_id").is_some_and(|v| v.contains("S390")) || self.get("processors").is_some() {
            return Some("s390x");
        }
        if self
            .get("cpu")
            .is_some_and(|v| v.contains("POWER") || v.contains("ppc"))
            || self.get("platform").is_some()
        {
            return Some("ppc64le");
        }
        if self.get("isa").is_some() {
            return Some("riscv64");
        }
        if self.get("cpu family").is_some_and(|v| v.contains("Loongson")) || self.get("system type").is_some()
        {
            return Some("loongarch64");
        }
        None
    }
}

fn bit(r: u32, n: u32) -> bool {
    r >> n & 1 == 1
}

/// The 12-byte string of three registers, NULs trimmed.
pub(crate) fn regs_string(regs: &[u32]) -> String {
    let bytes: Vec<u8> = regs.iter().flat_map(|r| r.to_le_bytes()).collect();
    let s: String = bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '\0'
            }
        })
        .collect();
    s.trim_end_matches('\0').replace('\0', "")
}

/// Display family, model and stepping from CPUID.1:EAX (Linux's rules, arch/x86/lib/cpu.c).
pub fn signature(eax: u32) -> (u32, u32, u32) {
    let base_family = eax >> 8 & 0xf;
    let family = if base_family == 0xf {
        base_family + (eax >> 20 & 0xff)
    } else {
        base_family
    };
    let mut model = eax >> 4 & 0xf;
    if family >= 6 {
        model += (eax >> 16 & 0xf) << 4;
    }
    (family, model, eax & 0xf)
}

/// Detects the CPU from CPUID (when the host has a source) and the first /proc/cpuinfo block.
pub fn detect(host: &Host, info: &CpuinfoBlock) -> CpuReport {
    let mut ev = Vec::new();
    let l0 = host.cpuid(0, 0);
    let max_basic = l0.map(|r| r[0]);
    let l1 = match max_basic {
        Some(m) if m >= 1 => host.cpuid(1, 0),
        _ => None,
    };
    // Every x86_64 CPU implements 0x80000001 (long mode is reported there), so the live path does not
    // spend a CPUID on 0x80000000; a recorded dump simply lacks the leaf when it does not exist.
    let e1 = l0.and_then(|_| host.cpuid(0x8000_0001, 0));

    let cpuid_vendor = l0.map(|r| regs_string(&[r[1], r[3], r[2]]));
    let vendor_id = cpuid_vendor
        .clone()
        .or_else(|| info.get("vendor_id").map(str::to_string));
    if let Some(v) = &cpuid_vendor {
        ev.push(Evidence::new(
            "cpuid 0x0",
            format!("vendor id {v:?}, max basic leaf {:#x}", l0.map_or(0, |r| r[0])),
        ));
    } else if let Some(v) = info.get("vendor_id") {
        ev.push(Evidence::new("/proc/cpuinfo", format!("vendor_id: {v}")));
    }
    let vendor = vendor_id
        .as_deref()
        .map_or(Vendor::Unknown, Vendor::from_vendor_id);

    let parse_num = |k: &str| info.get(k).and_then(|v| v.trim().parse::<u32>().ok());
    let (family, model, stepping) = match l1 {
        Some(r) => {
            let (f, m, s) = signature(r[0]);
            (Some(f), Some(m), Some(s))
        }
        None => (parse_num("cpu family"), parse_num("model"), parse_num("stepping")),
    };
    let brand = info
        .get("model name")
        .map(str::to_string)
        .or_else(|| brand_from_cpuid(host, e1.is_some()))
        .filter(|b| !b.is_empty());

    let hypervisor_bit = l1.map(|r| bit(r[2], 31));
    let cpuid_vmx = l1.map(|r| bit(r[2], 5));
    let cpuid_svm = e1.map(|r| bit(r[2], 2));
    if let Some(r) = l1 {
        ev.push(Evidence::new(
            "cpuid 0x1",
            format!(
                "ecx={:#010x}: vmx (bit 5) {}, hypervisor (bit 31) {}",
                r[2],
                bit(r[2], 5),
                bit(r[2], 31)
            ),
        ));
    }
    if let Some(r) = e1 {
        ev.push(Evidence::new(
            "cpuid 0x80000001",
            format!("ecx={:#010x}: svm (bit 2) {}", r[2], bit(r[2], 2)),
        ));
    }
    let flags_vmx = info.has_flag("vmx");
    let flags_svm = info.has_flag("svm");
    let flags_hypervisor = info.has_flag("hypervisor");
    if let Some(flags) = info.get("flags") {
        let shown: Vec<&str> = flags
            .split_whitespace()
            .filter(|f| matches!(*f, "vmx" | "svm" | "hypervisor"))
            .collect();
        ev.push(Evidence::new(
            "/proc/cpuinfo",
            format!(
                "flags (first CPU) include: {}",
                if shown.is_empty() {
                    "none of vmx, svm, hypervisor".into()
                } else {
                    shown.join(" ")
                }
            ),
        ));
    }

    let arch = if l0.is_some() {
        Some(
            if info.has_flag("lm") == Some(false) {
                "x86"
            } else {
                "x86_64"
            }
            .to_string(),
        )
    } else {
        info.arch().map(str::to_string)
    };
    let is_x86 = arch.as_deref().is_some_and(|a| a.starts_with("x86"));

    let extension = match (cpuid_vmx, cpuid_svm, flags_vmx, flags_svm) {
        (Some(true), _, _, _) => Extension::Vmx,
        (_, Some(true), _, _) => Extension::Svm,
        (Some(false), Some(false), _, _) => Extension::None,
        (_, _, Some(true), _) => Extension::Vmx,
        (_, _, _, Some(true)) => Extension::Svm,
        (_, _, Some(false), Some(false)) if is_x86 => Extension::None,
        (Some(false), None, _, _) => Extension::None,
        _ => Extension::Unknown,
    };

    let vmx_features = info
        .words("vmx flags")
        .map(|w| w.into_iter().map(str::to_string).collect());
    let svm_features = if extension == Extension::Svm {
        svm_features(host, e1.is_some(), info)
    } else {
        None
    };

    let firmware = firmware_state(host, extension, flags_vmx, &mut ev);

    CpuReport {
        vendor_id,
        vendor,
        family,
        model,
        stepping,
        brand,
        arch,
        extension,
        hypervisor_bit,
        cpuid_vmx,
        cpuid_svm,
        flags_vmx,
        flags_svm,
        flags_hypervisor,
        vmx_features,
        svm_features,
        firmware,
        evidence: ev,
    }
}

fn brand_from_cpuid(host: &Host, have_ext: bool) -> Option<String> {
    if !have_ext {
        return None;
    }
    let max_ext = host.cpuid(0x8000_0000, 0)?[0];
    if max_ext < 0x8000_0004 {
        return None;
    }
    let mut regs = Vec::with_capacity(12);
    for leaf in 0x8000_0002..=0x8000_0004u32 {
        regs.extend_from_slice(&host.cpuid(leaf, 0)?);
    }
    Some(regs_string(&regs).trim().to_string())
}

fn svm_features(host: &Host, have_ext: bool, info: &CpuinfoBlock) -> Option<SvmFeatures> {
    // The SVM leaf is defined whenever CPUID reports SVM (AMD APM vol. 3, CPUID Fn8000_000A).
    if let Some(r) = have_ext.then(|| host.cpuid(0x8000_000a, 0)).flatten() {
        let d = r[3];
        return Some(SvmFeatures {
            npt: bit(d, 0),
            svm_lock: bit(d, 2),
            nrips: bit(d, 3),
            vmcb_clean: bit(d, 5),
            decode_assists: bit(d, 7),
            avic: bit(d, 13),
            v_vmsave_vmload: bit(d, 15),
            vgif: bit(d, 16),
            asids: Some(r[1]),
            source: "cpuid",
        });
    }
    let f = |name: &str| info.has_flag(name).unwrap_or(false);
    info.get("flags")?;
    Some(SvmFeatures {
        npt: f("npt"),
        svm_lock: f("svm_lock"),
        nrips: f("nrip_save"),
        vmcb_clean: f("vmcb_clean"),
        decode_assists: f("decodeassists"),
        avic: f("avic"),
        v_vmsave_vmload: f("v_vmsave_vmload"),
        vgif: f("vgif"),
        asids: None,
        source: "flags",
    })
}

fn firmware_state(
    host: &Host,
    ext: Extension,
    flags_vmx: Option<bool>,
    ev: &mut Vec<Evidence>,
) -> FirmwareState {
    match ext {
        Extension::None => FirmwareState::NotApplicable,
        Extension::Unknown => FirmwareState::Unknown,
        Extension::Vmx => {
            // The MSR is the proof when it can be read (live host, root, msr module loaded).
            if let Some(v) = read_msr(host, 0x3a) {
                let locked = v & 1 == 1;
                let outside_smx = v >> 2 & 1 == 1;
                ev.push(Evidence::new(
                    "MSR 0x3a IA32_FEATURE_CONTROL",
                    format!("{v:#x}: lock {locked}, VMX outside SMX {outside_smx}"),
                ));
                return if locked && !outside_smx {
                    FirmwareState::Disabled
                } else {
                    FirmwareState::Enabled
                };
            }
            match flags_vmx {
                // Linux clears `vmx` from the flags when firmware locked VT-x off (feat_ctl.c).
                Some(true) => FirmwareState::Enabled,
                Some(false) => FirmwareState::Disabled,
                None => FirmwareState::Unknown,
            }
        }
        Extension::Svm => {
            if let Some(v) = read_msr(host, 0xc001_0114) {
                let svmdis = v >> 4 & 1 == 1;
                ev.push(Evidence::new(
                    "MSR 0xc0010114 VM_CR",
                    format!("{v:#x}: SVMDIS (bit 4) {svmdis}"),
                ));
                return if svmdis {
                    FirmwareState::Disabled
                } else {
                    FirmwareState::Enabled
                };
            }
            // The kernel keeps `svm` in the flags when firmware disabled it; only VM_CR (or a
            // loaded kvm_amd, judged in the verdict) tells.
            FirmwareState::Unknown
        }
    }
}

/// Reads an MSR of CPU 0 through /dev/cpu/0/msr: live host only, never loads the msr module.
fn read_msr(host: &Host, index: u32) -> Option<u64> {
    if !host.is_live() {
        return None;
    }
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(host.path("/dev/cpu/0/msr")).ok()?;
    let mut buf = [0u8; 8];
    f.read_exact_at(&mut buf, u64::from(index)).ok()?;
    Some(u64::from_le_bytes(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        // Ivy Bridge 0x306a9: family 6 model 58 stepping 9
        assert_eq!(signature(0x000306a9), (6, 58, 9));
        // Zen 3 EPYC 0xa00f11: family 25 model 1 stepping 1
        assert_eq!(signature(0x00a00f11), (25, 1, 1));
        // Hygon 0x900f01: family 24
        assert_eq!(signature(0x00900f01).0, 24);
        // Pentium 4 0xf29: family 15 model 2
        assert_eq!(signature(0x00000f29), (15, 2, 9));
    }

    #[test]
    fn vendor_strings() {
        assert_eq!(regs_string(&[0x756e6547, 0x49656e69, 0x6c65746e]), "GenuineIntel");
        assert_eq!(Vendor::from_vendor_id("  Shanghai  "), Vendor::Zhaoxin);
        assert_eq!(
            Vendor::from_vendor_id("HygonGenuine").extension(),
            Some(Extension::Svm)
        );
        assert_eq!(regs_string(&[0x4b4d564b, 0x564b4d56, 0x0000004d]), "KVMKVMKVM");
    }

    #[test]
    fn cpuinfo_first_block_only() {
        let b = CpuinfoBlock::parse("\nprocessor\t: 0\nflags\t\t: fpu vmx lm\nvmx flags\t: ept vpid\n\nprocessor\t: 1\nflags\t\t: fpu\n");
        assert_eq!(b.has_flag("vmx"), Some(true));
        assert_eq!(b.words("vmx flags").unwrap(), vec!["ept", "vpid"]);
        assert_eq!(b.get("processor"), Some("0"));
        // "vmx flags" must not make "vmx" a flag
        let b = CpuinfoBlock::parse("flags : fpu\nvmx flags : ept\n");
        assert_eq!(b.has_flag("vmx"), Some(false));
    }

    #[test]
    fn hostile_cpuinfo() {
        for t in [
            "",
            ":",
            "::::",
            "flags",
            "\0\0\0",
            "flags: \u{fffd}",
            "cpu family : 99999999999999999999",
        ] {
            let b = CpuinfoBlock::parse(t);
            let _ = b.arch();
            let _ = b.has_flag("vmx");
        }
    }
}
