//! Unit tests of the guest verdicts on small roots written here.

use super::*;
use crate::Host;

#[test]
fn snapshots_keep_what_the_verdict_uses_and_no_secret() {
    let domain = "<!-- header -->\n<domain type='kvm'>\n  <name>web</name>\n  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>\n  <metadata>\n    <nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'><nova:name>w</nova:name></nova:instance>\n  </metadata>\n  <vcpu>2</vcpu>\n  <cpu mode='custom'>\n    <model>Haswell</model>\n  </cpu>\n  <devices><interface type='network'><mac address='52:54:00:12:34:56'/></interface><graphics type='vnc' passwd='hunter2'/></devices>\n</domain>\n";
    let kept =
        String::from_utf8(snapshot_redact("/etc/libvirt/qemu/web.xml", domain.as_bytes()).unwrap()).unwrap();
    assert!(
        kept.contains("<cpu mode='custom'>\n    <model>Haswell</model>\n  </cpu>"),
        "{kept}"
    );
    assert!(kept.contains("<name>web</name>") && kept.contains("nova:instance"));
    for secret in ["4dea22b3", "52:54:00", "hunter2"] {
        assert!(!kept.contains(secret), "{secret} kept: {kept}");
    }
    let nova = "[DEFAULT]\ntransport_url = rabbit://u:pw@h\ncompute_driver = libvirt.LibvirtDriver\n[libvirt]\ncpu_mode = custom\nrbd_secret_uuid = 1234\n[keystone_authtoken]\npassword = pw\n";
    let kept = String::from_utf8(snapshot_redact("/etc/nova/nova.conf", nova.as_bytes()).unwrap()).unwrap();
    assert_eq!(kept, "[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n[libvirt]\ncpu_mode = custom\n[keystone_authtoken]\n");
    let pve = "name: vm\ncpu: host\nnet0: virtio=BC:24:11:00:00:01,bridge=vmbr0\nsmbios1: uuid=4dea22b3\nargs: -fw_cfg name=opt/x,string=secret -cpu host,vmx=off\n[PENDING]\ncpu: kvm64\n";
    let kept =
        String::from_utf8(snapshot_redact("/etc/pve/nodes/n/qemu-server/100.conf", pve.as_bytes()).unwrap())
            .unwrap();
    assert_eq!(
        kept,
        "name: vm\ncpu: host\nargs: -cpu host,vmx=off\n[PENDING]\ncpu: kvm64\n"
    );
    assert_eq!(snapshot_redact("/proc/cpuinfo", b"x"), None);
}

fn ctx_for(host: &Host, nested: NestedForGuests, kvm: Option<bool>, ext: Option<Extension>) -> Ctx<'_> {
    Ctx {
        host,
        view: HostView {
            root: "/r".into(),
            live: false,
            vendor: Vendor::Intel,
            extension: ext,
            nested_for_guests: nested,
            kvm_usable: kvm,
        },
        host_model: None,
        fixes: true,
    }
}

#[test]
fn the_host_verdict_and_the_configuration_combine() {
    let d = tempfile::tempdir().unwrap();
    let host = Host::from_root(d.path()).unwrap();
    let yes = Config::new(Gives::Yes, "cpu_passthrough", "passes");
    let no = Config::new(Gives::No, "model_lacks", "lacks");
    let opt = Config::new(Gives::FollowsHost, "feature_optional", "optional");
    let unk = Config::new(Gives::Unknown, "unsupported_type", "other");
    let vmx = Some(Extension::Vmx);
    let cases = [
        (
            NestedForGuests::Available,
            Some(true),
            &yes,
            Some(true),
            "cpu_passthrough",
        ),
        (
            NestedForGuests::Available,
            Some(true),
            &opt,
            Some(true),
            "feature_optional",
        ),
        (
            NestedForGuests::Available,
            Some(true),
            &no,
            Some(false),
            "model_lacks",
        ),
        (
            NestedForGuests::Available,
            Some(true),
            &unk,
            None,
            "unsupported_type",
        ),
        (
            NestedForGuests::Disabled,
            Some(true),
            &yes,
            Some(false),
            "host_nested_disabled",
        ),
        (
            NestedForGuests::Disabled,
            Some(true),
            &no,
            Some(false),
            "model_lacks",
        ),
        (
            NestedForGuests::Unsupported,
            Some(true),
            &opt,
            Some(false),
            "host_nested_unsupported",
        ),
        (NestedForGuests::Unknown, None, &yes, None, "host_nested_unknown"),
        (NestedForGuests::Unknown, None, &no, Some(false), "model_lacks"),
        (
            NestedForGuests::Available,
            Some(false),
            &yes,
            Some(false),
            "host_kvm_unusable",
        ),
    ];
    for (nested, kvm, cfg, want, code) in cases {
        let (got, reason) = conclude(&ctx_for(&host, nested, kvm, vmx), cfg);
        assert_eq!(
            (got, reason.code),
            (want, code),
            "{nested:?} {kvm:?} {}",
            cfg.code
        );
        if code.starts_with("host_") && cfg.gives == Gives::Yes {
            assert!(
                reason.message.contains("own configuration passes it"),
                "{}",
                reason.message
            );
        }
    }
}

#[test]
fn an_unknown_vendor_is_said_not_guessed() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("etc/libvirt/qemu")).unwrap();
    std::fs::write(
        d.path().join("etc/libvirt/qemu/a.xml"),
        "<domain type='kvm'><name>a</name><cpu mode='custom'><model>qemu64</model></cpu></domain>",
    )
    .unwrap();
    let host = Host::from_root(d.path()).unwrap();
    let r = scan_view(
        &host,
        ctx_for(&host, NestedForGuests::Unknown, None, None).view,
        &Options::files(),
    );
    assert_eq!(r.guests.len(), 1);
    assert_eq!(r.guests[0].reason.code, "host_vendor_unknown");
    assert_eq!(r.guests[0].gets_extension, None);
    assert!(r.guests[0].fix.is_none());
    assert_eq!(r.exit_code(), 1);
    // Nothing defined: exit 0, no summary finding.
    let e = tempfile::tempdir().unwrap();
    let h2 = Host::from_root(e.path()).unwrap();
    assert!(!any_defined(&h2));
    let view = ctx_for(&h2, NestedForGuests::Available, Some(true), Some(Extension::Vmx)).view;
    assert_eq!(scan_view(&h2, view.clone(), &Options::files()).exit_code(), 0);
    assert!(summary_finding(&h2, view).is_none());
}
