//! nestcore: can this machine run virtual machines, can its guests run their own (nested
//! virtualization), and what exactly must change to get there.
//!
//! Everything reads through a [`Host`]: the live machine, or a recorded one (a folder laid out
//! like `/` plus a CPUID dump). [`check`] gathers the CPU, the hypervisor below, KVM and the
//! kernel command line into a [`Report`] whose every answer carries its evidence.
//!
//! ```
//! # fn main() -> nestcore::Result<()> {
//! // A recorded host: any folder laid out like "/" (here an empty one).
//! let dir = std::env::temp_dir();
//! let host = nestcore::Host::from_root(&dir)?;
//! let report = nestcore::check(&host);
//! println!("KVM usable: {:?}, nested: {}", report.verdict.kvm_usable, report.verdict.nested_for_guests.as_str());
//! for f in report.verdict.findings.iter().filter(|f| f.level >= nestcore::report::Level::Warn) {
//!     println!("{}: {}", f.code, f.message);
//! }
//! # Ok(())
//! # }
//! ```

pub mod bootloader;
pub mod cmdline;
pub mod cpu;
pub mod error;
pub mod evidence;
pub mod guest;
pub mod host;
#[cfg(test)]
mod hostile_tests;
pub mod hypervisor;
pub mod kvm;
pub mod modprobe;
pub mod nested;
pub mod plan;
#[cfg(test)]
pub(crate) mod proptest_seed;
pub mod report;
pub mod snapshot;
mod text;
pub mod verdict;

pub use error::{Error, ErrorKind, Result};
pub use host::Host;
pub use report::Report;
pub use text::render_text;

/// nestcore's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Options for [`check_with`].
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct CheckOptions {
    /// Run the functional probe (create a VM and run a few guest instructions). Live hosts only;
    /// ignored for recorded roots.
    pub probe: bool,
}

impl CheckOptions {
    /// Options with the probe on or off.
    pub fn with_probe(probe: bool) -> CheckOptions {
        CheckOptions { probe }
    }
}

/// The report for `host`, without the functional probe.
pub fn check(host: &Host) -> Report {
    check_with(host, CheckOptions::default())
}

/// The report for `host`.
pub fn check_with(host: &Host, opts: CheckOptions) -> Report {
    let (info, info_err) = cpu::CpuinfoBlock::read(host);
    let mut cpu = cpu::detect(host, &info);
    if let Some(e) = info_err {
        cpu.evidence.push(e);
    }
    let kernel = host
        .read_trimmed("/proc/sys/kernel/osrelease")
        .ok()
        .filter(|s| !s.is_empty());
    let cmdline = read_cmdline(host);
    let virt = hypervisor::detect(
        host,
        &info,
        cpu.hypervisor_bit.or(cpu.flags_hypervisor),
        kernel.as_deref(),
    );
    let kvm = kvm::detect(
        host,
        &cpu,
        kvm::KvmOptions {
            probe: opts.probe,
            kernel: kernel.clone(),
        },
    );
    let verdict = verdict::judge(&cpu, &virt, &kvm, &cmdline, host.is_live());
    Report {
        schema_version: report::SCHEMA_VERSION,
        nestcore_version: VERSION,
        host: report::HostInfo {
            root: host.root().display().to_string(),
            live: host.is_live(),
            cpuid_source: host.cpuid_source().kind(),
            kernel,
        },
        cpu,
        virtualization: virt,
        kvm,
        cmdline,
        verdict,
    }
}

/// Module prefixes whose command-line parameters matter here.
const CMDLINE_PREFIXES: &[&str] = &["kvm.", "kvm_intel.", "kvm_amd.", "kvm_pvm."];

fn read_cmdline(host: &Host) -> report::CmdlineReport {
    let Ok(text) = host.read("/proc/cmdline") else {
        return report::CmdlineReport {
            present: false,
            relevant: Vec::new(),
        };
    };
    let parsed = cmdline::Cmdline::parse(text.trim_end_matches(['\n', '\0']));
    let mut relevant: Vec<report::CmdlineParam> = Vec::new();
    for p in &parsed.params {
        let name = p.normalized_name();
        if CMDLINE_PREFIXES.iter().any(|pre| name.starts_with(pre)) || name == "clearcpuid" {
            // Last occurrence wins: replace an earlier one in place.
            relevant.retain(|r| r.name != name);
            relevant.push(report::CmdlineParam {
                name,
                value: p.value.clone(),
            });
        }
    }
    report::CmdlineReport {
        present: true,
        relevant,
    }
}

/// The README's examples, compiled as doc tests so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
