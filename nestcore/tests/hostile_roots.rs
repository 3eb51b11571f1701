//! Recorded roots with broken content: the report degrades to "unknown" with evidence; no
//! panic, no hang, no lost data.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn check(root: &Path) -> nestcore::Report {
    nestcore::check(&nestcore::Host::from_root(root).unwrap())
}

#[test]
fn truncated_and_garbage_files() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "proc/cpuinfo",
        b"processor\t: 0\nvendor_id\t: GenuineIn",
    );
    write(d.path(), "proc/cmdline", &[0xff, 0xfe, b'"', 0, b'=', b'"']);
    write(d.path(), "sys/module/kvm_intel/initstate", b"live\n");
    write(
        d.path(),
        "sys/module/kvm_intel/parameters/nested",
        &[0x00, 0x9f, 0x92, 0x96],
    );
    write(d.path(), "sys/module/kvm_intel/refcnt", b"-7\n");
    write(d.path(), "sys/class/dmi/id/sys_vendor", &vec![b'Q'; 1 << 20]);
    let r = check(d.path());
    assert_eq!(
        r.kvm.nested,
        nestcore::kvm::Tri::Unknown,
        "garbage is not a value"
    );
    assert_eq!(r.kvm.module("kvm_intel").unwrap().refcnt, None);
    assert!(r.cmdline.present);
    assert_eq!(r.cpu.extension, nestcore::cpu::Extension::Unknown);
}

#[test]
fn folders_links_and_fifos_in_place_of_files() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("proc/cpuinfo")).unwrap();
    std::fs::create_dir_all(d.path().join("proc/cmdline")).unwrap();
    std::fs::create_dir_all(d.path().join("sys/class/dmi/id")).unwrap();
    std::os::unix::fs::symlink("loop_b", d.path().join("sys/class/dmi/id/sys_vendor")).unwrap();
    std::os::unix::fs::symlink("sys_vendor", d.path().join("sys/class/dmi/id/loop_b")).unwrap();
    let fifo =
        std::ffi::CString::new(d.path().join("sys/class/dmi/id/product_name").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let r = check(d.path());
    assert!(!r.cmdline.present);
    assert!(r
        .cpu
        .evidence
        .iter()
        .any(|e| e.source == "/proc/cpuinfo" && e.detail.starts_with("unreadable")));
    assert_eq!(r.virtualization.hypervisor, "none");
}

#[test]
fn huge_cpuinfo_is_not_read_whole() {
    let d = tempfile::tempdir().unwrap();
    // 100 MB without a blank line: reading stops at nestcore's limit.
    let f = std::fs::File::create({
        std::fs::create_dir_all(d.path().join("proc")).unwrap();
        d.path().join("proc/cpuinfo")
    })
    .unwrap();
    f.set_len(100 << 20).unwrap();
    let r = check(d.path());
    assert_eq!(r.cpu.extension, nestcore::cpu::Extension::Unknown);
}

/// Endless files (here /dev/zero behind the paths nestcore reads) end at the read limit: without
/// it the check would never return, and the watchdog fails the test instead of hanging it.
#[test]
fn endless_files_are_cut_at_the_limit() {
    let d = tempfile::tempdir().unwrap();
    for rel in [
        "proc/cpuinfo",
        "proc/cmdline",
        "sys/class/dmi/id/sys_vendor",
        "proc/bus/pci/devices",
    ] {
        let p = d.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/dev/zero", p).unwrap();
    }
    let root = d.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(check(&root));
    });
    let r = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("a check over endless files must end at the read limit");
    assert_eq!(r.cpu.extension, nestcore::cpu::Extension::Unknown);
    assert!(r.cmdline.relevant.is_empty());
}

#[test]
fn a_root_that_is_a_symlink_is_followed_once() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "real/proc/cmdline", b"kvm-intel.nested=1\n");
    std::os::unix::fs::symlink(d.path().join("real"), d.path().join("link")).unwrap();
    let r = check(&d.path().join("link"));
    assert_eq!(r.cmdline.relevant.len(), 1);
    assert_eq!(r.cmdline.relevant[0].name, "kvm_intel.nested");
}

#[test]
fn truncated_cpuid_dump_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "dump",
        b"CPU 0:\n   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c6",
    );
    let e = nestcore::Host::from_root(d.path())
        .unwrap()
        .with_cpuid_file(d.path().join("dump"))
        .unwrap_err();
    assert_eq!(e.kind(), nestcore::ErrorKind::Parse);
    assert!(e.to_string().contains("line 2"), "{e}");
    let e = nestcore::Host::from_root(d.path())
        .unwrap()
        .with_cpuid_file(d.path().join("missing"))
        .unwrap_err();
    assert_eq!(e.kind(), nestcore::ErrorKind::NotFound);
    assert!(e.path().is_some());
}
