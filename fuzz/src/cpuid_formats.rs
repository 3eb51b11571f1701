//! One dump written in the three formats reads back as the same leaves.
//!
//! Input: the bytes after the selector, 24 per leaf (leaf, subleaf, eax, ebx, ecx, edx, little
//! endian); bit 0 of the selector adds a second CPU to the `cpuid -r` text (only the first
//! counts), bit 1 writes CRLF line ends.

use nestcore::host::{CpuidDump, CpuidFormat, CpuidLeaf};

/// The target.
pub fn run(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let word = |c: &[u8], i: usize| u32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
    let leaves: Vec<CpuidLeaf> = rest
        .chunks_exact(24)
        .map(|c| CpuidLeaf {
            leaf: word(c, 0),
            subleaf: word(c, 4),
            eax: word(c, 8),
            ebx: word(c, 12),
            ecx: word(c, 16),
            edx: word(c, 20),
        })
        .collect();
    if leaves.is_empty() {
        return;
    }
    let eol = if sel & 2 != 0 { "\r\n" } else { "\n" };
    let want = CpuidDump::from_leaves(CpuidFormat::NestcoreJson, leaves.clone());
    let mut r = String::new();
    for cpu in 0..1 + usize::from(sel & 1) {
        r.push_str(&format!("CPU {cpu}:{eol}"));
        for l in &leaves {
            let eax = if cpu == 0 { l.eax } else { !l.eax };
            r.push_str(&format!(
                "   0x{:08x} 0x{:02x}: eax=0x{eax:08x} ebx=0x{:08x} ecx=0x{:08x} edx=0x{:08x}{eol}",
                l.leaf, l.subleaf, l.ebx, l.ecx, l.edx
            ));
        }
    }
    let mut x = format!("<cpudata arch='x86'>{eol}");
    for l in &leaves {
        x.push_str(&format!(
            "  <cpuid eax_in='0x{:08x}' ecx_in='0x{:08x}' eax='0x{:08x}' ebx='0x{:08x}' ecx='0x{:08x}' edx='0x{:08x}'/>{eol}",
            l.leaf, l.subleaf, l.eax, l.ebx, l.ecx, l.edx
        ));
    }
    x.push_str("</cpudata>");
    x.push_str(eol);
    crate::xml_parses("cpudata", &x);
    for (text, format) in [
        (r, CpuidFormat::CpuidR),
        (x, CpuidFormat::LibvirtXml),
        (want.to_json(), CpuidFormat::NestcoreJson),
    ] {
        let d = CpuidDump::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(d.format, format);
        assert_eq!(d.to_json(), want.to_json(), "{format:?}:\n{text}");
    }
    // Later duplicates win.
    for l in &leaves {
        let last = leaves
            .iter()
            .rev()
            .find(|m| (m.leaf, m.subleaf) == (l.leaf, l.subleaf))
            .unwrap();
        assert_eq!(
            want.get(l.leaf, l.subleaf),
            Some([last.eax, last.ebx, last.ecx, last.edx])
        );
    }
}
