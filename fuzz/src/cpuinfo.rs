//! /proc/cpuinfo: the first processor block (`CpuinfoBlock::parse`).
//!
//! Input: field 0 is the file, field 1 text that follows it after a blank line.

use nestcore::cpu::CpuinfoBlock;

use crate::Input;

/// Keys the checks read.
const KEYS: [&str; 8] = [
    "flags",
    "vendor_id",
    "cpu family",
    "model",
    "processor",
    "Features",
    "isa",
    "cpu",
];

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let (text, more) = (input.field(0), input.field(1));
    let b = CpuinfoBlock::parse(text);
    assert!(b.present);
    let empty = b == CpuinfoBlock::parse("");
    for k in KEYS {
        if let Some(v) = b.get(k) {
            // Values (and keys) are trimmed: no white space at either end.
            assert_eq!(v, v.trim(), "{k}: {v:?} not trimmed");
            assert!(!v.contains('\n'), "{k}: {v:?} spans lines");
            assert_eq!(b.words(k).unwrap(), v.split_whitespace().collect::<Vec<_>>());
        } else {
            assert!(b.words(k).is_none());
        }
    }
    match b.words("flags") {
        Some(ws) => {
            for f in ["vmx", "svm", "lm", "hypervisor"] {
                assert_eq!(b.has_flag(f), Some(ws.contains(&f)), "flag {f}");
            }
        }
        None => assert_eq!(b.has_flag("vmx"), None),
    }
    let _ = b.arch();
    // Only the first block counts: whatever follows a blank line after content is never read.
    if !empty {
        for sep in ["\n\n", "\n \t\n", "\r\n\r\n"] {
            let whole = format!("{text}{sep}{more}");
            assert_eq!(
                CpuinfoBlock::parse(&whole),
                b,
                "{sep:?} then {more:?} changed the block of {text:?}"
            );
        }
    }
}
