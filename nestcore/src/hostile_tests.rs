//! Every file a real check reads, broken in every way a recorded root can break it: binary
//! garbage, truncated, empty, a folder, a FIFO, a symlink loop, a symlink out of the root (to
//! nothing, and to a real file outside whose content must never be read). The
//! list of files comes from the recording Host (what `snapshot` uses), so a new read is covered
//! as soon as it exists. The report degrades (never a panic, never a hang: a watchdog aborts
//! after 60 s).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::host::Recorded;
use crate::Host;

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        let dst = to.join(e.file_name());
        if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &dst).unwrap();
        } else if t.is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

fn fixture_roots() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hosts");
    ["intel-nested-on", "amd-nested-off", "aarch64-no-cpuid"]
        .iter()
        .map(|n| dir.join(n).join("root"))
        .filter(|p| p.is_dir())
        .collect()
}

/// The files a check of `root` reads.
fn files_read(root: &Path) -> Vec<String> {
    let host = Host::from_root(root).unwrap().recording();
    let _ = crate::check(&host);
    let mut v: Vec<String> = host
        .take_recorded()
        .into_iter()
        .filter_map(|r| match r {
            Recorded::File(p, _) => Some(p),
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

#[derive(Debug, Clone, Copy)]
enum Break {
    Garbage,
    Truncated,
    Empty,
    Folder,
    Fifo,
    Loop,
    OutOfRoot,
    /// Symlinks (absolute, and relative with `..` climbing out) to a real file outside the
    /// root that holds the original content plus [`OUTSIDE_MARKER`].
    OutsideFile,
}

/// What a file outside the root says: a read that left the root would record it.
const OUTSIDE_MARKER: &str = "NESTCORE-READ-OUTSIDE-THE-ROOT";

fn break_file(real: &Path, how: Break, seed: &mut u64) {
    let old = std::fs::read(real).unwrap_or_default();
    let _ = std::fs::remove_file(real);
    let _ = std::fs::remove_dir_all(real);
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    match how {
        Break::Garbage => {
            let bytes: Vec<u8> = (0..4096)
                .map(|_| {
                    *seed ^= *seed << 13;
                    *seed ^= *seed >> 7;
                    *seed ^= *seed << 17;
                    (*seed >> 24) as u8
                })
                .collect();
            std::fs::write(real, bytes).unwrap();
        }
        Break::Truncated => std::fs::write(real, &old[..old.len() / 2]).unwrap(),
        Break::Empty => std::fs::write(real, b"").unwrap(),
        Break::Folder => std::fs::create_dir_all(real.join("x")).unwrap(),
        Break::Fifo => {
            let c = std::ffi::CString::new(real.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        }
        Break::Loop => {
            let other = real.with_extension("loop");
            let _ = std::fs::remove_file(&other);
            std::os::unix::fs::symlink(&other, real).unwrap();
            std::os::unix::fs::symlink(real, &other).unwrap();
        }
        Break::OutOfRoot => std::os::unix::fs::symlink("/nonexistent/../../../proc/self/mem", real).unwrap(),
        Break::OutsideFile => {
            // <tmp>/root/<file> -> <tmp>/outside (absolute), or ../../..<tmp>/outside.
            let tmp = real
                .ancestors()
                .find(|a| a.join("root").is_dir() && a.join("outside").is_dir())
                .unwrap();
            let outside = tmp.join("outside").join("file");
            let mut content = old.clone();
            content.extend_from_slice(format!("\n{OUTSIDE_MARKER}\n").as_bytes());
            std::fs::write(&outside, content).unwrap();
            if *seed % 2 == 0 {
                std::os::unix::fs::symlink(&outside, real).unwrap();
            } else {
                let depth = real.components().count();
                let up = "../".repeat(depth);
                std::os::unix::fs::symlink(format!("{up}{}", outside.display()), real).unwrap();
            }
            *seed = seed.wrapping_add(1);
        }
    }
}

#[test]
fn every_file_a_check_reads_broken_every_way() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(60)) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            eprintln!("watchdog: every_file_a_check_reads_broken_every_way hung: aborting");
            std::process::abort();
        }
    });
    let start = Instant::now();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut runs = 0;
    for src in fixture_roots() {
        let files = files_read(&src);
        assert!(files.len() >= 5, "{}: only {files:?}", src.display());
        for f in &files {
            for how in [
                Break::Garbage,
                Break::Truncated,
                Break::Empty,
                Break::Folder,
                Break::Fifo,
                Break::Loop,
                Break::OutOfRoot,
                Break::OutsideFile,
            ] {
                let tmp = tempfile::tempdir().unwrap();
                let root = tmp.path().join("root");
                copy_tree(&src, &root);
                std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
                break_file(&root.join(f.trim_start_matches('/')), how, &mut seed);
                let host = Host::from_root(&root).unwrap().recording();
                let t = Instant::now();
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| crate::check(&host)))
                    .unwrap_or_else(|_| panic!("{}: {f} {how:?} panicked", src.display()));
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "{f} {how:?} took {:?}",
                    t.elapsed()
                );
                let json = serde_json::to_string(&r).unwrap();
                // Issue 13, item 7: nothing outside the root was read.
                assert!(
                    !json.contains(OUTSIDE_MARKER),
                    "{f} {how:?}: the report quotes a file outside the root"
                );
                for rec in host.take_recorded() {
                    if let Recorded::File(p, bytes) = rec {
                        assert!(
                            !String::from_utf8_lossy(&bytes).contains(OUTSIDE_MARKER),
                            "{f} {how:?}: {p} was read outside the root"
                        );
                    }
                }
                if f == "/proc/cpuinfo" && !matches!(how, Break::Truncated) {
                    assert!(
                        r.cpu.evidence.iter().any(|e| e.source == "/proc/cpuinfo")
                            || r.cpu.extension == crate::cpu::Extension::Unknown
                            || r.cpu.evidence.iter().any(|e| e.source.starts_with("CPUID")),
                        "{how:?}: cpuinfo broken without a trace"
                    );
                }
                runs += 1;
            }
        }
    }
    let _ = tx.send(());
    println!("{runs} broken roots checked in {:?}", start.elapsed());
    assert!(runs > 0);
}
