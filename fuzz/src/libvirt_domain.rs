//! libvirt domain definitions: `ensure_nested`, `disable_nested` (the smallest edit that gives
//! the guest vmx/svm or withholds it) and `domain_nesting`.
//!
//! Input: selector bit 0 AMD (svm) instead of Intel (vmx), bit 1 host-passthrough for a domain
//! without `<cpu>`; field 0 the domain XML (or a bare `<cpu>`).

use nestcore::cpu::Vendor;
use nestcore::guest::libvirt::{self, MissingCpu};
use nestcore::guest::NestingState;

use crate::Input;

/// The byte range of the `<cpu>` element of a domain (or the root, for a bare `<cpu>`).
fn cpu_range(doc: &roxmltree::Document<'_>) -> Option<std::ops::Range<usize>> {
    let root = doc.root_element();
    if root.has_tag_name("cpu") {
        return Some(root.range());
    }
    root.children().find(|c| c.has_tag_name("cpu")).map(|c| c.range())
}

/// `text` without its `<cpu>` element.
fn outside_cpu(text: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(text).ok()?;
    let r = cpu_range(&doc)?;
    Some(format!("{}{}", &text[..r.start], &text[r.end..]))
}

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let text = input.field(0);
    let vendor = if input.selector & 1 == 0 {
        Vendor::Intel
    } else {
        Vendor::Amd
    };
    let ext = vendor.extension().unwrap();
    let missing = if input.selector & 2 == 0 {
        MissingCpu::HostModelRequire
    } else {
        MissingCpu::HostPassthrough
    };
    let _ = libvirt::parse_domain(text);
    let wellformed = roxmltree::Document::parse(text).is_ok();
    let had_cpu = roxmltree::Document::parse(text)
        .ok()
        .and_then(|d| cpu_range(&d))
        .is_some();

    let Ok(on) = libvirt::ensure_nested_with(text, vendor, missing) else {
        return;
    };
    check_edit("ensure_nested", text, &on.xml, on.changed(), wellformed, had_cpu);
    let v = libvirt::domain_nesting(&on.xml, ext).unwrap();
    assert_ne!(
        v.state,
        NestingState::No,
        "ensure_nested left {ext:?} off ({}):\n{}",
        v.reason,
        on.xml
    );
    let again = libvirt::ensure_nested_with(&on.xml, vendor, missing).unwrap();
    assert!(
        !again.changed(),
        "ensure_nested twice changed {:?}:\n{}\n->\n{}",
        again.changes,
        on.xml,
        again.xml
    );
    assert_eq!(again.xml, on.xml);

    let off = libvirt::disable_nested(&on.xml, vendor).unwrap();
    let on_cpu = roxmltree::Document::parse(&on.xml)
        .ok()
        .and_then(|d| cpu_range(&d))
        .is_some();
    check_edit(
        "disable_nested",
        &on.xml,
        &off.xml,
        off.changed(),
        wellformed,
        on_cpu,
    );
    let v = libvirt::domain_nesting(&off.xml, ext).unwrap();
    assert_eq!(
        v.state,
        NestingState::No,
        "disable_nested left {ext:?} on ({}):\n{}",
        v.reason,
        off.xml
    );
    let again = libvirt::disable_nested(&off.xml, vendor).unwrap();
    assert!(
        !again.changed(),
        "disable_nested twice changed {:?}:\n{}",
        again.changes,
        off.xml
    );
    // And on again.
    let back = libvirt::ensure_nested_with(&off.xml, vendor, missing).unwrap();
    assert_ne!(
        libvirt::domain_nesting(&back.xml, ext).unwrap().state,
        NestingState::No,
        "{}",
        back.xml
    );

    if let Ok(off) = libvirt::disable_nested(text, vendor) {
        check_edit(
            "disable_nested",
            text,
            &off.xml,
            off.changed(),
            wellformed,
            had_cpu,
        );
        assert_eq!(
            libvirt::domain_nesting(&off.xml, ext).unwrap().state,
            NestingState::No,
            "{}",
            off.xml
        );
    }
}

/// An edit from `before` to `after`: unchanged when it says so; well-formed XML stays
/// well-formed; everything outside `<cpu>` is kept byte for byte (when there was a `<cpu>`;
/// otherwise only white space may be added around the new one); no control character but
/// line breaks and indentation is added.
fn check_edit(what: &str, before: &str, after: &str, changed: bool, wellformed: bool, had_cpu: bool) {
    if !changed {
        assert_eq!(after, before, "{what}: no change reported");
        return;
    }
    if wellformed {
        crate::xml_parses(what, after);
    }
    if wellformed && had_cpu {
        let (a, b) = (outside_cpu(before).unwrap(), outside_cpu(after));
        assert_eq!(
            b.as_deref(),
            Some(a.as_str()),
            "{what} changed more than <cpu>:\n{before}\n->\n{after}"
        );
    } else if wellformed {
        let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        let b = outside_cpu(after).unwrap_or_else(|| panic!("{what}: no <cpu> in\n{after}"));
        let doc = roxmltree::Document::parse(before).unwrap();
        let root = doc.root_element();
        let root_self_closing = before[root.range()].ends_with("/>");
        if !root_self_closing {
            assert_eq!(
                squeeze(&b),
                squeeze(before),
                "{what} changed more than <cpu>:\n{before}\n->\n{after}"
            );
        }
    }
    // New lines, indented like the document (with tabs only where it uses tabs).
    let free: &[char] = if before.contains('\t') {
        &['\n', '\t']
    } else {
        &['\n']
    };
    crate::no_new_controls_but(what, before, after, free);
}
