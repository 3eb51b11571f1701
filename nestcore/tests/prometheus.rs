//! `render_prometheus` / `nestcore check --format prometheus`: the text exposition format read back
//! by a parser written from the format's specification (every sample under its HELP and TYPE,
//! escaped label values, unique series), its values against the JSON report of every fixture, and
//! Prometheus' own `promtool check metrics` on the CLI's output (skipped with the reason where
//! promtool is missing: `./scripts/fetch-prometheus-tools` puts it into target/tools).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// One sample: metric name, labels in order, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, k: &str) -> &str {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }
}

/// Parses the text format strictly: HELP then TYPE then the metric's samples, contiguous, each
/// metric once; label values unescaped (`\\`, `\"`, `\n`); no timestamps. Panics with the line
/// on anything else.
fn parse(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "the exposition must end with a line feed");
    let mut samples = Vec::new();
    let mut declared: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(!help.is_empty(), "{line}");
            assert!(declared.insert(name.to_string()), "metric {name} declared twice");
            let ty = lines.next().unwrap();
            assert_eq!(ty, format!("# TYPE {name} gauge"), "after {line}");
            current = Some(name.to_string());
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let name_end = line.find(['{', ' ']).unwrap();
        let name = &line[..name_end];
        assert_eq!(
            Some(name),
            current.as_deref(),
            "sample outside its metric: {line}"
        );
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && name.starts_with("nestcore_"),
            "{line}"
        );
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            (labels, rest) = parse_labels(r, line);
        }
        let value = rest.strip_prefix(' ').unwrap();
        assert!(
            !value.contains(' '),
            "a timestamp or junk after the value: {line}"
        );
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value: value.parse().unwrap(),
        });
    }
    // Labels in name order (as Prometheus and node_exporter write them); series unique per metric.
    for s in &samples {
        let names: Vec<&str> = s.labels.iter().map(|(k, _)| k.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "labels out of order in {s:?}");
    }
    let mut seen = BTreeSet::new();
    for s in &samples {
        assert!(
            seen.insert((s.name.clone(), s.labels.clone())),
            "duplicate series {s:?}"
        );
    }
    samples
}

/// The labels of a sample (`k="v",...}`, after the opening brace), and what follows the closing
/// brace.
fn parse_labels<'a>(mut r: &'a str, line: &str) -> (Vec<(String, String)>, &'a str) {
    let mut labels = Vec::new();
    loop {
        let eq = r.find('=').unwrap();
        let key = &r[..eq];
        assert!(key.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{line}");
        assert_eq!(&r[eq + 1..eq + 2], "\"", "{line}");
        let mut value = String::new();
        let mut it = r[eq + 2..].char_indices();
        let end = loop {
            let (i, c) = it.next().unwrap();
            match c {
                '\\' => match it.next().unwrap().1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => panic!("bad escape \\{other} in {line}"),
                },
                '"' => break eq + 2 + i + 1,
                c => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        match &r[end..end + 1] {
            "," => r = &r[end + 1..],
            "}" => return (labels, &r[end + 1..]),
            other => panic!("{other:?} after a label in {line}"),
        }
    }
}

/// The one state of a state-set metric whose value is 1 (the others must be 0), per group.
fn chosen(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> String {
    let group: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && filter.iter().all(|(k, v)| s.label(k) == *v))
        .collect();
    assert!(!group.is_empty(), "no {name} {filter:?}");
    let ones: Vec<&&Sample> = group.iter().filter(|s| s.value == 1.0).collect();
    assert_eq!(ones.len(), 1, "{name} {filter:?}: {group:?}");
    assert!(
        group.iter().all(|s| s.value == 0.0 || s.value == 1.0),
        "{group:?}"
    );
    ones[0].label("state").to_string()
}

fn tri(v: &serde_json::Value) -> &'static str {
    match v.as_bool() {
        Some(true) => "on",
        Some(false) => "off",
        None => "unknown",
    }
}

#[test]
fn every_fixture_agrees_with_its_json_report() {
    let fixtures = common::fixtures();
    assert!(fixtures.len() >= 10, "{fixtures:?}");
    for dir in fixtures {
        let report = nestcore::check(&common::fixture_host(&dir));
        let json = report.to_value();
        let text = nestcore::render_prometheus(&report);
        let samples = parse(&text);
        let what = dir.display();

        let names: BTreeSet<&str> = samples.iter().map(|s| s.name.as_str()).collect();
        for m in [
            "nestcore_info",
            "nestcore_kvm_usable",
            "nestcore_nested_for_guests",
            "nestcore_nested_layer",
            "nestcore_findings",
        ] {
            assert!(names.contains(m), "{what}: no {m}");
        }

        let info: Vec<&Sample> = samples.iter().filter(|s| s.name == "nestcore_info").collect();
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].value, 1.0);
        assert_eq!(info[0].label("version"), json["nestcore_version"]);
        assert_eq!(info[0].label("extension"), json["cpu"]["extension"]);
        assert_eq!(info[0].label("hypervisor"), json["virtualization"]["hypervisor"]);
        assert_eq!(info[0].label("container"), json["virtualization"]["container"]);
        assert_eq!(
            info[0].label("kernel"),
            json["host"]["kernel"].as_str().unwrap_or("")
        );
        assert_eq!(info[0].label("live"), "false");

        let usable = match json["verdict"]["kvm_usable"].as_bool() {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        };
        assert_eq!(chosen(&samples, "nestcore_kvm_usable", &[]), usable, "{what}");
        assert_eq!(
            chosen(&samples, "nestcore_nested_for_guests", &[]),
            json["verdict"]["nested_for_guests"],
            "{what}"
        );
        let module = match json["kvm"]["nested"].as_str().unwrap() {
            "enabled" => "on",
            "disabled" => "off",
            _ => "unknown",
        };
        assert_eq!(
            chosen(&samples, "nestcore_nested_layer", &[("layer", "kvm_module")]),
            module,
            "{what}"
        );
        assert_eq!(
            chosen(&samples, "nestcore_nested_layer", &[("layer", "kvm_guests")]),
            tri(&json["kvm"]["nested_effective"]),
            "{what}"
        );
        let cpu = chosen(&samples, "nestcore_nested_layer", &[("layer", "cpu")]);
        match json["cpu"]["extension"].as_str().unwrap() {
            "none" => assert_eq!(cpu, "off", "{what}"),
            "unknown" => assert_eq!(cpu, "unknown", "{what}"),
            _ if json["cpu"]["firmware"] == "disabled" => assert_eq!(cpu, "off", "{what}"),
            _ if json["cpu"]["firmware"] == "enabled" => assert_eq!(cpu, "on", "{what}"),
            _ => {}
        }
        let layers: BTreeSet<&str> = samples
            .iter()
            .filter(|s| s.name == "nestcore_nested_layer")
            .map(|s| s.label("layer"))
            .collect();
        assert_eq!(layers, BTreeSet::from(["cpu", "kvm_guests", "kvm_module"]));

        // One series per finding (code, level), counting; the per-level totals agree.
        let mut want: BTreeMap<(String, String), f64> = BTreeMap::new();
        for f in json["verdict"]["findings"].as_array().unwrap() {
            let key = (
                f["code"].as_str().unwrap().to_string(),
                f["level"].as_str().unwrap().to_string(),
            );
            *want.entry(key).or_default() += 1.0;
        }
        let got: BTreeMap<(String, String), f64> = samples
            .iter()
            .filter(|s| s.name == "nestcore_finding")
            .map(|s| {
                (
                    (s.label("code").to_string(), s.label("level").to_string()),
                    s.value,
                )
            })
            .collect();
        assert_eq!(got, want, "{what}");
        for level in ["pass", "info", "warn", "fail"] {
            let n = samples
                .iter()
                .find(|s| s.name == "nestcore_findings" && s.label("level") == level)
                .unwrap()
                .value;
            let expect = want
                .iter()
                .filter(|((_, l), _)| l == level)
                .map(|(_, n)| n)
                .sum::<f64>();
            assert_eq!(n, expect, "{what} {level}");
        }
        // Deterministic.
        assert_eq!(
            nestcore::render_prometheus(&nestcore::check(&common::fixture_host(&dir))),
            text
        );
    }
}

#[test]
fn hostile_label_values_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = "6.1\\x\"quoted\"\nsecond line";
    std::fs::create_dir_all(dir.path().join("proc/sys/kernel")).unwrap();
    std::fs::write(
        dir.path().join("proc/sys/kernel/osrelease"),
        format!("{kernel}\n"),
    )
    .unwrap();
    let report = nestcore::check(&nestcore::Host::from_root(dir.path()).unwrap());
    assert_eq!(report.host.kernel.as_deref(), Some(kernel));
    let text = nestcore::render_prometheus(&report);
    let samples = parse(&text);
    let info = samples.iter().find(|s| s.name == "nestcore_info").unwrap();
    assert_eq!(info.label("kernel"), kernel);
    // An empty root: everything unknown, still every state-set metric with exactly one state.
    assert_eq!(chosen(&samples, "nestcore_kvm_usable", &[]), "unknown");
    assert_eq!(
        chosen(&samples, "nestcore_nested_layer", &[("layer", "cpu")]),
        "unknown"
    );
    if let Some(p) = promtool() {
        promtool_check(&p, &text, "hostile kernel release");
    }
}

/// promtool from $PROMTOOL, PATH or target/tools (scripts/fetch-prometheus-tools), or None with the reason
/// printed.
fn promtool() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROMTOOL") {
        return Some(PathBuf::from(p));
    }
    let local = common::workspace().join("target/tools/promtool");
    if local.is_file() {
        return Some(local);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("promtool"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    if on_path.is_none() {
        eprintln!(
            "skipped: promtool not found ($PROMTOOL, PATH, target/tools: run ./scripts/fetch-prometheus-tools)"
        );
    }
    on_path
}

fn promtool_check(promtool: &std::path::Path, text: &str, what: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics on {what}: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(feature = "cli")]
#[test]
fn the_cli_output_passes_promtool_for_every_fixture_and_this_host() {
    let bin = env!("CARGO_BIN_EXE_nestcore");
    let Some(promtool) = promtool() else { return };
    let mut runs = Vec::new();
    for dir in common::fixtures() {
        let root = dir.join("root");
        let mut args = vec!["check".to_string(), "--root".into(), root.display().to_string()];
        let cpuid = dir.join("cpuid.txt");
        if cpuid.exists() {
            args.extend(["--cpuid".into(), cpuid.display().to_string()]);
        }
        runs.push(args);
    }
    runs.push(vec!["check".into(), "--no-probe".into()]);
    for mut args in runs {
        let json = std::process::Command::new(bin)
            .args(&args)
            .arg("--json")
            .output()
            .unwrap();
        args.extend(["--format".into(), "prometheus".into()]);
        let out = std::process::Command::new(bin).args(&args).output().unwrap();
        // The same exit status as the other formats: the verdict, not the format, decides.
        assert_eq!(out.status.code(), json.status.code(), "{args:?}");
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        parse(&text);
        promtool_check(&promtool, &text, &args.join(" "));
    }
}

#[cfg(feature = "cli")]
#[test]
fn json_is_an_alias_of_format_json_and_conflicts_with_another_format() {
    let bin = env!("CARGO_BIN_EXE_nestcore");
    let dir = common::hosts_dir().join("intel-nested-off");
    let root = dir.join("root");
    let cpuid = dir.join("cpuid.txt");
    let base = [
        "check",
        "--root",
        root.to_str().unwrap(),
        "--cpuid",
        cpuid.to_str().unwrap(),
    ];
    let run = |extra: &[&str]| {
        std::process::Command::new(bin)
            .args(base)
            .args(extra)
            .output()
            .unwrap()
    };
    let a = run(&["--json"]);
    let b = run(&["--format", "json"]);
    assert_eq!((a.status.code(), &a.stdout), (b.status.code(), &b.stdout));
    assert!(serde_json::from_slice::<serde_json::Value>(&a.stdout).is_ok());
    let text = run(&["--format", "text"]);
    assert_eq!(text.stdout, run(&[]).stdout);
    let bad = run(&["--json", "--format", "prometheus"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot be used with"));
}
