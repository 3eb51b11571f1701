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

// The CLI module names the crate `nestcore::`, as the binary did before it moved into the library.
#[cfg(feature = "cli")]
extern crate self as nestcore;

pub mod backup;
pub mod bootloader;
// The command line (clap). The file stays where the binary's root was, so that changes to the
// CLI made on other branches merge without a rename; the binary's root is now src/main.rs.
#[cfg(feature = "cli")]
#[path = "bin/nestcore.rs"]
pub mod cli;
pub mod cmdline;
pub mod cpu;
pub mod error;
pub mod evidence;
pub mod guest;
pub mod guests;
pub mod host;
#[cfg(test)]
mod hostile_tests;
pub mod hypervisor;
pub mod input;
pub mod kvm;
pub mod layer;
pub mod modprobe;
pub mod nested;
pub mod plan;
pub mod prometheus;
#[cfg(test)]
pub(crate) mod proptest_seed;
pub mod report;
pub mod snapshot;
mod text;
pub mod verdict;
pub mod vmm;

pub use error::{Error, ErrorKind, Result};
pub use host::Host;
pub use prometheus::render_prometheus;
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
    let cmdline = read_cmdline(host, &kvm);
    let verdict = verdict::judge(&cpu, &virt, &kvm, &cmdline, host.is_live());
    let vmm = vmm::assess(host, &cpu, &virt, &kvm);
    let mut report = Report {
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
        vmm,
        cmdline,
        verdict,
    };
    // modprobe.d values the vendor module refuses to load with.
    if let Ok(cfg) = modprobe::load(host) {
        if let Some(f) = verdict::modprobe_finding(&report.cpu, &report.kvm, &cfg) {
            report.verdict.findings.push(f);
        }
    }
    // Guests defined here: one summary finding (three lstats when there are none).
    if let Some(f) = guests::summary_finding(host, guests::host_view(host, &report)) {
        report.verdict.findings.push(f);
    }
    report
}

/// Module prefixes whose command-line parameters matter here.
const CMDLINE_PREFIXES: &[&str] = &["kvm.", "kvm_intel.", "kvm_amd.", "kvm_pvm."];

/// The command line's relevant parameters, as the modules get them: the kernel's own, then for a
/// module that is not built in those kmod also applies from after a bare `--`.
fn read_cmdline(host: &Host, kvm: &kvm::KvmReport) -> report::CmdlineReport {
    let Ok(text) = host.read("/proc/cmdline") else {
        return report::CmdlineReport {
            present: false,
            relevant: Vec::new(),
        };
    };
    let parsed = cmdline::Cmdline::parse(text.trim_end_matches(['\n', '\0']));
    let builtin = |name: &str| {
        let module = name.split('.').next().unwrap_or_default();
        kvm.module(module)
            .is_some_and(|m| m.state == kvm::ModuleState::Builtin)
    };
    let late = parsed.module_params_after_dashes();
    let late = late.iter().filter(|p| !builtin(&p.normalized_name()));
    let mut relevant: Vec<report::CmdlineParam> = Vec::new();
    for p in parsed.params.iter().chain(late) {
        let name = p.normalized_name();
        if CMDLINE_PREFIXES.iter().any(|pre| name.starts_with(pre)) || name == "clearcpuid" {
            // Last occurrence wins (it moves to the end), but every value is kept.
            let mut values = Vec::new();
            if let Some(i) = relevant.iter().position(|r| r.name == name) {
                values = relevant.remove(i).values;
            }
            values.push(p.value.clone());
            relevant.push(report::CmdlineParam {
                name,
                value: p.value.clone(),
                values,
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
