//! libvirt's guest `<cpu>` element: a typed model of the whole element as libvirt's schema
//! (`src/conf/schemas/cputypes.rng`) defines it, rendering, parsing, and an editor that gives a
//! domain's guest VT-x/AMD-V (or takes it away) with the smallest possible change to its text.
//!
//! ```
//! use nestcore::guest::libvirt::{Cpu, Policy};
//!
//! let cpu = Cpu::custom("Skylake-Client-v4")?.with_feature(Policy::Require, "vmx")?;
//! assert_eq!(
//!     cpu.to_xml(),
//!     "<cpu mode='custom' match='exact' check='partial'>\n  \
//!      <model fallback='forbid'>Skylake-Client-v4</model>\n  \
//!      <feature policy='require' name='vmx'/>\n</cpu>"
//! );
//! assert_eq!(Cpu::from_xml(&cpu.to_xml())?, cpu);
//! # Ok::<(), nestcore::Error>(())
//! ```

use std::fmt::Write as _;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::xml::{self, escape, Node};
use super::NestingVerdict;
use crate::cpu::{Extension, Vendor};
use crate::{Error, Result};

macro_rules! xml_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s)] $var),+
        }

        impl $name {
            /// Every value, in the schema's order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The value as libvirt spells it.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }

            /// The value for libvirt's spelling, if it is one.
            pub fn from_xml(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$var),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

xml_enum! {
    /// `<cpu mode=...>`: how the guest CPU is derived.
    Mode {
        /// A named model plus features (libvirt's default when `mode` is absent).
        Custom = "custom",
        /// The host's CPU expressed as the closest named model plus features; expanded at start.
        HostModel = "host-model",
        /// Exactly the host CPU, every feature KVM can give; migratable only to identical hosts.
        HostPassthrough = "host-passthrough",
        /// Everything the hypervisor can provide (QEMU `-cpu max`).
        Maximum = "maximum",
    }
}

xml_enum! {
    /// `<cpu match=...>`: how strictly a custom model must be met.
    Match {
        /// The host may offer more than asked.
        Minimum = "minimum",
        /// The guest gets exactly the model (libvirt's default).
        Exact = "exact",
        /// Host must match exactly.
        Strict = "strict",
    }
}

xml_enum! {
    /// `<cpu check=...>`: how libvirt checks that the started guest got the CPU asked for.
    Check {
        /// No check.
        None = "none",
        /// Check before start only.
        Partial = "partial",
        /// Check the CPU QEMU actually created as well.
        Full = "full",
    }
}

xml_enum! {
    /// libvirt's `virOnOff`.
    OnOff {
        /// On.
        On = "on",
        /// Off.
        Off = "off",
    }
}

xml_enum! {
    /// libvirt's `virYesNo`.
    YesNo {
        /// Yes.
        Yes = "yes",
        /// No.
        No = "no",
    }
}

xml_enum! {
    /// `<model fallback=...>`: may libvirt pick another model if this one is unusable.
    Fallback {
        /// Fall back to the closest supported model.
        Allow = "allow",
        /// Fail instead.
        Forbid = "forbid",
    }
}

xml_enum! {
    /// `<feature policy=...>`.
    Policy {
        /// Give the guest the feature even if the host lacks it.
        Force = "force",
        /// The guest gets the feature; starting fails if the host cannot provide it.
        Require = "require",
        /// The guest gets the feature only if the host has it.
        Optional = "optional",
        /// The guest does not get the feature.
        Disable = "disable",
        /// Starting fails if the host has the feature.
        Forbid = "forbid",
    }
}

xml_enum! {
    /// `<cache mode=...>` (the CPU cache, not a NUMA cache).
    CacheMode {
        /// Emulate a cache (with `level`).
        Emulate = "emulate",
        /// Pass the host's cache information through.
        Passthrough = "passthrough",
        /// No cache information.
        Disable = "disable",
    }
}

xml_enum! {
    /// `<maxphysaddr mode=...>`.
    PhysAddrMode {
        /// Use `bits`.
        Emulate = "emulate",
        /// The host's value (optionally capped by `limit`).
        Passthrough = "passthrough",
    }
}

xml_enum! {
    /// `<cell memAccess=...>`.
    MemAccess {
        /// Shared.
        Shared = "shared",
        /// Private.
        Private = "private",
    }
}

xml_enum! {
    /// `<cache associativity=...>` of a NUMA cell.
    Associativity {
        /// None.
        None = "none",
        /// Direct mapped.
        Direct = "direct",
        /// Fully associative.
        Full = "full",
    }
}

xml_enum! {
    /// `<cache policy=...>` of a NUMA cell.
    CachePolicy {
        /// None.
        None = "none",
        /// Write-back.
        Writeback = "writeback",
        /// Write-through.
        Writethrough = "writethrough",
    }
}

xml_enum! {
    /// `type` of a NUMA `<latency>` or `<bandwidth>`.
    AccessType {
        /// Access.
        Access = "access",
        /// Read.
        Read = "read",
        /// Write.
        Write = "write",
    }
}

/// `<model fallback=... vendor_id=...>NAME</model>`. The name is text content: libvirt rejects
/// the `<model name='...'/>` that QEMU's own documentation shows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Model {
    /// The model name (`Skylake-Server-v4`, `EPYC-Rome`, `qemu64`), if any.
    pub name: Option<String>,
    /// Whether libvirt may fall back to another model.
    pub fallback: Option<Fallback>,
    /// A 12-character CPUID vendor string to show the guest.
    pub vendor_id: Option<String>,
}

/// `<topology sockets dies? clusters? cores threads/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Sockets (positive).
    pub sockets: u32,
    /// Dies per socket (libvirt 6.1+).
    pub dies: Option<u32>,
    /// Clusters per die (libvirt 10.x).
    pub clusters: Option<u32>,
    /// Cores per cluster.
    pub cores: u32,
    /// Threads per core.
    pub threads: u32,
}

impl Topology {
    /// sockets × dies × clusters × cores × threads, `None` on overflow.
    pub fn vcpus(&self) -> Option<u32> {
        [
            self.dies.unwrap_or(1),
            self.clusters.unwrap_or(1),
            self.cores,
            self.threads,
        ]
        .into_iter()
        .try_fold(self.sockets, u32::checked_mul)
    }
}

/// `<feature policy name/>`. Host CPU descriptions (capabilities) have no policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    /// The policy; absent in host CPU descriptions.
    pub policy: Option<Policy>,
    /// The feature name, `[a-zA-Z0-9._-]+`.
    pub name: String,
}

/// `<cache level? mode/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cache {
    /// Cache level 1, 2 or 3.
    pub level: Option<u8>,
    /// Mode.
    pub mode: CacheMode,
}

/// `<maxphysaddr mode bits? limit?/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaxPhysAddr {
    /// Mode.
    pub mode: PhysAddrMode,
    /// Address bits.
    pub bits: Option<u32>,
    /// Upper limit for passthrough.
    pub limit: Option<u32>,
}

/// `<numa>`: guest NUMA cells and their interconnects.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Numa {
    /// One or more cells.
    pub cells: Vec<NumaCell>,
    /// Latencies and bandwidths between cells.
    pub interconnects: Option<Interconnects>,
}

/// `<cell id? cpus? memory unit? memAccess? discard?>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NumaCell {
    /// Cell id.
    pub id: Option<u32>,
    /// vCPUs of the cell, a libvirt cpuset (`0-3,^2,8`).
    pub cpus: Option<String>,
    /// Memory (in `unit`, KiB by default).
    pub memory: u64,
    /// Memory unit (`KiB`, `MiB`, `G`, ...).
    pub unit: Option<String>,
    /// Memory access mode.
    pub mem_access: Option<MemAccess>,
    /// Discard.
    pub discard: Option<YesNo>,
    /// `<distances>`: the distance to each sibling.
    pub distances: Option<Vec<Sibling>>,
    /// `<cache>` elements of the cell.
    pub caches: Vec<NumaCache>,
}

/// `<sibling id value/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling {
    /// Sibling cell id.
    pub id: u32,
    /// Distance 10..=255.
    pub value: u32,
}

/// A value with a unit (`<size value unit/>`, `<line value unit/>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sized {
    /// The value.
    pub value: u32,
    /// The unit.
    pub unit: String,
}

/// `<cache level associativity policy>` of a NUMA cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaCache {
    /// Level.
    pub level: u32,
    /// Associativity.
    pub associativity: Associativity,
    /// Write policy.
    pub policy: CachePolicy,
    /// Size.
    pub size: Sized,
    /// Line size.
    pub line: Sized,
}

/// `<interconnects>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Interconnects {
    /// `<latency>` elements.
    pub latencies: Vec<Interconnect>,
    /// `<bandwidth>` elements (these carry a unit).
    pub bandwidths: Vec<Interconnect>,
}

/// One `<latency>` or `<bandwidth>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interconnect {
    /// Initiator cell.
    pub initiator: u32,
    /// Target cell.
    pub target: u32,
    /// Cache level.
    pub cache: Option<u32>,
    /// Access type.
    pub kind: AccessType,
    /// Value (libvirt keeps 64 bits: a bandwidth is stored in KiB).
    pub value: u64,
    /// Unit (bandwidth only).
    pub unit: Option<String>,
}

/// `<signature family model stepping/>` of a host CPU description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Family.
    pub family: u32,
    /// Model.
    pub model: u32,
    /// Stepping.
    pub stepping: u32,
}

/// `<counter name frequency scaling/>` of a host CPU description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Counter name (`tsc`).
    pub name: String,
    /// Frequency in Hz.
    pub frequency: u64,
    /// Whether it scales.
    pub scaling: YesNo,
}

/// `<pages unit? size/>` of a host CPU description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pages {
    /// Unit.
    pub unit: Option<String>,
    /// Page size.
    pub size: u32,
}

/// The `<cpu>` element: a guest CPU (`guestcpu` in the schema) or, with the host-only fields set,
/// a host CPU description as found in capabilities and libvirt's test data.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Cpu {
    /// `mode`; absent means custom.
    pub mode: Option<Mode>,
    /// `match` (not with host-model).
    pub matching: Option<Match>,
    /// `check`.
    pub check: Option<Check>,
    /// `deprecated_features`.
    pub deprecated_features: Option<OnOff>,
    /// `migratable` (host-passthrough and maximum only).
    pub migratable: Option<OnOff>,
    /// `<model>`.
    pub model: Option<Model>,
    /// `<vendor>`.
    pub vendor: Option<String>,
    /// `<topology>`.
    pub topology: Option<Topology>,
    /// `<feature>` elements, in document order.
    pub features: Vec<Feature>,
    /// `<numa>`.
    pub numa: Option<Numa>,
    /// `<cache>`.
    pub cache: Option<Cache>,
    /// `<maxphysaddr>`.
    pub maxphysaddr: Option<MaxPhysAddr>,
    /// Host CPU descriptions only: `<arch>`.
    pub arch: Option<String>,
    /// Host CPU descriptions only: `<signature>`.
    pub signature: Option<Signature>,
    /// Host CPU descriptions only: `<microcode version/>`.
    pub microcode: Option<u64>,
    /// Host CPU descriptions only: `<counter>`.
    pub counter: Option<Counter>,
    /// Host CPU descriptions only: `<pages>`.
    pub pages: Vec<Pages>,
}

/// Whether `name` matches libvirt's `featureName` pattern `[a-zA-Z0-9\-_.]+`.
pub fn is_valid_feature_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidInput(reason.into())
}

fn check_text(what: &str, s: &str) -> Result<()> {
    if let Some(c) = s.chars().find(|&c| !xml::is_xml_char(c) || c == '\r') {
        return Err(invalid(format!(
            "{what} {s:?} contains {c:?}, which XML cannot carry"
        )));
    }
    Ok(())
}

fn check_unit(unit: &str) -> Result<()> {
    let lower = unit.to_ascii_lowercase();
    let ok = matches!(lower.as_str(), "b" | "by" | "byte" | "bytes")
        || matches!(lower.as_bytes(), [p] | [p, b'b'] | [p, b'i', b'b'] if b"kmgtpe".contains(p));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "memory unit {unit:?} is not one libvirt knows (B, KiB, M, GB, ...)"
        )))
    }
}

/// The bytes one `unit` stands for, by libvirt's rules (virScaleInteger): `b`/`byte`/`bytes`,
/// `k`/`KiB` 1024, `KB` 1000, and so on for M, G, T, P, E; `None` for no unit (`default`).
fn unit_bytes(unit: Option<&str>, default: u128) -> u128 {
    let Some(u) = unit else { return default };
    let lower = u.to_ascii_lowercase();
    if matches!(lower.as_str(), "b" | "by" | "byte" | "bytes") {
        return 1;
    }
    let power = match lower.as_bytes().first() {
        Some(b'k') => 1,
        Some(b'm') => 2,
        Some(b'g') => 3,
        Some(b't') => 4,
        Some(b'p') => 5,
        Some(b'e') => 6,
        _ => 0,
    };
    let base: u128 = if lower.len() == 2 && lower.ends_with('b') {
        1000
    } else {
        1024
    };
    base.pow(power)
}

/// Whether `value` in `unit` fits libvirt's 64-bit byte counts.
fn fits(value: u64, unit: Option<&str>, default: u128) -> bool {
    u128::from(value) * unit_bytes(unit, default) <= u128::from(u64::MAX)
}

/// The vCPU ids of a cpuset (`0-3,^2,8`); `None` past libvirt's limit of 1024 ids
/// (VIR_DOMAIN_CPUMASK_LEN).
fn cpuset_ids(s: &str) -> Option<std::collections::BTreeSet<u32>> {
    let mut set = std::collections::BTreeSet::new();
    for part in s.split(',') {
        let num = |x: &str| x.parse::<u32>().ok().filter(|&n| n < 1024);
        match part.strip_prefix('^') {
            Some(n) => {
                set.remove(&num(n)?);
            }
            None => match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(a)?, num(b)?);
                    if a > b {
                        return None;
                    }
                    set.extend(a..=b);
                }
                None => {
                    set.insert(num(part)?);
                }
            },
        }
    }
    Some(set)
}

/// What libvirt checks of a guest `<numa>` beyond the schema (numa_conf.c
/// virDomainNumaDefParseXML and virDomainNumaDefValidate; found by
/// tests/differential_libvirt.rs, where libvirt refused domains nestcore accepted).
fn validate_numa(numa: &Numa) -> Result<()> {
    let n = numa.cells.len();
    let mut ids: Vec<Option<usize>> = vec![None; n];
    let mut cpus: Vec<std::collections::BTreeSet<u32>> = vec![Default::default(); n];
    for (i, cell) in numa.cells.iter().enumerate() {
        // A cell without id is the cell of its position.
        let id = cell.id.map_or(i, |v| v as usize);
        if id >= n {
            return Err(invalid(format!(
                "NUMA cell id {id} is not below the number of cells ({n}): libvirt needs each of 0..{} once",
                n - 1
            )));
        }
        if ids.contains(&Some(id)) {
            return Err(invalid(format!("NUMA cell id {id} is given twice")));
        }
        ids[i] = Some(id);
        if let Some(c) = &cell.cpus {
            cpus[id] = cpuset_ids(c)
                .ok_or_else(|| invalid(format!("cell cpus {c:?} is not a cpuset of ids below 1024")))?;
            if let Some(j) = (0..n).find(|&j| j != id && !cpus[j].is_disjoint(&cpus[id])) {
                return Err(invalid(format!(
                    "NUMA cells {id} and {j} have overlapping vCPU ids"
                )));
            }
        }
        if !fits(cell.memory, cell.unit.as_deref(), 1024) {
            return Err(invalid(format!(
                "NUMA cell {id} memory {} {:?} overflows 64 bits",
                cell.memory, cell.unit
            )));
        }
        for s in cell.distances.iter().flatten() {
            let ok = (s.id as usize) < n
                && (10..=255).contains(&s.value)
                && ((s.id as usize == id) == (s.value == 10));
            if !ok {
                return Err(invalid(format!(
                    "NUMA distance {} from cell {id} to {} is not valid: the sibling must be a cell, the distance 10 to itself and 11 to 255 to others",
                    s.value, s.id
                )));
            }
        }
        let mut levels = Vec::new();
        for c in &cell.caches {
            if !(1..=3).contains(&c.level) || levels.contains(&c.level) {
                return Err(invalid(format!(
                    "NUMA cell {id} cache level {} is not 1, 2 or 3, or is given twice",
                    c.level
                )));
            }
            levels.push(c.level);
            if !fits(u64::from(c.size.value), Some(&c.size.unit), 1024)
                || !fits(u64::from(c.line.value), Some(&c.line.unit), 1)
            {
                return Err(invalid(format!("NUMA cell {id} cache size overflows 64 bits")));
            }
        }
    }
    let Some(ic) = &numa.interconnects else {
        return Ok(());
    };
    let all: Vec<(&Interconnect, bool)> = ic
        .latencies
        .iter()
        .map(|l| (l, false))
        .chain(ic.bandwidths.iter().map(|b| (b, true)))
        .collect();
    let cell = |id: u32| ids.iter().position(|x| *x == Some(id as usize));
    for (k, (l, bandwidth)) in all.iter().enumerate() {
        let (Some(_), Some(target)) = (cell(l.initiator), cell(l.target)) else {
            return Err(invalid(format!(
                "interconnect {} -> {} refers to a NUMA cell that does not exist",
                l.initiator, l.target
            )));
        };
        if cpus[l.initiator as usize].is_empty() {
            return Err(invalid(format!(
                "NUMA cell {} has no vCPUs and cannot be an initiator",
                l.initiator
            )));
        }
        if let Some(c) = l.cache {
            if c == 0 || !numa.cells[target].caches.iter().any(|x| x.level == c) {
                return Err(invalid(format!(
                    "interconnect cache {c} is not a cache level of cell {}",
                    l.target
                )));
            }
        }
        if *bandwidth && !fits(l.value, l.unit.as_deref(), 1024) {
            return Err(invalid("interconnect bandwidth overflows 64 bits"));
        }
        for (m, mb) in &all[..k] {
            if mb == bandwidth
                && m.initiator == l.initiator
                && m.target == l.target
                && m.cache == l.cache
                && m.kind == l.kind
            {
                return Err(invalid("an interconnect is given twice"));
            }
            if l.initiator != l.target && l.initiator == m.target && l.target == m.initiator {
                return Err(invalid(format!(
                    "the link {} <-> {} is given in both directions",
                    l.initiator, l.target
                )));
            }
        }
    }
    Ok(())
}

fn is_cpuset(s: &str) -> bool {
    !s.is_empty()
        && s.split(',').all(|part| {
            let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
            match part.strip_prefix('^') {
                Some(n) => digits(n),
                None => match part.split_once('-') {
                    Some((a, b)) => digits(a) && digits(b),
                    None => digits(part),
                },
            }
        })
}

impl Cpu {
    /// An empty `<cpu/>` (libvirt's default CPU).
    pub fn new() -> Cpu {
        Cpu::default()
    }

    /// `<cpu mode='host-passthrough'/>`.
    pub fn host_passthrough() -> Cpu {
        Cpu {
            mode: Some(Mode::HostPassthrough),
            ..Cpu::default()
        }
    }

    /// `<cpu mode='host-model'/>`.
    pub fn host_model() -> Cpu {
        Cpu {
            mode: Some(Mode::HostModel),
            ..Cpu::default()
        }
    }

    /// `<cpu mode='maximum'/>`.
    pub fn maximum() -> Cpu {
        Cpu {
            mode: Some(Mode::Maximum),
            ..Cpu::default()
        }
    }

    /// `<cpu mode='custom' match='exact' check='partial'><model fallback='forbid'>NAME</model></cpu>`,
    /// the form `virsh dumpxml` shows for a named model: exactly this model, no silent fallback.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the name is empty, holds a control character or cannot be
    /// carried by XML.
    pub fn custom(model: &str) -> Result<Cpu> {
        let cpu = Cpu {
            mode: Some(Mode::Custom),
            matching: Some(Match::Exact),
            check: Some(Check::Partial),
            model: Some(Model {
                name: Some(model.to_string()),
                fallback: Some(Fallback::Forbid),
                vendor_id: None,
            }),
            ..Cpu::default()
        };
        if model.trim().is_empty() {
            return Err(invalid("the CPU model name is empty"));
        }
        crate::input::refuse_control("The CPU model name", model)?;
        cpu.validate()?;
        Ok(cpu)
    }

    /// Adds or replaces the feature `name` with `policy`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if `name` is not a valid feature name.
    pub fn with_feature(mut self, policy: Policy, name: &str) -> Result<Cpu> {
        self.set_feature(policy, name)?;
        Ok(self)
    }

    /// Adds or replaces the feature `name` with `policy`, keeping its place if it was there.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if `name` is not a valid feature name.
    pub fn set_feature(&mut self, policy: Policy, name: &str) -> Result<()> {
        if !is_valid_feature_name(name) {
            return Err(invalid(format!(
                "CPU feature name {name:?} is not [a-zA-Z0-9._-]+"
            )));
        }
        match self.features.iter_mut().find(|f| f.name == name) {
            Some(f) => f.policy = Some(policy),
            None => self.features.push(Feature {
                policy: Some(policy),
                name: name.to_string(),
            }),
        }
        Ok(())
    }

    /// The feature named `name`, if listed.
    pub fn feature(&self, name: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.name == name)
    }

    /// The effective mode (custom when absent).
    pub fn effective_mode(&self) -> Mode {
        self.mode.unwrap_or(Mode::Custom)
    }

    fn model_name(&self) -> Option<&str> {
        self.model.as_ref().and_then(|m| m.name.as_deref())
    }

    /// Whether this is a host CPU description (capabilities) rather than a guest CPU.
    pub fn is_host_description(&self) -> bool {
        self.arch.is_some()
    }

    /// Checks the combinations libvirt rejects.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] with the reason: `match` or a model name with host-model,
    /// `migratable` outside host-passthrough/maximum, a feature name outside `[a-zA-Z0-9._-]+`,
    /// a feature listed twice, features with a custom CPU that names no model, a `vendor_id` that
    /// is not 12 characters without commas, zero topology values, distances outside 10..=255.
    pub fn validate(&self) -> Result<()> {
        let mode = self.effective_mode();
        if mode == Mode::HostModel {
            if let Some(m) = self.matching {
                return Err(invalid(format!(
                    "match='{m}' is not allowed with mode='host-model' (match only applies to custom models)"
                )));
            }
            if let Some(name) = self.model_name() {
                return Err(invalid(format!(
                    "a model name ({name}) is not allowed with mode='host-model': libvirt picks the model from the host; use mode='custom' to name one"
                )));
            }
        }
        if let Some(m) = self.migratable {
            if !matches!(mode, Mode::HostPassthrough | Mode::Maximum) {
                return Err(invalid(format!(
                    "migratable='{m}' is only allowed with mode='host-passthrough' or 'maximum', not '{mode}'"
                )));
            }
        }
        if let Some(model) = &self.model {
            if let Some(name) = &model.name {
                check_text("CPU model name", name)?;
            }
            if let Some(v) = &model.vendor_id {
                if v.chars().count() != 12 || v.contains(',') {
                    return Err(invalid(format!(
                        "vendor_id {v:?} must be exactly 12 characters without commas"
                    )));
                }
                check_text("vendor_id", v)?;
            }
        }
        if let Some(v) = &self.vendor {
            check_text("CPU vendor", v)?;
        }
        if let Some(a) = &self.arch {
            check_text("CPU arch", a)?;
        }
        if let Some(t) = &self.topology {
            let values = [
                Some(t.sockets),
                t.dies,
                t.clusters,
                Some(t.cores),
                Some(t.threads),
            ];
            if values.iter().flatten().any(|&v| v == 0) {
                return Err(invalid("topology values must be positive"));
            }
            if t.vcpus().is_none() {
                return Err(invalid("topology product overflows"));
            }
        }
        for (i, f) in self.features.iter().enumerate() {
            if !is_valid_feature_name(&f.name) {
                return Err(invalid(format!(
                    "CPU feature name {:?} is not [a-zA-Z0-9._-]+",
                    f.name
                )));
            }
            if self.features[..i].iter().any(|g| g.name == f.name) {
                return Err(invalid(format!(
                    "CPU feature '{}' is listed more than once",
                    f.name
                )));
            }
        }
        if mode == Mode::Custom
            && !self.is_host_description()
            && self.model_name().is_none()
            && self.features.iter().any(|f| f.policy.is_some())
        {
            return Err(invalid(
                "features need a CPU model in custom mode (libvirt: 'Non-empty feature list specified without CPU model')",
            ));
        }
        if let Some(c) = &self.cache {
            if let Some(l) = c.level {
                if !(1..=3).contains(&l) {
                    return Err(invalid(format!("cache level {l} is not 1, 2 or 3")));
                }
            }
        }
        if self.vendor.is_some() && !self.is_host_description() && self.model_name().is_none() {
            return Err(invalid(
                "a <vendor> needs a CPU model (libvirt: 'CPU vendor specified without CPU model')",
            ));
        }
        if self.check.is_some()
            && mode == Mode::Custom
            && !self.is_host_description()
            && self.model_name().is_none()
        {
            return Err(invalid(
                "check= needs a CPU model in custom mode (libvirt: 'check attribute specified for CPU with no model')",
            ));
        }
        if let Some(numa) = &self.numa {
            if numa.cells.is_empty() {
                return Err(invalid("<numa> needs at least one <cell>"));
            }
            validate_numa(numa)?;
            for cell in &numa.cells {
                if let Some(cpus) = &cell.cpus {
                    if !is_cpuset(cpus) {
                        return Err(invalid(format!(
                            "cell cpus {cpus:?} is not a cpuset like 0-3,^2,8"
                        )));
                    }
                }
                if let Some(u) = &cell.unit {
                    check_unit(u)?;
                }
                for s in cell.distances.iter().flatten() {
                    if !(10..=255).contains(&s.value) {
                        return Err(invalid(format!("NUMA distance {} is outside 10..=255", s.value)));
                    }
                }
                if matches!(&cell.distances, Some(d) if d.is_empty()) {
                    return Err(invalid("<distances> needs at least one <sibling>"));
                }
                for c in &cell.caches {
                    check_unit(&c.size.unit)?;
                    check_unit(&c.line.unit)?;
                }
            }
            if let Some(ic) = &numa.interconnects {
                if ic.latencies.iter().any(|l| l.unit.is_some()) {
                    return Err(invalid("<latency> has no unit"));
                }
                for b in &ic.bandwidths {
                    match &b.unit {
                        Some(u) => check_unit(u)?,
                        None => return Err(invalid("<bandwidth> needs a unit")),
                    }
                }
            }
        }
        if let Some(c) = &self.counter {
            check_text("counter name", &c.name)?;
        }
        for p in &self.pages {
            if let Some(u) = &p.unit {
                check_unit(u)?;
            }
        }
        Ok(())
    }

    /// [`Cpu::validate`], plus: the topology must multiply out to the domain's vCPU count.
    ///
    /// # Errors
    /// As [`Cpu::validate`], and [`Error::InvalidInput`] when the topology disagrees with `vcpus`.
    pub fn validate_for_vcpus(&self, vcpus: Option<u32>) -> Result<()> {
        self.validate()?;
        if let (Some(numa), Some(n)) = (&self.numa, vcpus) {
            // libvirt (virDomainDefPostParseCheckFeatures): "Number of CPUs in <numa> exceeds the
            // <vcpu> count", "CPU IDs in <numa> exceed the <vcpu> count".
            let ids: Vec<std::collections::BTreeSet<u32>> = numa
                .cells
                .iter()
                .filter_map(|c| c.cpus.as_deref().and_then(cpuset_ids))
                .collect();
            let total: usize = ids.iter().map(std::collections::BTreeSet::len).sum();
            if total > n as usize {
                return Err(invalid(format!(
                    "the NUMA cells have {total} vCPUs but the domain has {n}"
                )));
            }
            if let Some(max) = ids.iter().filter_map(|s| s.last()).max().filter(|&&m| m >= n) {
                return Err(invalid(format!(
                    "NUMA cell vCPU {max} is not below the domain's {n} vCPUs"
                )));
            }
        }
        if let (Some(t), Some(n)) = (&self.topology, vcpus) {
            let product = t.vcpus().unwrap_or(0);
            if product != n {
                return Err(invalid(format!(
                    "topology gives {product} vCPUs (sockets {} x dies {} x clusters {} x cores {} x threads {}) but the domain has {n}",
                    t.sockets,
                    t.dies.unwrap_or(1),
                    t.clusters.unwrap_or(1),
                    t.cores,
                    t.threads
                )));
            }
        }
        Ok(())
    }

    /// Whether this CPU gives the guest `ext` (vmx or svm), and why.
    pub fn nesting(&self, ext: Extension) -> NestingVerdict {
        let name = ext.as_str();
        let feature = self.feature(name);
        let mode = self.effective_mode();
        match feature.and_then(|f| f.policy) {
            Some(Policy::Disable | Policy::Forbid) => {
                return NestingVerdict::no(format!("the feature {name} is disabled or forbidden"));
            }
            Some(Policy::Require | Policy::Force) => {
                return NestingVerdict::yes(format!("the feature {name} is required"));
            }
            _ => {}
        }
        match mode {
            Mode::HostPassthrough | Mode::Maximum => {
                NestingVerdict::yes(format!("mode {mode} passes {name} through when the host has it"))
            }
            _ if feature.is_some() => NestingVerdict::unknown(format!(
                "the feature {name} is optional: the guest gets it only if the host offers it"
            )),
            Mode::HostModel => NestingVerdict::unknown(format!(
                "host-model includes {name} only if the host-model CPU in `virsh domcapabilities` lists it (often not on AMD); add <feature policy='require' name='{name}'/>"
            )),
            Mode::Custom => match self.model_name() {
                Some(m) => NestingVerdict::unknown(format!(
                    "depends on whether the model {m} includes {name}; add <feature policy='require' name='{name}'/>"
                )),
                None => NestingVerdict::unknown(format!(
                    "no CPU model: libvirt's default (QEMU's qemu64) has svm but not vmx; name {name} explicitly"
                )),
            },
        }
    }

    /// The element as XML, indented with two spaces, attributes in single quotes, no trailing
    /// newline. Every string is escaped by one function, so names cannot inject markup.
    pub fn to_xml(&self) -> String {
        self.render("", "  ")
    }

    /// Renders with every line after the first prefixed by `indent`, one `step` per level.
    pub(crate) fn render(&self, indent: &str, step: &str) -> String {
        let mut attrs = String::new();
        let mut attr = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                let _ = write!(attrs, " {k}='{}'", escape(v));
            }
        };
        attr("mode", self.mode.map(Mode::as_str));
        attr("match", self.matching.map(Match::as_str));
        attr("check", self.check.map(Check::as_str));
        attr("deprecated_features", self.deprecated_features.map(OnOff::as_str));
        attr("migratable", self.migratable.map(OnOff::as_str));

        let mut body = Vec::<String>::new();
        if let Some(a) = &self.arch {
            body.push(format!("<arch>{}</arch>", escape(a)));
        }
        if let Some(m) = &self.model {
            let mut a = String::new();
            if let Some(f) = m.fallback {
                let _ = write!(a, " fallback='{f}'");
            }
            if let Some(v) = &m.vendor_id {
                let _ = write!(a, " vendor_id='{}'", escape(v));
            }
            body.push(match &m.name {
                Some(n) => format!("<model{a}>{}</model>", escape(n)),
                None => format!("<model{a}/>"),
            });
        }
        if let Some(v) = &self.vendor {
            body.push(format!("<vendor>{}</vendor>", escape(v)));
        }
        if let Some(v) = self.microcode {
            body.push(format!("<microcode version='{v}'/>"));
        }
        if let Some(s) = &self.signature {
            body.push(format!(
                "<signature family='{}' model='{}' stepping='{}'/>",
                s.family, s.model, s.stepping
            ));
        }
        if let Some(c) = &self.counter {
            body.push(format!(
                "<counter name='{}' frequency='{}' scaling='{}'/>",
                escape(&c.name),
                c.frequency,
                c.scaling
            ));
        }
        if let Some(t) = &self.topology {
            let mut s = format!("<topology sockets='{}'", t.sockets);
            if let Some(d) = t.dies {
                let _ = write!(s, " dies='{d}'");
            }
            if let Some(c) = t.clusters {
                let _ = write!(s, " clusters='{c}'");
            }
            let _ = write!(s, " cores='{}' threads='{}'/>", t.cores, t.threads);
            body.push(s);
        }
        if let Some(c) = &self.cache {
            body.push(match c.level {
                Some(l) => format!("<cache level='{l}' mode='{}'/>", c.mode),
                None => format!("<cache mode='{}'/>", c.mode),
            });
        }
        if let Some(m) = &self.maxphysaddr {
            let mut s = format!("<maxphysaddr mode='{}'", m.mode);
            if let Some(b) = m.bits {
                let _ = write!(s, " bits='{b}'");
            }
            if let Some(l) = m.limit {
                let _ = write!(s, " limit='{l}'");
            }
            s.push_str("/>");
            body.push(s);
        }
        for f in &self.features {
            body.push(match f.policy {
                Some(p) => format!("<feature policy='{p}' name='{}'/>", escape(&f.name)),
                None => format!("<feature name='{}'/>", escape(&f.name)),
            });
        }
        for p in &self.pages {
            body.push(match &p.unit {
                Some(u) => format!("<pages unit='{}' size='{}'/>", escape(u), p.size),
                None => format!("<pages size='{}'/>", p.size),
            });
        }
        if let Some(n) = &self.numa {
            body.push(render_numa(n, &format!("{indent}{step}"), step));
        }

        if body.is_empty() {
            return format!("<cpu{attrs}/>");
        }
        let mut out = format!("<cpu{attrs}>");
        for line in body {
            let _ = write!(out, "\n{indent}{step}{line}");
        }
        let _ = write!(out, "\n{indent}</cpu>");
        out
    }
}

fn render_numa(n: &Numa, indent: &str, step: &str) -> String {
    let i1 = format!("{indent}{step}");
    let i2 = format!("{i1}{step}");
    let i3 = format!("{i2}{step}");
    let mut out = String::from("<numa>");
    for c in &n.cells {
        let mut a = String::new();
        if let Some(id) = c.id {
            let _ = write!(a, " id='{id}'");
        }
        if let Some(cpus) = &c.cpus {
            let _ = write!(a, " cpus='{}'", escape(cpus));
        }
        let _ = write!(a, " memory='{}'", c.memory);
        if let Some(u) = &c.unit {
            let _ = write!(a, " unit='{}'", escape(u));
        }
        if let Some(m) = c.mem_access {
            let _ = write!(a, " memAccess='{m}'");
        }
        if let Some(d) = c.discard {
            let _ = write!(a, " discard='{d}'");
        }
        if c.distances.is_none() && c.caches.is_empty() {
            let _ = write!(out, "\n{i1}<cell{a}/>");
            continue;
        }
        let _ = write!(out, "\n{i1}<cell{a}>");
        if let Some(d) = &c.distances {
            let _ = write!(out, "\n{i2}<distances>");
            for s in d {
                let _ = write!(out, "\n{i3}<sibling id='{}' value='{}'/>", s.id, s.value);
            }
            let _ = write!(out, "\n{i2}</distances>");
        }
        for k in &c.caches {
            let _ = write!(
                out,
                "\n{i2}<cache level='{}' associativity='{}' policy='{}'>\n{i3}<size value='{}' unit='{}'/>\n{i3}<line value='{}' unit='{}'/>\n{i2}</cache>",
                k.level,
                k.associativity,
                k.policy,
                k.size.value,
                escape(&k.size.unit),
                k.line.value,
                escape(&k.line.unit)
            );
        }
        let _ = write!(out, "\n{i1}</cell>");
    }
    if let Some(ic) = &n.interconnects {
        if ic.latencies.is_empty() && ic.bandwidths.is_empty() {
            let _ = write!(out, "\n{i1}<interconnects/>");
        } else {
            let _ = write!(out, "\n{i1}<interconnects>");
            for (tag, list) in [("latency", &ic.latencies), ("bandwidth", &ic.bandwidths)] {
                for l in list {
                    let _ = write!(
                        out,
                        "\n{i2}<{tag} initiator='{}' target='{}'",
                        l.initiator, l.target
                    );
                    if let Some(c) = l.cache {
                        let _ = write!(out, " cache='{c}'");
                    }
                    let _ = write!(out, " type='{}' value='{}'", l.kind, l.value);
                    if let Some(u) = &l.unit {
                        let _ = write!(out, " unit='{}'", escape(u));
                    }
                    out.push_str("/>");
                }
            }
            let _ = write!(out, "\n{i1}</interconnects>");
        }
    }
    let _ = write!(out, "\n{indent}</numa>");
    out
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_xml())
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

struct Ctx<'s> {
    src: &'s str,
    what: &'static str,
}

impl Ctx<'_> {
    fn err(&self, node: &Node, reason: impl std::fmt::Display) -> Error {
        let (line, col) = xml::line_col(self.src, node.open.start);
        Error::parse(
            self.what,
            format!("<{}> at line {line}, column {col}: {reason}", node.name),
        )
    }

    fn only_attrs(&self, node: &Node, allowed: &[&str]) -> Result<()> {
        match node.attrs.iter().find(|a| !allowed.contains(&a.name.as_str())) {
            Some(a) => Err(self.err(node, format!("unknown attribute {}", a.name))),
            None => Ok(()),
        }
    }

    fn no_children(&self, node: &Node) -> Result<()> {
        if let Some(c) = node.children.first() {
            return Err(self.err(node, format!("unexpected child <{}>", c.name)));
        }
        if !node.text.trim().is_empty() {
            return Err(self.err(node, "unexpected text"));
        }
        Ok(())
    }

    fn req<'n>(&self, node: &'n Node, name: &str) -> Result<&'n str> {
        node.attr(name)
            .ok_or_else(|| self.err(node, format!("missing attribute {name}")))
    }

    fn num<T: std::str::FromStr>(&self, node: &Node, name: &str, v: &str) -> Result<T> {
        let v = v.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.err(node, format!("{name}='{v}' is not an unsigned integer")));
        }
        v.parse()
            .map_err(|_| self.err(node, format!("{name}='{v}' is out of range")))
    }

    fn req_num<T: std::str::FromStr>(&self, node: &Node, name: &str) -> Result<T> {
        let v = self.req(node, name)?;
        self.num(node, name, v)
    }

    fn opt_num<T: std::str::FromStr>(&self, node: &Node, name: &str) -> Result<Option<T>> {
        node.attr(name).map(|v| self.num(node, name, v)).transpose()
    }

    fn positive(&self, node: &Node, name: &str, required: bool) -> Result<Option<u32>> {
        let v: Option<u32> = if required {
            Some(self.req_num(node, name)?)
        } else {
            self.opt_num(node, name)?
        };
        if v == Some(0) {
            return Err(self.err(node, format!("{name} must be positive")));
        }
        Ok(v)
    }

    fn enum_attr<T>(&self, node: &Node, name: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>> {
        node.attr(name)
            .map(|v| parse(v).ok_or_else(|| self.err(node, format!("{name}='{v}' is not a valid value"))))
            .transpose()
    }

    fn req_enum<T>(&self, node: &Node, name: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
        self.enum_attr(node, name, parse)?
            .ok_or_else(|| self.err(node, format!("missing attribute {name}")))
    }

    fn once<'n>(&self, slot: &mut Option<&'n Node>, node: &'n Node) -> Result<()> {
        if slot.replace(node).is_some() {
            return Err(self.err(node, "element given more than once"));
        }
        Ok(())
    }

    fn cpu(&self, node: &Node) -> Result<Cpu> {
        self.only_attrs(
            node,
            &["mode", "match", "check", "deprecated_features", "migratable"],
        )?;
        if !node.text.trim().is_empty() {
            return Err(self.err(node, "unexpected text"));
        }
        let mut cpu = Cpu {
            mode: self.enum_attr(node, "mode", Mode::from_xml)?,
            matching: self.enum_attr(node, "match", Match::from_xml)?,
            check: self.enum_attr(node, "check", Check::from_xml)?,
            deprecated_features: self.enum_attr(node, "deprecated_features", OnOff::from_xml)?,
            migratable: self.enum_attr(node, "migratable", OnOff::from_xml)?,
            ..Cpu::default()
        };
        let mut seen: [Option<&Node>; 10] = Default::default();
        for c in &node.children {
            let slot = match c.name.as_str() {
                "model" => 0,
                "vendor" => 1,
                "topology" => 2,
                "numa" => 3,
                "cache" => 4,
                "maxphysaddr" => 5,
                "arch" => 6,
                "signature" => 7,
                "microcode" => 8,
                "counter" => 9,
                "feature" => {
                    self.only_attrs(c, &["policy", "name"])?;
                    self.no_children(c)?;
                    cpu.features.push(Feature {
                        policy: self.enum_attr(c, "policy", Policy::from_xml)?,
                        name: self.req(c, "name")?.to_string(),
                    });
                    continue;
                }
                "pages" => {
                    self.only_attrs(c, &["unit", "size"])?;
                    self.no_children(c)?;
                    cpu.pages.push(Pages {
                        unit: c.attr("unit").map(str::to_string),
                        size: self.req_num(c, "size")?,
                    });
                    continue;
                }
                other => return Err(self.err(c, format!("unknown element <{other}> in <cpu>"))),
            };
            self.once(&mut seen[slot], c)?;
        }
        let [model, vendor, topology, numa, cache, maxphys, arch, signature, microcode, counter] = seen;
        if let Some(m) = model {
            self.only_attrs(m, &["fallback", "vendor_id"])?;
            if let Some(c) = m.children.first() {
                return Err(self.err(m, format!("unexpected child <{}>", c.name)));
            }
            cpu.model = Some(Model {
                name: Some(m.text.clone()).filter(|t| !t.is_empty()),
                fallback: self.enum_attr(m, "fallback", Fallback::from_xml)?,
                vendor_id: m.attr("vendor_id").map(str::to_string),
            });
        }
        for (slot, target) in [(vendor, &mut cpu.vendor), (arch, &mut cpu.arch)] {
            if let Some(v) = slot {
                self.only_attrs(v, &[])?;
                if let Some(c) = v.children.first() {
                    return Err(self.err(v, format!("unexpected child <{}>", c.name)));
                }
                *target = Some(v.text.clone());
            }
        }
        if let Some(t) = topology {
            self.only_attrs(t, &["sockets", "dies", "clusters", "cores", "threads"])?;
            self.no_children(t)?;
            cpu.topology = Some(Topology {
                sockets: self.positive(t, "sockets", true)?.unwrap_or(1),
                dies: self.positive(t, "dies", false)?,
                clusters: self.positive(t, "clusters", false)?,
                cores: self.positive(t, "cores", true)?.unwrap_or(1),
                threads: self.positive(t, "threads", true)?.unwrap_or(1),
            });
        }
        if let Some(c) = cache {
            self.only_attrs(c, &["level", "mode"])?;
            self.no_children(c)?;
            let level = match c.attr("level") {
                None => None,
                Some(l @ ("1" | "2" | "3")) => l.parse().ok(),
                Some(l) => return Err(self.err(c, format!("level='{l}' is not 1, 2 or 3"))),
            };
            cpu.cache = Some(Cache {
                level,
                mode: self.req_enum(c, "mode", CacheMode::from_xml)?,
            });
        }
        if let Some(m) = maxphys {
            self.only_attrs(m, &["mode", "bits", "limit"])?;
            self.no_children(m)?;
            cpu.maxphysaddr = Some(MaxPhysAddr {
                mode: self.req_enum(m, "mode", PhysAddrMode::from_xml)?,
                bits: self.opt_num(m, "bits")?,
                limit: self.opt_num(m, "limit")?,
            });
        }
        if let Some(s) = signature {
            self.only_attrs(s, &["family", "model", "stepping"])?;
            self.no_children(s)?;
            cpu.signature = Some(Signature {
                family: self.positive(s, "family", true)?.unwrap_or(1),
                model: self.req_num(s, "model")?,
                stepping: self.req_num(s, "stepping")?,
            });
        }
        if let Some(m) = microcode {
            self.only_attrs(m, &["version"])?;
            self.no_children(m)?;
            cpu.microcode = Some(self.req_num(m, "version")?);
        }
        if let Some(c) = counter {
            self.only_attrs(c, &["name", "frequency", "scaling"])?;
            self.no_children(c)?;
            cpu.counter = Some(Counter {
                name: self.req(c, "name")?.to_string(),
                frequency: self.req_num(c, "frequency")?,
                scaling: self.req_enum(c, "scaling", YesNo::from_xml)?,
            });
        }
        if let Some(n) = numa {
            cpu.numa = Some(self.numa(n)?);
        }
        Ok(cpu)
    }

    fn numa(&self, node: &Node) -> Result<Numa> {
        self.only_attrs(node, &[])?;
        let mut numa = Numa::default();
        for c in &node.children {
            match c.name.as_str() {
                "cell" => numa.cells.push(self.cell(c)?),
                "interconnects" if numa.interconnects.is_none() => {
                    self.only_attrs(c, &[])?;
                    let mut ic = Interconnects::default();
                    for l in &c.children {
                        let bandwidth = match l.name.as_str() {
                            "latency" => false,
                            "bandwidth" => true,
                            other => {
                                return Err(
                                    self.err(l, format!("unknown element <{other}> in <interconnects>"))
                                )
                            }
                        };
                        self.only_attrs(l, &["initiator", "target", "cache", "type", "value", "unit"])?;
                        self.no_children(l)?;
                        let item = Interconnect {
                            initiator: self.req_num(l, "initiator")?,
                            target: self.req_num(l, "target")?,
                            cache: self.opt_num(l, "cache")?,
                            kind: self.req_enum(l, "type", AccessType::from_xml)?,
                            value: self.req_num(l, "value")?,
                            unit: l.attr("unit").map(str::to_string),
                        };
                        if bandwidth {
                            ic.bandwidths.push(item);
                        } else {
                            ic.latencies.push(item);
                        }
                    }
                    numa.interconnects = Some(ic);
                }
                other => return Err(self.err(c, format!("unexpected element <{other}> in <numa>"))),
            }
        }
        Ok(numa)
    }

    fn cell(&self, c: &Node) -> Result<NumaCell> {
        self.only_attrs(c, &["id", "cpus", "memory", "unit", "memAccess", "discard"])?;
        let mut cell = NumaCell {
            id: self.opt_num(c, "id")?,
            cpus: c.attr("cpus").map(str::to_string),
            memory: self.req_num(c, "memory")?,
            unit: c.attr("unit").map(str::to_string),
            mem_access: self.enum_attr(c, "memAccess", MemAccess::from_xml)?,
            discard: self.enum_attr(c, "discard", YesNo::from_xml)?,
            ..NumaCell::default()
        };
        for k in &c.children {
            match k.name.as_str() {
                "distances" if cell.distances.is_none() => {
                    self.only_attrs(k, &[])?;
                    let mut d = Vec::new();
                    for s in &k.children {
                        if s.name != "sibling" {
                            return Err(self.err(s, "unexpected element in <distances>"));
                        }
                        self.only_attrs(s, &["id", "value"])?;
                        self.no_children(s)?;
                        d.push(Sibling {
                            id: self.req_num(s, "id")?,
                            value: self.req_num(s, "value")?,
                        });
                    }
                    cell.distances = Some(d);
                }
                "cache" => {
                    self.only_attrs(k, &["level", "associativity", "policy"])?;
                    let sized = |name: &str| -> Result<Sized> {
                        let mut found = k.children.iter().filter(|x| x.name == name);
                        let (Some(e), None) = (found.next(), found.next()) else {
                            // libvirt writes no <line> for a line size of 0 (numa_conf.c).
                            if name == "line" && k.children.iter().all(|x| x.name != "line") {
                                return Ok(Sized {
                                    value: 0,
                                    unit: "B".into(),
                                });
                            }
                            return Err(self.err(k, format!("needs exactly one <{name}>")));
                        };
                        self.only_attrs(e, &["value", "unit"])?;
                        self.no_children(e)?;
                        Ok(Sized {
                            value: self.req_num(e, "value")?,
                            unit: self.req(e, "unit")?.to_string(),
                        })
                    };
                    if let Some(x) = k.children.iter().find(|x| x.name != "size" && x.name != "line") {
                        return Err(self.err(x, "unexpected element in <cache>"));
                    }
                    cell.caches.push(NumaCache {
                        level: self.req_num(k, "level")?,
                        // libvirt leaves out associativity and policy 'none' when it writes a
                        // domain (numa_conf.c virDomainNumaDefFormatXML).
                        associativity: self
                            .enum_attr(k, "associativity", Associativity::from_xml)?
                            .unwrap_or(Associativity::None),
                        policy: self
                            .enum_attr(k, "policy", CachePolicy::from_xml)?
                            .unwrap_or(CachePolicy::None),
                        size: sized("size")?,
                        line: sized("line")?,
                    });
                }
                other => return Err(self.err(k, format!("unexpected element <{other}> in <cell>"))),
            }
        }
        Ok(cell)
    }
}

/// The `<cpu>` of a domain definition, with what is needed to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DomainCpu {
    /// The `<cpu>` element, if the domain has one.
    pub cpu: Option<Cpu>,
    /// The domain's maximum vCPU count (`<vcpu>` text).
    pub vcpus: Option<u32>,
    /// `<domain type=...>` (`kvm`, `qemu`, ...).
    pub domain_type: Option<String>,
}

fn vcpu_count(ctx: &Ctx<'_>, root: &Node) -> Result<Option<u32>> {
    root.child("vcpu")
        .map(|v| {
            let t = v.text.trim();
            t.parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| ctx.err(v, format!("vCPU count {t:?} is not a positive integer")))
        })
        .transpose()
}

/// Parses a domain definition's `<cpu>` (and its `<vcpu>` count), and checks them.
///
/// # Errors
/// [`Error::Parse`] (with line and column) for malformed XML, a root that is not `<domain>`,
/// or a `<cpu>` the schema rejects; [`Error::InvalidInput`] for combinations libvirt rejects
/// (see [`Cpu::validate_for_vcpus`]).
pub fn parse_domain(xml: &str) -> Result<DomainCpu> {
    let ctx = Ctx {
        src: xml,
        what: "libvirt domain XML",
    };
    let root = xml::parse(xml, ctx.what)?;
    if root.name != "domain" {
        return Err(ctx.err(&root, "the root element is not <domain>"));
    }
    let vcpus = vcpu_count(&ctx, &root)?;
    let cpus: Vec<&Node> = root.children.iter().filter(|c| c.name == "cpu").collect();
    if cpus.len() > 1 {
        return Err(ctx.err(cpus[1], "a domain has at most one <cpu>"));
    }
    let cpu = cpus.first().map(|n| ctx.cpu(n)).transpose()?;
    if let Some(cpu) = &cpu {
        cpu.validate_for_vcpus(vcpus)?;
    }
    Ok(DomainCpu {
        cpu,
        vcpus,
        domain_type: root.attr("type").map(str::to_string),
    })
}

impl Cpu {
    /// Parses a bare `<cpu>` element or the `<cpu>` of a whole `<domain>`, and checks it.
    ///
    /// # Errors
    /// [`Error::Parse`] (with line and column) for malformed XML, unknown elements or attributes,
    /// invalid values, or a domain without `<cpu>`; [`Error::InvalidInput`] for combinations
    /// libvirt rejects (see [`Cpu::validate`]).
    pub fn from_xml(xml: &str) -> Result<Cpu> {
        let ctx = Ctx {
            src: xml,
            what: "libvirt <cpu> XML",
        };
        let root = xml::parse(xml, ctx.what)?;
        match root.name.as_str() {
            "cpu" => {
                let cpu = ctx.cpu(&root)?;
                cpu.validate()?;
                Ok(cpu)
            }
            "domain" => parse_domain(xml)?
                .cpu
                .ok_or_else(|| Error::parse("libvirt domain XML", "the domain has no <cpu> element")),
            _ => Err(ctx.err(&root, "expected <cpu> or <domain>")),
        }
    }
}

impl std::str::FromStr for Cpu {
    type Err = Error;

    fn from_str(s: &str) -> Result<Cpu> {
        Cpu::from_xml(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Editing a domain in place

/// What to put in a domain that has no `<cpu>` at all, for [`ensure_nested_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MissingCpu {
    /// `<cpu mode='host-model'>` plus `<feature policy='require' name='vmx|svm'/>` (the default):
    /// keeps the guest migratable between hosts of the same or newer CPU generation, and makes the
    /// start fail loudly where the host cannot give the extension, instead of a guest that
    /// silently lacks it (AMD host-model CPUs often omit svm). It is also nova's default mode.
    #[default]
    HostModelRequire,
    /// `<cpu mode='host-passthrough'/>`: "give the guest everything the host has", including all
    /// VMX/SVM sub-features; the guest can only migrate to hosts with an identical CPU.
    HostPassthrough,
}

/// The result of editing a domain: the new text and what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Edit {
    /// The edited document (identical to the input when nothing changed).
    pub xml: String,
    /// One line per change made; empty when the document already was as asked.
    pub changes: Vec<String>,
}

impl Edit {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }
}

fn extension_for(vendor: Vendor) -> Result<Extension> {
    vendor.extension().ok_or_else(|| {
        invalid(format!(
            "vendor {vendor:?} has no known virtualization extension (vmx or svm) to give a guest"
        ))
    })
}

/// The text between the last newline before `pos` and `pos`, if it is only blanks.
fn indent_before(src: &str, pos: usize) -> Option<&str> {
    let line_start = src[..pos].rfind('\n').map_or(0, |i| i + 1);
    let s = &src[line_start..pos];
    s.bytes().all(|b| b == b' ' || b == b'\t').then_some(s)
}

struct Splicer<'s> {
    src: &'s str,
    edits: Vec<(Range<usize>, String)>,
    changes: Vec<String>,
}

impl<'s> Splicer<'s> {
    fn new(src: &'s str) -> Self {
        Splicer {
            src,
            edits: Vec::new(),
            changes: Vec::new(),
        }
    }

    fn replace(&mut self, range: Range<usize>, with: impl Into<String>, why: impl Into<String>) {
        self.edits.push((range, with.into()));
        self.changes.push(why.into());
    }

    /// The range of an element together with its own line (indentation and newline before it),
    /// when it sits on a line of its own.
    fn element_line(&self, node: &Node) -> Range<usize> {
        match indent_before(self.src, node.span.start) {
            Some(ind) => {
                let start = node.span.start - ind.len();
                let start = if self.src[..start].ends_with("\r\n") {
                    start - 2
                } else if self.src[..start].ends_with('\n') {
                    start - 1
                } else {
                    start
                };
                start..node.span.end
            }
            None => node.span.clone(),
        }
    }

    /// The range of attribute `name` including the blanks before it.
    fn attr_range(&self, node: &Node, name: &str) -> Option<Range<usize>> {
        let a = node.attr_full(name)?;
        let tag = &self.src[node.open.start..a.value_span.start];
        let eq = tag.rfind('=')?;
        let name_start = tag[..eq].trim_end().len() - name.len();
        let ws_start = tag[..name_start].trim_end().len();
        Some(node.open.start + ws_start..a.value_span.end + 1)
    }

    fn finish(mut self, what: &str) -> Result<Edit> {
        self.edits.sort_by_key(|(r, _)| (r.start, r.end));
        let mut out = String::with_capacity(self.src.len() + 128);
        let mut at = 0;
        for (r, text) in &self.edits {
            if r.start < at {
                return Err(invalid("internal: overlapping edits"));
            }
            out.push_str(&self.src[at..r.start]);
            out.push_str(text);
            at = r.end;
        }
        out.push_str(&self.src[at..]);
        // The result must still be well-formed.
        xml::parse(&out, what)?;
        Ok(Edit {
            xml: out,
            changes: self.changes,
        })
    }
}

/// The indentation unit and the indentation of `node`'s children.
fn child_indent(src: &str, node: &Node, unit: &str) -> String {
    if let Some(last) = node.children.last() {
        if let Some(ind) = indent_before(src, last.span.start) {
            return ind.to_string();
        }
    }
    format!("{}{unit}", indent_before(src, node.span.start).unwrap_or(""))
}

/// The document's indentation unit, guessed from the root's first child.
fn indent_unit(src: &str, root: &Node) -> String {
    let root_ind = indent_before(src, root.span.start).unwrap_or("");
    root.children
        .first()
        .and_then(|c| indent_before(src, c.span.start))
        .and_then(|ind| ind.strip_prefix(root_ind))
        .filter(|u| !u.is_empty())
        .unwrap_or("  ")
        .to_string()
}

/// Inserts `line` as the new last-but-features child of `cpu`: after its last `<feature>`, or
/// after its last child, or as its first child.
/// Features need a model in custom mode: a custom `<cpu>` without one becomes host-model (and
/// loses `match`, which host-model forbids). Shared by [`ensure_nested`] and [`disable_nested`].
fn modelless_custom_to_host_model(sp: &mut Splicer<'_>, cpu: &Node) {
    match cpu.attr_full("mode") {
        Some(a) => sp.replace(
            a.value_span.clone(),
            "host-model",
            "mode custom without a model became host-model",
        ),
        None => {
            let at = cpu.open.start + "<cpu".len();
            sp.replace(
                at..at,
                " mode='host-model'",
                "a <cpu> without mode or model became mode='host-model'",
            );
        }
    }
    if let Some(r) = sp.attr_range(cpu, "match") {
        sp.replace(
            r,
            "",
            "dropped match (meaningless without a model, invalid with host-model)",
        );
    }
}

fn insert_child(sp: &mut Splicer<'_>, cpu: &Node, unit: &str, line: &str, why: String) {
    let src = sp.src;
    let ci = child_indent(src, cpu, unit);
    let cpu_ind = indent_before(src, cpu.span.start).unwrap_or("");
    if cpu.self_closing {
        let head = src[cpu.open.start..cpu.open.end - 2].trim_end();
        let text = format!("{head}>\n{ci}{line}\n{cpu_ind}</cpu>");
        sp.replace(cpu.span.clone(), text, why);
        return;
    }
    let anchor = cpu
        .children
        .iter()
        .rev()
        .find(|c| c.name == "feature")
        .or(cpu.children.last());
    match anchor {
        Some(a) => sp.replace(a.span.end..a.span.end, format!("\n{ci}{line}"), why),
        None => {
            let close = cpu.close_start(src);
            if close == cpu.open.end {
                sp.replace(close..close, format!("\n{ci}{line}\n{cpu_ind}"), why);
            } else {
                sp.replace(cpu.open.end..cpu.open.end, format!("\n{ci}{line}"), why);
            }
        }
    }
}

struct Target<'n> {
    root: &'n Node,
    cpu: Option<&'n Node>,
}

fn locate<'n>(root: &'n Node, src: &str) -> Result<Target<'n>> {
    match root.name.as_str() {
        "cpu" => Ok(Target {
            root,
            cpu: Some(root),
        }),
        "domain" => {
            let mut cpus = root.children.iter().filter(|c| c.name == "cpu");
            let cpu = cpus.next();
            if let Some(second) = cpus.next() {
                let (line, _) = xml::line_col(src, second.span.start);
                return Err(Error::parse(
                    "domain XML",
                    format!("a second <cpu> at line {line}"),
                ));
            }
            Ok(Target { root, cpu })
        }
        other => Err(Error::parse(
            "domain XML",
            format!("expected <domain> or <cpu>, found <{other}>"),
        )),
    }
}

fn insert_new_cpu(sp: &mut Splicer<'_>, root: &Node, unit: &str, cpu: &Cpu, why: String) {
    let src = sp.src;
    let ci = child_indent(src, root, unit);
    let rendered = cpu.render(&ci, unit);
    if root.self_closing {
        let head = src[root.open.start..root.open.end - 2].trim_end();
        sp.replace(
            root.span.clone(),
            format!("{head}>\n{ci}{rendered}\n</{}>", root.name),
            why,
        );
        return;
    }
    // After <vcpu> where there is one (the CPU's neighbour in libvirt's own output), else last.
    let anchor = root.child("vcpu").or(root.children.last());
    match anchor {
        Some(a) => sp.replace(a.span.end..a.span.end, format!("\n{ci}{rendered}"), why),
        None => {
            let at = root.open.end;
            sp.replace(at..at, format!("\n{ci}{rendered}\n"), why);
        }
    }
}

/// Makes the smallest change to a domain definition (or a bare `<cpu>`) that gives the guest
/// vmx (Intel, Zhaoxin, Centaur) or svm (AMD, Hygon); a domain without `<cpu>` gets
/// [`MissingCpu::HostModelRequire`]. See [`ensure_nested_with`].
///
/// # Errors
/// As [`ensure_nested_with`].
pub fn ensure_nested(domain_xml: &str, vendor: Vendor) -> Result<Edit> {
    ensure_nested_with(domain_xml, vendor, MissingCpu::default())
}

/// Makes the smallest change that gives the guest the vendor's extension, splicing the original
/// text so that everything else (comments, attribute order, quoting, whitespace) is unchanged:
///
/// - custom (with a model) and host-model: a `disable`, `forbid` or `optional` feature of the
///   extension has its policy value replaced by `require`; if there is none,
///   `<feature policy='require' name='vmx'/>` is added after the last feature (or child);
/// - a custom `<cpu>` without a model (for example only `<topology>` and `<numa>`) cannot carry
///   features (libvirt rejects them), so it becomes `mode='host-model'` with the feature
///   (dropping a `match`, meaningless without a model and invalid with host-model);
/// - host-passthrough and maximum pass the extension already; only a feature element that
///   disables or forbids it is removed;
/// - no `<cpu>`: `when_missing` is inserted after `<vcpu>`.
///
/// # Errors
/// [`Error::InvalidInput`] for a vendor without vmx/svm; [`Error::Parse`] for malformed XML or a
/// root other than `<domain>` or `<cpu>`.
pub fn ensure_nested_with(domain_xml: &str, vendor: Vendor, when_missing: MissingCpu) -> Result<Edit> {
    let ext = extension_for(vendor)?;
    let name = ext.as_str();
    let root = xml::parse(domain_xml, "domain XML")?;
    let target = locate(&root, domain_xml)?;
    let unit = indent_unit(domain_xml, target.root);
    let mut sp = Splicer::new(domain_xml);
    let feature_line = format!("<feature policy='require' name='{name}'/>");

    let Some(cpu) = target.cpu else {
        let new = match when_missing {
            MissingCpu::HostModelRequire => Cpu::host_model().with_feature(Policy::Require, name)?,
            MissingCpu::HostPassthrough => Cpu::host_passthrough(),
        };
        let why = format!(
            "added <cpu mode='{}'> giving the guest {name}",
            new.effective_mode()
        );
        insert_new_cpu(&mut sp, target.root, &unit, &new, why);
        return sp.finish("edited domain XML");
    };

    let mode = cpu.attr("mode").and_then(Mode::from_xml).unwrap_or(Mode::Custom);
    let features: Vec<&Node> = cpu
        .children
        .iter()
        .filter(|c| c.name == "feature" && c.attr("name") == Some(name))
        .collect();
    if matches!(mode, Mode::HostPassthrough | Mode::Maximum) {
        for f in features {
            if matches!(f.attr("policy"), Some("disable" | "forbid")) {
                let r = sp.element_line(f);
                sp.replace(
                    r,
                    "",
                    format!("removed the feature element that withheld {name} from {mode}"),
                );
            }
        }
        return sp.finish("edited domain XML");
    }
    let has_model = cpu.child("model").is_some_and(|m| !m.text.trim().is_empty());
    if mode == Mode::Custom && !has_model {
        modelless_custom_to_host_model(&mut sp, cpu);
    }
    let mut satisfied = false;
    for f in &features {
        match f.attr_full("policy") {
            Some(p) if matches!(p.value.as_str(), "require" | "force") => satisfied = true,
            Some(p) => {
                sp.replace(
                    p.value_span.clone(),
                    "require",
                    format!("feature {name}: policy {} became require", p.value),
                );
                satisfied = true;
            }
            // No policy means require in a guest CPU.
            None => satisfied = true,
        }
    }
    if !satisfied {
        insert_child(
            &mut sp,
            cpu,
            &unit,
            &feature_line,
            format!("added <feature policy='require' name='{name}'/>"),
        );
    }
    sp.finish("edited domain XML")
}

/// The reverse of [`ensure_nested`]: the smallest change that withholds vmx/svm from the guest.
///
/// - a feature of the extension with `require`, `force`, `optional` (or no policy) gets
///   `disable`; without one, `<feature policy='disable' name='svm'/>` is added (in every mode:
///   libvirt accepts features with host-passthrough and maximum too);
/// - a custom `<cpu>` without a model becomes host-model as in [`ensure_nested_with`];
/// - no `<cpu>`: libvirt's default CPU is QEMU's default model (qemu64), which has svm but not
///   vmx. For vmx vendors nothing changes; for svm vendors
///   `<cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model><feature policy='disable' name='svm'/></cpu>`
///   is added, which states the default model explicitly.
///
/// # Errors
/// As [`ensure_nested_with`].
pub fn disable_nested(domain_xml: &str, vendor: Vendor) -> Result<Edit> {
    let ext = extension_for(vendor)?;
    let name = ext.as_str();
    let root = xml::parse(domain_xml, "domain XML")?;
    let target = locate(&root, domain_xml)?;
    let unit = indent_unit(domain_xml, target.root);
    let mut sp = Splicer::new(domain_xml);

    let Some(cpu) = target.cpu else {
        if ext == Extension::Svm {
            let mut new = Cpu {
                mode: Some(Mode::Custom),
                matching: Some(Match::Exact),
                model: Some(Model {
                    name: Some("qemu64".into()),
                    fallback: Some(Fallback::Allow),
                    vendor_id: None,
                }),
                ..Cpu::default()
            };
            new.set_feature(Policy::Disable, name)?;
            insert_new_cpu(
                &mut sp,
                target.root,
                &unit,
                &new,
                "added qemu64 (libvirt's default) without svm".into(),
            );
        }
        return sp.finish("edited domain XML");
    };
    let mode = cpu.attr("mode").and_then(Mode::from_xml).unwrap_or(Mode::Custom);
    let has_model = cpu.child("model").is_some_and(|m| !m.text.trim().is_empty());
    if mode == Mode::Custom && !has_model {
        modelless_custom_to_host_model(&mut sp, cpu);
    }
    let features: Vec<&Node> = cpu
        .children
        .iter()
        .filter(|c| c.name == "feature" && c.attr("name") == Some(name))
        .collect();
    let mut satisfied = false;
    for f in &features {
        match f.attr_full("policy") {
            Some(p) if matches!(p.value.as_str(), "disable" | "forbid") => satisfied = true,
            Some(p) => {
                sp.replace(
                    p.value_span.clone(),
                    "disable",
                    format!("feature {name}: policy {} became disable", p.value),
                );
                satisfied = true;
            }
            None => {
                let at = f.open.start + "<feature".len();
                sp.replace(
                    at..at,
                    " policy='disable'",
                    format!("feature {name}: added policy='disable'"),
                );
                satisfied = true;
            }
        }
    }
    if !satisfied {
        insert_child(
            &mut sp,
            cpu,
            &unit,
            &format!("<feature policy='disable' name='{name}'/>"),
            format!("added <feature policy='disable' name='{name}'/>"),
        );
    }
    sp.finish("edited domain XML")
}

/// Makes a domain run under KVM: `<domain type='qemu'>` (QEMU's emulator, TCG, which gives no
/// guest hardware VT-x/AMD-V) becomes `type='kvm'`, splicing only the attribute's value; a
/// domain that is already `kvm` comes back unchanged.
///
/// # Errors
/// [`Error::Parse`] for malformed XML, a root other than `<domain>`, or a domain without `type`
/// (libvirt requires it).
pub fn ensure_kvm_type(domain_xml: &str) -> Result<Edit> {
    let root = xml::parse(domain_xml, "domain XML")?;
    if root.name != "domain" {
        return Err(Error::parse(
            "domain XML",
            format!("expected <domain>, found <{}>", root.name),
        ));
    }
    let Some(t) = root.attr_full("type") else {
        return Err(Error::parse("domain XML", "<domain> has no type attribute"));
    };
    let mut sp = Splicer::new(domain_xml);
    if t.value != "kvm" {
        sp.replace(
            t.value_span.clone(),
            "kvm",
            format!("domain type {} became kvm (hardware virtualization)", t.value),
        );
    }
    sp.finish("edited domain XML")
}

/// Whether a `<cpu>` snippet or a domain gives its guest `ext`, by the tolerant reading the editor
/// uses (unknown elements are ignored). A domain without `<cpu>` gets libvirt's default model.
///
/// # Errors
/// [`Error::Parse`] for malformed XML.
pub fn domain_nesting(domain_xml: &str, ext: Extension) -> Result<NestingVerdict> {
    let root = xml::parse(domain_xml, "domain XML")?;
    let target = locate(&root, domain_xml)?;
    let Some(cpu) = target.cpu else {
        // qemu64 lists svm, but QEMU turns svm off in every named model under KVM
        // (kvm_default_props) unless it is named: neither vendor's guest gets its extension.
        return Ok(match ext {
            Extension::Svm => NestingVerdict::no(
                "no <cpu>: libvirt's default (qemu64) lists svm, but QEMU turns it off under KVM unless it is named",
            ),
            _ => NestingVerdict::no("no <cpu>: libvirt's default (qemu64) does not include vmx"),
        });
    };
    let mut lite = Cpu {
        mode: cpu.attr("mode").and_then(Mode::from_xml),
        model: cpu.child("model").map(|m| Model {
            name: Some(m.text.trim().to_string()).filter(|t| !t.is_empty()),
            ..Model::default()
        }),
        ..Cpu::default()
    };
    for f in cpu.children.iter().filter(|c| c.name == "feature") {
        if f.attr("name") == Some(ext.as_str()) {
            lite.features.push(Feature {
                policy: Some(
                    f.attr("policy")
                        .and_then(Policy::from_xml)
                        .unwrap_or(Policy::Require),
                ),
                name: ext.as_str().to_string(),
            });
        }
    }
    Ok(lite.nesting(ext))
}
