//! Every `<cpu>` snippet and edited domain nestcore produces validates against libvirt's RelaxNG
//! schema (`xmllint --noout --relaxng domain.rng`), and the schema rejects what nestcore refuses.
//!
//! The schemas come from $NESTCORE_LIBVIRT_SCHEMAS or ../shared/corpora/libvirt/src/conf/schemas;
//! without them or without xmllint (Debian: libxml2-utils) the tests print why and pass.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

mod guest_common;

use std::path::PathBuf;
use std::process::Command;

use nestcore::cpu::{Extension, Vendor};
use nestcore::guest::libvirt::{self, Cpu, Policy};
use nestcore::guest::{guest_cpu_cli, recommend, HostFacts, Needs};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

struct Validator {
    schema: PathBuf,
    dir: tempfile::TempDir,
    count: usize,
}

impl Validator {
    fn new() -> Result<Validator, String> {
        let schema = guest_common::schema_dir()?.join("domain.rng");
        match Command::new("xmllint").arg("--version").output() {
            Ok(o) if o.status.success() || !o.stderr.is_empty() => {}
            Ok(_) | Err(_) => return Err("xmllint not found (apt-get install libxml2-utils)".into()),
        }
        Ok(Validator {
            schema,
            dir: tempfile::tempdir().unwrap(),
            count: 0,
        })
    }

    /// Runs xmllint on `xml`; Ok(()) if valid, Err(xmllint's message) if not.
    fn check(&mut self, label: &str, xml: &str) -> Result<(), String> {
        self.count += 1;
        let path: PathBuf =
            self.dir
                .path()
                .join(format!("{}-{}.xml", self.count, label.replace(['/', ' '], "_")));
        std::fs::write(&path, xml).unwrap();
        let out = Command::new("xmllint")
            .arg("--noout")
            .arg("--relaxng")
            .arg(&self.schema)
            .arg(&path)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn valid(&mut self, label: &str, xml: &str) {
        if let Err(e) = self.check(label, xml) {
            panic!("{label}: libvirt's schema rejects nestcore's output:\n{e}\n{xml}");
        }
    }

    fn invalid(&mut self, label: &str, xml: &str) {
        assert!(
            self.check(label, xml).is_err(),
            "{label}: the schema accepted\n{xml}"
        );
    }
}

macro_rules! validator_or_skip {
    () => {
        match Validator::new() {
            Ok(v) => v,
            Err(why) => {
                println!("skipped: {why}");
                return;
            }
        }
    };
}

fn vcpus_for(cpu: &Cpu) -> u32 {
    cpu.topology.and_then(|t| t.vcpus()).unwrap_or(4)
}

fn snippets() -> Vec<(String, Cpu)> {
    let mut out = Vec::new();
    for vendor in [Vendor::Intel, Vendor::Amd, Vendor::Hygon, Vendor::Unknown] {
        for needs in [
            Needs::single_host(),
            Needs::migratable(None),
            Needs::migratable(Some("EPYC-Rome")),
        ] {
            let r = recommend(&HostFacts::new(vendor), &needs);
            out.push((format!("recommend-{vendor:?}-{}", needs.migratable), r.cpu));
        }
    }
    let mut full = Cpu::custom("Haswell-noTSX")
        .unwrap()
        .with_feature(Policy::Require, "vmx")
        .unwrap();
    full.set_feature(Policy::Forbid, "svm").unwrap();
    full.set_feature(Policy::Optional, "sse4.2").unwrap();
    full.set_feature(Policy::Force, "x2apic").unwrap();
    full.set_feature(Policy::Disable, "tsx-ctrl").unwrap();
    full.vendor = Some("Intel".into());
    full.topology = Some(libvirt::Topology {
        sockets: 1,
        dies: Some(1),
        clusters: Some(1),
        cores: 2,
        threads: 2,
    });
    out.push(("custom-full".into(), full));
    out.push((
        "hostile-model".into(),
        Cpu::custom("a'b\"<c>&]]>'/><feature policy='require' name='x").unwrap(),
    ));
    out
}

#[test]
fn generated_snippets_validate() {
    let mut v = validator_or_skip!();
    for (label, cpu) in snippets() {
        v.valid(
            &label,
            &guest_common::wrap_in_domain(&cpu.to_xml(), vcpus_for(&cpu)),
        );
    }
    let facts = HostFacts::new(Vendor::Intel);
    let cli: &[(Option<&str>, Option<&str>, &[&str])] = &[
        (None, None, &[]),
        (Some("host-model"), None, &[]),
        (Some("host-passthrough"), None, &["disable:vmx"]),
        (Some("maximum"), None, &["require:vmx"]),
        (None, Some("Skylake-Server-v4"), &["optional:pcid", "forbid:svm"]),
    ];
    for (mode, model, feats) in cli {
        let feats: Vec<String> = feats.iter().map(|s| s.to_string()).collect();
        let out = guest_cpu_cli("libvirt", *mode, *model, &feats, None, &facts).unwrap();
        v.valid("cli", &guest_common::wrap_in_domain(out.trim_end(), 4));
    }
    println!(
        "xmllint: {} generated <cpu> snippets validated against domain.rng",
        v.count
    );
}

#[test]
fn generated_models_validate() {
    let mut v = validator_or_skip!();
    let mut runner = TestRunner::deterministic();
    let strategy = guest_common::arb_guest_cpu();
    for i in 0..48 {
        let cpu = strategy.new_tree(&mut runner).unwrap().current();
        v.valid(
            &format!("arb-{i}"),
            &guest_common::wrap_in_domain(&cpu.to_xml(), vcpus_for(&cpu)),
        );
    }
    println!("xmllint: 48 proptest-generated <cpu> models validated against domain.rng");
}

#[test]
fn edited_domains_validate() {
    let mut v = validator_or_skip!();
    let mut n = 0;
    for (name, dom) in guest_common::domain_fixtures() {
        v.valid(&format!("fixture-{name}"), &dom);
        for (vendor, ext) in [(Vendor::Intel, Extension::Vmx), (Vendor::Amd, Extension::Svm)] {
            let on = libvirt::ensure_nested(&dom, vendor).unwrap();
            v.valid(&format!("{name}-on-{ext:?}"), &on.xml);
            let off = libvirt::disable_nested(&on.xml, vendor).unwrap();
            v.valid(&format!("{name}-off-{ext:?}"), &off.xml);
            let pt = libvirt::ensure_nested_with(&dom, vendor, libvirt::MissingCpu::HostPassthrough).unwrap();
            v.valid(&format!("{name}-pt-{ext:?}"), &pt.xml);
            n += 3;
        }
    }
    // Edits of libvirt's own cpu-* domains (read from ../shared, written only to a temp dir).
    let mut corpus = 0;
    if let Ok(dir) = guest_common::libvirt_corpus() {
        let dir = dir.join("tests/qemuxmlconfdata");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        for p in paths {
            let fname = p.file_name().unwrap().to_string_lossy().to_string();
            if !fname.starts_with("cpu-") || !fname.ends_with(".xml") {
                continue;
            }
            let xml = std::fs::read_to_string(&p).unwrap();
            if !xml.contains("arch='x86_64'") || v.check("orig", &xml).is_err() {
                continue; // only cases the schema accepts as they are
            }
            for vendor in [Vendor::Intel, Vendor::Amd] {
                v.valid(
                    &format!("{fname}-on"),
                    &libvirt::ensure_nested(&xml, vendor).unwrap().xml,
                );
                v.valid(
                    &format!("{fname}-off"),
                    &libvirt::disable_nested(&xml, vendor).unwrap().xml,
                );
                corpus += 2;
            }
        }
    }
    println!("xmllint: {n} edited fixture domains and {corpus} edited libvirt cpu-* domains validated against domain.rng");
}

#[test]
fn schema_rejects_what_nestcore_rejects() {
    let mut v = validator_or_skip!();
    let bad = [
        (
            "model-name-attribute",
            "<cpu mode='custom'><model name='Haswell'/></cpu>",
        ),
        (
            "bad-policy",
            "<cpu><model>Haswell</model><feature policy='maybe' name='vmx'/></cpu>",
        ),
        (
            "bad-feature-name",
            "<cpu><model>Haswell</model><feature policy='require' name='v mx'/></cpu>",
        ),
        ("bad-mode", "<cpu mode='host'/>"),
        (
            "zero-sockets",
            "<cpu><topology sockets='a' cores='1' threads='1'/></cpu>",
        ),
        (
            "vendor-id-short",
            "<cpu><model vendor_id='Intel'>Haswell</model></cpu>",
        ),
    ];
    for (label, cpu) in bad {
        v.invalid(label, &guest_common::wrap_in_domain(cpu, 4));
        assert!(Cpu::from_xml(cpu).is_err(), "{label}: nestcore accepted {cpu}");
    }
    println!(
        "xmllint: {} invalid <cpu> elements rejected by both the schema and nestcore",
        bad.len()
    );
}
