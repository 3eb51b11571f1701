//! Property tests: every valid guest `<cpu>` model survives render -> parse unchanged, and
//! hostile names are escaped, never injected.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

mod guest_common;
#[path = "../src/proptest_seed.rs"]
mod proptest_seed;

use nestcore::guest::libvirt::{Cpu, Policy};
use nestcore::guest::qemu::CpuArg;
use proptest::prelude::*;

proptest! {
    #![proptest_config(proptest_seed::config(512))]

    #[test]
    fn render_parse_round_trip(cpu in guest_common::arb_guest_cpu()) {
        prop_assert!(cpu.validate().is_ok(), "generator made an invalid model: {:?}", cpu.validate());
        let xml = cpu.to_xml();
        let back = Cpu::from_xml(&xml).map_err(|e| TestCaseError::fail(format!("{e}\n{xml}")))?;
        prop_assert_eq!(&back, &cpu);
        // In a domain too.
        let dom = guest_common::wrap_in_domain(&xml, cpu.topology.and_then(|t| t.vcpus()).unwrap_or(4));
        prop_assert_eq!(Cpu::from_xml(&dom).unwrap(), cpu);
    }

    #[test]
    fn hostile_model_names_are_text(name in "[^\u{0}-\u{8}\u{b}\u{c}\u{e}-\u{1f}\r\u{fffe}\u{ffff}]{1,40}"
        // A name of white space alone is no name: give it a letter rather than reject it.
        .prop_map(|n| if n.trim().is_empty() { format!("x{n}") } else { n })) {
        // A control character (tab, newline, DEL, C1) is never written into a domain: refused,
        // and named (issue 13).
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            let e = Cpu::custom(&name).unwrap_err();
            prop_assert_eq!(e.kind(), nestcore::ErrorKind::InvalidInput);
            let code = format!("U+{:04X}", u32::from(c));
            prop_assert!(e.to_string().contains(&code), "{}", e);
            return Ok(());
        }
        let cpu = Cpu::custom(&name).unwrap().with_feature(Policy::Disable, "vmx").unwrap();
        let xml = cpu.to_xml();
        // Exactly one element of each kind: nothing was injected.
        prop_assert_eq!(xml.matches("<feature").count(), 1);
        prop_assert_eq!(xml.matches("<model").count(), 1);
        prop_assert!(!xml.contains("]]>"));
        prop_assert_eq!(Cpu::from_xml(&xml).unwrap(), cpu);
    }

    #[test]
    fn invalid_feature_names_are_refused(name in ".*[^a-zA-Z0-9._-].*") {
        prop_assert!(Cpu::host_model().with_feature(Policy::Require, &name).is_err());
        prop_assert!(CpuArg::host().with(&name, true).is_err());
    }

    #[test]
    fn qemu_parse_render_is_stable(
        model in "[A-Za-z0-9][A-Za-z0-9._-]{0,12}",
        opts in proptest::collection::vec(("[a-z][a-z0-9_.-]{0,8}", 0u8..6), 0..8),
    ) {
        let mut s = model.clone();
        for (name, form) in &opts {
            s.push(',');
            s.push_str(&match form { 0 => format!("+{name}"), 1 => format!("-{name}"), 2 => format!("{name}=on"),
                3 => format!("{name}=off"), 4 => name.clone(), _ => format!("{name}=4,,2") });
        }
        let arg = CpuArg::parse(&s).unwrap();
        let rendered = arg.to_string();
        prop_assert!(!rendered.contains(",+") && !rendered.contains(",-"), "{}", rendered);
        prop_assert_eq!(CpuArg::parse(&rendered).unwrap(), arg);
    }

    #[test]
    fn garbage_never_panics(s in "\\PC{0,200}") {
        let _ = Cpu::from_xml(&s);
        let _ = nestcore::guest::libvirt::ensure_nested(&s, nestcore::cpu::Vendor::Amd);
        let _ = CpuArg::parse(&s);
        let _ = nestcore::guest::nova::NovaSettings::parse(&s);
    }
}

#[test]
fn xml_fragments_never_panic() {
    // Mutations of a real-looking element: truncations at every byte.
    let xml = "<domain><vcpu>2</vcpu><cpu mode='custom' match='exact'><model fallback='allow'>Haswell</model>\
<topology sockets='1' cores='2' threads='1'/><feature policy='disable' name='vmx'/><numa><cell id='0' cpus='0-1' memory='1024'/></numa></cpu></domain>";
    assert!(Cpu::from_xml(xml).is_ok());
    for cut in 0..xml.len() {
        let part = &xml[..cut];
        assert!(Cpu::from_xml(part).is_err(), "{part}");
        let _ = nestcore::guest::libvirt::ensure_nested(part, nestcore::cpu::Vendor::Intel);
    }
}
