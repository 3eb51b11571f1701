//! libvirt `<cpu>` (guest CPU and host descriptions): `Cpu::from_xml`, `to_xml`, and the
//! conversions to QEMU `-cpu` and nova settings.
//!
//! Input: field 0 the XML (a bare `<cpu>` or a whole `<domain>`).

use nestcore::cpu::Extension;
use nestcore::guest::libvirt::Cpu;
use nestcore::guest::nova::NovaSettings;
use nestcore::guest::qemu::CpuArg;

use crate::{no_new_controls_but, xml_parses, Input};

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let text = input.field(0);
    let _ = nestcore::guest::libvirt::parse_domain(text);
    let Ok(cpu) = Cpu::from_xml(text) else { return };
    // What nestcore writes is XML (to a parser that is not its own), reads back as the same
    // CPU, and is a fixed point.
    let xml = cpu.to_xml();
    let doc = xml_parses("Cpu::to_xml", &xml);
    assert_eq!(doc.root_element().tag_name().name(), "cpu");
    let back = Cpu::from_xml(&xml).unwrap_or_else(|e| panic!("{e}\n{text}\n->\n{xml}"));
    assert_eq!(back, cpu, "{text}\n->\n{xml}");
    assert_eq!(back.to_xml(), xml);
    assert!(cpu.validate().is_ok());
    no_new_controls_but("Cpu::to_xml", text, &xml, &['\n']);
    for ext in [Extension::Vmx, Extension::Svm] {
        let _ = cpu.nesting(ext);
    }
    if let Ok(a) = CpuArg::from_libvirt(&cpu) {
        let s = a.to_string();
        assert_eq!(
            CpuArg::parse(&s).unwrap_or_else(|e| panic!("{e}: {s:?}")),
            a,
            "{s:?}"
        );
        assert!(!s.contains(char::is_control), "{s:?}");
    }
    if let Ok(n) = NovaSettings::from_libvirt(&cpu) {
        let ini = n.to_ini();
        assert_eq!(
            NovaSettings::parse(&ini).unwrap_or_else(|e| panic!("{e}: {ini:?}")),
            n,
            "{ini:?}"
        );
        no_new_controls_but("nova", text, &ini, &['\n']);
    }
}
