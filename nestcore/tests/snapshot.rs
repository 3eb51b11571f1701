//! `snapshot` then `check --root`: the recorded host gives the live answer, except what only
//! ioctls can tell. Writes only into a temporary folder.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

#[test]
fn snapshot_reproduces_the_live_answer() {
    if !std::path::Path::new("/proc/cpuinfo").exists() {
        println!("skipped: no /proc here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap");
    let s = nestcore::snapshot::snapshot(&snap).unwrap();
    let live = nestcore::check(&nestcore::Host::live());
    let mut host = nestcore::Host::from_root(&snap).unwrap();
    if let Some(c) = &s.cpuid {
        host = host.with_cpuid_file(c).unwrap();
    }
    let rec = nestcore::check(&host);
    assert!(!rec.host.live);
    // The CPU, the hypervisor, the container, the modules: identical.
    assert_eq!(rec.cpu.vendor_id, live.cpu.vendor_id);
    assert_eq!(
        (rec.cpu.family, rec.cpu.model, rec.cpu.stepping),
        (live.cpu.family, live.cpu.model, live.cpu.stepping)
    );
    assert_eq!(rec.cpu.extension, live.cpu.extension);
    assert_eq!(rec.cpu.hypervisor_bit, live.cpu.hypervisor_bit);
    assert_eq!(rec.cpu.flags_vmx, live.cpu.flags_vmx);
    assert_eq!(rec.cpu.vmx_features, live.cpu.vmx_features);
    assert_eq!(rec.virtualization.hypervisor, live.virtualization.hypervisor);
    assert_eq!(rec.virtualization.signatures, live.virtualization.signatures);
    assert_eq!(rec.virtualization.container, live.virtualization.container);
    assert_eq!(rec.virtualization.dmi, live.virtualization.dmi);
    assert_eq!(rec.kvm.backend, live.kvm.backend);
    assert_eq!(rec.kvm.modules, live.kvm.modules);
    assert_eq!(rec.kvm.nested, live.kvm.nested);
    assert_eq!(rec.cmdline, live.cmdline);
    // The verdict: the same, except that a recorded host cannot ask KVM_GET_SUPPORTED_CPUID.
    if live.kvm.nested_effective.is_none()
        || live.kvm.nested_effective == Some(live.kvm.nested == nestcore::kvm::Tri::Enabled)
    {
        assert_eq!(rec.verdict.nested_for_guests, live.verdict.nested_for_guests);
    }
    if live.kvm.device.state == nestcore::kvm::DeviceState::Usable && live.kvm.backend.is_some() {
        assert_eq!(rec.verdict.kvm_usable, Some(true));
    }
    // Nothing identifying was recorded.
    for f in &s.files {
        let p = snap.join(f.trim_start_matches('/'));
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        assert!(!f.contains("serial") && !f.contains("uuid"), "{f}");
        if f == "/proc/1/environ" {
            assert!(text
                .split('\0')
                .all(|kv| kv.is_empty() || kv.starts_with("container=")));
        }
    }
    // The snapshot reads no folder twice and is not empty.
    assert!(!s.files.is_empty());
    assert!(
        nestcore::snapshot::snapshot(&snap).is_err(),
        "a non-empty folder is refused"
    );
}
