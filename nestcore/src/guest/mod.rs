//! Giving guests VT-x/AMD-V: libvirt `<cpu>` XML, QEMU `-cpu` arguments and nova settings,
//! generated valid by construction, parsed, edited and checked.
//!
//! - [`libvirt`]: the typed `<cpu>` element, its rendering and parsing, and
//!   [`libvirt::ensure_nested`] / [`libvirt::disable_nested`], which edit a domain definition by
//!   splicing its text so that nothing else changes.
//! - [`qemu`]: `-cpu` strings.
//! - [`nova`]: nova.conf's `[libvirt]` CPU keys.
//! - [`recommend`]: from host facts and needs, the configuration to use in all three, and why.
//!
//! ```
//! use nestcore::cpu::Vendor;
//! use nestcore::guest::{recommend, HostFacts, Needs};
//!
//! let rec = recommend(&HostFacts::new(Vendor::Amd), &Needs::default());
//! assert_eq!(rec.cpu.to_xml(), "<cpu mode='host-passthrough'/>");
//! assert_eq!(rec.qemu.to_string(), "host");
//! assert!(rec.caveats.iter().any(|c| c.contains("saved")));
//! ```

pub mod libvirt;
pub mod nova;
pub mod qemu;
pub(crate) mod xml;

use serde::Serialize;

use crate::cpu::{Extension, Vendor};
use crate::{Error, Result};

/// Yes, no, or it depends on something not known here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NestingState {
    /// The guest gets the extension (when the host offers it to guests).
    Yes,
    /// The guest does not get it.
    No,
    /// It depends (on the host-model CPU, on a named model's contents, ...).
    Unknown,
}

/// Whether a configuration gives its guest VT-x/AMD-V, and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NestingVerdict {
    /// The answer.
    pub state: NestingState,
    /// Why, in one sentence.
    pub reason: String,
}

impl NestingVerdict {
    pub(crate) fn yes(reason: impl Into<String>) -> Self {
        NestingVerdict {
            state: NestingState::Yes,
            reason: reason.into(),
        }
    }

    pub(crate) fn no(reason: impl Into<String>) -> Self {
        NestingVerdict {
            state: NestingState::No,
            reason: reason.into(),
        }
    }

    pub(crate) fn unknown(reason: impl Into<String>) -> Self {
        NestingVerdict {
            state: NestingState::Unknown,
            reason: reason.into(),
        }
    }

    /// `state == Yes`.
    pub fn is_yes(&self) -> bool {
        self.state == NestingState::Yes
    }
}

/// What is known about the host that will run the guests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HostFacts {
    /// CPU vendor.
    pub vendor: Vendor,
    /// The extension the host has (`Unknown` if not detected).
    pub extension: Extension,
    /// Whether KVM's `nested` parameter is on (`None`: not known).
    pub nested_available: Option<bool>,
    /// Whether libvirt's host-model CPU (virsh domcapabilities) lists vmx/svm (`None`: not known).
    pub host_model_has_extension: Option<bool>,
    /// Whether /dev/kvm is usable (`None`: not known).
    pub kvm_usable: Option<bool>,
}

impl HostFacts {
    /// Facts for a vendor: the extension follows from it, everything else is unknown.
    pub fn new(vendor: Vendor) -> HostFacts {
        HostFacts {
            vendor,
            extension: vendor.extension().unwrap_or(Extension::Unknown),
            nested_available: None,
            host_model_has_extension: None,
            kvm_usable: None,
        }
    }

    /// The extension to give guests: the detected one, else the vendor's.
    pub fn guest_extension(&self) -> Option<Extension> {
        match self.extension {
            Extension::Vmx | Extension::Svm => Some(self.extension),
            _ => self.vendor.extension(),
        }
    }
}

impl From<&crate::Report> for HostFacts {
    /// The facts a host report establishes: vendor, extension, whether nesting is available to
    /// guests (`None` when the report could not tell) and whether KVM is usable.
    fn from(r: &crate::Report) -> HostFacts {
        use crate::report::NestedForGuests as N;
        HostFacts {
            vendor: r.cpu.vendor,
            extension: r.cpu.extension,
            nested_available: match r.verdict.nested_for_guests {
                N::Available => Some(true),
                N::Disabled | N::Unsupported => Some(false),
                N::Unknown => None,
            },
            host_model_has_extension: None,
            kvm_usable: r.verdict.kvm_usable,
        }
    }
}

/// Parses `--topology`: `S,C,T` (sockets, cores, threads) or `S,D,C,T` (with dies) or `S,D,Cl,C,T`
/// (with dies and clusters); every number positive.
///
/// # Errors
/// [`Error::InvalidInput`] naming the bad value.
pub fn parse_topology(s: &str) -> Result<libvirt::Topology> {
    let nums: Vec<u32> = s
        .split(',')
        .map(|n| n.trim().parse::<u32>().ok().filter(|&v| v > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::InvalidInput(format!("--topology {s:?}: expected positive numbers S,D,C,T")))?;
    let t = |sockets, dies, clusters, cores, threads| libvirt::Topology {
        sockets,
        dies,
        clusters,
        cores,
        threads,
    };
    match nums[..] {
        [s, c, th] => Ok(t(s, None, None, c, th)),
        [s, d, c, th] => Ok(t(s, Some(d), None, c, th)),
        [s, d, cl, c, th] => Ok(t(s, Some(d), Some(cl), c, th)),
        _ => Err(Error::InvalidInput(format!(
            "--topology {s:?}: expected S,C,T or S,D,C,T or S,D,Cl,C,T"
        ))),
    }
}

/// What the guests need.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct Needs {
    /// Guests must live-migrate (or be started) on other hosts.
    pub migratable: bool,
    /// A named CPU model every host of the pool supports (`Skylake-Server-v4`, `EPYC-Rome`).
    pub model: Option<String>,
}

impl Needs {
    /// One host, no migration.
    pub fn single_host() -> Needs {
        Needs::default()
    }

    /// Guests must migrate between hosts; `model` is the pool's common named model, if known.
    pub fn migratable(model: Option<&str>) -> Needs {
        Needs {
            migratable: true,
            model: model.map(str::to_string),
        }
    }
}

/// The configuration to use, in the three forms, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Recommendation {
    /// The libvirt `<cpu>`.
    pub cpu: libvirt::Cpu,
    /// The QEMU `-cpu` argument.
    pub qemu: qemu::CpuArg,
    /// nova's `[libvirt]` settings.
    pub nova: nova::NovaSettings,
    /// Why this configuration.
    pub rationale: Vec<String>,
    /// What to watch out for.
    pub caveats: Vec<String>,
}

/// Recommends the guest CPU configuration that gives guests VT-x/AMD-V.
///
/// - A single host: host-passthrough (QEMU `host`, nova `host-passthrough`): every VMX/SVM
///   sub-feature reaches the guest and nothing has to be named.
/// - Migratable with a common named model: that model plus `require` of the extension.
/// - Migratable without one: host-model plus `require` (QEMU, which has no host-model: `qemu64`
///   plus the extension, the one model every x86-64 host runs).
///
/// Caveats cover migration and save of nested guests, KVM's `nested` parameter, and AMD
/// host-model CPUs without svm.
pub fn recommend(facts: &HostFacts, needs: &Needs) -> Recommendation {
    let mut rationale = Vec::new();
    let mut caveats = Vec::new();
    let ext = facts.guest_extension();
    let (cpu, qemu) = match (needs.migratable, ext) {
        (false, _) | (true, None) => {
            rationale.push(
                "host-passthrough gives the guest the host CPU as is, including every VMX/SVM sub-feature a nested hypervisor uses; nothing has to be named".into(),
            );
            if needs.migratable {
                caveats.push(
                    "the host's vendor has no known extension to require, so a migratable configuration cannot name it; host-passthrough only migrates between identical CPUs".into(),
                );
            } else {
                rationale
                    .push("guests stay on this host, so tying them to its exact CPU costs nothing".into());
            }
            (libvirt::Cpu::host_passthrough(), qemu::CpuArg::host())
        }
        (true, Some(ext)) => {
            let name = ext.as_str();
            let named = needs.model.as_deref().map(|m| {
                libvirt::Cpu::custom(m)
                    .and_then(|c| c.with_feature(libvirt::Policy::Require, name))
                    .and_then(|c| Ok((qemu::CpuArg::from_libvirt(&c)?, c)))
            });
            match named {
                Some(Ok((q, c))) => {
                    rationale.push(format!(
                        "the named model {} is what every host of the pool can run, so guests migrate between them",
                        needs.model.as_deref().unwrap_or_default()
                    ));
                    rationale.push(format!(
                        "named models do not include {name}; <feature policy='require' name='{name}'/> adds it and makes the start fail on a host that cannot give it"
                    ));
                    (c, q)
                }
                other => {
                    if let Some(Err(e)) = other {
                        caveats.push(format!(
                            "the model name given was not usable ({e}); host-model is used instead"
                        ));
                    }
                    rationale.push(
                        "host-model is expanded at start to the named model closest to the host, so guests migrate to hosts of the same or a newer CPU generation".into(),
                    );
                    rationale.push(format!(
                        "host-model includes {name} only when the host-model CPU lists it; require makes it present, or makes the start fail loudly"
                    ));
                    rationale.push(format!(
                        "QEMU has no host-model (libvirt computes it); for QEMU alone qemu64,{name}=on runs on every x86-64 host; name a newer common model for speed"
                    ));
                    let cpu = libvirt::Cpu::host_model()
                        .with_feature(libvirt::Policy::Require, name)
                        .unwrap_or_else(|_| libvirt::Cpu::host_model());
                    let mut q = qemu::CpuArg::named("qemu64").unwrap_or_else(|_| qemu::CpuArg::host());
                    q.ensure_extension(ext);
                    (cpu, q)
                }
            }
        }
    };
    let nova = nova::NovaSettings::from_libvirt(&cpu).unwrap_or_default();

    match ext {
        Some(Extension::Svm) => {
            caveats.push("an AMD (SVM) L1 guest must not be live-migrated or saved while it runs an L2 guest".into());
            if cpu.effective_mode() == libvirt::Mode::HostModel && facts.host_model_has_extension != Some(true) {
                caveats.push(
                    "AMD host-model CPUs often lack svm (check `virsh domcapabilities`); the require policy is what guarantees it".into(),
                );
            }
        }
        Some(_) => caveats.push(
            "an Intel L1 guest with a running L2 guest migrates only with Linux 5.3+ and QEMU 4.2+ on both hosts".into(),
        ),
        None => caveats.push(format!(
            "vendor {:?} has no known virtualization extension; nested virtualization is unlikely to work",
            facts.vendor
        )),
    }
    caveats.push("nova blocks live migration and suspend of instances that run nested guests".into());
    if let Some(ext) = ext {
        match facts.nested_available {
            Some(false) if matches!(facts.extension, Extension::None) => caveats.push(format!(
                "this host has no {} itself (the CPU lacks it or the hypervisor below hides it), so its guests cannot get it whatever their configuration",
                ext.as_str()
            )),
            Some(false) => caveats.push(format!(
                "nesting is off in KVM on this host: set `options {} nested=1` in /etc/modprobe.d/kvm.conf and reload the module",
                ext.kvm_module()
            )),
            None => caveats.push(format!("whether {} has nested=1 is not known", ext.kvm_module())),
            Some(true) => {}
        }
    }
    if facts.kvm_usable == Some(false) {
        caveats.push("/dev/kvm is not usable here, so guests run under TCG, which cannot emulate VMX".into());
    }
    Recommendation {
        cpu,
        qemu,
        nova,
        rationale,
        caveats,
    }
}

fn parse_policy_feature(spec: &str) -> Result<(libvirt::Policy, String)> {
    let (policy, name) = spec
        .split_once(':')
        .ok_or_else(|| Error::InvalidInput(format!("--feature {spec:?} is not POLICY:NAME")))?;
    let policy = libvirt::Policy::from_xml(policy).ok_or_else(|| {
        Error::InvalidInput(format!(
            "--feature {spec:?}: policy {policy:?} is not force, require, optional, disable or forbid"
        ))
    })?;
    if !libvirt::is_valid_feature_name(name) {
        return Err(Error::InvalidInput(format!(
            "--feature {spec:?}: name {name:?} is not [a-zA-Z0-9._-]+"
        )));
    }
    Ok((policy, name.to_string()))
}

/// The text `nestcore guest-cpu --format FORMAT [--mode MODE] [--model NAME] [--feature POLICY:NAME ...]`
/// prints (with a final newline).
///
/// Without `mode` and `model`, prints [`recommend`]'s single-host choice. A `model` without `mode`
/// means custom. Unless a `--feature` names vmx or svm, custom and host-model CPUs get
/// `require` of the host's extension (the point of the command); a named one is kept as asked
/// and never joined by the other vendor's. host-passthrough and maximum pass it already.
///
/// # Errors
/// [`Error::InvalidInput`] for an unknown format or mode, a malformed `--feature`, a combination
/// libvirt rejects (a model with host-model), or one the format cannot express (host-model and
/// `optional` in QEMU, maximum in nova).
pub fn guest_cpu_cli(
    format: &str,
    mode: Option<&str>,
    model: Option<&str>,
    features: &[String],
    topology: Option<&str>,
    facts: &HostFacts,
) -> Result<String> {
    if !matches!(format, "libvirt" | "qemu" | "nova") {
        return Err(Error::InvalidInput(format!(
            "--format {format:?} is not libvirt, qemu or nova"
        )));
    }
    let parsed: Vec<(libvirt::Policy, String)> = features
        .iter()
        .map(|f| parse_policy_feature(f))
        .collect::<Result<_>>()?;
    let mode = mode
        .map(|m| {
            libvirt::Mode::from_xml(m).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "--mode {m:?} is not custom, host-model, host-passthrough or maximum"
                ))
            })
        })
        .transpose()?;
    let mut cpu = match (mode, model) {
        (None, None) => recommend(facts, &Needs::single_host()).cpu,
        (None | Some(libvirt::Mode::Custom), Some(name)) => libvirt::Cpu::custom(name)?,
        (Some(libvirt::Mode::Custom), None) => {
            return Err(Error::InvalidInput("--mode custom needs --model NAME".into()));
        }
        (Some(m), name) => {
            let mut cpu = libvirt::Cpu {
                mode: Some(m),
                ..libvirt::Cpu::default()
            };
            if let Some(name) = name {
                cpu.model = Some(libvirt::Model {
                    name: Some(name.to_string()),
                    ..libvirt::Model::default()
                });
            }
            cpu
        }
    };
    for (policy, name) in &parsed {
        cpu.set_feature(*policy, name)?;
    }
    if let Some(ext) = facts.guest_extension() {
        // A named vmx or svm (whatever the policy) is what was asked: never join it with the other
        // vendor's extension. The host's vendor decides only when neither is named.
        let mentioned = parsed.iter().any(|(_, n)| n == "vmx" || n == "svm");
        if !mentioned
            && matches!(
                cpu.effective_mode(),
                libvirt::Mode::Custom | libvirt::Mode::HostModel
            )
        {
            cpu.set_feature(libvirt::Policy::Require, ext.as_str())?;
        }
    }
    if let Some(t) = topology {
        cpu.topology = Some(parse_topology(t)?);
    }
    cpu.validate()?;
    let out = match format {
        "libvirt" => cpu.to_xml() + "\n",
        "qemu" => qemu::CpuArg::from_libvirt(&cpu)?.to_string() + "\n",
        _ => nova::NovaSettings::from_libvirt(&cpu)?.to_ini(),
    };
    Ok(out)
}

/// The text `nestcore ensure-nested [--disable]` prints for a domain definition: the edited XML,
/// byte-for-byte the input where nothing had to change.
///
/// # Errors
/// As [`libvirt::ensure_nested`] and [`libvirt::disable_nested`].
pub fn ensure_nested_cli(xml: &str, vendor: Vendor, disable: bool) -> Result<String> {
    let edit = if disable {
        libvirt::disable_nested(xml, vendor)?
    } else {
        libvirt::ensure_nested(xml, vendor)?
    };
    Ok(edit.xml)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests;
