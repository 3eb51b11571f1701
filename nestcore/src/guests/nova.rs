//! OpenStack nova: the `[libvirt]` settings every instance of this compute node gets, read from
//! nova.conf, nova-compute.conf (Ubuntu's nova-compute-kvm) and nova.conf.d/*.conf in that order
//! (the last value of a key wins), and the nova.conf edit plus the nova-compute restart that give
//! instances the extension.

use super::read::{self, ReadFail};
use super::{broken, conclude, vendor_caveats, Config, Ctx, Gives, Guest, ReadFrom, Source, SourceRead};
use crate::cpu::Extension;
use crate::guest::libvirt::Policy;
use crate::guest::nova::{NovaCpuMode, NovaSettings};
use crate::plan::{unified_diff, Action, Command, Plan, When};

const KEYS: [&str; 5] = [
    "virt_type",
    "cpu_mode",
    "cpu_models",
    "cpu_model",
    "cpu_model_extra_flags",
];

/// One key's value and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Setting {
    value: String,
    /// The file (host path).
    file: String,
}

/// The `[libvirt]` keys nova reads, in one file: (key, value) in order.
fn libvirt_keys(text: &str) -> Result<(Vec<(String, String)>, bool), String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut section = String::new();
    let mut compute = false;
    let mut last: Option<usize> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if t.starts_with('[') {
            let Some(name) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else {
                return Err(format!("line {}: bad section header {t:?}", n + 1));
            };
            section = name.trim().to_string();
            if section == "libvirt" {
                compute = true;
            }
            last = None;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(i) = last {
                out[i].1.push('\n');
                out[i].1.push_str(t);
            }
            continue;
        }
        let Some(pos) = t.find(['=', ':']) else {
            return Err(format!("line {}: expected key = value, found {t:?}", n + 1));
        };
        let key = t[..pos].trim();
        let mut value = t[pos + 1..].trim().to_string();
        if section == "DEFAULT" && key == "compute_driver" && value.contains("libvirt") {
            compute = true;
        }
        if section != "libvirt" || !KEYS.contains(&key) {
            last = None;
            continue;
        }
        if value.len() >= 2
            && (value.starts_with('"') && value.ends_with('"')
                || value.starts_with('\'') && value.ends_with('\''))
        {
            value = value[1..value.len() - 1].to_string();
        }
        out.push((key.to_string(), value));
        last = Some(out.len() - 1);
    }
    Ok((out, compute))
}

/// Sets `key = value` in the `[libvirt]` section of `text`, changing nothing else: the last line
/// that sets it (with its continuation lines) is replaced; otherwise the line goes right after
/// the last `[libvirt]` header; otherwise a `[libvirt]` section is appended.
pub(crate) fn set_key(text: &str, key: &str, value: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut section = String::new();
    let mut found: Option<(usize, usize)> = None;
    // The line after which a new key goes: the last setting (or the header) of the last
    // [libvirt] section.
    let mut header: Option<usize> = None;
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        if t.starts_with('[') && t.ends_with(']') {
            section = t[1..t.len() - 1].trim().to_string();
            if section == "libvirt" {
                header = Some(i);
            }
        } else if section == "libvirt" && !t.is_empty() && !t.starts_with(['#', ';']) {
            header = Some(i);
        }
        if section == "libvirt" && !lines[i].starts_with([' ', '\t']) && !t.starts_with(['#', ';', '[']) {
            if let Some(pos) = t.find(['=', ':']) {
                if t[..pos].trim() == key {
                    let mut end = i + 1;
                    while end < lines.len()
                        && lines[end].starts_with([' ', '\t'])
                        && !lines[end].trim().is_empty()
                    {
                        end += 1;
                    }
                    found = Some((i, end));
                }
            }
        }
        i += 1;
    }
    let new_line = format!("{key} = {value}\n");
    let mut out = String::with_capacity(text.len() + new_line.len() + 12);
    match (found, header) {
        (Some((a, b)), _) => {
            for l in &lines[..a] {
                out.push_str(l);
            }
            out.push_str(&new_line);
            for l in &lines[b..] {
                out.push_str(l);
            }
        }
        (None, Some(h)) => {
            for l in &lines[..=h] {
                out.push_str(l);
            }
            if !lines[h].ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&new_line);
            for l in &lines[h + 1..] {
                out.push_str(l);
            }
        }
        (None, None) => {
            out.push_str(text);
            if !text.is_empty() && !text.ends_with('\n') {
                out.push('\n');
            }
            if !text.is_empty() {
                out.push('\n');
            }
            out.push_str("[libvirt]\n");
            out.push_str(&new_line);
        }
    }
    out
}

fn files(ctx: &Ctx<'_>) -> Result<Vec<String>, ReadFail> {
    let mut out = Vec::new();
    for f in ["/etc/nova/nova.conf", "/etc/nova/nova-compute.conf"] {
        if ctx.host.exists(f) {
            out.push(f.to_string());
        }
    }
    if let Some(names) = read::list_dir(ctx.host, "/etc/nova/nova.conf.d")? {
        for n in names {
            if n.ends_with(".conf") && !n.starts_with('.') {
                out.push(format!("/etc/nova/nova.conf.d/{n}"));
            }
        }
    }
    Ok(out)
}

pub(crate) fn scan(ctx: &Ctx<'_>) -> (SourceRead, Vec<Guest>) {
    let none = |paths: Vec<String>| SourceRead {
        source: Source::Nova,
        read: "none",
        paths,
        detail: String::new(),
    };
    if !ctx.host.exists("/etc/nova") {
        return (none(Vec::new()), Vec::new());
    }
    let list = match files(ctx) {
        Ok(l) => l,
        Err(f) => {
            let g = broken(
                Source::Nova,
                "instances".into(),
                Some("/etc/nova/nova.conf.d".into()),
                f.code,
                f.message,
            );
            return (none(vec!["/etc/nova".into()]), vec![g]);
        }
    };
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut settings: Vec<(String, Setting)> = Vec::new();
    let mut compute = list.iter().any(|f| f.ends_with("nova-compute.conf"));
    let mut fail: Option<(String, &'static str, String)> = None;
    for f in &list {
        match read::read_file(ctx.host, f) {
            Ok(t) => match libvirt_keys(&t) {
                Ok((keys, c)) => {
                    compute |= c;
                    for (k, v) in keys {
                        settings.push((
                            k,
                            Setting {
                                value: v,
                                file: f.clone(),
                            },
                        ));
                    }
                    texts.push((f.clone(), t));
                }
                Err(e) => {
                    fail.get_or_insert((f.clone(), "malformed", format!("{f}: {e}")));
                }
            },
            Err(e) => {
                fail.get_or_insert((f.clone(), e.code, e.message));
            }
        }
    }
    let read = SourceRead {
        source: Source::Nova,
        read: "files",
        paths: list.clone(),
        detail: String::new(),
    };
    if let Some((path, code, message)) = fail {
        let g = broken(
            Source::Nova,
            "instances".into(),
            Some(path),
            code,
            format!("{message}; nova's settings cannot be told without it"),
        );
        return (read, vec![g]);
    }
    if !compute {
        // A controller or an API node: no instances run here.
        return (none(list), Vec::new());
    }
    let get = |k: &str| settings.iter().rev().find(|(key, _)| key == k).map(|(_, s)| s);
    (read, vec![judge(ctx, &list, &texts, &get)])
}

fn judge<'s>(
    ctx: &Ctx<'_>,
    list: &[String],
    texts: &[(String, String)],
    get: &dyn Fn(&str) -> Option<&'s Setting>,
) -> Guest {
    let main = list
        .first()
        .cloned()
        .unwrap_or_else(|| "/etc/nova/nova.conf".into());
    let virt_type = get("virt_type").map_or("kvm".to_string(), |s| s.value.trim().to_ascii_lowercase());
    let list_of = |v: Option<&Setting>| -> Vec<String> {
        v.map(|s| {
            s.value
                .split([',', '\n'])
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
    };
    let mode_raw = get("cpu_mode")
        .map(|s| s.value.trim().to_string())
        .filter(|m| !m.is_empty());
    let mode = match mode_raw.as_deref().map(NovaCpuMode::parse) {
        None => None,
        Some(Some(m)) => Some(m),
        Some(None) => {
            let s = get("cpu_mode").map_or(main.clone(), |s| s.file.clone());
            return broken(
                Source::Nova,
                "instances".into(),
                Some(s.clone()),
                "invalid",
                format!(
                    "{s}: cpu_mode {:?} is not host-model, host-passthrough, custom or none: nova-compute refuses to start",
                    mode_raw.unwrap_or_default()
                ),
            );
        }
    };
    let settings = NovaSettings {
        cpu_mode: mode,
        cpu_models: list_of(get("cpu_models").or(get("cpu_model"))),
        cpu_model_extra_flags: list_of(get("cpu_model_extra_flags"))
            .into_iter()
            .map(|f| f.to_ascii_lowercase())
            .collect(),
    };
    let path = [get("cpu_model_extra_flags"), get("cpu_mode"), get("virt_type")]
        .into_iter()
        .flatten()
        .map(|s| s.file.clone())
        .next()
        .unwrap_or_else(|| main.clone());
    if let Err(e) = settings.validate() {
        return broken(
            Source::Nova,
            "instances".into(),
            Some(path),
            "invalid",
            format!("nova's [libvirt] settings: {e}"),
        );
    }
    let effective = mode.unwrap_or(if matches!(virt_type.as_str(), "kvm" | "qemu") {
        NovaCpuMode::HostModel
    } else {
        NovaCpuMode::None
    });
    let cpu = {
        let mut s = format!("virt_type={virt_type}, cpu_mode={}", effective.as_str());
        if mode.is_none() {
            s.push_str(" (nova's default)");
        }
        if !settings.cpu_models.is_empty() {
            s.push_str(&format!(", cpu_models={}", settings.cpu_models.join(",")));
        }
        if !settings.cpu_model_extra_flags.is_empty() {
            s.push_str(&format!(
                ", cpu_model_extra_flags={}",
                settings.cpu_model_extra_flags.join(",")
            ));
        }
        s
    };
    let config = match ctx.ext() {
        None => Config::new(
            Gives::Unknown,
            "host_vendor_unknown",
            "the host's CPU vendor is not known, so neither is the extension instances need (pass --cpuid)",
        ),
        Some(ext) => judge_settings(ctx, ext, &virt_type, effective, &settings),
    };
    let (gets, reason) = conclude(ctx, &config);
    let fix = ctx.ext().filter(|_| ctx.fixes).and_then(|ext| {
        fix_plan(
            ctx, ext, &config, &virt_type, effective, &settings, get, texts, &main,
        )
    });
    let mut caveats = Vec::new();
    if gets == Some(true) || fix.as_ref().is_some_and(|p| p.blockers.is_empty()) {
        caveats.extend(vendor_caveats(ctx));
        caveats.push("nova blocks live migration (and suspend) of instances that run nested guests".into());
    }
    if fix.is_some() {
        caveats.push("running instances keep their CPU until a hard reboot (`openstack server reboot --hard`), a cold migration or a rebuild; new instances get the new CPU at once".into());
    }
    Guest {
        source: Source::Nova,
        name: "instances".into(),
        path: Some(path),
        id: None,
        scope: None,
        read_from: ReadFrom::File,
        managed_by: None,
        running: None,
        cpu: Some(cpu),
        gets_extension: gets,
        reason,
        fix,
        caveats,
    }
}

fn judge_settings(
    ctx: &Ctx<'_>,
    ext: Extension,
    virt_type: &str,
    mode: NovaCpuMode,
    s: &NovaSettings,
) -> Config {
    let name = ext.as_str();
    match virt_type {
        "kvm" => {}
        "qemu" => {
            return Config::new(
                Gives::No,
                "emulated",
                "virt_type = qemu runs instances under QEMU's emulator (TCG), which cannot give them hardware VT-x or AMD-V",
            )
        }
        other => {
            return Config::new(
                Gives::No,
                "unsupported_type",
                format!("virt_type = {other} does not run KVM guests"),
            )
        }
    }
    match s.flag_policy(name) {
        Some(Policy::Disable) => {
            return Config::new(
                Gives::No,
                "feature_disabled",
                format!("cpu_model_extra_flags has -{name}"),
            )
        }
        Some(_) => {
            return Config::new(
                Gives::Yes,
                "feature_required",
                format!("cpu_model_extra_flags requires {name}"),
            )
        }
        None => {}
    }
    match mode {
        NovaCpuMode::HostPassthrough => Config::new(
            Gives::Yes,
            "cpu_passthrough",
            format!("cpu_mode = host-passthrough passes {name} through when the host offers it"),
        ),
        NovaCpuMode::HostModel => {
            let mut c = super::libvirt::host_model_config(ctx, ext, "cpu_mode = host-model");
            if c.gives == Gives::No {
                c.message.push_str(&format!(" (cpu_model_extra_flags = {name})"));
            }
            c
        }
        NovaCpuMode::Custom => Config::new(
            Gives::No,
            "model_lacks",
            format!(
                "cpu_mode = custom with {}: no named model gives {name} under KVM unless cpu_model_extra_flags names it",
                s.cpu_models.join(", ")
            ),
        ),
        NovaCpuMode::None => Config::new(
            Gives::No,
            "default_model",
            format!("cpu_mode = none: instances get QEMU's default model qemu64, with no {name}"),
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn fix_plan<'s>(
    ctx: &Ctx<'_>,
    ext: Extension,
    config: &Config,
    virt_type: &str,
    mode: NovaCpuMode,
    s: &NovaSettings,
    get: &dyn Fn(&str) -> Option<&'s Setting>,
    texts: &[(String, String)],
    main: &str,
) -> Option<Plan> {
    let emulated = virt_type == "qemu";
    if !config.needs_fix() && !emulated {
        return None;
    }
    let name = ext.as_str();
    let mut plan = Plan {
        summary: format!("Give this compute node's instances {name}"),
        ..Plan::default()
    };
    if config.code == "unsupported_type" {
        plan.blockers.push(crate::plan::Blocker::new(
            "guests.uneditable",
            format!("{}: nestcore leaves the hypervisor choice to you", config.message),
            None,
        ));
        return Some(plan);
    }
    if emulated && ctx.view.kvm_usable == Some(false) {
        plan.blockers.push(crate::plan::Blocker::new(
            "guests.kvm_unusable",
            "KVM is not usable on this host: virt_type = kvm would stop instances from starting",
            Some("see `nestcore check`".into()),
        ));
        return Some(plan);
    }
    // (key, value, the file that holds it now or gets it)
    let mut edits: Vec<(&str, String, String)> = Vec::new();
    if emulated {
        edits.push((
            "virt_type",
            "kvm".into(),
            get("virt_type").map_or(main.to_string(), |x| x.file.clone()),
        ));
    }
    let mut flags: Vec<String> = s
        .cpu_model_extra_flags
        .iter()
        .filter(|f| f.trim_start_matches(['+', '-']) != name)
        .cloned()
        .collect();
    flags.push(name.to_string());
    let flags_file = get("cpu_model_extra_flags")
        .or(get("cpu_mode"))
        .map_or(main.to_string(), |x| x.file.clone());
    if mode == NovaCpuMode::None {
        edits.push((
            "cpu_mode",
            "host-model".into(),
            get("cpu_mode").map_or(flags_file.clone(), |x| x.file.clone()),
        ));
    }
    if s.flag_policy(name) != Some(Policy::Require) {
        edits.push(("cpu_model_extra_flags", flags.join(","), flags_file));
    }
    let mut files: Vec<(String, String, String)> = Vec::new(); // path, old, new
    for (key, value, file) in edits {
        let slot = match files.iter().position(|(p, _, _)| *p == file) {
            Some(i) => i,
            None => {
                let old = texts.iter().find(|(p, _)| *p == file).map(|(_, t)| t.clone());
                let Some(old) = old else {
                    plan.blockers.push(crate::plan::Blocker::new(
                        "guests.missing_file",
                        format!("{file} does not exist"),
                        Some(format!("create it with [libvirt] {key} = {value}")),
                    ));
                    continue;
                };
                files.push((file.clone(), old.clone(), old));
                files.len() - 1
            }
        };
        files[slot].2 = set_key(&files[slot].2, key, &value);
    }
    for (path, old, new) in files {
        if old == new {
            continue;
        }
        plan.actions.push(Action::WriteFile {
            diff: unified_diff(&path, Some(&old), &new),
            path,
            old: Some(old),
            new,
            reason: format!("nova gives instances {name} (cpu_model_extra_flags = {name})"),
            when: When::AfterRestart,
        });
    }
    if plan.actions.is_empty() {
        return if plan.blockers.is_empty() {
            None
        } else {
            Some(plan)
        };
    }
    let unit = [
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
        "/etc/systemd/system",
    ]
    .iter()
    .any(|d| ctx.host.exists(&format!("{d}/openstack-nova-compute.service")));
    let unit = if unit {
        "openstack-nova-compute"
    } else {
        "nova-compute"
    };
    plan.actions.push(Action::Run {
        command: Command::new("systemctl", &["restart", unit]),
        reason: "nova-compute reads nova.conf only when it starts".into(),
        when: When::Now,
    });
    plan.timeline
        .push((When::Now, format!("{unit} restarts with the new settings")));
    plan.timeline.push((
        When::AfterRestart,
        format!("each instance gets {name} at its next hard reboot, cold migration or rebuild"),
    ));
    if ctx.host.exists("/etc/kolla") {
        plan.warnings.push("a kolla deployment: edit /etc/kolla/config/nova.conf on the deploy host and reconfigure instead, or the next deploy undoes this".into());
    }
    Some(plan)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn set_key_shapes() {
        let t = "[DEFAULT]\nx = 1\n[libvirt]\n# c\ncpu_mode = custom\ncpu_model_extra_flags = pcid,\n  -vmx\nvirt_type=kvm\n";
        assert_eq!(
            set_key(t, "cpu_model_extra_flags", "pcid,vmx"),
            "[DEFAULT]\nx = 1\n[libvirt]\n# c\ncpu_mode = custom\ncpu_model_extra_flags = pcid,vmx\nvirt_type=kvm\n"
        );
        assert_eq!(
            set_key(
                "[libvirt]\nvirt_type = kvm\n\n# next\n[other]\n",
                "cpu_mode",
                "host-model"
            ),
            "[libvirt]\nvirt_type = kvm\ncpu_mode = host-model\n\n# next\n[other]\n"
        );
        assert_eq!(
            set_key("[DEFAULT]\na=1", "k", "v"),
            "[DEFAULT]\na=1\n\n[libvirt]\nk = v\n"
        );
        assert_eq!(set_key("", "k", "v"), "[libvirt]\nk = v\n");
        // A key of the same name in another section is not touched.
        assert_eq!(
            set_key("[other]\ncpu_mode = x\n[libvirt]\n", "cpu_mode", "host-model"),
            "[other]\ncpu_mode = x\n[libvirt]\ncpu_mode = host-model\n"
        );
    }

    #[test]
    fn keys_and_compute_node() {
        let (k, c) = libvirt_keys("[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n[libvirt]\ncpu_mode: 'host-model'\nother = 1\n").unwrap();
        assert!(c);
        assert_eq!(k, vec![("cpu_mode".to_string(), "host-model".to_string())]);
        let (k, c) = libvirt_keys("[DEFAULT]\ndebug = true\n").unwrap();
        assert!(!c && k.is_empty());
        assert!(libvirt_keys("[libvirt\n").is_err());
        assert!(libvirt_keys("[libvirt]\nnot a key\n").is_err());
    }
}
