//! Unit tests of the guest module that span its submodules.

use super::libvirt::{self, Cpu, Feature, Mode, Policy};
use super::*;
use crate::ErrorKind;

const DOMAIN: &str = "<domain type='kvm'>\n  <!-- keep me -->\n  <name>vm1</name>\n  <memory unit=\"KiB\">1048576</memory>\n  <vcpu placement='static'>4</vcpu>\n  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n  </os>\n  CPU\n  <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n  </devices>\n</domain>\n";

fn domain(cpu: &str) -> String {
    DOMAIN.replace("CPU", cpu)
}

/// The edit changed only the cpu element: text outside it is identical.
fn assert_only_cpu_changed(before: &str, after: &str) {
    let b = before
        .find("<cpu")
        .unwrap_or_else(|| before.find("\n  <os>").unwrap());
    assert_eq!(&before[..b], &after[..b], "prefix changed");
    let tail = "\n  <devices>";
    assert_eq!(
        &before[before.find(tail).unwrap()..],
        &after[after.find(tail).unwrap()..],
        "suffix changed"
    );
}

#[test]
fn topology_flag() {
    let intel = HostFacts::new(Vendor::Intel);
    let out = guest_cpu_cli(
        "libvirt",
        Some("host-passthrough"),
        None,
        &[],
        Some("1,2,2"),
        &intel,
    )
    .unwrap();
    assert!(
        out.contains("<topology sockets='1' cores='2' threads='2'/>"),
        "{out}"
    );
    let out = guest_cpu_cli(
        "libvirt",
        Some("host-passthrough"),
        None,
        &[],
        Some("2,1,4,2"),
        &intel,
    )
    .unwrap();
    assert!(out.contains("dies='1'"), "{out}");
    for bad in ["", "0,1,1", "1,x,1", "1,2", "1,2,3,4,5,6", "-1,1,1"] {
        assert!(
            guest_cpu_cli("libvirt", None, None, &[], Some(bad), &intel).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn render_and_parse_full_element() {
    let xml = "<cpu mode='custom' match='exact' check='full' deprecated_features='off'>\n  \
<model fallback='allow' vendor_id='GenuineIntel'>Haswell</model>\n  <vendor>Intel</vendor>\n  \
<topology sockets='1' dies='1' clusters='1' cores='2' threads='2'/>\n  <cache level='3' mode='emulate'/>\n  \
<maxphysaddr mode='emulate' bits='42'/>\n  <feature policy='require' name='vmx'/>\n  \
<feature policy='disable' name='sse4.2'/>\n  <numa>\n    <cell id='0' cpus='0-1' memory='512' unit='MiB' memAccess='shared' discard='yes'>\n      \
<distances>\n        <sibling id='0' value='10'/>\n        <sibling id='1' value='21'/>\n      </distances>\n      \
<cache level='1' associativity='direct' policy='writeback'>\n        <size value='8' unit='KiB'/>\n        \
<line value='5' unit='B'/>\n      </cache>\n    </cell>\n    <cell id='1' cpus='2-3' memory='512' unit='MiB'/>\n    \
<interconnects>\n      <latency initiator='0' target='0' type='access' value='5'/>\n      \
<bandwidth initiator='0' target='0' cache='1' type='read' value='204800' unit='KiB'/>\n    </interconnects>\n  </numa>\n</cpu>";
    let cpu = Cpu::from_xml(xml).unwrap();
    assert_eq!(cpu.to_xml(), xml);
    assert_eq!(cpu.topology.unwrap().vcpus(), Some(4));
    assert_eq!(cpu.numa.as_ref().unwrap().cells.len(), 2);
    assert!(cpu.nesting(Extension::Vmx).is_yes());
}

#[test]
fn host_cpu_description() {
    let xml = "<cpu>\n  <arch>x86_64</arch>\n  <model>Skylake-Client-v4</model>\n  <vendor>Intel</vendor>\n  \
<microcode version='240'/>\n  <signature family='6' model='94' stepping='3'/>\n  \
<counter name='tsc' frequency='2808000000' scaling='no'/>\n  <topology sockets='1' cores='4' threads='2'/>\n  \
<feature name='vmx'/>\n  <pages unit='KiB' size='4'/>\n</cpu>";
    let cpu = Cpu::from_xml(xml).unwrap();
    assert!(cpu.is_host_description());
    assert_eq!(cpu.to_xml(), xml);
}

#[test]
fn model_name_is_text_and_escaped() {
    let cpu = Cpu::custom("a'b\"<c>&]]>").unwrap();
    let xml = cpu.to_xml();
    assert!(
        xml.contains("<model fallback='forbid'>a&apos;b&quot;&lt;c&gt;&amp;]]&gt;</model>"),
        "{xml}"
    );
    assert_eq!(Cpu::from_xml(&xml).unwrap(), cpu);
    // QEMU's documentation form is rejected.
    let err = Cpu::from_xml("<cpu mode='custom'><model name='Haswell'/></cpu>").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert!(err.to_string().contains("unknown attribute name"), "{err}");
}

#[test]
fn invalid_combinations_have_reasons() {
    let cases: &[(&str, &str)] = &[
        ("<cpu mode='host-model' match='exact'/>", "match='exact' is not allowed"),
        ("<cpu mode='host-model'><model>Haswell</model></cpu>", "model name"),
        ("<cpu mode='custom' migratable='on'><model>Haswell</model></cpu>", "migratable"),
        ("<cpu><model>Haswell</model><feature policy='require' name='vm x'/></cpu>", "not [a-zA-Z0-9._-]+"),
        ("<cpu><model>Haswell</model><feature policy='require' name='vmx'/><feature policy='disable' name='vmx'/></cpu>", "more than once"),
        ("<cpu><model vendor_id='Intel'>Haswell</model></cpu>", "12 characters"),
        ("<cpu><feature policy='require' name='vmx'/></cpu>", "need a CPU model"),
        ("<cpu><numa><cell memory='1'><distances><sibling id='0' value='9'/></distances></cell></numa></cpu>", "NUMA distance 9"),
        // libvirt's own checks (tests/differential_libvirt.rs).
        ("<cpu><numa><cell id='1' memory='1'/></numa></cpu>", "NUMA cell id 1"),
        ("<cpu><numa><cell cpus='0-1' memory='1'/><cell cpus='1' memory='1'/></numa></cpu>", "overlapping"),
        ("<cpu><numa><cell memory='1'><distances><sibling id='0' value='20'/></distances></cell></numa></cpu>", "distance 10 to itself"),
        ("<cpu><numa><cell memory='16' unit='EiB'/></numa></cpu>", "overflows"),
        ("<cpu><numa><cell cpus='0' memory='1'/><interconnects><latency initiator='0' target='1' type='access' value='1'/></interconnects></numa></cpu>", "does not exist"),
        ("<cpu><vendor>Intel</vendor></cpu>", "needs a CPU model"),
        ("<cpu mode='host-model'><vendor>Intel</vendor></cpu>", "needs a CPU model"),
        ("<cpu check='full'><topology sockets='1' cores='1' threads='1'/></cpu>", "check= needs a CPU model"),
    ];
    for (xml, reason) in cases {
        let err = Cpu::from_xml(xml).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{xml}: {err}");
        assert!(err.to_string().contains(reason), "{xml}: {err}");
    }
    let schema: &[&str] = &[
        "<cpu mode='sideways'/>",
        "<cpu><feature policy='maybe' name='vmx'/></cpu>",
        "<cpu><topology sockets='0' cores='1' threads='1'/></cpu>",
        "<cpu><topology sockets='1' cores='1'/></cpu>",
        "<cpu><topology sockets='-1' cores='1' threads='1'/></cpu>",
        "<cpu><bogus/></cpu>",
        "<cpu><model>a</model><model>b</model></cpu>",
        "<cpu><cache level='4' mode='emulate'/></cpu>",
        "<domain><cpu/><cpu/></domain>",
        "<notcpu/>",
    ];
    for xml in schema {
        let err = Cpu::from_xml(xml).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Parse, "{xml}: {err}");
    }
}

#[test]
fn domain_topology_must_match_vcpus() {
    let ok = domain("<cpu><topology sockets='1' cores='2' threads='2'/></cpu>");
    let d = libvirt::parse_domain(&ok).unwrap();
    assert_eq!(d.vcpus, Some(4));
    assert_eq!(d.domain_type.as_deref(), Some("kvm"));
    let bad = domain("<cpu><topology sockets='1' cores='3' threads='2'/></cpu>");
    let err = libvirt::parse_domain(&bad).unwrap_err();
    assert!(err.to_string().contains("gives 6 vCPUs"), "{err}");
    assert!(Cpu::from_xml(&bad).is_err());
    assert!(Cpu::from_xml(&domain("")).is_err());
}

#[test]
fn builders() {
    let mut cpu = Cpu::host_model();
    cpu.set_feature(Policy::Require, "svm").unwrap();
    cpu.set_feature(Policy::Disable, "svm").unwrap();
    assert_eq!(
        cpu.features,
        vec![Feature {
            policy: Some(Policy::Disable),
            name: "svm".into()
        }]
    );
    assert!(cpu.set_feature(Policy::Require, "x'y").is_err());
    assert!(Cpu::custom("").is_err());
    assert!(Cpu::custom("bad\u{1}").is_err());
    assert_eq!(Cpu::new().to_xml(), "<cpu/>");
    assert_eq!("<cpu mode='maximum'/>".parse::<Cpu>().unwrap(), Cpu::maximum());
}

#[test]
fn ensure_custom_replaces_disable_in_place() {
    let before = domain(
        "<cpu match=\"exact\" mode=\"custom\">\n    <model fallback='allow'>Haswell</model>\n    <feature name='vmx' policy=\"disable\"/><!-- x -->\n  </cpu>",
    );
    let edit = libvirt::ensure_nested(&before, Vendor::Intel).unwrap();
    assert_eq!(
        edit.xml,
        before.replace("policy=\"disable\"", "policy=\"require\"")
    );
    assert_eq!(edit.changes.len(), 1);
    let again = libvirt::ensure_nested(&edit.xml, Vendor::Intel).unwrap();
    assert!(!again.changed());
    assert_eq!(again.xml, edit.xml);
    let off = libvirt::disable_nested(&edit.xml, Vendor::Intel).unwrap();
    assert_eq!(off.xml, before);
}

#[test]
fn ensure_custom_adds_feature_after_last_feature() {
    let before = domain(
        "<cpu mode='custom' match='exact'>\n    <model>Haswell</model>\n    <feature policy='require' name='pcid'/>\n    <topology sockets='1' cores='4' threads='1'/>\n  </cpu>",
    );
    let edit = libvirt::ensure_nested(&before, Vendor::Intel).unwrap();
    let expected = before.replace(
        "name='pcid'/>",
        "name='pcid'/>\n    <feature policy='require' name='vmx'/>",
    );
    assert_eq!(edit.xml, expected);
    assert_only_cpu_changed(&before, &edit.xml);
    assert!(libvirt::domain_nesting(&edit.xml, Extension::Vmx)
        .unwrap()
        .is_yes());
    let cpu = Cpu::from_xml(&edit.xml).unwrap();
    assert_eq!(cpu.feature("vmx").unwrap().policy, Some(Policy::Require));
}

#[test]
fn ensure_host_model_self_closing_amd() {
    let before = domain("<cpu mode='host-model' check='partial'/>");
    let edit = libvirt::ensure_nested(&before, Vendor::Amd).unwrap();
    assert_eq!(
        edit.xml,
        domain(
            "<cpu mode='host-model' check='partial'>\n    <feature policy='require' name='svm'/>\n  </cpu>"
        )
    );
    let empty = domain("<cpu mode='host-model'></cpu>");
    let edit = libvirt::ensure_nested(&empty, Vendor::Hygon).unwrap();
    assert_eq!(
        edit.xml,
        domain("<cpu mode='host-model'>\n    <feature policy='require' name='svm'/>\n  </cpu>")
    );
    let opt = domain("<cpu mode='host-model'>\n    <feature policy='optional' name='svm'/>\n  </cpu>");
    let edit = libvirt::ensure_nested(&opt, Vendor::Amd).unwrap();
    assert_eq!(edit.xml, opt.replace("optional", "require"));
}

#[test]
fn ensure_passthrough_only_removes_a_disable() {
    let plain = domain("<cpu mode='host-passthrough' check='none' migratable='on'/>");
    let edit = libvirt::ensure_nested(&plain, Vendor::Intel).unwrap();
    assert!(!edit.changed());
    assert_eq!(edit.xml, plain);
    let withheld = domain(
        "<cpu mode='maximum'>\n    <feature policy='forbid' name='vmx'/>\n    <feature policy='disable' name='pcid'/>\n  </cpu>",
    );
    let edit = libvirt::ensure_nested(&withheld, Vendor::Intel).unwrap();
    assert_eq!(
        edit.xml,
        domain("<cpu mode='maximum'>\n    <feature policy='disable' name='pcid'/>\n  </cpu>")
    );
    let off = libvirt::disable_nested(&plain, Vendor::Intel).unwrap();
    assert_eq!(
        off.xml,
        domain("<cpu mode='host-passthrough' check='none' migratable='on'>\n    <feature policy='disable' name='vmx'/>\n  </cpu>")
    );
    assert_eq!(
        libvirt::domain_nesting(&off.xml, Extension::Vmx).unwrap().state,
        NestingState::No
    );
}

#[test]
fn ensure_without_cpu_inserts_after_vcpu() {
    let before = domain("<clock offset='utc'/>");
    let edit = libvirt::ensure_nested(&before, Vendor::Intel).unwrap();
    let expected = before.replace(
        "<vcpu placement='static'>4</vcpu>",
        "<vcpu placement='static'>4</vcpu>\n  <cpu mode='host-model'>\n    <feature policy='require' name='vmx'/>\n  </cpu>",
    );
    assert_eq!(edit.xml, expected);
    let pt =
        libvirt::ensure_nested_with(&before, Vendor::Intel, libvirt::MissingCpu::HostPassthrough).unwrap();
    assert!(pt.xml.contains("\n  <cpu mode='host-passthrough'/>\n"));
    // Disable: qemu64 has no vmx, so Intel needs nothing; AMD gets svm disabled explicitly.
    assert!(!libvirt::disable_nested(&before, Vendor::Intel).unwrap().changed());
    let amd = libvirt::disable_nested(&before, Vendor::Amd).unwrap();
    assert!(amd
        .xml
        .contains("<model fallback='allow'>qemu64</model>\n    <feature policy='disable' name='svm'/>"));
    libvirt::parse_domain(&amd.xml).unwrap();
}

#[test]
fn ensure_modelless_custom_becomes_host_model() {
    let before = domain(
        "<cpu match='exact'>\n    <topology sockets='1' cores='4' threads='1'/>\n    <numa>\n      <cell cpus='0-3' memory='1048576'/>\n    </numa>\n  </cpu>",
    );
    let edit = libvirt::ensure_nested(&before, Vendor::Intel).unwrap();
    assert_eq!(
        edit.xml,
        domain("<cpu mode='host-model'>\n    <topology sockets='1' cores='4' threads='1'/>\n    <numa>\n      <cell cpus='0-3' memory='1048576'/>\n    </numa>\n    <feature policy='require' name='vmx'/>\n  </cpu>")
    );
    let d = libvirt::parse_domain(&edit.xml).unwrap();
    assert_eq!(d.cpu.unwrap().effective_mode(), Mode::HostModel);
}

#[test]
fn ensure_bare_cpu_and_errors() {
    let edit = libvirt::ensure_nested("<cpu mode='host-model'/>", Vendor::Zhaoxin).unwrap();
    assert_eq!(
        edit.xml,
        "<cpu mode='host-model'>\n  <feature policy='require' name='vmx'/>\n</cpu>"
    );
    assert_eq!(
        libvirt::ensure_nested("<cpu/>", Vendor::Unknown)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        libvirt::ensure_nested("<domain>", Vendor::Intel)
            .unwrap_err()
            .kind(),
        ErrorKind::Parse
    );
    assert_eq!(
        libvirt::ensure_nested("<pool/>", Vendor::Intel)
            .unwrap_err()
            .kind(),
        ErrorKind::Parse
    );
}

#[test]
fn ensure_feature_without_policy() {
    let before = domain("<cpu>\n    <model>Haswell</model>\n    <feature name='vmx'/>\n  </cpu>");
    assert!(!libvirt::ensure_nested(&before, Vendor::Intel).unwrap().changed());
    let off = libvirt::disable_nested(&before, Vendor::Intel).unwrap();
    assert_eq!(
        off.xml,
        before.replace("<feature name='vmx'/>", "<feature policy='disable' name='vmx'/>")
    );
}

#[test]
fn recommendations() {
    let intel = HostFacts {
        nested_available: Some(false),
        ..HostFacts::new(Vendor::Intel)
    };
    let single = recommend(&intel, &Needs::single_host());
    assert_eq!(single.cpu, Cpu::host_passthrough());
    assert_eq!(single.nova.to_ini(), "[libvirt]\ncpu_mode = host-passthrough\n");
    assert!(single
        .caveats
        .iter()
        .any(|c| c.contains("options kvm_intel nested=1")));

    let pool = recommend(&intel, &Needs::migratable(Some("Skylake-Server-v4")));
    assert_eq!(pool.qemu.to_string(), "Skylake-Server-v4,vmx=on");
    assert_eq!(
        pool.nova.to_ini(),
        "[libvirt]\ncpu_mode = custom\ncpu_models = Skylake-Server-v4\ncpu_model_extra_flags = vmx\n"
    );
    assert!(pool.caveats.iter().any(|c| c.contains("Linux 5.3")));

    let amd = recommend(&HostFacts::new(Vendor::Amd), &Needs::migratable(None));
    assert_eq!(
        amd.cpu.to_xml(),
        "<cpu mode='host-model'>\n  <feature policy='require' name='svm'/>\n</cpu>"
    );
    assert_eq!(amd.qemu.to_string(), "qemu64,svm=on");
    assert!(amd
        .caveats
        .iter()
        .any(|c| c.contains("must not be live-migrated or saved")));
    assert!(amd.caveats.iter().any(|c| c.contains("often lack svm")));
    let bad = recommend(
        &HostFacts::new(Vendor::Amd),
        &Needs::migratable(Some("EPYC,svm=off")),
    );
    assert_eq!(bad.cpu.effective_mode(), Mode::HostModel);

    let unknown = recommend(&HostFacts::new(Vendor::Unknown), &Needs::migratable(None));
    assert_eq!(unknown.cpu, Cpu::host_passthrough());
    for r in [single, pool, amd, unknown] {
        r.cpu.validate().unwrap();
        r.nova.validate().unwrap();
        assert!(!r.rationale.is_empty());
    }
}

#[test]
fn cli_outputs() {
    let intel = HostFacts::new(Vendor::Intel);
    let none: &[String] = &[];
    assert_eq!(
        guest_cpu_cli("libvirt", None, None, none, None, &intel).unwrap(),
        "<cpu mode='host-passthrough'/>\n"
    );
    assert_eq!(
        guest_cpu_cli("qemu", None, None, none, None, &intel).unwrap(),
        "host\n"
    );
    assert_eq!(
        guest_cpu_cli("qemu", None, Some("qemu64"), none, None, &intel).unwrap(),
        "qemu64,vmx=on\n"
    );
    assert_eq!(
        guest_cpu_cli(
            "libvirt",
            Some("host-model"),
            None,
            none,
            None,
            &HostFacts::new(Vendor::Amd)
        )
        .unwrap(),
        "<cpu mode='host-model'>\n  <feature policy='require' name='svm'/>\n</cpu>\n"
    );
    let feats = vec!["disable:vmx".to_string(), "require:pcid".to_string()];
    assert_eq!(
        guest_cpu_cli("nova", Some("custom"), Some("Haswell"), &feats, None, &intel).unwrap(),
        "[libvirt]\ncpu_mode = custom\ncpu_models = Haswell\ncpu_model_extra_flags = -vmx,pcid\n"
    );
    assert_eq!(
        guest_cpu_cli(
            "qemu",
            Some("maximum"),
            None,
            &["force:svm".to_string()],
            None,
            &intel
        )
        .unwrap(),
        "max,svm=on\n"
    );
    for (format, mode, model, feats) in [
        ("yaml", None, None, vec![]),
        ("libvirt", Some("host-model"), Some("Haswell"), vec![]),
        ("libvirt", Some("custom"), None, vec![]),
        ("libvirt", Some("bogus"), None, vec![]),
        ("libvirt", None, None, vec!["vmx".to_string()]),
        ("libvirt", None, None, vec!["maybe:vmx".to_string()]),
        ("libvirt", None, None, vec!["require:v'mx".to_string()]),
        ("qemu", Some("host-model"), None, vec![]),
        ("qemu", None, Some("Haswell"), vec!["optional:pcid".to_string()]),
        ("nova", Some("maximum"), None, vec![]),
    ] {
        let err = guest_cpu_cli(format, mode, model, &feats, None, &intel).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidInput,
            "{format} {mode:?} {model:?} {feats:?}: {err}"
        );
    }
    let d = domain("");
    assert!(ensure_nested_cli(&d, Vendor::Intel, false)
        .unwrap()
        .contains("name='vmx'"));
    assert_eq!(ensure_nested_cli(&d, Vendor::Intel, true).unwrap(), d);
}

#[test]
fn hostile_inputs_do_not_panic() {
    let inputs = [
        "<cpu><model>&xxe;</model></cpu>",
        "<!DOCTYPE cpu [<!ENTITY a \"&#60;feature policy='require' name='vmx'/&#62;\">]><cpu>&a;</cpu>",
        "<cpu mode='host-model'><feature policy='require' name='svm'/>",
        "<cpu>\u{0}</cpu>",
        "<cpu mode='host-model' mode='custom'/>",
        "<?xml version='1.0'?><cpu/><cpu/>",
        "<domain><cpu mode='custom'><model>x</model><feature policy='require' name='a\"b'/></cpu></domain>",
    ];
    for input in inputs {
        let r = Cpu::from_xml(input);
        assert!(r.is_err(), "{input}");
        let _ = libvirt::ensure_nested(input, Vendor::Intel);
    }
    let deep = "<domain>".repeat(50_000);
    assert!(libvirt::ensure_nested(&deep, Vendor::Intel).is_err());
    assert!(Cpu::from_xml(&format!("<cpu>{}</cpu>", "<model>".repeat(10_000))).is_err());
}

#[test]
fn disable_modelless_custom_becomes_host_model() {
    let before = domain(
        "<cpu mode='custom' match='exact'>\n    <topology sockets='1' cores='4' threads='1'/>\n  </cpu>",
    );
    let edit = libvirt::disable_nested(&before, Vendor::Intel).unwrap();
    assert!(edit.xml.contains("<cpu mode='host-model'>"), "{}", edit.xml);
    assert!(!edit.xml.contains("match="), "{}", edit.xml);
    assert!(
        edit.xml.contains("<feature policy='disable' name='vmx'/>"),
        "{}",
        edit.xml
    );
    let d = libvirt::parse_domain(&edit.xml).unwrap();
    assert_eq!(d.cpu.unwrap().effective_mode(), Mode::HostModel);
}
