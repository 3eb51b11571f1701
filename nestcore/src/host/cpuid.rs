//! CPUID sources: the instruction itself, or a recorded dump in one of three formats.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// Where CPUID answers come from.
#[derive(Debug)]
#[non_exhaustive]
pub enum CpuidSource {
    /// The CPUID instruction of the CPU we run on (x86 only), with a count of executions.
    Native(NativeCpuid),
    /// A recorded dump.
    Recorded(CpuidDump),
    /// No CPUID at all (another architecture, or a recorded root without a dump).
    None,
}

/// The CPUID instruction; counts how often it ran (in a guest every execution traps to the
/// hypervisor, so the count is a cost).
#[derive(Debug, Default)]
pub struct NativeCpuid {
    executions: AtomicUsize,
}

impl NativeCpuid {
    /// How many times CPUID was executed through this source.
    pub fn executions(&self) -> usize {
        self.executions.load(Ordering::Relaxed)
    }
}

impl CpuidSource {
    /// The CPUID instruction where this is x86; [`CpuidSource::None`] elsewhere.
    pub fn native() -> CpuidSource {
        if cfg!(any(target_arch = "x86_64", target_arch = "x86")) {
            CpuidSource::Native(NativeCpuid::default())
        } else {
            CpuidSource::None
        }
    }

    /// A short name for the report: "native", "recorded" or "none".
    pub fn kind(&self) -> &'static str {
        match self {
            CpuidSource::Native(_) => "native",
            CpuidSource::Recorded(_) => "recorded",
            CpuidSource::None => "none",
        }
    }

    /// Executes or looks up one leaf.
    pub fn query(&self, leaf: u32, subleaf: u32) -> Option<[u32; 4]> {
        match self {
            CpuidSource::Native(n) => {
                n.executions.fetch_add(1, Ordering::Relaxed);
                native_cpuid(leaf, subleaf)
            }
            CpuidSource::Recorded(d) => d.get(leaf, subleaf),
            CpuidSource::None => None,
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn native_cpuid(leaf: u32, subleaf: u32) -> Option<[u32; 4]> {
    // SAFETY: CPUID is available on every x86_64 CPU and has no side effects we rely on. (The
    // intrinsic became safe in newer Rust; the block keeps older compilers happy.)
    #[allow(unused_unsafe)]
    let r = unsafe { core::arch::x86_64::__cpuid_count(leaf, subleaf) };
    Some([r.eax, r.ebx, r.ecx, r.edx])
}

#[cfg(not(target_arch = "x86_64"))]
fn native_cpuid(_leaf: u32, _subleaf: u32) -> Option<[u32; 4]> {
    None
}

/// The format a dump was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuidFormat {
    /// The Linux `cpuid -r` tool's raw output.
    CpuidR,
    /// libvirt's `<cpudata><cpuid .../></cpudata>` XML (tests/cputestdata).
    LibvirtXml,
    /// nestcore's own JSON (written by `nestcore snapshot`).
    NestcoreJson,
}

/// One recorded leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CpuidLeaf {
    /// EAX input.
    #[serde(with = "hex")]
    pub leaf: u32,
    /// ECX input.
    #[serde(with = "hex")]
    pub subleaf: u32,
    /// EAX output.
    #[serde(with = "hex")]
    pub eax: u32,
    /// EBX output.
    #[serde(with = "hex")]
    pub ebx: u32,
    /// ECX output.
    #[serde(with = "hex")]
    pub ecx: u32,
    /// EDX output.
    #[serde(with = "hex")]
    pub edx: u32,
}

mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{v:08x}"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_hex(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not a 32-bit hex number: {s:?}")))
    }
}

fn parse_hex(s: &str) -> Option<u32> {
    let s = s.trim();
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// A recorded CPUID dump: answers by (leaf, subleaf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuidDump {
    /// The format it was read from.
    pub format: CpuidFormat,
    leaves: BTreeMap<(u32, u32), [u32; 4]>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct JsonDump {
    format: String,
    version: u32,
    leaves: Vec<CpuidLeaf>,
}

const JSON_FORMAT: &str = "nestcore-cpuid";

impl CpuidDump {
    /// Reads a dump from a file, format detected from the content.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Parse`].
    pub fn from_file(path: &Path) -> Result<CpuidDump> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::parse(path.display().to_string(), "CPUID dump is not UTF-8 text"))?;
        CpuidDump::parse(&text).map_err(|e| match e {
            Error::Parse { reason, .. } => Error::parse(path.display().to_string(), reason),
            other => other,
        })
    }

    /// Parses a dump, format detected from the first non-blank character: `<` libvirt XML,
    /// `{` nestcore JSON, otherwise `cpuid -r` text.
    ///
    /// # Errors
    /// [`Error::Parse`] naming the line or field at fault; a dump without any leaf is an error.
    pub fn parse(text: &str) -> Result<CpuidDump> {
        let dump = match text.trim_start().chars().next() {
            Some('<') => Self::parse_libvirt(text)?,
            Some('{') => Self::parse_json(text)?,
            _ => Self::parse_cpuid_r(text)?,
        };
        if dump.leaves.is_empty() {
            return Err(Error::parse("CPUID dump", "no CPUID leaf found"));
        }
        Ok(dump)
    }

    /// Builds a dump from leaves (later duplicates win).
    pub fn from_leaves(format: CpuidFormat, leaves: impl IntoIterator<Item = CpuidLeaf>) -> CpuidDump {
        let leaves = leaves
            .into_iter()
            .map(|l| ((l.leaf, l.subleaf), [l.eax, l.ebx, l.ecx, l.edx]))
            .collect();
        CpuidDump { format, leaves }
    }

    /// The recorded answer for (leaf, subleaf).
    pub fn get(&self, leaf: u32, subleaf: u32) -> Option<[u32; 4]> {
        self.leaves.get(&(leaf, subleaf)).copied()
    }

    /// Every recorded leaf, in order.
    pub fn leaves(&self) -> impl Iterator<Item = CpuidLeaf> + '_ {
        self.leaves
            .iter()
            .map(|(&(leaf, subleaf), &[eax, ebx, ecx, edx])| CpuidLeaf {
                leaf,
                subleaf,
                eax,
                ebx,
                ecx,
                edx,
            })
    }

    /// Number of recorded leaves.
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// nestcore's JSON form of the dump.
    pub fn to_json(&self) -> String {
        let d = JsonDump {
            format: JSON_FORMAT.into(),
            version: 1,
            leaves: self.leaves().collect(),
        };
        serde_json::to_string_pretty(&d).unwrap_or_default()
    }

    /// `cpuid -r` lines: `   0x00000000 0x00: eax=0x... ebx=0x... ecx=0x... edx=0x...` under
    /// `CPU N:` (or `cpuid -1`'s bare `CPU:`) headers. Only the first CPU is used.
    ///
    /// Dumps pasted into bug reports carry more: a shell prompt line, cpuid's "Disclaimer: cpuid
    /// may not support decoding of all cpuid registers.", comments, the next prompt. Any line
    /// before the first leaf line and after the last one is accepted; a line that is not a leaf
    /// between two leaf lines is an error naming its line, and so is a malformed leaf line.
    fn parse_cpuid_r(text: &str) -> Result<CpuidDump> {
        let mut leaves = BTreeMap::new();
        let mut cpus = 0;
        // The first non-leaf line after the leaf block began: harmless unless a leaf follows.
        let mut after: Option<(usize, &str)> = None;
        for (no, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if t.starts_with("CPU") && t.ends_with(':') && t.len() <= 12 {
                cpus += 1;
                if cpus > 1 {
                    break;
                }
                continue;
            }
            let bad = |why: &str| Error::parse("CPUID dump", format!("line {}: {why}: {t:?}", no + 1));
            let leaf_like = t.starts_with("0x") || t.starts_with("0X");
            if !leaf_like {
                if !leaves.is_empty() && after.is_none() {
                    after = Some((no + 1, t));
                }
                continue;
            }
            if let Some((at, junk)) = after {
                return Err(Error::parse(
                    "CPUID dump",
                    format!(
                        "line {at}: not a CPUID leaf line inside the leaf block (leaves continue on line {}): {junk:?}",
                        no + 1
                    ),
                ));
            }
            let (inputs, outputs) = t
                .split_once(':')
                .ok_or_else(|| bad("expected `LEAF SUBLEAF: eax=...`"))?;
            let mut ins = inputs.split_whitespace();
            let leaf = ins.next().and_then(parse_hex).ok_or_else(|| bad("bad leaf"))?;
            let sub = ins.next().and_then(parse_hex).ok_or_else(|| bad("bad subleaf"))?;
            if ins.next().is_some() {
                return Err(bad("unexpected text before ':'"));
            }
            let mut regs = [None; 4];
            for kv in outputs.split_whitespace() {
                let (k, v) = kv.split_once('=').ok_or_else(|| bad("expected reg=value"))?;
                let i = ["eax", "ebx", "ecx", "edx"]
                    .iter()
                    .position(|r| *r == k)
                    .ok_or_else(|| bad("unknown register"))?;
                regs[i] = Some(parse_hex(v).ok_or_else(|| bad("bad register value"))?);
            }
            let [Some(a), Some(b), Some(c), Some(d)] = regs else {
                return Err(bad("truncated: a register is missing"));
            };
            leaves.insert((leaf, sub), [a, b, c, d]);
        }
        Ok(CpuidDump {
            format: CpuidFormat::CpuidR,
            leaves,
        })
    }

    fn parse_libvirt(text: &str) -> Result<CpuidDump> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(text);
        let mut leaves = BTreeMap::new();
        let mut saw_root = false;
        loop {
            let ev = reader.read_event().map_err(|e| {
                Error::parse(
                    "CPUID dump",
                    format!("XML error at byte {}: {e}", reader.buffer_position()),
                )
            })?;
            match ev {
                Event::Start(e) | Event::Empty(e) => {
                    let name = e.name();
                    if name.as_ref() == b"cpudata" {
                        saw_root = true;
                    } else if name.as_ref() == b"cpuid" {
                        let mut vals: [Option<u32>; 6] = [None; 6];
                        for attr in e.attributes() {
                            let attr =
                                attr.map_err(|e| Error::parse("CPUID dump", format!("bad attribute: {e}")))?;
                            let key = attr.key.as_ref();
                            let idx = [&b"eax_in"[..], b"ecx_in", b"eax", b"ebx", b"ecx", b"edx"]
                                .iter()
                                .position(|k| *k == key);
                            if let Some(i) = idx {
                                let v = std::str::from_utf8(&attr.value)
                                    .ok()
                                    .and_then(parse_hex)
                                    .ok_or_else(|| {
                                        Error::parse(
                                            "CPUID dump",
                                            format!(
                                                "<cpuid> attribute {} is not hex",
                                                String::from_utf8_lossy(key)
                                            ),
                                        )
                                    })?;
                                vals[i] = Some(v);
                            }
                        }
                        let [Some(l), Some(s), Some(a), Some(b), Some(c), Some(d)] = vals else {
                            return Err(Error::parse(
                                "CPUID dump",
                                "a <cpuid> element lacks one of eax_in ecx_in eax ebx ecx edx",
                            ));
                        };
                        leaves.insert((l, s), [a, b, c, d]);
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if !saw_root {
            return Err(Error::parse("CPUID dump", "XML without a <cpudata> element"));
        }
        Ok(CpuidDump {
            format: CpuidFormat::LibvirtXml,
            leaves,
        })
    }

    fn parse_json(text: &str) -> Result<CpuidDump> {
        let d: JsonDump =
            serde_json::from_str(text).map_err(|e| Error::parse("CPUID dump", format!("JSON: {e}")))?;
        if d.format != JSON_FORMAT {
            return Err(Error::parse(
                "CPUID dump",
                format!("JSON format is {:?}, expected {JSON_FORMAT:?}", d.format),
            ));
        }
        if d.version != 1 {
            return Err(Error::parse(
                "CPUID dump",
                format!("unsupported JSON dump version {}", d.version),
            ));
        }
        let mut dump = CpuidDump::from_leaves(CpuidFormat::NestcoreJson, d.leaves);
        dump.format = CpuidFormat::NestcoreJson;
        Ok(dump)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "CPU 0:\n   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n   0x00000001 0x00: eax=0x000306a9 ebx=0x00000800 ecx=0x80000020 edx=0x078bfbff\nCPU 1:\n   0x00000000 0x00: eax=0x00000001 ebx=0x0 ecx=0x0 edx=0x0\n";

    #[test]
    fn cpuid_r_first_cpu_only() {
        let d = CpuidDump::parse(R).unwrap();
        assert_eq!(d.format, CpuidFormat::CpuidR);
        assert_eq!(d.get(0, 0).unwrap()[0], 0xd);
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn libvirt_xml() {
        let x = "<cpudata arch='x86'>\n  <cpuid eax_in='0x00000000' ecx_in='0x00' eax='0x00000016' ebx='0x756e6547' ecx='0x6c65746e' edx='0x49656e69'/>\n  <msr index='0x10a' edx='0x0' eax='0x0'/>\n</cpudata>\n";
        let d = CpuidDump::parse(x).unwrap();
        assert_eq!(d.format, CpuidFormat::LibvirtXml);
        assert_eq!(d.get(0, 0), Some([0x16, 0x756e6547, 0x6c65746e, 0x49656e69]));
    }

    #[test]
    fn json_round_trip() {
        let d = CpuidDump::parse(R).unwrap();
        let j = d.to_json();
        let back = CpuidDump::parse(&j).unwrap();
        assert_eq!(back.format, CpuidFormat::NestcoreJson);
        assert_eq!(back.leaves().collect::<Vec<_>>(), d.leaves().collect::<Vec<_>>());
    }

    #[test]
    fn pasted_dumps_are_accepted_outside_the_leaf_block() {
        let leaves = "   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n   0x00000001 0x00: eax=0x000306a9 ebx=0x00000800 ecx=0x80000020 edx=0x078bfbff\n";
        let pasted = format!(
            "user@host:~$ cpuid -1 -r\nDisclaimer: cpuid may not support decoding of all cpuid registers.\n# from the bug report\nCPU:\n{leaves}user@host:~$ \nthanks!\n"
        );
        let d = CpuidDump::parse(&pasted).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.get(1, 0).unwrap()[2], 0x80000020);
        // A header-less paste works too.
        assert_eq!(
            CpuidDump::parse(&format!("$ cpuid -r\n{leaves}")).unwrap().len(),
            2
        );
    }

    #[test]
    fn junk_inside_the_leaf_block_names_its_line() {
        let t = "CPU 0:\n   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\nsomething pasted in between\n   0x00000001 0x00: eax=0x000306a9 ebx=0x00000800 ecx=0x80000020 edx=0x078bfbff\n";
        let e = CpuidDump::parse(t).unwrap_err().to_string();
        assert!(
            e.contains("line 3") && e.contains("inside the leaf block") && e.contains("line 4"),
            "{e}"
        );
        // A malformed leaf line is still an error with its line, before or inside the block.
        let e = CpuidDump::parse("Disclaimer: x\n   0x00000000 0x00: eax=0x1 ebx=0x2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("truncated"), "{e}");
        // Only a preamble: no leaf.
        assert!(
            CpuidDump::parse("Disclaimer: cpuid may not support decoding of all cpuid registers.\n").is_err()
        );
    }

    #[test]
    fn hostile_dumps_are_errors() {
        for bad in [
            "",
            "garbage",
            "CPU 0:\n   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547",
            "   0x00000000 0x00: eax=0xZZ ebx=0 ecx=0 edx=0",
            "   0x1000000000 0x00: eax=0 ebx=0 ecx=0 edx=0",
            "<cpudata><cpuid eax_in='0x0'/></cpudata>",
            "<cpudata><cpuid eax_in='0x0' ecx_in='0' eax='x' ebx='0' ecx='0' edx='0'/>",
            "<notcpudata/>",
            "<cpudata><unclosed",
            "{\"format\":\"other\",\"version\":1,\"leaves\":[]}",
            "{\"format\":\"nestcore-cpuid\",\"version\":1,\"leaves\":[]}",
            "{\"format\":\"nestcore-cpuid\",\"version\":1,\"leaves\":[{\"leaf\":\"0x0\"}]}",
            "{ truncated",
        ] {
            let e = CpuidDump::parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Parse, "{bad:?}: {e}");
        }
    }
}
