//! `nestcore snapshot DIR`: record the live host's relevant files and CPUID into a folder, so that
//! `nestcore check --root DIR --cpuid DIR/nestcore-cpuid.json` reproduces the live answer (except
//! what only ioctls can tell). Only what detection reads is copied, and identifying data is
//! removed: no serial numbers, UUIDs or MAC addresses, and only `container=` of /proc/1/environ.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::host::{CpuidDump, CpuidFormat, CpuidLeaf, Recorded};
use crate::Host;

/// The dump's file name inside a snapshot.
pub const CPUID_FILE: &str = "nestcore-cpuid.json";
/// The live report's file name inside a snapshot (for the reader of a bug report).
pub const REPORT_FILE: &str = "nestcore-report.json";

/// What a snapshot wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    /// The folder.
    pub dir: PathBuf,
    /// The host's files recorded (paths as the host sees them).
    pub files: Vec<String>,
    /// The CPUID dump, when the host has CPUID.
    pub cpuid: Option<PathBuf>,
    /// Every file written into the folder, sorted: the recorded files, the empty markers that
    /// stand for folder entries and paths found to exist, the CPUID dump and the report.
    pub written: Vec<PathBuf>,
}

/// Leaves worth recording: the basic and extended ranges up to their max, and the hypervisor
/// bases. Subleaf 0 only (nestcore asks nothing else).
fn dump_live_cpuid(host: &Host) -> Option<CpuidDump> {
    let mut leaves = Vec::new();
    let mut push = |leaf: u32| -> Option<[u32; 4]> {
        let r = host.cpuid(leaf, 0)?;
        leaves.push(CpuidLeaf {
            leaf,
            subleaf: 0,
            eax: r[0],
            ebx: r[1],
            ecx: r[2],
            edx: r[3],
        });
        Some(r)
    };
    let max = push(0)?[0].min(0x40);
    for l in 1..=max {
        push(l);
    }
    let hv = push(1).is_some_and(|r| r[2] >> 31 & 1 == 1);
    if hv {
        let mut base = 0x4000_0000u32;
        while base < 0x4001_0000 {
            let Some(r) = push(base) else { break };
            if !(base..base + 0x100).contains(&r[0]) {
                break;
            }
            for l in base + 1..=r[0].min(base + 0x20) {
                push(l);
            }
            base += 0x100;
        }
    }
    let emax = push(0x8000_0000)
        .map_or(0, |r| r[0])
        .clamp(0x8000_0000, 0x8000_0040);
    for l in 0x8000_0001..=emax {
        push(l);
    }
    Some(CpuidDump::from_leaves(CpuidFormat::NestcoreJson, leaves))
}

/// This host's CPUID as nestcore JSON, `None` without CPUID.
pub fn live_cpuid_json(host: &Host) -> Option<String> {
    dump_live_cpuid(host).map(|d| d.to_json())
}

fn sanitize(path: &str, content: &[u8]) -> Vec<u8> {
    if let Some(kept) = crate::guests::snapshot_redact(path, content) {
        return kept;
    }
    match path {
        "/proc/1/environ" => content
            .split(|&b| b == 0)
            .filter(|kv| kv.starts_with(b"container="))
            .flat_map(|kv| kv.iter().copied().chain(std::iter::once(0)))
            .collect(),
        "/proc/self/status" => String::from_utf8_lossy(content)
            .lines()
            .filter(|l| {
                l.starts_with("VxID")
                    || l.starts_with("envID")
                    || l.starts_with("s_context")
                    || l.starts_with("TracerPid")
            })
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes(),
        "/proc/cmdline" => redact_ids(&String::from_utf8_lossy(content)).into_bytes(),
        _ => content.to_vec(),
    }
}

/// Replaces UUID-like and MAC-like tokens (root=UUID=..., BOOTIF=...) by zeros of the same shape.
fn redact_ids(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, tok) in s.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let looks_id = |w: &str| {
            let hexish = w.chars().all(|c| c.is_ascii_hexdigit() || c == '-' || c == ':');
            hexish && w.chars().filter(char::is_ascii_hexdigit).count() >= 12
        };
        let redacted: String = tok
            .split('=')
            .map(|w| {
                if looks_id(w) {
                    w.chars()
                        .map(|c| if c.is_ascii_hexdigit() { '0' } else { c })
                        .collect()
                } else {
                    w.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("=");
        out.push_str(&redacted);
    }
    out
}

fn write(dir: &Path, abs: &str, content: &[u8]) -> Result<PathBuf> {
    let rel = abs.trim_start_matches('/');
    if rel.split('/').any(|c| c == ".." || c.is_empty()) {
        return Err(Error::InvalidInput(format!("refusing to record path {abs:?}")));
    }
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    if p.is_dir() {
        return Ok(p);
    }
    std::fs::write(&p, content).map_err(|e| Error::io(&p, e))?;
    Ok(p)
}

/// Records the live host into `dir` (created if missing; must be empty).
///
/// # Errors
/// [`Error::Io`] when `dir` cannot be written, [`Error::InvalidInput`] when it is not empty.
pub fn snapshot(dir: &Path) -> Result<Snapshot> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    if std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .next()
        .is_some()
    {
        return Err(Error::InvalidInput(format!("{} is not empty", dir.display())));
    }
    let host = Host::live().recording();
    let report = crate::check(&host);
    let mut files = Vec::new();
    let mut written = Vec::new();
    let recorded = host.take_recorded();
    // Folders first, so that files inside them land in real folders.
    for r in &recorded {
        match r {
            Recorded::Exists(p, true) | Recorded::Dir(p, _) => {
                let d = dir.join(p.trim_start_matches('/'));
                std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
            }
            _ => {}
        }
    }
    for r in &recorded {
        match r {
            Recorded::File(p, content) => {
                written.push(write(dir, p, &sanitize(p, content))?);
                files.push(p.clone());
            }
            Recorded::Dir(p, names) => {
                // Folder listings (module holders): empty entries with the same names.
                for n in names {
                    let child = format!("{p}/{n}");
                    if !dir.join(child.trim_start_matches('/')).exists() && !n.contains('/') {
                        written.push(write(dir, &child, b"")?);
                    }
                }
            }
            Recorded::Exists(p, false) => {
                if !dir.join(p.trim_start_matches('/')).exists() {
                    written.push(write(dir, p, b"")?);
                }
            }
            Recorded::Exists(_, true) => {}
        }
    }
    if report.kvm.device.state != crate::kvm::DeviceState::Absent {
        // A presence marker: recorded hosts are never opened.
        written.push(write(dir, "/dev/kvm", b"")?);
        files.push("/dev/kvm".into());
    }
    let cpuid = match dump_live_cpuid(&host) {
        Some(d) => {
            let p = dir.join(CPUID_FILE);
            std::fs::write(&p, d.to_json()).map_err(|e| Error::io(&p, e))?;
            written.push(p.clone());
            Some(p)
        }
        None => None,
    };
    let rp = dir.join(REPORT_FILE);
    std::fs::write(&rp, report.to_json()).map_err(|e| Error::io(&rp, e))?;
    written.push(rp);
    files.sort();
    files.dedup();
    // A folder in the place of a recorded file is not a file written.
    written.retain(|p| p.is_file());
    written.sort();
    written.dedup();
    Ok(Snapshot {
        dir: dir.to_path_buf(),
        files,
        cpuid,
        written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_redacted() {
        let s =
            redact_ids("root=UUID=3f2a8c1e-1b2c-4d5e-8f90-0123456789ab ro BOOTIF=01-52-54-00-12-34-56 quiet");
        assert!(!s.contains("3f2a8c1e"));
        assert!(s.contains("root=UUID=00000000-0000-0000-0000-000000000000"));
        assert!(s.contains(" ro "));
        assert!(s.ends_with("quiet"));
    }

    #[test]
    fn environ_keeps_only_container() {
        let out = sanitize("/proc/1/environ", b"SECRET=x\0container=docker\0HOME=/root\0");
        assert_eq!(out, b"container=docker\0");
    }
}
