//! The report in Prometheus' text exposition format (version 0.0.4), for node_exporter's textfile
//! collector: `nestcore check --format prometheus > /var/lib/prometheus/node-exporter/nestcore.prom`
//! (written atomically: see `contrib/systemd/`).
//!
//! The metric names and labels are stable (README, "Monitoring"); every series is present on every
//! host, so that an alert on `== 0` never meets a missing series, except `nestcore_finding`, which
//! has one series per finding of the report:
//!
//! | metric | labels | value |
//! |---|---|---|
//! | `nestcore_info` | `container`, `extension`, `hypervisor`, `kernel`, `live`, `schema_version`, `vendor_id`, `version` | 1 |
//! | `nestcore_kvm_usable` | `state`: `yes`, `no`, `unknown` | 1 for the report's state, 0 for the others |
//! | `nestcore_nested_for_guests` | `state`: `available`, `disabled`, `unsupported`, `unknown` | the same |
//! | `nestcore_nested_layer` | `layer`: `cpu`, `kvm_module`, `kvm_guests`; `state`: `on`, `off`, `unknown` | the same, per layer |
//! | `nestcore_findings` | `level`: `pass`, `info`, `warn`, `fail` | the number of findings of that level |
//! | `nestcore_finding` | `code`, `level` | the number of findings with that code and level (1) |
//!
//! The layers, from the hardware up: `cpu` is the extension as this host's kernel sees it (off
//! when the CPU, the firmware or the hypervisor below withholds it), `kvm_module` the vendor
//! module's `nested` parameter, `kvm_guests` what KVM offers its guests (KVM_GET_SUPPORTED_CPUID;
//! unknown where it was not asked, as for recorded roots).

use std::fmt::Write as _;

use crate::cpu::{Extension, FirmwareState};
use crate::kvm::Tri;
use crate::report::{Level, NestedForGuests, Report};

/// The levels in the order the format lists them.
const LEVELS: [Level; 4] = [Level::Pass, Level::Info, Level::Warn, Level::Fail];

/// A tri-state layer value: on, off or unknown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    On,
    Off,
    Unknown,
}

impl State {
    const ALL: [State; 3] = [State::On, State::Off, State::Unknown];

    fn as_str(self) -> &'static str {
        match self {
            State::On => "on",
            State::Off => "off",
            State::Unknown => "unknown",
        }
    }

    fn from_option(v: Option<bool>) -> State {
        match v {
            Some(true) => State::On,
            Some(false) => State::Off,
            None => State::Unknown,
        }
    }
}

/// A level's name as in the JSON report.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Pass => "pass",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Fail => "fail",
    }
}

/// The CPU layer: the extension this host sees, unless the firmware disabled it.
fn cpu_state(report: &Report) -> State {
    match (report.cpu.extension, report.cpu.firmware) {
        (Extension::None, _) | (_, FirmwareState::Disabled) => State::Off,
        (Extension::Unknown, _) | (_, FirmwareState::Unknown) => State::Unknown,
        (Extension::Vmx | Extension::Svm, FirmwareState::Enabled | FirmwareState::NotApplicable) => State::On,
    }
}

/// A label value escaped as the text format asks (backslash, double quote and line feed).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Appends the HELP and TYPE lines of a gauge.
fn header(out: &mut String, name: &str, help: &str) {
    // Writing into a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// Appends one sample: `name{k="v",...} value`.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: usize) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// The report in Prometheus' text exposition format: the verdict, the nested state of each layer
/// and one series per finding, each metric with its HELP and TYPE lines (the table in the
/// [module documentation](self)). Deterministic: the same report gives the same bytes; no
/// timestamps (the textfile collector rejects them and adds the file's mtime instead).
pub fn render_prometheus(report: &Report) -> String {
    let mut out = String::with_capacity(2048);

    header(
        &mut out,
        "nestcore_info",
        "What nestcore read: its version, the kernel, the CPU extension and the layer below (always 1).",
    );
    let schema = report.schema_version.to_string();
    sample(
        &mut out,
        "nestcore_info",
        // In name order, as Prometheus and node_exporter write labels.
        &[
            ("container", &report.virtualization.container),
            ("extension", report.cpu.extension.as_str()),
            ("hypervisor", &report.virtualization.hypervisor),
            ("kernel", report.host.kernel.as_deref().unwrap_or("")),
            ("live", if report.host.live { "true" } else { "false" }),
            ("schema_version", &schema),
            ("vendor_id", report.cpu.vendor_id.as_deref().unwrap_or("")),
            ("version", report.nestcore_version),
        ],
        1,
    );

    header(
        &mut out,
        "nestcore_kvm_usable",
        "Whether this host can run KVM guests: 1 for the state that holds (yes, no, unknown).",
    );
    let usable = match report.verdict.kvm_usable {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    };
    for s in ["yes", "no", "unknown"] {
        sample(
            &mut out,
            "nestcore_kvm_usable",
            &[("state", s)],
            usize::from(s == usable),
        );
    }

    header(
        &mut out,
        "nestcore_nested_for_guests",
        "Whether guests get VMX/SVM (nested virtualization): 1 for the state that holds.",
    );
    for s in [
        NestedForGuests::Available,
        NestedForGuests::Disabled,
        NestedForGuests::Unsupported,
        NestedForGuests::Unknown,
    ] {
        sample(
            &mut out,
            "nestcore_nested_for_guests",
            &[("state", s.as_str())],
            usize::from(s == report.verdict.nested_for_guests),
        );
    }

    header(
        &mut out,
        "nestcore_nested_layer",
        "Nesting at each layer from the CPU up (cpu, kvm_module, kvm_guests): 1 for the state that holds.",
    );
    let kvm_module = match report.kvm.nested {
        Tri::Enabled => State::On,
        Tri::Disabled => State::Off,
        Tri::Unknown => State::Unknown,
    };
    let layers = [
        ("cpu", cpu_state(report)),
        ("kvm_module", kvm_module),
        ("kvm_guests", State::from_option(report.kvm.nested_effective)),
    ];
    for (layer, state) in layers {
        for s in State::ALL {
            sample(
                &mut out,
                "nestcore_nested_layer",
                &[("layer", layer), ("state", s.as_str())],
                usize::from(s == state),
            );
        }
    }

    header(
        &mut out,
        "nestcore_findings",
        "The number of findings of each level.",
    );
    for level in LEVELS {
        let n = report
            .verdict
            .findings
            .iter()
            .filter(|f| f.level == level)
            .count();
        sample(&mut out, "nestcore_findings", &[("level", level_name(level))], n);
    }

    header(
        &mut out,
        "nestcore_finding",
        "One series per finding of the report (code and level as in its JSON): the number of such findings.",
    );
    // A code could appear twice with one level: one series with the count, never a duplicate.
    let mut seen: Vec<(&str, Level, usize)> = Vec::new();
    for f in &report.verdict.findings {
        match seen.iter_mut().find(|(c, l, _)| *c == f.code && *l == f.level) {
            Some(entry) => entry.2 += 1,
            None => seen.push((f.code, f.level, 1)),
        }
    }
    for (code, level, n) in seen {
        sample(
            &mut out,
            "nestcore_finding",
            &[("code", code), ("level", level_name(level))],
            n,
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn escapes_what_the_format_asks() {
        assert_eq!(escape(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
        assert_eq!(escape("6.1.0-18-amd64"), "6.1.0-18-amd64");
    }

    #[test]
    fn a_sample_line() {
        let mut s = String::new();
        sample(&mut s, "m", &[("a", "1"), ("b", "q\"")], 3);
        assert_eq!(s, "m{a=\"1\",b=\"q\\\"\"} 3\n");
        let mut s = String::new();
        sample(&mut s, "m", &[], 0);
        assert_eq!(s, "m 0\n");
    }
}
