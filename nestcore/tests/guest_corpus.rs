//! libvirt's own test data, read from ../shared at test time (never copied into this repository):
//! every x86_64 `<cpu>` document of tests/cputestdata and every `cpu-*` domain of
//! tests/qemuxmlconfdata parses, and renders back to XML that is semantically equal, both as a
//! model (parse(render(parse(x))) == parse(x)) and as a multiset of element paths, attributes
//! and texts (the original against the rendering).
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

mod guest_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nestcore::guest::libvirt::{self, Cpu};
use quick_xml::events::Event;

/// (path, attribute or "#text", value) -> count, for the first `<cpu>` subtree of a document.
fn cpu_multiset(xml: &str) -> BTreeMap<(String, String, String), usize> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut inside = 0usize; // depth of the <cpu> element when entered
    let mut set = BTreeMap::new();
    let add = |set: &mut BTreeMap<_, usize>, p: &str, k: &str, v: &str| {
        *set.entry((p.to_string(), k.to_string(), v.to_string()))
            .or_insert(0) += 1;
    };
    let mut done = false;
    loop {
        let ev = reader.read_event().unwrap();
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                let empty = matches!(ev, Event::Empty(_));
                path.push(name.clone());
                if inside == 0 && name == "cpu" && !done {
                    inside = path.len();
                }
                if inside > 0 {
                    let p = path[inside - 1..].join("/");
                    add(&mut set, &p, "#element", "");
                    for a in e.attributes() {
                        let a = a.unwrap();
                        let k = String::from_utf8(a.key.as_ref().to_vec()).unwrap();
                        add(&mut set, &p, &k, &a.unescape_value().unwrap());
                    }
                }
                if empty {
                    if inside == path.len() {
                        inside = 0;
                        done = true;
                    }
                    path.pop();
                }
            }
            Event::End(_) => {
                if inside == path.len() && inside > 0 {
                    inside = 0;
                    done = true;
                }
                path.pop();
            }
            Event::Text(t) if inside > 0 => {
                let text = t.decode().unwrap();
                if !text.trim().is_empty() {
                    add(&mut set, &path[inside - 1..].join("/"), "#text", text.trim());
                }
            }
            Event::GeneralRef(r) if inside > 0 => {
                add(
                    &mut set,
                    &path[inside - 1..].join("/"),
                    "#ref",
                    &r.decode().unwrap(),
                );
            }
            Event::Eof => break,
            _ => {}
        }
    }
    set
}

fn files(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
        .collect();
    v.sort();
    v
}

fn root_name(xml: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) => return String::from_utf8(e.name().as_ref().to_vec()).ok(),
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[test]
fn cputestdata_cpu_documents_round_trip() {
    let corpus = match guest_common::libvirt_corpus() {
        Ok(c) => c,
        Err(why) => return println!("skipped: {why}"),
    };
    let dir = corpus.join("tests/cputestdata");
    let mut checked = 0;
    let mut failures = Vec::new();
    for path in files(&dir, |n| n.starts_with("x86_64-") && n.ends_with(".xml")) {
        let xml = std::fs::read_to_string(&path).unwrap();
        if root_name(&xml).as_deref() != Some("cpu") {
            continue; // <cpudata> CPUID dumps and <cpuTest> wrappers
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let cpu = match Cpu::from_xml(&xml) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let rendered = cpu.to_xml();
        assert_eq!(
            Cpu::from_xml(&rendered).unwrap(),
            cpu,
            "{name}: model changed through render"
        );
        assert_eq!(
            cpu_multiset(&xml),
            cpu_multiset(&rendered),
            "{name}: attributes/elements differ\n{rendered}"
        );
        checked += 1;
    }
    println!("cputestdata: {checked} x86_64 <cpu> documents parsed and round-tripped");
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 200, "only {checked} documents found");
}

#[test]
fn qemuxmlconfdata_cpu_domains_round_trip() {
    let corpus = match guest_common::libvirt_corpus() {
        Ok(c) => c,
        Err(why) => return println!("skipped: {why}"),
    };
    let dir = corpus.join("tests/qemuxmlconfdata");
    let (mut with_cpu, mut without_cpu, mut refused) = (0, 0, Vec::new());
    let mut failures = Vec::new();
    for path in files(&dir, |n| n.starts_with("cpu-") && n.ends_with(".xml")) {
        let xml = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let d = match libvirt::parse_domain(&xml) {
            Ok(d) => d,
            Err(e) => {
                // libvirt itself rejects some of these cases (a sibling .err file holds its message).
                let stem = name.trim_end_matches(".xml");
                let expected_failure =
                    !files(&dir, |n| n.starts_with(stem) && n.ends_with(".err")).is_empty();
                if expected_failure {
                    refused.push(format!("{name}: {e}"));
                } else {
                    failures.push(format!("{name}: {e}"));
                }
                continue;
            }
        };
        let Some(cpu) = d.cpu else {
            without_cpu += 1;
            continue;
        };
        let rendered = cpu.to_xml();
        assert_eq!(Cpu::from_xml(&rendered).unwrap(), cpu, "{name}");
        assert_eq!(cpu_multiset(&xml), cpu_multiset(&rendered), "{name}\n{rendered}");
        with_cpu += 1;
    }
    println!(
        "qemuxmlconfdata: {with_cpu} cpu-* domains round-tripped, {without_cpu} without <cpu>, {} refused as libvirt refuses them",
        refused.len()
    );
    for r in &refused {
        println!("  refused (libvirt also fails this case): {r}");
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(with_cpu >= 100, "only {with_cpu} domains with <cpu>");
}

#[test]
fn corpus_guest_cpus_edit_cleanly() {
    let corpus = match guest_common::libvirt_corpus() {
        Ok(c) => c,
        Err(why) => return println!("skipped: {why}"),
    };
    use nestcore::cpu::{Extension, Vendor};
    let dir = corpus.join("tests/qemuxmlconfdata");
    let mut edited = 0;
    for path in files(&dir, |n| n.starts_with("cpu-") && n.ends_with(".xml")) {
        let xml = std::fs::read_to_string(&path).unwrap();
        if !xml.contains("arch='x86_64'") || libvirt::parse_domain(&xml).is_err() {
            continue;
        }
        for (vendor, ext) in [(Vendor::Intel, Extension::Vmx), (Vendor::Amd, Extension::Svm)] {
            let on = libvirt::ensure_nested(&xml, vendor).unwrap();
            assert!(
                libvirt::domain_nesting(&on.xml, ext).unwrap().is_yes(),
                "{}",
                path.display()
            );
            let again = libvirt::ensure_nested(&on.xml, vendor).unwrap();
            assert!(
                !again.changed(),
                "{}: not idempotent: {:?}",
                path.display(),
                again.changes
            );
            // Outside the <cpu> element, nothing changed.
            let strip = |s: &str| -> String {
                match (
                    s.find("<cpu"),
                    s.find("</cpu>")
                        .map(|i| i + 6)
                        .or_else(|| s.find("<cpu").and_then(|i| s[i..].find("/>").map(|j| i + j + 2))),
                ) {
                    (Some(a), Some(b)) => format!("{}{}", &s[..a], &s[b..]),
                    _ => s.to_string(),
                }
            };
            if xml.contains("<cpu") {
                assert_eq!(strip(&xml), strip(&on.xml), "{}", path.display());
            }
            // The edited domain is still one nestcore (and so libvirt's schema rules) accepts.
            libvirt::parse_domain(&on.xml).unwrap();
            let off = libvirt::disable_nested(&on.xml, vendor).unwrap();
            assert!(
                !libvirt::domain_nesting(&off.xml, ext).unwrap().is_yes(),
                "{}",
                path.display()
            );
            libvirt::parse_domain(&off.xml).unwrap();
        }
        edited += 1;
    }
    println!("qemuxmlconfdata: {edited} x86_64 cpu-* domains given and denied vmx/svm, idempotently");
}
