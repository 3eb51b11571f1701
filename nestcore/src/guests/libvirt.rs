//! libvirt domains: the persistent definitions in /etc/libvirt/qemu (and the session ones), or
//! what libvirt holds (`virsh dumpxml --inactive`), judged by their `<cpu>` and domain type, and
//! fixed by [`crate::guest::libvirt::ensure_nested`] plus `virsh define`.

use super::read::{self, ReadFail};
use super::{
    broken, cold_restart_caveat, conclude, vendor_caveats, Config, Ctx, Gives, Guest, Options, ReadFrom,
    Source, SourceRead,
};
use crate::cpu::{Extension, Vendor};
use crate::guest::libvirt as lv;
use crate::guest::xml::{self, Node};
use crate::plan::{unified_diff, Action, Command, Executor, Plan, When};

/// Where qemu:///system keeps its persistent definitions.
pub(crate) const SYSTEM_DIR: &str = "/etc/libvirt/qemu";
const URI: &str = "qemu:///system";

/// One domain definition found.
struct Found {
    scope: String,
    path: Option<String>,
    /// The file's text (or why it could not be read).
    file: Option<Result<String, ReadFail>>,
    /// What libvirt holds, when virsh answered for it.
    virsh: Option<String>,
    running: Option<bool>,
    /// The name virsh listed or the file's stem.
    name: String,
}

struct Virsh<'a> {
    exec: &'a dyn Executor,
    host: &'a crate::Host,
    timeout: bool,
}

impl Virsh<'_> {
    /// Runs `virsh -c qemu:///system ARGS` (under `timeout 30` where the host has it, so that a
    /// libvirt daemon that does not answer cannot hang the scan).
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-c", URI];
        all.extend_from_slice(args);
        let cmd = if self.timeout {
            let mut t = vec!["30", "virsh"];
            t.extend_from_slice(&all);
            Command::new("timeout", &t)
        } else {
            Command::new("virsh", &all)
        };
        match self.exec.run(self.host, &cmd) {
            Ok(o) if o.status == 0 => Ok(o.stdout),
            Ok(o) if self.timeout && o.status == 124 => Err(format!("`{cmd}` timed out")),
            Ok(o) => Err(format!(
                "`{cmd}` exited {}: {}",
                o.status,
                o.stderr.trim().lines().next().unwrap_or("")
            )),
            Err(e) => Err(format!("`{cmd}`: {e}")),
        }
    }
}

/// A domain name virsh can be asked about: no control characters.
fn plain_name(n: &str) -> bool {
    !n.is_empty() && !n.chars().any(char::is_control)
}

fn names(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The host-model CPU's stance on `ext` from `virsh domcapabilities`: `Some(true)` when it
/// requires it, `Some(false)` when it does not name it (or disables it), `None` when the answer
/// has no usable host-model.
pub(crate) fn host_model_from_domcaps(xml_text: &str, ext: Extension) -> Option<bool> {
    let root = xml::parse(xml_text, "domain capabilities").ok()?;
    let cpu = root.child("cpu")?;
    let mode = cpu
        .children
        .iter()
        .find(|m| m.name == "mode" && m.attr("name") == Some("host-model"))?;
    if mode.attr("supported") == Some("no") {
        return None;
    }
    let f = mode
        .children
        .iter()
        .find(|f| f.name == "feature" && f.attr("name") == Some(ext.as_str()));
    Some(matches!(
        f.and_then(|f| f.attr("policy")),
        Some("require" | "force")
    ))
}

/// The `*.xml` definitions in `dir` (other names, such as backups and folders, are not
/// definitions: libvirt loads `*.xml` only).
fn definitions(
    ctx: &Ctx<'_>,
    dir: &str,
    scope: &str,
    out: &mut Vec<Found>,
    paths: &mut Vec<String>,
    errors: &mut Vec<Guest>,
) {
    match read::list_dir(ctx.host, dir) {
        Ok(None) => {}
        Ok(Some(list)) => {
            paths.push(dir.to_string());
            for n in list {
                let Some(stem) = n
                    .strip_suffix(".xml")
                    .filter(|s| !s.is_empty() && !n.starts_with('.'))
                else {
                    continue;
                };
                let path = format!("{dir}/{n}");
                if ctx.host.is_dir(&path) {
                    continue;
                }
                let file = read::read_file(ctx.host, &path);
                out.push(Found {
                    scope: scope.to_string(),
                    path: Some(path),
                    file: Some(file),
                    virsh: None,
                    running: None,
                    name: stem.to_string(),
                });
            }
        }
        Err(f) => {
            let mut g = broken(
                Source::Libvirt,
                dir.to_string(),
                Some(dir.to_string()),
                f.code,
                f.message,
            );
            g.scope = Some(scope.to_string());
            errors.push(g);
        }
    }
}

pub(crate) fn scan(ctx: &mut Ctx<'_>, opts: &Options<'_>) -> (SourceRead, Vec<Guest>) {
    let mut found: Vec<Found> = Vec::new();
    let mut paths = Vec::new();
    let mut errors = Vec::new();
    definitions(ctx, SYSTEM_DIR, "system", &mut found, &mut paths, &mut errors);

    // libvirt's API, where asked for.
    let mut via_virsh = false;
    let mut detail = String::new();
    if let Some(exec) = opts.virsh {
        let v = Virsh {
            exec,
            host: ctx.host,
            timeout: ctx.host.is_live() && crate::plan::find_program(ctx.host, "timeout").is_some(),
        };
        match v.run(&["list", "--all", "--name"]) {
            Ok(out) => {
                via_virsh = true;
                detail = format!("virsh -c {URI}: the definitions libvirt holds, the files for the rest");
                let running: Vec<String> = v.run(&["list", "--name"]).map(|o| names(&o)).unwrap_or_default();
                if let Some(ext) = ctx.ext() {
                    if let Ok(caps) = v.run(&["domcapabilities", "--virttype", "kvm"]) {
                        ctx.host_model = host_model_from_domcaps(&caps, ext);
                    }
                }
                for name in names(&out) {
                    if !plain_name(&name) {
                        continue;
                    }
                    let xml = v.run(&["dumpxml", "--inactive", "--domain", &name]);
                    let is_running = Some(running.contains(&name));
                    let at = found.iter().position(|f| f.scope == "system" && f.name == name);
                    let f = match at {
                        Some(i) => &mut found[i],
                        None => {
                            found.push(Found {
                                scope: "system".into(),
                                path: None,
                                file: None,
                                virsh: None,
                                running: None,
                                name: name.clone(),
                            });
                            let last = found.len() - 1;
                            &mut found[last]
                        }
                    };
                    f.running = is_running;
                    match xml {
                        Ok(x) => f.virsh = Some(x),
                        Err(e) if f.file.is_none() => {
                            f.file = Some(Err(ReadFail {
                                code: "unreadable",
                                message: format!("libvirt lists {name} but {e}"),
                            }))
                        }
                        Err(_) => {}
                    }
                }
            }
            Err(e) => detail = format!("{e}: read the files instead"),
        }
    }

    if !opts.no_session {
        let mut homes = vec![("root".to_string(), "/root".to_string())];
        if let Ok(Some(users)) = read::list_dir(ctx.host, "/home") {
            homes.extend(users.into_iter().map(|u| (u.clone(), format!("/home/{u}"))));
        }
        for (user, home) in homes {
            let dir = format!("{home}/.config/libvirt/qemu");
            if ctx.host.exists(&dir) {
                definitions(
                    ctx,
                    &dir,
                    &format!("session:{user}"),
                    &mut found,
                    &mut paths,
                    &mut errors,
                );
            }
        }
    }

    let mut guests: Vec<Guest> = found.iter().map(|f| judge_found(ctx, f)).collect();
    guests.append(&mut errors);
    // System domains first, then each user's session ones; by name within each.
    guests.sort_by(|a, b| {
        let key = |g: &Guest| {
            (
                g.scope.as_deref() != Some("system"),
                g.scope.clone(),
                g.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let read = if via_virsh {
        "virsh"
    } else if guests.is_empty() {
        "none"
    } else {
        "files"
    };
    (
        SourceRead {
            source: Source::Libvirt,
            read,
            paths,
            detail,
        },
        guests,
    )
}

/// What a domain definition says, read tolerantly (libvirt accepted it already).
pub(crate) struct Domain {
    pub name: Option<String>,
    pub domain_type: Option<String>,
    pub nova_uuid: Option<String>,
    pub cpu_text: Option<String>,
    pub cpu: String,
    pub config: Config,
}

fn text_of(src: &str, n: &Node) -> String {
    src[n.span.clone()].to_string()
}

fn nova_managed(root: &Node) -> bool {
    root.child("metadata").is_some_and(|m| {
        m.children.iter().any(|c| {
            (c.name == "instance" || c.name.ends_with(":instance"))
                && c.attrs
                    .iter()
                    .any(|a| a.value.contains("openstack.org/xmlns/libvirt/nova"))
        })
    })
}

/// Judges a domain definition's text.
///
/// # Errors
/// A [`ReadFail`]-like pair (code, message) for XML that does not parse (`malformed`) or a
/// definition libvirt would not hold (`invalid`).
/// libvirt's names of the x86 architectures (`<type arch=...>`), the ones VT-x/AMD-V serve.
const X86_ARCHES: [&str; 2] = ["x86_64", "i686"];

/// The reason code of a guest of another architecture: reported, never fixed.
const FOREIGN_ARCH: &str = "foreign_arch";

pub(crate) fn judge_domain(ctx: &Ctx<'_>, text: &str) -> Result<Domain, (&'static str, String)> {
    let root = xml::parse(text, "domain XML").map_err(|e| ("malformed", e.to_string()))?;
    if root.name != "domain" {
        return Err((
            "invalid",
            format!("the root element is <{}>, not <domain>", root.name),
        ));
    }
    let cpus: Vec<&Node> = root.children.iter().filter(|c| c.name == "cpu").collect();
    if cpus.len() > 1 {
        let (line, _) = xml::line_col(text, cpus[1].span.start);
        return Err((
            "invalid",
            format!("a second <cpu> at line {line}: libvirt allows one"),
        ));
    }
    let cpu = cpus.first().copied();
    let name = root
        .child("name")
        .map(|n| n.text.trim().to_string())
        .filter(|n| !n.is_empty());
    let domain_type = root.attr("type").map(str::to_string);
    let nova_uuid = nova_managed(&root).then(|| {
        root.child("uuid")
            .map(|u| u.text.trim().to_string())
            .unwrap_or_default()
    });
    let (cpu_desc, cfg) = judge_cpu(ctx, cpu);
    // <os><type arch=...>: KVM runs guests of the host's architecture only, and VT-x/AMD-V are
    // x86's; another architecture runs under TCG whatever nestcore changes.
    let arch = root
        .child("os")
        .and_then(|o| o.child("type"))
        .and_then(|t| t.attr("arch"))
        .filter(|a| !X86_ARCHES.contains(a));
    let config = match domain_type.as_deref() {
        _ if arch.is_some() => Config::new(
            Gives::No,
            FOREIGN_ARCH,
            format!(
                "the guest is an {} machine: VT-x and AMD-V are x86 extensions, and KVM runs guests of the host's architecture only",
                arch.unwrap_or_default()
            ),
        ),
        Some("kvm") => cfg,
        Some("qemu") => Config::new(
            Gives::No,
            "emulated",
            "domain type qemu runs under QEMU's emulator (TCG), which cannot give a guest hardware VT-x or AMD-V; it needs type kvm",
        ),
        Some(t) => Config::new(
            Gives::Unknown,
            "unsupported_type",
            format!("domain type {t} is not a KVM guest"),
        ),
        None => return Err(("invalid", "<domain> has no type attribute".into())),
    };
    Ok(Domain {
        name,
        domain_type,
        nova_uuid,
        cpu_text: cpu.map(|c| text_of(text, c)),
        cpu: cpu_desc,
        config,
    })
}

fn other(ext: Extension) -> Extension {
    if ext == Extension::Vmx {
        Extension::Svm
    } else {
        Extension::Vmx
    }
}

pub(crate) fn host_model_config(ctx: &Ctx<'_>, ext: Extension, what: &str) -> Config {
    let name = ext.as_str();
    match (ctx.host_model, ext) {
        (Some(true), _) => Config::new(
            Gives::Yes,
            "host_model_includes",
            format!("{what}: the host-model CPU (`virsh domcapabilities`) requires {name}"),
        ),
        (Some(false), _) => Config::new(
            Gives::No,
            "host_model_lacks",
            format!("{what}: the host-model CPU (`virsh domcapabilities`) does not name {name}, so the guest does not get it"),
        ),
        (None, Extension::Vmx) => Config::new(
            Gives::Yes,
            "host_model_includes",
            format!("{what}: libvirt's host-model CPU names vmx when KVM offers it to guests"),
        ),
        (None, _) => Config::new(
            Gives::No,
            "host_model_lacks",
            format!("{what}: libvirt's host-model takes svm from its EPYC-class model without naming it, and QEMU turns svm off in named models under KVM, so the guest does not get it; require it"),
        ),
    }
}

/// What a `<cpu>` (or its absence) gives, in a few words and as a verdict.
fn judge_cpu(ctx: &Ctx<'_>, cpu: Option<&Node>) -> (String, Config) {
    let Some(ext) = ctx.ext() else {
        return (
            cpu.map_or("none".into(), describe),
            Config::new(
                Gives::Unknown,
                "host_vendor_unknown",
                "the host's CPU vendor is not known, so neither is the extension guests need (pass --cpuid)",
            ),
        );
    };
    let name = ext.as_str();
    let Some(cpu) = cpu else {
        return (
            "none: QEMU's default model (qemu64)".into(),
            Config::new(
                Gives::No,
                "default_model",
                format!("no <cpu>: the guest gets QEMU's default model qemu64, which has no vmx, and QEMU turns svm off in named models under KVM: no {name}"),
            ),
        );
    };
    let desc = describe(cpu);
    let policy_of = |n: &str| {
        cpu.children
            .iter()
            .rev()
            .find(|f| f.name == "feature" && f.attr("name") == Some(n))
            .map(|f| f.attr("policy").unwrap_or("require"))
    };
    let foreign = other(ext).as_str();
    if matches!(policy_of(foreign), Some("require" | "force")) {
        return (
            desc,
            Config::new(
                Gives::No,
                "foreign_extension",
                format!("it requires {foreign}, which this host's CPU cannot give, so libvirt refuses to start it"),
            ),
        );
    }
    match policy_of(name) {
        Some("disable") => {
            return (
                desc,
                Config::new(Gives::No, "feature_disabled", format!("<feature policy='disable' name='{name}'/> withholds {name}")),
            )
        }
        Some("forbid") => {
            return (
                desc,
                Config::new(
                    Gives::No,
                    "feature_forbidden",
                    format!("<feature policy='forbid' name='{name}'/>: libvirt refuses to start it on a host that has {name}"),
                ),
            )
        }
        Some("require" | "force") => {
            return (desc, Config::new(Gives::Yes, "feature_required", format!("it requires {name}")))
        }
        Some("optional") => {
            return (
                desc,
                Config::new(
                    Gives::FollowsHost,
                    "feature_optional",
                    format!("{name} is optional: the guest gets it exactly when the host offers it"),
                ),
            )
        }
        _ => {}
    }
    let mode = cpu.attr("mode").unwrap_or("custom");
    let model = cpu
        .child("model")
        .map(|m| m.text.trim().to_string())
        .filter(|m| !m.is_empty());
    let config = match (mode, model) {
        ("host-passthrough" | "maximum", _) => Config::new(
            Gives::Yes,
            "cpu_passthrough",
            format!("mode {mode} passes {name} through when the host offers it"),
        ),
        ("host-model", _) => host_model_config(ctx, ext, "mode host-model"),
        (_, Some(_)) if cpu.attr("match") == Some("minimum") => {
            host_model_config(ctx, ext, "match minimum (the host-model CPU, at least the model)")
        }
        ("custom", Some(m)) => Config::new(
            Gives::No,
            "model_lacks",
            format!("the named model {m} gives no {name}: no QEMU model includes vmx, and QEMU turns svm off in named models under KVM unless the domain requires it"),
        ),
        ("custom", None) => Config::new(
            Gives::No,
            "default_model",
            format!("the <cpu> names no model, so the guest gets QEMU's default model qemu64: no {name}"),
        ),
        (other, _) => Config::new(
            Gives::Unknown,
            "invalid",
            format!("<cpu mode='{other}'> is not a mode libvirt knows"),
        ),
    };
    (desc, config)
}

fn describe(cpu: &Node) -> String {
    let mode = cpu.attr("mode").unwrap_or("custom");
    let mut s = mode.to_string();
    if let Some(m) = cpu
        .child("model")
        .map(|m| m.text.trim())
        .filter(|m| !m.is_empty())
    {
        s.push(' ');
        s.push_str(m);
    }
    for f in cpu.children.iter().filter(|f| f.name == "feature") {
        if let Some(n @ ("vmx" | "svm")) = f.attr("name") {
            s.push_str(&format!(", {} {n}", f.attr("policy").unwrap_or("require")));
        }
    }
    s
}

fn judge_found(ctx: &Ctx<'_>, f: &Found) -> Guest {
    let file_text = match &f.file {
        Some(Ok(t)) => Some(t.as_str()),
        _ => None,
    };
    let (text, read_from) = match (&f.virsh, file_text) {
        (Some(v), _) => (v.as_str(), ReadFrom::Virsh),
        (None, Some(t)) => (t, ReadFrom::File),
        (None, None) => {
            let fail = match &f.file {
                Some(Err(e)) => e.clone(),
                _ => ReadFail {
                    code: "unreadable",
                    message: format!("{}: no definition could be read", f.name),
                },
            };
            let mut g = broken(
                Source::Libvirt,
                f.name.clone(),
                f.path.clone(),
                fail.code,
                fail.message,
            );
            g.scope = Some(f.scope.clone());
            g.running = f.running;
            return g;
        }
    };
    let running = f.running.or_else(|| {
        (f.scope == "system" && ctx.host.exists("/run/libvirt/qemu"))
            .then(|| ctx.host.exists(&format!("/run/libvirt/qemu/{}.pid", f.name)))
    });
    let d = match judge_domain(ctx, text) {
        Ok(d) => d,
        Err((code, message)) => {
            let what = f.path.as_deref().unwrap_or(&f.name);
            let mut g = broken(
                Source::Libvirt,
                f.name.clone(),
                f.path.clone(),
                code,
                format!("{what}: {message}"),
            );
            g.scope = Some(f.scope.clone());
            g.read_from = read_from;
            g.running = running;
            return g;
        }
    };
    let name = d.name.clone().unwrap_or_else(|| f.name.clone());
    let (gets, reason) = conclude(ctx, &d.config);
    let mut caveats = Vec::new();
    if d.nova_uuid.is_some() {
        caveats.push("nova writes this domain: fix nova.conf (the nova entry) and hard-reboot the instance; a hand edit here is lost at its next hard reboot".into());
    }
    let fix = if ctx.fixes {
        fix_plan(ctx, f, &d, &name, read_from, running)
    } else {
        None
    };
    if gets == Some(true) || fix.as_ref().is_some_and(|p| p.blockers.is_empty()) {
        caveats.extend(vendor_caveats(ctx));
    }
    if fix.is_some() && running == Some(true) {
        caveats.push(cold_restart_caveat(
            &name,
            &format!("`virsh shutdown {name}`, then `virsh start {name}`"),
        ));
    }
    Guest {
        source: Source::Libvirt,
        name,
        path: f.path.clone(),
        id: d.nova_uuid.clone().filter(|u| !u.is_empty()),
        scope: Some(f.scope.clone()),
        read_from,
        managed_by: d.nova_uuid.as_ref().map(|_| "nova".to_string()),
        running,
        cpu: Some(d.cpu.clone()),
        gets_extension: gets,
        reason,
        fix,
        caveats,
    }
}

fn fix_plan(
    ctx: &Ctx<'_>,
    f: &Found,
    d: &Domain,
    name: &str,
    read_from: ReadFrom,
    running: Option<bool>,
) -> Option<Plan> {
    let needs_type = d.domain_type.as_deref() == Some("qemu");
    if d.config.code == FOREIGN_ARCH || (!needs_type && !d.config.needs_fix()) {
        return None;
    }
    let ext = ctx.ext()?;
    let vendor = match ext {
        Extension::Svm => Vendor::Amd,
        _ => Vendor::Intel,
    };
    let mut plan = Plan {
        summary: format!("Give the libvirt domain {name} {}", ext.as_str()),
        ..Plan::default()
    };
    if d.nova_uuid.is_some() {
        plan.blockers.push(crate::plan::Blocker::new(
            "guests.nova_managed",
            format!("nova manages {name}"),
            Some(format!(
                "change nova.conf (see the nova entry), then `openstack server reboot --hard {}`",
                d.nova_uuid.as_deref().unwrap_or(name)
            )),
        ));
        return Some(plan);
    }
    if !matches!(d.config.gives, Gives::No | Gives::Unknown) && !needs_type {
        return None;
    }
    if d.config.code == "unsupported_type"
        || d.config.code == "invalid"
        || d.config.code == "host_vendor_unknown"
    {
        plan.blockers.push(crate::plan::Blocker::new(
            "guests.uneditable",
            format!("nestcore cannot edit this definition: {}", d.config.message),
            None,
        ));
        return Some(plan);
    }
    if needs_type && ctx.view.kvm_usable == Some(false) {
        plan.blockers.push(crate::plan::Blocker::new(
            "guests.kvm_unusable",
            "KVM is not usable on this host: turning the domain to type kvm would stop it from starting",
            Some("see `nestcore check`".into()),
        ));
        return Some(plan);
    }
    let (Some(path), Some(Ok(file))) = (&f.path, &f.file) else {
        plan.blockers.push(crate::plan::Blocker::new(
            "guests.no_definition_file",
            format!(
                "{name} has no definition file nestcore can read ({})",
                f.path.as_deref().unwrap_or("transient or defined elsewhere")
            ),
            Some(format!(
                "define it persistently (`virsh dumpxml {name} > FILE; virsh define FILE`) and run again"
            )),
        ));
        return Some(plan);
    };
    if read_from == ReadFrom::Virsh {
        let from_file = judge_domain(ctx, file).ok();
        // The same <cpu> and type, whatever the line breaks and indentation.
        let norm = |t: &Option<String>| {
            t.as_deref()
                .map(|t| t.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        };
        let same = from_file
            .as_ref()
            .is_some_and(|ff| norm(&ff.cpu_text) == norm(&d.cpu_text) && ff.domain_type == d.domain_type);
        if !same {
            plan.blockers.push(crate::plan::Blocker::new(
                "guests.definition_differs",
                format!("{path} differs from the definition libvirt holds (edited without `virsh define`?)"),
                Some(format!(
                    "make them agree (`virsh dumpxml --inactive {name} > {path}`, or `virsh define {path}` if the file is right) and run again"
                )),
            ));
            return Some(plan);
        }
    }
    let mut text = file.clone();
    let mut changes: Vec<String> = Vec::new();
    let mut step = |r: crate::Result<lv::Edit>, text: &mut String| -> Result<(), String> {
        let e = r.map_err(|e| e.to_string())?;
        changes.extend(e.changes.iter().cloned());
        *text = e.xml;
        Ok(())
    };
    let foreign = other(ext);
    let res = (|| {
        if needs_type {
            step(lv::ensure_kvm_type(&text), &mut text)?;
        }
        if d.config.code == "foreign_extension" {
            let fv = if foreign == Extension::Svm {
                Vendor::Amd
            } else {
                Vendor::Intel
            };
            step(lv::disable_nested(&text, fv), &mut text)?;
        }
        step(lv::ensure_nested(&text, vendor), &mut text)
    })();
    if let Err(e) = res {
        plan.blockers.push(crate::plan::Blocker::new(
            "guests.uneditable",
            format!("nestcore cannot edit {path}: {e}"),
            None,
        ));
        return Some(plan);
    }
    if text == *file {
        return None;
    }
    plan.actions.push(Action::WriteFile {
        path: path.clone(),
        old: Some(file.clone()),
        new: text.clone(),
        diff: unified_diff(path, Some(file), &text),
        reason: changes.join("; "),
        when: When::AfterRestart,
    });
    if f.scope == "system" {
        let have_virsh = !ctx.host.is_live() || crate::plan::find_program(ctx.host, "virsh").is_some();
        if have_virsh {
            plan.actions.push(Action::Run {
                command: Command::new("virsh", &["-c", URI, "define", path]),
                reason: "libvirt takes the edited definition (and writes the file in its own form)".into(),
                when: When::AfterRestart,
            });
        } else {
            plan.warnings.push(
                "virsh is not installed: libvirt reads the edited file when its daemon next starts".into(),
            );
        }
    } else {
        let user = f.scope.trim_start_matches("session:");
        plan.warnings.push(format!(
            "a session domain of {user}: if {user}'s libvirt session daemon runs, run as {user} `virsh -c qemu:///session define {path}` (else it reads the file when it next starts)"
        ));
    }
    plan.timeline.push((
        When::AfterRestart,
        format!("{name} gets {} at its next full stop and start", ext.as_str()),
    ));
    if running == Some(true) {
        plan.warnings.push(cold_restart_caveat(
            name,
            &format!("`virsh shutdown {name}`, then `virsh start {name}`"),
        ));
    }
    Some(plan)
}
