//! Proxmox VE virtual machines: /etc/pve/qemu-server/VMID.conf `cpu:` (with `kvm:`, `args:` and
//! a pending change), custom models from /etc/pve/virtual-guest/cpu-models.conf, and the fix
//! `qm set VMID --cpu host`.
//!
//! Proxmox's rules (qemu-server, PVE/QemuServer/CPUConfig.pm): without `cpu:` a VM gets kvm64
//! (qemu64 with `kvm: 0`); x86-64-v2-AES and the other x86-64-v* types are qemu64 plus flags; a
//! VM's own `flags=` may only name pcid, spec-ctrl, ibpb, ssbd, virt-ssbd, amd-ssbd, amd-no-ssb,
//! pdpe1gb, md-clear, hv-tlbflush, hv-evmcs and aes (anything else makes `qm start` fail), while
//! a custom model's flags may name any flag (`+vmx`).

use super::read;
use super::{
    broken, cold_restart_caveat, conclude, vendor_caveats, Config, Ctx, Gives, Guest, ReadFrom, Source,
    SourceRead,
};
use crate::cpu::Extension;
use crate::guest::qemu::{CpuArg, OptValue};
use crate::plan::{Action, Command, Plan, When};

const DIR: &str = "/etc/pve/qemu-server";
const MODELS: &str = "/etc/pve/virtual-guest/cpu-models.conf";
const VM_FLAGS: [&str; 12] = [
    "pcid",
    "spec-ctrl",
    "ibpb",
    "ssbd",
    "virt-ssbd",
    "amd-ssbd",
    "amd-no-ssb",
    "pdpe1gb",
    "md-clear",
    "hv-tlbflush",
    "hv-evmcs",
    "aes",
];

/// `key: value` lines in order.
type Pairs = Vec<(String, String)>;
/// cpu-models.conf: each model's name and options, or why it could not be read.
type Models = Result<Vec<(String, Pairs)>, read::ReadFail>;

/// A VM's `cpu:` property string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CpuProp {
    pub cputype: Option<String>,
    pub flags: Vec<String>,
    /// Other options (hidden, hv-vendor-id, phys-bits, reported-model) as written.
    pub rest: Vec<(String, String)>,
}

pub(crate) fn parse_cpu(v: &str) -> CpuProp {
    let mut p = CpuProp::default();
    for (i, part) in v.split(',').map(str::trim).enumerate() {
        match part.split_once('=') {
            Some(("cputype", t)) => p.cputype = Some(t.to_string()),
            Some(("flags", f)) => {
                p.flags = f
                    .split(';')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            Some((k, val)) => p.rest.push((k.to_string(), val.to_string())),
            None if i == 0 && !part.is_empty() => p.cputype = Some(part.to_string()),
            None => {}
        }
    }
    p
}

/// The main section of a VM config (before the first `[snapshot]`), and its `[PENDING]` section.
fn sections(text: &str) -> (Pairs, Pairs) {
    let mut main = Vec::new();
    let mut pending = Vec::new();
    let mut at: Option<&str> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(name) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            at = Some(if name == "PENDING" { "pending" } else { "snapshot" });
            continue;
        }
        let Some((k, v)) = t.split_once(':') else { continue };
        let kv = (k.trim().to_string(), v.trim().to_string());
        match at {
            None => main.push(kv),
            Some("pending") => pending.push(kv),
            Some(_) => {}
        }
    }
    (main, pending)
}

/// cpu-models.conf: name -> (key, value) options.
fn custom_models(text: &str) -> Vec<(String, Pairs)> {
    let mut out: Vec<(String, Pairs)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with([' ', '\t']) {
            if let Some(name) = line.trim().strip_prefix("cpu-model:") {
                out.push((name.trim().to_string(), Vec::new()));
            }
            continue;
        }
        if let Some(last) = out.last_mut() {
            let t = line.trim();
            let (k, v) = t.split_once([' ', '\t']).unwrap_or((t, ""));
            last.1.push((k.to_string(), v.trim().to_string()));
        }
    }
    out
}

pub(crate) fn scan(ctx: &Ctx<'_>) -> (SourceRead, Vec<Guest>) {
    let mut read_src = SourceRead {
        source: Source::Proxmox,
        read: "none",
        paths: Vec::new(),
        detail: String::new(),
    };
    let list = match read::list_dir(ctx.host, DIR) {
        Ok(None) => return (read_src, Vec::new()),
        Ok(Some(l)) => l,
        Err(f) => {
            read_src.read = "files";
            read_src.paths.push(DIR.into());
            return (
                read_src,
                vec![broken(
                    Source::Proxmox,
                    DIR.into(),
                    Some(DIR.into()),
                    f.code,
                    f.message,
                )],
            );
        }
    };
    read_src.read = "files";
    read_src.paths.push(DIR.into());
    let models = match read::read_file(ctx.host, MODELS) {
        Ok(t) => {
            read_src.paths.push(MODELS.into());
            Ok(custom_models(&t))
        }
        Err(e) if e.code == "unreadable" && !ctx.host.exists(MODELS) => Ok(Vec::new()),
        Err(e) => Err(e),
    };
    let mut guests = Vec::new();
    for n in list {
        let Some(vmid) = n
            .strip_suffix(".conf")
            .filter(|s| !s.is_empty() && !n.starts_with('.'))
        else {
            continue;
        };
        let path = format!("{DIR}/{n}");
        let text = match read::read_file(ctx.host, &path) {
            Ok(t) => t,
            Err(f) => {
                let mut g = broken(Source::Proxmox, vmid.into(), Some(path), f.code, f.message);
                g.id = Some(vmid.into());
                guests.push(g);
                continue;
            }
        };
        guests.push(judge_vm(ctx, vmid, &path, &text, &models));
    }
    guests.sort_by_key(|g| {
        (
            g.id.as_deref().and_then(|i| i.parse::<u64>().ok()),
            g.name.clone(),
        )
    });
    (read_src, guests)
}

fn judge_vm(ctx: &Ctx<'_>, vmid: &str, path: &str, text: &str, models: &Models) -> Guest {
    let (main, pending) = sections(text);
    let get = |k: &str| {
        main.iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let pend = |k: &str| {
        pending
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let deleted = pend("delete").is_some_and(|d| d.split([',', ';']).any(|x| x.trim() == "cpu"));
    let (cpu_value, pending_cpu) = match (pend("cpu"), deleted) {
        (Some(v), _) => (Some(v), true),
        (None, true) => (None, true),
        (None, false) => (get("cpu"), false),
    };
    let kvm = pend("kvm").or(get("kvm")).is_none_or(|v| v.trim() != "0");
    let name = get("name").map_or(vmid.to_string(), str::to_string);
    let prop = cpu_value.map(parse_cpu).unwrap_or_default();
    let args_cpu = get("args").and_then(|a| {
        let mut it = a.split_whitespace();
        let mut last = None;
        while let Some(t) = it.next() {
            if t == "-cpu" {
                last = it.next().map(str::to_string);
            }
        }
        last
    });
    let mut cpu_desc = match &prop.cputype {
        Some(t) => format!("cpu: {}", cpu_value.unwrap_or(t)),
        None => "none: Proxmox's default kvm64".into(),
    };
    if pending_cpu {
        cpu_desc.push_str(" (pending: applies at the next start)");
    }
    if !kvm {
        cpu_desc.push_str(", kvm: 0");
    }
    let config = match ctx.ext() {
        None => Config::new(
            Gives::Unknown,
            "host_vendor_unknown",
            "the host's CPU vendor is not known, so neither is the extension guests need (pass --cpuid)",
        ),
        Some(ext) => judge_cpu(ext, kvm, &prop, args_cpu.as_deref(), models),
    };
    let (gets, reason) = conclude(ctx, &config);
    let running = ctx
        .host
        .exists("/var/run/qemu-server")
        .then(|| ctx.host.exists(&format!("/var/run/qemu-server/{vmid}.pid")));
    let fix = if ctx.fixes {
        fix_plan(ctx, vmid, &name, &config, kvm, &prop, args_cpu.is_some(), running)
    } else {
        None
    };
    let mut caveats = Vec::new();
    if gets == Some(true) || fix.as_ref().is_some_and(|p| p.blockers.is_empty()) {
        caveats.extend(vendor_caveats(ctx));
    }
    if fix.as_ref().is_some_and(|p| p.blockers.is_empty()) {
        caveats.push("cpu: host live-migrates only to nodes with the same CPU model".into());
        if running == Some(true) {
            caveats.push(cold_restart_caveat(
                &name,
                &format!("`qm shutdown {vmid}`, then `qm start {vmid}`"),
            ));
        }
    }
    Guest {
        source: Source::Proxmox,
        name,
        path: Some(path.to_string()),
        id: Some(vmid.to_string()),
        scope: None,
        read_from: ReadFrom::File,
        managed_by: None,
        running,
        cpu: Some(cpu_desc),
        gets_extension: gets,
        reason,
        fix,
        caveats,
    }
}

fn judge_cpu(ext: Extension, kvm: bool, prop: &CpuProp, args_cpu: Option<&str>, models: &Models) -> Config {
    let name = ext.as_str();
    if !kvm {
        return Config::new(
            Gives::No,
            "emulated",
            "kvm: 0 runs the VM under QEMU's emulator (TCG), which cannot give it hardware VT-x or AMD-V",
        );
    }
    if let Some(a) = args_cpu {
        // `args:` goes to QEMU after Proxmox's own -cpu, and QEMU takes the last one.
        return match a.parse::<CpuArg>() {
            Ok(c) => {
                let opt = c.options.iter().rev().find(|o| o.name == name).map(|o| &o.value);
                match (c.model.as_str(), opt) {
                    (_, Some(OptValue::Off)) => Config::new(
                        Gives::No,
                        "feature_disabled",
                        format!("args: -cpu {a} turns {name} off"),
                    ),
                    (_, Some(OptValue::On)) => Config::new(
                        Gives::Yes,
                        "feature_required",
                        format!("args: -cpu {a} turns {name} on"),
                    ),
                    ("host" | "max", _) => Config::new(
                        Gives::Yes,
                        "cpu_passthrough",
                        format!("args: -cpu {a} passes {name} through"),
                    ),
                    (m, _) => Config::new(
                        Gives::No,
                        "model_lacks",
                        format!("args: -cpu {a} (which overrides cpu:) names model {m} without {name}"),
                    ),
                }
            }
            Err(e) => Config::new(Gives::Unknown, "invalid", format!("args: -cpu {a}: {e}")),
        };
    }
    let refused: Vec<&String> = prop
        .flags
        .iter()
        .filter(|f| !VM_FLAGS.contains(&f.trim_start_matches(['+', '-'])))
        .collect();
    if !refused.is_empty() {
        return Config::new(
            Gives::No,
            "flags_refused",
            format!(
                "flags={} : a VM's own flags may only name {}; `qm start` fails (\"VM-specific CPU flags must be a subset of\"): use cpu: host or a custom model",
                refused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(";"),
                VM_FLAGS.join(", ")
            ),
        );
    }
    let Some(t) = prop.cputype.as_deref() else {
        return Config::new(
            Gives::No,
            "default_model",
            format!("no cpu: line: Proxmox starts the VM with kvm64, which has no {name}"),
        );
    };
    match t {
        "host" | "max" => Config::new(Gives::Yes, "cpu_passthrough", format!("cpu: {t} passes {name} through when the host offers it")),
        custom if custom.starts_with("custom-") => {
            let model_name = &custom["custom-".len()..];
            let models = match models {
                Ok(m) => m,
                Err(e) => return Config::new(Gives::Unknown, e.code, e.message.clone()),
            };
            let Some((_, opts)) = models.iter().find(|(n, _)| n == model_name) else {
                return Config::new(
                    Gives::No,
                    "invalid",
                    format!("custom model {model_name} is not in {MODELS}: `qm start` fails (\"Custom cputype '{model_name}' not found\")"),
                );
            };
            let get = |k: &str| opts.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
            let flag = get("flags").and_then(|f| {
                f.split(';')
                    .map(str::trim)
                    .rev()
                    .find(|x| x.trim_start_matches(['+', '-']) == name)
                    .map(|x| !x.starts_with('-'))
            });
            let reported = get("reported-model").unwrap_or("kvm64");
            match (flag, reported) {
                (Some(true), _) => Config::new(Gives::Yes, "feature_required", format!("custom model {model_name} has flags +{name}")),
                (Some(false), _) => Config::new(Gives::No, "feature_disabled", format!("custom model {model_name} has flags -{name}")),
                (None, "host" | "max") => Config::new(
                    Gives::Yes,
                    "cpu_passthrough",
                    format!("custom model {model_name} reports {reported}, which passes {name} through"),
                ),
                (None, base) => Config::new(
                    Gives::No,
                    "model_lacks",
                    format!("custom model {model_name} is {base} without +{name}: no named model gives {name} under KVM"),
                ),
            }
        }
        v if v.starts_with("x86-64-v") => Config::new(
            Gives::No,
            "model_lacks",
            format!("cpu: {v} is qemu64 plus flags: it has no vmx, and QEMU turns svm off in named models under KVM: no {name}"),
        ),
        m => Config::new(
            Gives::No,
            "model_lacks",
            format!("cpu: {m} is a named model: no QEMU model includes vmx, and QEMU turns svm off in named models under KVM: no {name}"),
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn fix_plan(
    ctx: &Ctx<'_>,
    vmid: &str,
    name: &str,
    config: &Config,
    kvm: bool,
    prop: &CpuProp,
    args_cpu: bool,
    running: Option<bool>,
) -> Option<Plan> {
    if !config.needs_fix() && kvm {
        return None;
    }
    let ext = ctx.ext()?;
    let mut plan = Plan {
        summary: format!("Give the Proxmox VM {vmid} ({name}) {}", ext.as_str()),
        ..Plan::default()
    };
    if args_cpu {
        plan.blockers.push(crate::plan::Blocker::new(
            "guests.args_override",
            format!("args: in {DIR}/{vmid}.conf passes its own -cpu, which overrides cpu:"),
            Some(format!("edit args (`qm set {vmid} --args ...`) by hand")),
        ));
        return Some(plan);
    }
    if !kvm && ctx.view.kvm_usable == Some(false) {
        plan.blockers.push(crate::plan::Blocker::new(
            "guests.kvm_unusable",
            "KVM is not usable on this host: kvm: 1 would stop the VM from starting",
            Some("see `nestcore check`".into()),
        ));
        return Some(plan);
    }
    if vmid.is_empty() || !vmid.bytes().all(|b| b.is_ascii_digit()) {
        plan.blockers.push(crate::plan::Blocker::new(
            "guests.not_a_vmid",
            format!("{vmid}.conf is not named after a numeric VMID: nestcore will not guess the VM"),
            None,
        ));
        return Some(plan);
    }
    let mut value = String::from("host");
    for (k, v) in &prop.rest {
        if matches!(k.as_str(), "hidden" | "hv-vendor-id" | "phys-bits") && !v.chars().any(char::is_control) {
            value.push_str(&format!(",{k}={v}"));
        }
    }
    let kept: Vec<&String> = prop
        .flags
        .iter()
        .filter(|f| VM_FLAGS.contains(&f.trim_start_matches(['+', '-'])))
        .collect();
    if !kept.is_empty() {
        value.push_str(&format!(
            ",flags={}",
            kept.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(";")
        ));
    }
    let mut args = vec!["set", vmid, "--cpu", value.as_str()];
    if !kvm {
        args.extend_from_slice(&["--kvm", "1"]);
    }
    // `qm set` writes Proxmox's own configuration (pmxcfs), so the backup store holds nothing
    // of it and `nestcore enable --undo` cannot put it back: say how, with what was there.
    let previous = match &prop.cputype {
        Some(t) => {
            let mut v = t.clone();
            if !prop.flags.is_empty() {
                v.push_str(&format!(",flags={}", prop.flags.join(";")));
            }
            for (k, val) in &prop.rest {
                v.push_str(&format!(",{k}={val}"));
            }
            format!("qm set {vmid} --cpu {v}")
        }
        None => format!("qm set {vmid} --delete cpu"),
    };
    plan.warnings.push(format!(
        "not undoable by nestcore: `qm set` writes Proxmox's configuration, of which nestcore keeps no copy; `{previous}`{} puts it back by hand",
        if kvm { "" } else { " with `--kvm 0`" }
    ));
    plan.actions.push(Action::Run {
        command: Command::new("qm", &args),
        reason: format!(
            "cpu: host passes {} through{}",
            ext.as_str(),
            if kvm { "" } else { "; kvm: 1 runs the VM under KVM" }
        ),
        when: When::AfterRestart,
    });
    plan.timeline.push((
        When::AfterRestart,
        format!("VM {vmid} gets {} at its next full stop and start", ext.as_str()),
    ));
    if running == Some(true) {
        plan.warnings.push(cold_restart_caveat(
            name,
            &format!("`qm shutdown {vmid}`, then `qm start {vmid}`"),
        ));
    }
    Some(plan)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cpu_property_strings() {
        assert_eq!(parse_cpu("host").cputype.as_deref(), Some("host"));
        let p = parse_cpu("cputype=kvm64,flags=+pcid;-aes,hidden=1");
        assert_eq!(p.cputype.as_deref(), Some("kvm64"));
        assert_eq!(p.flags, vec!["+pcid", "-aes"]);
        assert_eq!(p.rest, vec![("hidden".to_string(), "1".to_string())]);
        assert_eq!(
            parse_cpu("custom-nested,flags=+aes").cputype.as_deref(),
            Some("custom-nested")
        );
    }

    #[test]
    fn sections_and_models() {
        let (m, p) =
            sections("# desc: x\nname: vm\ncpu: kvm64\n\n[PENDING]\ncpu: host\n[snap1]\ncpu: qemu64\n");
        assert_eq!(
            m,
            vec![("name".into(), "vm".into()), ("cpu".into(), "kvm64".into())]
        );
        assert_eq!(p, vec![("cpu".to_string(), "host".to_string())]);
        let c = custom_models("cpu-model: nested\n    flags +vmx;+aes\n    reported-model kvm64\n\ncpu-model: b\n\tphys-bits host\n");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].1[0], ("flags".to_string(), "+vmx;+aes".to_string()));
        assert_eq!(c[1].1[0], ("phys-bits".to_string(), "host".to_string()));
    }
}
