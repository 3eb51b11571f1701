//! Turning nested virtualization on or off: reading where the host stands and planning the
//! change ([`plan()`]), for any of three persistence layers:
//!
//! - `runtime`: reload the vendor module now (`modprobe -r kvm_intel`, then
//!   `modprobe kvm_intel nested=1`); only for a loadable module that nothing uses;
//! - `modprobe`: a nestcore drop-in in /etc/modprobe.d (and the initramfs regenerated when
//!   the modules load from it);
//! - `cmdline`: `kvm-intel.nested=1` / `kvm-amd.nested=1` on the kernel command line of
//!   every boot loader configuration found.
//!
//! Values are written `1` / `0` for both modules (`nested=y` is invalid for kvm_amd's int).

use serde::Serialize;

use crate::bootloader::{self, ArgsEdit, Selection};
use crate::cmdline::Cmdline;
use crate::error::{Error, Result};
use crate::modprobe::{self, ModprobeConfig};
use crate::plan::{self, unified_diff, Action, Command, Executor, Plan, When};
use crate::Host;

/// The wanted state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Want {
    /// Nested virtualization on.
    On,
    /// Nested virtualization off.
    Off,
}

impl Want {
    /// The value nestcore writes: `1` or `0`.
    pub fn value(self) -> &'static str {
        match self {
            Want::On => "1",
            Want::Off => "0",
        }
    }

    /// As a boolean.
    pub fn as_bool(self) -> bool {
        self == Want::On
    }
}

/// Which layers to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Persist {
    /// Reload the module now.
    pub runtime: bool,
    /// Write the modprobe.d drop-in.
    pub modprobe: bool,
    /// Edit the kernel command line in the boot loader configurations.
    pub cmdline: bool,
}

impl Persist {
    /// From names: runtime, modprobe, cmdline (also `all`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for another name.
    pub fn from_names(names: &[&str]) -> Result<Persist> {
        let mut p = Persist::default();
        for n in names {
            for n in n.split(',').filter(|x| !x.is_empty()) {
                match n {
                    "runtime" => p.runtime = true,
                    "modprobe" => p.modprobe = true,
                    "cmdline" => p.cmdline = true,
                    "all" => {
                        p = Persist {
                            runtime: true,
                            modprobe: true,
                            cmdline: true,
                        }
                    }
                    other => {
                        return Err(Error::InvalidInput(format!(
                            "Unknown persistence {other:?} (expected runtime, modprobe, cmdline)"
                        )))
                    }
                }
            }
        }
        Ok(p)
    }
}

/// Options of the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct Options {
    /// Neutralise conflicting modprobe.d lines (comment them out with nestcore's marker, or
    /// override a distribution file with a same-named file in /etc) instead of reporting them
    /// as blockers.
    pub neutralise_conflicts: bool,
}

/// Whether the vendor module can be reloaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ModuleState {
    /// Loaded as a module.
    Loaded {
        /// `refcnt`.
        refcnt: Option<u32>,
        /// Modules in `holders/`.
        holders: Vec<String>,
    },
    /// Built into the kernel.
    BuiltIn {
        /// What proved it.
        evidence: String,
    },
    /// Not loaded.
    NotLoaded,
}

/// Where the host stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct State {
    /// `kvm_intel` or `kvm_amd`.
    pub module: String,
    /// How the module was determined.
    pub module_evidence: String,
    /// The runtime value of `nested` (`None`: module not loaded / unreadable).
    pub runtime: Option<bool>,
    /// The module's state.
    pub module_state: ModuleState,
    /// The modprobe.d line that wins for `nested`, as `file:line`, and its value.
    pub modprobe: Option<(String, Option<String>)>,
    /// The running kernel's command-line value for `<module>.nested`.
    pub running_cmdline: Option<Option<String>>,
}

/// The module name on the kernel command line (`kvm-intel`).
fn cmdline_name(module: &str) -> String {
    format!("{}.nested", module.replace('_', "-"))
}

/// Finds the vendor module: /proc/cpuinfo's first `vendor_id`, else which module is in sysfs.
///
/// # Errors
/// [`Error::Unsupported`] when neither tells.
pub fn vendor_module(host: &Host) -> Result<(String, String)> {
    if let Ok(text) = host.read_until("/proc/cpuinfo", |l| l.trim().is_empty()) {
        for l in text.lines() {
            if let Some((k, v)) = l.split_once(':') {
                if k.trim() == "vendor_id" {
                    let id = v.strip_prefix(' ').unwrap_or(v).trim_end_matches(['\n', '\r']);
                    let vendor = crate::cpu::Vendor::from_vendor_id(id);
                    let vendor = if vendor == crate::cpu::Vendor::Other {
                        crate::cpu::Vendor::from_vendor_id(id.trim())
                    } else {
                        vendor
                    };
                    if let Some(m) = vendor.kvm_module() {
                        return Ok((m.to_string(), format!("/proc/cpuinfo vendor_id {id:?}")));
                    }
                }
            }
        }
    }
    for m in ["kvm_intel", "kvm_amd"] {
        if host.exists(&format!("/sys/module/{m}")) {
            return Ok((m.to_string(), format!("/sys/module/{m} exists")));
        }
    }
    Err(Error::Unsupported(
        "Cannot tell the KVM vendor module: no x86 vendor_id in /proc/cpuinfo and no /sys/module/kvm_intel or kvm_amd"
            .into(),
    ))
}

fn module_state(host: &Host, m: &str) -> ModuleState {
    let sysfs = crate::kvm::read_module(host, m);
    match sysfs.state {
        crate::kvm::ModuleState::Loaded => ModuleState::Loaded {
            refcnt: sysfs.refcnt,
            holders: sysfs.holders,
        },
        crate::kvm::ModuleState::Builtin => ModuleState::BuiltIn {
            evidence: format!("/sys/module/{m} has parameters but no initstate"),
        },
        crate::kvm::ModuleState::Absent | crate::kvm::ModuleState::Loadable => {
            // Not in sysfs: built in all the same when the kernel's list says so.
            let Ok(release) = host.read_trimmed("/proc/sys/kernel/osrelease") else {
                return ModuleState::NotLoaded;
            };
            let p = format!("/lib/modules/{release}/modules.builtin");
            let file = format!("{}.ko", m.replace('_', "-"));
            let listed = host.read(&p).is_ok_and(|t| {
                t.lines()
                    .any(|l| l.rsplit('/').next() == Some(file.as_str()) || l.ends_with(&format!("/{m}.ko")))
            });
            if listed {
                ModuleState::BuiltIn {
                    evidence: format!("{p} lists {file}"),
                }
            } else {
                ModuleState::NotLoaded
            }
        }
    }
}

/// Processes that hold /dev/kvm open (live host only; best effort).
fn kvm_users(host: &Host) -> Vec<String> {
    if !host.is_live() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for pid in host.read_dir("/proc").unwrap_or_default() {
        if !pid.bytes().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let fds = host.read_dir(&format!("/proc/{pid}/fd")).unwrap_or_default();
        if fds.iter().any(|fd| {
            std::fs::read_link(host.path(&format!("/proc/{pid}/fd/{fd}")))
                .is_ok_and(|t| t == std::path::Path::new("/dev/kvm"))
        }) {
            let comm = host
                .read_trimmed(&format!("/proc/{pid}/comm"))
                .unwrap_or_default();
            out.push(format!("{pid} ({comm})"));
        }
        if out.len() >= 20 {
            break;
        }
    }
    out
}

/// Reads where the host stands.
///
/// # Errors
/// As [`vendor_module`] and [`modprobe::load`].
pub fn state(host: &Host) -> Result<State> {
    let (module, module_evidence) = vendor_module(host)?;
    let runtime = host
        .read_trimmed(&format!("/sys/module/{module}/parameters/nested"))
        .ok()
        .and_then(|v| modprobe::parse_bool(&v));
    let cfg = modprobe::load(host)?;
    let modprobe = cfg
        .effective(&module, "nested")
        .map(|o| (o.location(), o.value.clone()));
    let module_state = module_state(host, &module);
    let builtin = matches!(module_state, ModuleState::BuiltIn { .. });
    let running_cmdline = host
        .read("/proc/cmdline")
        .ok()
        .and_then(|c| Cmdline::parse(c.trim_end()).module_param(&format!("{module}.nested"), builtin));
    Ok(State {
        module_state,
        module,
        module_evidence,
        runtime,
        modprobe,
        running_cmdline,
    })
}

/// A file nestcore may edit, found on the host, with its content.
struct Found {
    path: String,
    text: String,
}

/// Reads `abs` when it is a regular file inside the root; a symlink is followed (within the
/// root) and the plan names its target.
fn read_config(host: &Host, abs: &str) -> Result<Option<Found>> {
    let root = host.root();
    let meta = std::fs::symlink_metadata(host.path(abs));
    let path = match meta {
        Err(_) => return Ok(None),
        Ok(m) if m.file_type().is_symlink() => {
            let target = std::fs::canonicalize(host.path(abs)).map_err(|e| Error::io(abs, e))?;
            let root_c = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
            let rel = target
                .strip_prefix(&root_c)
                .map_err(|_| Error::Unsupported(format!("{abs} is a symlink that leads out of the root")))?;
            format!("/{}", rel.display())
        }
        Ok(m) if !m.is_file() => return Ok(None),
        Ok(_) => abs.to_string(),
    };
    match host.read(&path) {
        Ok(text) => Ok(Some(Found { path, text })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

fn write_action(path: &str, old: Option<&str>, new: String, reason: String, when: When) -> Option<Action> {
    if old == Some(new.as_str()) {
        return None;
    }
    Some(Action::WriteFile {
        diff: unified_diff(path, old, &new),
        path: path.to_string(),
        old: old.map(str::to_string),
        new,
        reason,
        when,
    })
}

/// Plans nested virtualization `want` for the layers in `persist`.
///
/// # Errors
/// [`Error::Unsupported`] when the vendor module cannot be determined, or a runtime reload was
/// asked for and is impossible (built in, in use): the message says why and points to the
/// command-line path. [`Error::Parse`] for a configuration nestcore cannot edit safely.
pub fn plan(host: &Host, want: Want, persist: Persist) -> Result<Plan> {
    plan_with(host, want, persist, Options::default())
}

/// [`plan()`] with [`Options`].
///
/// # Errors
/// As [`plan()`].
pub fn plan_with(host: &Host, want: Want, persist: Persist, opts: Options) -> Result<Plan> {
    if !(persist.runtime || persist.modprobe || persist.cmdline) {
        return Err(Error::InvalidInput(
            "Nothing to change: persist names none of runtime, modprobe, cmdline".into(),
        ));
    }
    let st = state(host)?;
    let m = st.module.clone();
    let v = want.value();
    let mut p = Plan::default();
    p.warnings.push(format!("{m} chosen from {}", st.module_evidence));
    let mut changes = Vec::new();

    // Runtime.
    if persist.runtime && st.runtime != Some(want.as_bool()) {
        let cl = cmdline_name(&m);
        match &st.module_state {
            ModuleState::BuiltIn { evidence } => {
                return Err(Error::Unsupported(format!(
                    "{m} is built into the kernel ({evidence}): it cannot be reloaded; \
                     persist with cmdline ({cl}={v}) and reboot"
                )))
            }
            ModuleState::Loaded { refcnt, holders } if refcnt.unwrap_or(0) > 0 || !holders.is_empty() => {
                let users = kvm_users(host);
                let who = if users.is_empty() {
                    String::new()
                } else {
                    format!("; /dev/kvm is open in {}", users.join(", "))
                };
                return Err(Error::Unsupported(format!(
                    "{m} is in use (refcnt {}, holders [{}]{who}): stop the virtual machines first, \
                     or persist with modprobe/cmdline ({cl}={v}) and reboot",
                    refcnt.unwrap_or(0),
                    holders.join(", ")
                )));
            }
            state => {
                let loaded = matches!(state, ModuleState::Loaded { .. });
                p.actions.push(Action::ReloadModule {
                    module: m.clone(),
                    params: vec![("nested".into(), v.into())],
                    previous: st.runtime.map(|b| if b { "1" } else { "0" }.to_string()),
                    loaded,
                    reason: format!(
                        "{m} nested is {} now",
                        st.runtime
                            .map(|b| if b { "on" } else { "off" })
                            .unwrap_or("unknown (not loaded)")
                    ),
                });
                p.verify = Some(plan::Verify {
                    path: format!("/sys/module/{m}/parameters/nested"),
                    want: want.as_bool(),
                });
                p.timeline
                    .push((When::Now, format!("{m} reloaded with nested={v}")));
                changes.push("runtime");
            }
        }
    }

    // modprobe.d.
    if persist.modprobe {
        let n = plan_modprobe(host, &m, want, opts, &mut p)?;
        if n > 0 {
            changes.push("modprobe.d");
        }
    }

    // Kernel command line.
    if persist.cmdline {
        let n = plan_cmdline(host, &m, want, &mut p)?;
        if n > 0 {
            changes.push("kernel command line");
        }
    }

    let now = st
        .runtime
        .map(|b| if b { "on" } else { "off" })
        .unwrap_or("unknown");
    p.summary = if p.actions.is_empty() && p.blockers.is_empty() {
        format!(
            "{m} nested is already {} for the layers asked (runtime: {now}): nothing to do.",
            wanted(want)
        )
    } else if !p.blockers.is_empty() {
        format!(
            "Turning {m} nested {} is blocked (runtime now: {now}).",
            wanted(want)
        )
    } else {
        format!(
            "Turn {m} nested {} (runtime now: {now}) via {}.",
            wanted(want),
            changes.join(", ")
        )
    };
    Ok(p)
}

fn wanted(w: Want) -> &'static str {
    match w {
        Want::On => "on",
        Want::Off => "off",
    }
}

/// Plans the modprobe.d part; returns the number of actions added.
fn plan_modprobe(host: &Host, m: &str, want: Want, opts: Options, p: &mut Plan) -> Result<usize> {
    let before = p.actions.len();
    let v = want.value();
    let cfg = modprobe::load(host)?;
    let contributions = cfg.contributions(m, "nested");
    for c in &contributions {
        p.warnings.push(format!(
            "{} sets {m} nested={}",
            c.location(),
            c.value.as_deref().unwrap_or("(bare)")
        ));
    }
    let ok = |o: &modprobe::OptionSource| {
        o.value.as_deref().and_then(modprobe::parse_bool) == Some(want.as_bool())
    };
    let effective_ok = cfg.effective(m, "nested").is_some_and(ok);
    let drop_in_name = modprobe::file_name(modprobe::DROP_IN);
    // Lines that would beat the drop-in: later file names with another value.
    let conflicts: Vec<&&modprobe::OptionSource> = contributions
        .iter()
        .filter(|o| !ok(o) && o.file != modprobe::DROP_IN)
        .filter(|o| opts.neutralise_conflicts || ModprobeConfig::sorts_after(&o.file, drop_in_name))
        .collect();
    if effective_ok
        && conflicts
            .iter()
            .all(|o| !ModprobeConfig::sorts_after(&o.file, drop_in_name))
    {
        return Ok(0);
    }
    for c in &conflicts {
        if !opts.neutralise_conflicts {
            p.blockers.push(format!(
                "{} sets {m} nested={} and is read after {}: it would win. Remove that line, or plan \
                 again with neutralise_conflicts to comment it out",
                c.location(),
                c.value.as_deref().unwrap_or(""),
                modprobe::DROP_IN
            ));
        }
    }
    if opts.neutralise_conflicts {
        let mut files: Vec<&str> = conflicts.iter().map(|o| o.file.as_str()).collect();
        files.dedup();
        for f in files {
            let text = host.read(f).map_err(|e| Error::io(f, e))?;
            let new = modprobe::neutralise(&text, m, "nested");
            // A distribution file is overridden by a same-named file in /etc (kmod's rule),
            // which survives package updates; an /etc file is edited in place.
            let (target, old) = if f.starts_with("/etc/") {
                (f.to_string(), Some(text.clone()))
            } else {
                let t = format!("/etc/modprobe.d/{}", modprobe::file_name(f));
                (t, None)
            };
            if let Some(a) = write_action(
                &target,
                old.as_deref(),
                new,
                format!("neutralise the {m} nested setting of {f}"),
                When::AfterReload,
            ) {
                p.actions.push(a);
            }
        }
    }
    let current = read_config(host, modprobe::DROP_IN)?;
    if let Some(a) = write_action(
        modprobe::DROP_IN,
        current.as_ref().map(|c| c.text.as_str()),
        modprobe::drop_in_text(m, v),
        format!("options {m} nested={v} whenever {m} loads"),
        When::AfterReload,
    ) {
        p.actions.push(a);
    }
    if p.actions.len() > before {
        p.timeline.push((
            When::AfterReload,
            format!("{m} loads with nested={v} (modprobe.d)"),
        ));
        if let Some(cmd) = initramfs_command(host, m) {
            p.actions.push(Action::Run {
                reason: "the kvm modules load from the initramfs, whose copy of modprobe.d must match".into(),
                command: cmd,
                when: When::AfterReboot,
            });
            p.timeline.push((
                When::AfterReboot,
                "the regenerated initramfs carries the new options".into(),
            ));
        }
    }
    Ok(p.actions.len() - before)
}

/// The initramfs regeneration command when the kvm modules are put into the initramfs.
fn initramfs_command(host: &Host, m: &str) -> Option<Command> {
    let mentions = |t: &str| {
        t.lines().any(|l| {
            let l = l.trim_start();
            !l.starts_with('#') && (l.contains("kvm") || l.contains(m) || l.contains(&m.replace('_', "-")))
        })
    };
    let mut dracut = host.read("/etc/dracut.conf").is_ok_and(|t| mentions(&t));
    for n in host.read_dir("/etc/dracut.conf.d").unwrap_or_default() {
        if n.ends_with(".conf")
            && host
                .read(&format!("/etc/dracut.conf.d/{n}"))
                .is_ok_and(|t| mentions(&t))
        {
            dracut = true;
        }
    }
    if dracut {
        return Some(Command::new("dracut", &["--force", "--regenerate-all"]));
    }
    let it = host.read("/etc/initramfs-tools/modules").is_ok_and(|t| {
        t.lines().any(|l| {
            let w = l.split_ascii_whitespace().next().unwrap_or("");
            !w.starts_with('#') && (w == "kvm" || w.replace('-', "_") == m)
        })
    });
    if it {
        return Some(Command::new("update-initramfs", &["-u", "-k", "all"]));
    }
    None
}

/// The BLS entry folders nestcore looks in.
const BLS_DIRS: [&str; 3] = [
    "/boot/loader/entries",
    "/efi/loader/entries",
    "/boot/efi/loader/entries",
];
/// GRUB legacy configurations.
const GRUB_LEGACY: [&str; 3] = ["/boot/grub/grub.conf", "/boot/grub/menu.lst", "/etc/grub.conf"];
/// extlinux / syslinux configurations.
const EXTLINUX: [&str; 4] = [
    "/boot/extlinux/extlinux.conf",
    "/boot/syslinux/syslinux.cfg",
    "/boot/extlinux.conf",
    "/extlinux.conf",
];
/// grub.cfg candidates for grub2-mkconfig -o.
const GRUB_CFG: [&str; 2] = ["/boot/grub2/grub.cfg", "/boot/grub/grub.cfg"];

/// Plans the kernel command-line part; returns the number of actions added.
fn plan_cmdline(host: &Host, m: &str, want: Want, p: &mut Plan) -> Result<usize> {
    let before = p.actions.len();
    let name = cmdline_name(m);
    let v = want.value();
    let edit = ArgsEdit::set(&name, v);
    let reason = format!("{name}={v} on the kernel command line");
    let mut loaders = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // Returns false for a file already planned (a symlink such as /etc/grub.conf).
    let mut push = |p: &mut Plan, path: &str, old: &str, new: String, why: &str| -> bool {
        if !seen.insert(path.to_string()) {
            return false;
        }
        if let Some(a) = write_action(path, Some(old), new, why.to_string(), When::AfterReboot) {
            p.actions.push(a);
        }
        true
    };

    // BLS entries (Fedora/RHEL 8+, systemd-boot).
    let mut bls_entries = 0;
    let mut needs_kernelopts = false;
    for dir in BLS_DIRS {
        for n in host.read_dir(dir).unwrap_or_default() {
            if !n.ends_with(".conf") {
                continue;
            }
            let Some(f) = read_config(host, &format!("{dir}/{n}"))? else {
                continue;
            };
            bls_entries += 1;
            let e = bootloader::bls::parse(&f.text);
            let new = if e.uses_kernelopts() {
                needs_kernelopts = true;
                bootloader::bls::edit_entry(&f.text, &edit.removals_only())?
            } else {
                bootloader::bls::edit_entry(&f.text, &edit)?
            };
            push(p, &f.path, &f.text, new, &reason);
        }
    }
    if bls_entries > 0 {
        loaders.push("BLS entries");
    }
    if needs_kernelopts {
        let mut done = false;
        for env in [
            "/boot/grub2/grubenv",
            "/boot/efi/EFI/redhat/grubenv",
            "/boot/grub/grubenv",
        ] {
            if let Some(f) = read_config(host, env)? {
                let new = bootloader::bls::edit_grubenv(&f.text, bootloader::bls::KERNELOPTS, &edit)?;
                push(p, &f.path, &f.text, new, &format!("{reason} ($kernelopts)"));
                done = true;
                break;
            }
        }
        if !done {
            p.blockers
                .push("BLS entries use $kernelopts but no grubenv was found".into());
        }
    }
    if let Some(f) = read_config(host, "/etc/kernel/cmdline")? {
        let new = bootloader::kernel_cmdline::edit(&f.text, &edit)?;
        push(
            p,
            &f.path,
            &f.text,
            new,
            &format!("{reason} (kernels installed later)"),
        );
        loaders.push("/etc/kernel/cmdline");
    }

    // GRUB 2 defaults.
    if let Some(f) = read_config(host, "/etc/default/grub")? {
        let mut new = bootloader::grub2::edit(&f.text, bootloader::grub2::CMDLINE_VAR, &edit)?;
        new = bootloader::grub2::edit(
            &new,
            bootloader::grub2::CMDLINE_DEFAULT_VAR,
            &edit.removals_only(),
        )?;
        let changed = new != f.text;
        push(
            p,
            &f.path,
            &f.text,
            new,
            &format!("{reason} (GRUB_CMDLINE_LINUX)"),
        );
        for n in host.read_dir("/etc/default/grub.d").unwrap_or_default() {
            if !n.ends_with(".cfg") {
                continue;
            }
            let Some(g) = read_config(host, &format!("/etc/default/grub.d/{n}"))? else {
                continue;
            };
            let mut gn =
                bootloader::grub2::edit(&g.text, bootloader::grub2::CMDLINE_VAR, &edit.removals_only())?;
            gn = bootloader::grub2::edit(&gn, bootloader::grub2::CMDLINE_DEFAULT_VAR, &edit.removals_only())?;
            if gn != g.text {
                push(
                    p,
                    &g.path,
                    &g.text,
                    gn,
                    &format!("remove {name} that would override /etc/default/grub"),
                );
            }
        }
        loaders.push("GRUB 2");
        let regen = changed
            || p.actions.iter().any(
                |a| matches!(a, Action::WriteFile { path, .. } if path.starts_with("/etc/default/grub.d/")),
            );
        if bls_entries == 0 && regen {
            let cmd = if plan::find_program(host, "update-grub").is_some() {
                Command::new("update-grub", &[])
            } else {
                let cfg = GRUB_CFG
                    .iter()
                    .map(|s| s.to_string())
                    .chain(
                        host.read_dir("/boot/efi/EFI")
                            .unwrap_or_default()
                            .into_iter()
                            .map(|d| format!("/boot/efi/EFI/{d}/grub.cfg")),
                    )
                    .find(|c| host.exists(c))
                    .unwrap_or_else(|| "/boot/grub2/grub.cfg".to_string());
                let prog = if plan::find_program(host, "grub2-mkconfig").is_some() || cfg.contains("grub2") {
                    "grub2-mkconfig"
                } else {
                    "grub-mkconfig"
                };
                Command::new(prog, &["-o", &cfg])
            };
            p.actions.push(Action::Run {
                command: cmd,
                reason: "regenerate grub.cfg from /etc/default/grub".into(),
                when: When::AfterReboot,
            });
        }
    }

    // GRUB legacy.
    for path in GRUB_LEGACY {
        if let Some(f) = read_config(host, path)? {
            let new = bootloader::grub_legacy::edit(&f.text, &Selection::all_linux(), &edit)?;
            if push(p, &f.path, &f.text, new, &format!("{reason} (every kernel line)")) {
                loaders.push("GRUB legacy");
            }
        }
    }
    // extlinux.
    for path in EXTLINUX {
        if let Some(f) = read_config(host, path)? {
            let new = bootloader::extlinux::edit(&f.text, &Selection::all_linux(), &edit)?;
            if push(p, &f.path, &f.text, new, &format!("{reason} (every append line)")) {
                loaders.push("extlinux");
            }
        }
    }
    if loaders.is_empty() {
        p.blockers.push(format!(
            "No boot loader configuration found (looked for BLS entries, /etc/kernel/cmdline, /etc/default/grub, \
             grub.conf/menu.lst, extlinux.conf): add {name}={v} to the kernel command line by hand"
        ));
    } else {
        p.warnings
            .push(format!("kernel command line found in: {}", loaders.join(", ")));
    }
    if p.actions.len() > before {
        p.timeline
            .push((When::AfterReboot, format!("the kernel boots with {name}={v}")));
    }
    Ok(p.actions.len() - before)
}

/// What `nestcore enable` prints and its exit code: 0 when the host is (or, after `apply`,
/// ends) as wanted, 1 when not (a plan not applied, or blocked). `persist` defaults to
/// `modprobe`.
///
/// # Errors
/// As [`plan()`] and [`Plan::apply`].
pub fn enable_cli(
    host: &Host,
    off: bool,
    persist: &[&str],
    apply: bool,
    json: bool,
    exec: &dyn Executor,
) -> Result<(String, i32)> {
    enable_cli_with(host, off, persist, apply, json, Options::default(), exec)
}

/// [`enable_cli`] with [`Options`] (`--neutralise-conflicts`).
///
/// # Errors
/// As [`enable_cli`].
pub fn enable_cli_with(
    host: &Host,
    off: bool,
    persist: &[&str],
    apply: bool,
    json: bool,
    opts: Options,
    exec: &dyn Executor,
) -> Result<(String, i32)> {
    let want = if off { Want::Off } else { Want::On };
    let persist = if persist.is_empty() {
        Persist::from_names(&["modprobe"])?
    } else {
        Persist::from_names(persist)?
    };
    let plan = plan_with(host, want, persist, opts)?;
    let blocked = !plan.blockers.is_empty();
    let report = if apply && !blocked && !plan.is_empty() {
        Some(plan.apply(host, exec)?)
    } else {
        None
    };
    let code = if plan.is_empty() && !blocked || report.is_some() {
        0
    } else {
        1
    };
    let text = if json {
        // A struct, not json!: a map's key order would follow serde_json's preserve_order
        // feature, which a workspace build unifies (the Python crate turns it on).
        #[derive(Serialize)]
        struct Output<'a> {
            plan: &'a Plan,
            report: Option<&'a crate::plan::ApplyReport>,
            exit_code: i32,
        }
        let v = Output {
            plan: &plan,
            report: report.as_ref(),
            exit_code: code,
        };
        serde_json::to_string_pretty(&v).map_err(|e| Error::InvalidInput(e.to_string()))? + "\n"
    } else {
        let mut s = plan.render();
        match &report {
            Some(r) => {
                s.push_str("\nApplied:\n");
                for w in &r.written {
                    s.push_str(&format!(
                        "  wrote {}{}\n",
                        w.path,
                        w.backup
                            .as_ref()
                            .map(|b| format!(" (original saved as {b})"))
                            .unwrap_or_default()
                    ));
                }
                for c in &r.commands {
                    s.push_str(&format!("  ran `{}` (exit {})\n", c.command, c.status));
                }
                for c in &r.deferred {
                    s.push_str(&format!(
                        "  not run (a recorded root): `{c}`: run it in that system\n"
                    ));
                }
                if r.verified == Some(true) {
                    s.push_str("  verified: the module parameter reads as wanted\n");
                }
            }
            None if !plan.is_empty() && !blocked => {
                s.push_str("\nNothing changed: run again with --apply.\n")
            }
            None => {}
        }
        s
    };
    Ok((text, code))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn persist_names() {
        assert_eq!(
            Persist::from_names(&["runtime,cmdline"]).unwrap(),
            Persist {
                runtime: true,
                modprobe: false,
                cmdline: true
            }
        );
        assert!(Persist::from_names(&["disk"]).is_err());
        assert_eq!(cmdline_name("kvm_amd"), "kvm-amd.nested");
    }

    #[test]
    fn vendor_from_cpuinfo_or_sysfs() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("proc")).unwrap();
        std::fs::write(
            d.path().join("proc/cpuinfo"),
            "processor\t: 0\nvendor_id\t:   Shanghai  \n\nprocessor : 1\n",
        )
        .unwrap();
        let h = Host::from_root(d.path()).unwrap();
        assert_eq!(vendor_module(&h).unwrap().0, "kvm_intel");
        std::fs::write(d.path().join("proc/cpuinfo"), "vendor_id\t: HygonGenuine\n").unwrap();
        assert_eq!(vendor_module(&h).unwrap().0, "kvm_amd");
        std::fs::write(d.path().join("proc/cpuinfo"), "cpu\t: POWER9\n").unwrap();
        assert!(vendor_module(&h).is_err());
        std::fs::create_dir_all(d.path().join("sys/module/kvm_amd")).unwrap();
        assert_eq!(vendor_module(&h).unwrap().0, "kvm_amd");
    }

    fn fixture_copy(name: &str) -> tempfile::TempDir {
        fn copy(from: &std::path::Path, to: &std::path::Path) {
            std::fs::create_dir_all(to).unwrap();
            for e in std::fs::read_dir(from).unwrap() {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                let dst = to.join(e.file_name());
                if t.is_symlink() {
                    std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &dst).unwrap();
                } else if t.is_dir() {
                    copy(&e.path(), &dst);
                } else {
                    std::fs::copy(e.path(), &dst).unwrap();
                }
            }
        }
        let d = tempfile::tempdir().unwrap();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/enable")
            .join(name)
            .join("root");
        copy(&src, d.path());
        d
    }

    #[test]
    fn enable_cli_exit_codes() {
        let exec = crate::plan::RecordingExecutor::new();
        let d = fixture_copy("already-on");
        let h = Host::from_root(d.path()).unwrap();
        let (text, code) = enable_cli(&h, false, &["runtime", "modprobe"], false, false, &exec).unwrap();
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("nothing to do"));

        let d = fixture_copy("systemd-boot");
        let h = Host::from_root(d.path()).unwrap();
        let (text, code) = enable_cli(&h, false, &["cmdline"], false, true, &exec).unwrap();
        assert_eq!(code, 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["plan"]["actions"].as_array().unwrap().len(), 2);
        assert!(v["report"].is_null());
        let (text, code) = enable_cli(&h, false, &["cmdline"], true, false, &exec).unwrap();
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("original saved as /etc/kernel/cmdline.nestcore-bak"));
        let (_, code) = enable_cli(&h, false, &["cmdline"], false, false, &exec).unwrap();
        assert_eq!(code, 0);
        // Off undoes it by writing 0 (the kernel default is on).
        let (text, code) = enable_cli(&h, true, &["cmdline"], true, false, &exec).unwrap();
        assert_eq!(code, 0);
        assert!(text.contains("kvm-intel.nested=0"));

        let d = fixture_copy("conflict-distro");
        let h = Host::from_root(d.path()).unwrap();
        let (text, code) = enable_cli(&h, false, &[], true, false, &exec).unwrap();
        assert_eq!(code, 1);
        assert!(text.contains("blocked:"));
        assert!(enable_cli(&h, false, &["disk"], false, false, &exec).is_err());
        assert!(exec.calls().is_empty());
    }

    #[test]
    fn amd_values_are_integers() {
        let d = fixture_copy("amd-host");
        let h = Host::from_root(d.path()).unwrap();
        let p = plan(
            &h,
            Want::On,
            Persist {
                runtime: true,
                modprobe: true,
                cmdline: false,
            },
        )
        .unwrap();
        let all = serde_json::to_string(&p).unwrap();
        assert!(all.contains("options kvm_amd nested=1"));
        assert!(!all.contains("nested=y") && !all.contains("nested=Y"));
        let cmds: Vec<String> = p
            .actions
            .iter()
            .flat_map(|a| a.commands())
            .map(|c| c.to_string())
            .collect();
        assert!(
            cmds.contains(&"modprobe kvm_amd nested=1".to_string()),
            "{cmds:?}"
        );
    }
}
