//! The readable report, in the manner of virt-host-validate: one PASS/WARN/FAIL line per check,
//! the remedy under each failure.

use std::fmt::Write;

use crate::report::{Level, Report};

/// Renders `report` as text. `color` adds ANSI colours (only for a terminal).
pub fn render_text(report: &Report, color: bool) -> String {
    let mut o = String::new();
    let paint = |level: Level| -> String {
        let label = level.label();
        if !color {
            return label.to_string();
        }
        let code = match level {
            Level::Pass => "32",
            Level::Info => "36",
            Level::Warn => "33",
            Level::Fail => "31",
        };
        format!("\x1b[{code}m{label}\x1b[0m")
    };
    let cpu = &report.cpu;
    let v = &report.virtualization;
    let _ = writeln!(
        o,
        "Host:        {}{}",
        if report.host.live {
            "this machine"
        } else {
            "recorded root "
        },
        if report.host.live {
            String::new()
        } else {
            report.host.root.clone()
        }
    );
    let _ = writeln!(
        o,
        "CPU:         {} ({}, family {} model {} stepping {}), extension: {}",
        cpu.brand.as_deref().unwrap_or("unknown"),
        cpu.vendor_id.as_deref().unwrap_or("unknown vendor"),
        opt(cpu.family),
        opt(cpu.model),
        opt(cpu.stepping),
        cpu.extension.as_str()
    );
    let _ = writeln!(
        o,
        "Hypervisor:  {}{}, virtualization type {}{}{}",
        v.hypervisor,
        v.hypervisor_name
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default(),
        v.virt_type.as_str(),
        v.cloud
            .as_ref()
            .map(|c| format!(", cloud {c}"))
            .unwrap_or_default(),
        if v.container != "none" {
            format!(", in a {} container", v.container)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        o,
        "KVM:         backend {}, /dev/kvm {}, nested parameter {}",
        report.kvm.backend.as_deref().unwrap_or("none"),
        serde_json::to_value(report.kvm.device.state)
            .ok()
            .and_then(|x| x.as_str().map(str::to_string))
            .unwrap_or_default(),
        serde_json::to_value(report.kvm.nested)
            .ok()
            .and_then(|x| x.as_str().map(str::to_string))
            .unwrap_or_default(),
    );
    let vmms: Vec<String> = report
        .vmm
        .vmms
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m.name,
                match m.ready {
                    Some(true) => "ready".to_string(),
                    Some(false) => format!("lacks {}", m.missing.join(", ")),
                    None => "unknown".to_string(),
                }
            )
        })
        .collect();
    if matches!(
        report.kvm.device.state,
        crate::kvm::DeviceState::Usable | crate::kvm::DeviceState::Present
    ) {
        let _ = writeln!(o, "VMMs:        {}", vmms.join("; "));
    } else {
        let _ = writeln!(o, "VMMs:        none can run without a usable /dev/kvm");
    }
    o.push('\n');
    for f in &report.verdict.findings {
        let detail = if f.level == Level::Pass {
            String::new()
        } else {
            format!(" ({})", f.message)
        };
        let _ = writeln!(o, "nestcore: {:<58}: {}{}", f.check, paint(f.level), detail);
        if f.level >= Level::Warn {
            if let Some(r) = &f.remedy {
                match &f.layer {
                    Some(l) => {
                        let _ = writeln!(o, "          remedy (on the layer below, {l}): {r}");
                    }
                    None => {
                        let _ = writeln!(o, "          remedy: {r}");
                    }
                }
            }
            let _ = writeln!(o, "          code: {}", f.code);
        }
    }
    o.push('\n');
    let _ = writeln!(
        o,
        "Verdict: KVM usable: {}; nested virtualization for guests: {}",
        match report.verdict.kvm_usable {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        },
        report.verdict.nested_for_guests.as_str()
    );
    o
}

fn opt(v: Option<u32>) -> String {
    v.map_or_else(|| "?".into(), |x| x.to_string())
}
