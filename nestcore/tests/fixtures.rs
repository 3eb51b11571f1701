//! Every fixture host under tests/fixtures/hosts: the report validates against the schema, agrees
//! with the hand-written oracle (`expect.json`) and with the reviewed golden report
//! (`report.json`). `NESTCORE_BLESS=1 cargo test -p nestcore --test fixtures` rewrites the goldens;
//! review the diff before committing it. The oracle is never rewritten.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use serde_json::Value;

/// The report with the machine-specific root path removed.
fn normalized(report: &nestcore::Report) -> Value {
    let mut v = report.to_value();
    v["host"]["root"] = Value::String("<fixture>".into());
    v["nestcore_version"] = Value::String("<version>".into());
    v
}

/// Compares `expect` (a subset) against `actual`, collecting mismatches with their path.
fn subset(path: &str, expect: &Value, actual: &Value, out: &mut Vec<String>) {
    match expect {
        Value::Object(m) => {
            for (k, e) in m {
                if path == "verdict" && k == "codes" {
                    let have: Vec<&str> = actual["findings"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|f| f["code"].as_str()).collect())
                        .unwrap_or_default();
                    for c in e.as_array().unwrap() {
                        if !have.contains(&c.as_str().unwrap()) {
                            out.push(format!("verdict: finding {c} missing (have {have:?})"));
                        }
                    }
                    continue;
                }
                if path == "verdict" && k == "remedies" {
                    // {"<code>": {"layer": "<hypervisor id>", "contains": "<text of the remedy>"}}
                    for (code, want) in e.as_object().unwrap() {
                        let f = actual["findings"]
                            .as_array()
                            .and_then(|a| a.iter().find(|f| f["code"] == code.as_str()));
                        let Some(f) = f else {
                            out.push(format!("verdict: finding {code} missing"));
                            continue;
                        };
                        if f["layer"] != want["layer"] {
                            out.push(format!(
                                "verdict: {code}: layer {} want {}",
                                f["layer"], want["layer"]
                            ));
                        }
                        let needle = want["contains"].as_str().unwrap();
                        if !f["remedy"].as_str().is_some_and(|r| r.contains(needle)) {
                            out.push(format!(
                                "verdict: {code}: remedy {} lacks {needle:?}",
                                f["remedy"]
                            ));
                        }
                    }
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                subset(&p, e, &actual[k.as_str()], out);
            }
        }
        _ => {
            if expect != actual {
                out.push(format!("{path}: expected {expect}, got {actual}"));
            }
        }
    }
}

/// Pretty JSON with every object's keys sorted, so the golden text does not depend on whether
/// serde_json's `preserve_order` feature is on (a workspace build unifies features: the Python
/// crate turns it on).
fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string_pretty(&sorted(v)).unwrap() + "\n"
}

fn diff_lines(want: &str, got: &str) -> String {
    let w: Vec<&str> = want.lines().collect();
    let g: Vec<&str> = got.lines().collect();
    let mut out = String::new();
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (w.get(i).copied().unwrap_or(""), g.get(i).copied().unwrap_or(""));
        if a != b {
            out.push_str(&format!("  line {}:\n    - {a}\n    + {b}\n", i + 1));
            if out.len() > 4000 {
                out.push_str("  ...\n");
                break;
            }
        }
    }
    out
}

#[test]
fn fixture_hosts() {
    let fixtures = common::fixtures();
    assert!(
        fixtures.len() >= 14,
        "expected at least 14 fixture hosts, found {}",
        fixtures.len()
    );
    let schema = common::schema();
    let bless = std::env::var_os("NESTCORE_BLESS").is_some();
    let mut failures = Vec::new();
    for dir in &fixtures {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let report = nestcore::check(&common::fixture_host(dir));
        let value = normalized(&report);
        for v in common::violations(&schema, &value) {
            failures.push(format!("{name}: schema: {v}"));
        }
        let expect: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expect.json")).unwrap())
            .unwrap_or_else(|e| panic!("{name}/expect.json: {e}"));
        let mut mism = Vec::new();
        subset("", &expect, &value, &mut mism);
        failures.extend(mism.into_iter().map(|m| format!("{name}: oracle: {m}")));

        let golden = dir.join("report.json");
        let got = canonical(&value);
        if bless {
            std::fs::write(&golden, &got).unwrap();
        } else {
            match std::fs::read_to_string(&golden) {
                Ok(want) if want == got => {}
                Ok(want) => failures.push(format!(
                    "{name}: report.json differs (NESTCORE_BLESS=1 cargo test -p nestcore --test fixtures rewrites it):\n{}",
                    diff_lines(&want, &got)
                )),
                Err(_) => failures.push(format!("{name}: no report.json (bless with NESTCORE_BLESS=1)")),
            }
        }
        println!(
            "{name:32} ext={:8} hyp={:10} cont={:8} kvm_usable={:5} nested={}",
            report.cpu.extension.as_str(),
            report.virtualization.hypervisor,
            report.virtualization.container,
            format!("{:?}", report.verdict.kvm_usable),
            report.verdict.nested_for_guests.as_str()
        );
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The same fixture read twice gives the same report (no hidden state), and the text report
/// carries every finding's code for failures.
#[test]
fn reports_are_deterministic_and_text_shows_codes() {
    for dir in common::fixtures() {
        let host = common::fixture_host(&dir);
        let a = nestcore::check(&host);
        let b = nestcore::check(&host);
        assert_eq!(a, b, "{}", dir.display());
        let text = nestcore::render_text(&a, false);
        for f in a.verdict.at_least(nestcore::report::Level::Warn) {
            assert!(text.contains(f.code), "{}: text lacks {}", dir.display(), f.code);
        }
        assert!(!text.contains('\x1b'), "no colour unless asked");
    }
}
