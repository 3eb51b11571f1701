//! CPUID dumps in the three formats (`cpuid -r`, libvirt `<cpudata>`, nestcore JSON), format
//! detected from the text: `CpuidDump::parse`.
//!
//! Input: field 0 is the dump.

use nestcore::host::{CpuidDump, CpuidFormat};
use nestcore::ErrorKind;

use crate::Input;

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let text = input.field(0);
    match CpuidDump::parse(text) {
        Ok(d) => {
            // Never an empty dump; the JSON form is valid JSON and reads back the same leaves.
            assert!(!d.is_empty());
            let json = d.to_json();
            serde_json::from_str::<serde_json::Value>(&json).expect("to_json wrote invalid JSON");
            let back = CpuidDump::parse(&json).unwrap_or_else(|e| panic!("{e}\n{json}"));
            assert_eq!(back.format, CpuidFormat::NestcoreJson);
            assert_eq!(back.leaves().collect::<Vec<_>>(), d.leaves().collect::<Vec<_>>());
            assert_eq!(back.to_json(), json);
            for l in d.leaves() {
                assert_eq!(d.get(l.leaf, l.subleaf), Some([l.eax, l.ebx, l.ecx, l.edx]));
            }
            assert_eq!(d.len(), d.leaves().count());
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Parse, "{e}"),
    }
}
