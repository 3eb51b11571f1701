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
use crate::plan::{self, unified_diff, Action, Blocker, Command, Executor, Plan, When};
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

impl Persist {
    /// The layers' names, in the order runtime, modprobe, cmdline.
    pub fn names(self) -> Vec<&'static str> {
        [
            (self.runtime, "runtime"),
            (self.modprobe, "modprobe"),
            (self.cmdline, "cmdline"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect()
    }
}

/// Whose words the planner's messages use for its options: a blocker tells a CLI user
/// `--neutralise-conflicts`, a Python user `neutralise_conflicts=True`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Dialect {
    /// The Rust API: `Options::neutralise_conflicts`, `Persist { cmdline: true, .. }`.
    #[default]
    Rust,
    /// The `nestcore` command: `--neutralise-conflicts`, `--persist modprobe,cmdline`.
    Cli,
    /// The C API: `NESTCORE_PLAN_NEUTRALISE_CONFLICTS`, `NESTCORE_PERSIST_CMDLINE`.
    C,
    /// The Python API: `neutralise_conflicts=True`, `persist=("modprobe", "cmdline")`.
    Python,
    /// The Ansible module: `neutralise_conflicts: true`, `persist: [modprobe, cmdline]`.
    Ansible,
}

impl Dialect {
    /// The dialect for a name: rust, cli, c, python, ansible.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for another name.
    pub fn from_name(name: &str) -> Result<Dialect> {
        Ok(match name {
            "rust" => Dialect::Rust,
            "cli" => Dialect::Cli,
            "c" => Dialect::C,
            "python" => Dialect::Python,
            "ansible" => Dialect::Ansible,
            other => {
                return Err(Error::InvalidInput(format!(
                    "Unknown dialect {other:?} (expected rust, cli, c, python or ansible)"
                )))
            }
        })
    }

    /// How this dialect says "neutralise conflicting modprobe.d lines".
    pub fn neutralise_conflicts(self) -> &'static str {
        match self {
            Dialect::Rust => "Options::neutralise_conflicts",
            Dialect::Cli => "--neutralise-conflicts",
            Dialect::C => "NESTCORE_PLAN_NEUTRALISE_CONFLICTS",
            Dialect::Python => "neutralise_conflicts=True",
            Dialect::Ansible => "neutralise_conflicts: true",
        }
    }

    /// How this dialect says "apply even what the verdict says cannot work".
    pub fn force(self) -> &'static str {
        match self {
            Dialect::Rust => "Options::force",
            Dialect::Cli => "--force",
            Dialect::C => "NESTCORE_PLAN_FORCE",
            Dialect::Python => "force=True",
            Dialect::Ansible => "force: true",
        }
    }

    /// How this dialect names the layers `p`.
    pub fn persist(self, p: Persist) -> String {
        let names = p.names();
        match self {
            Dialect::Rust => format!(
                "Persist {{ {} }}",
                names
                    .iter()
                    .map(|n| format!("{n}: true"))
                    .collect::<Vec<_>>()
                    .join(", ")
                    + ", .."
            ),
            Dialect::Cli => format!("--persist {}", names.join(",")),
            Dialect::C => names
                .iter()
                .map(|n| format!("NESTCORE_PERSIST_{}", n.to_ascii_uppercase()))
                .collect::<Vec<_>>()
                .join(" | "),
            Dialect::Python => format!(
                "persist=({}{})",
                names
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if names.len() == 1 { "," } else { "" }
            ),
            Dialect::Ansible => format!("persist: [{}]", names.join(", ")),
        }
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
    /// Plan and apply nesting on even where the verdict says it cannot work (no VMX/SVM, the
    /// firmware disabled it, the hypervisor below does not pass it on, a PVM guest): those
    /// blockers become warnings. Blockers about the plan itself (a conflict, no boot loader
    /// found) stay.
    pub force: bool,
    /// Whose words the messages use for options.
    pub dialect: Dialect,
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
#[derive(Debug)]
struct Found {
    path: String,
    text: String,
}

/// Reads `abs` when it is a regular file; a symlink is followed inside the root, as the host
/// sees it (never out of it), and the plan names its target.
fn read_config(host: &Host, abs: &str) -> Result<Option<Found>> {
    let path = match host.resolve(abs) {
        Ok(p) => p,
        Err(e) => return Err(Error::io(abs, e)),
    };
    match host.metadata(&path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    }
    match host.read_text(&path) {
        Ok(text) => Ok(Some(Found { path, text })),
        Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
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
/// The plan is made against the whole host, not only the layers asked for:
///
/// - nesting on where the verdict ([`crate::check`]) says it cannot work (no VMX/SVM, the
///   firmware disabled it, the hypervisor below does not pass it on, a PVM guest) is blocked
///   with the verdict's reason and remedy ([`Options::force`] plans it anyway);
/// - off is off in every persistent layer that sets nesting on: a modprobe.d line or a boot
///   loader configuration that sets it on is turned off too, whatever `persist` says; the
///   running module keeps its value until it loads again unless `persist.runtime`, and the plan
///   says so (a warning, or the summary of a plan with nothing to do);
/// - another layer that will override the one written is named: kmod applies the kernel command
///   line's module options after modprobe.d, and a built-in module reads only the command line.
///
/// # Errors
/// [`Error::Unsupported`] when a runtime reload was asked for and is impossible (built in, in
/// use): the message says why and points to the command-line path. [`Error::Parse`] for a
/// configuration nestcore cannot edit safely.
pub fn plan(host: &Host, want: Want, persist: Persist) -> Result<Plan> {
    plan_with(host, want, persist, Options::default())
}

/// The verdict's findings that say nesting cannot work on this host, strongest first.
const IMPOSSIBLE: [&str; 4] = [
    "kvm.pvm_backend",
    "cpu.firmware_disabled",
    "cpu.extension_missing",
    "cpu.extension_hidden_by_hypervisor",
];

/// Blockers from the verdict: the findings in [`IMPOSSIBLE`], with their remedies.
fn verdict_blockers(host: &Host) -> Vec<Blocker> {
    let report = crate::check(host);
    let mut found: Vec<&crate::report::Finding> = report
        .verdict
        .findings
        .iter()
        .filter(|f| IMPOSSIBLE.contains(&f.code))
        .collect();
    found.sort_by_key(|f| IMPOSSIBLE.iter().position(|c| *c == f.code));
    found
        .into_iter()
        .map(|f| Blocker::new(f.code, f.message.clone(), f.remedy.clone()))
        .collect()
}

/// One setting of `<module>.nested` in a layer, and where.
#[derive(Debug, Clone)]
struct Setting {
    /// The file (and entry) or `/proc/cmdline`.
    source: String,
    /// The value as written (`None`: a bare name, which turns a bool on).
    value: Option<String>,
    /// `module`, as the value is judged for it.
    module: String,
    /// How the module takes the value when it loads ([`crate::kvm::param_load_value`], the one
    /// judge for every layer): on/off, or refused (the load fails) with why.
    judged: Option<std::result::Result<bool, String>>,
}

impl Setting {
    fn new(module: &str, source: String, value: Option<String>) -> Setting {
        let judged = crate::kvm::param_load_value(module, "nested", value.as_deref());
        Setting {
            source,
            value,
            module: module.to_string(),
            judged,
        }
    }

    fn is_on(&self) -> Option<bool> {
        self.judged.clone().and_then(|j| j.ok())
    }

    /// Why the module refuses to load with this value, when it does.
    fn refused(&self) -> Option<&str> {
        match &self.judged {
            Some(Err(why)) => Some(why),
            _ => None,
        }
    }

    /// `false` for a value that gives `want` once the module loads; a refused value (the load
    /// fails) works against either.
    fn works_against(&self, want: Want) -> bool {
        self.refused().is_some() || self.is_on() == Some(!want.as_bool())
    }

    fn shown(&self, name: &str) -> String {
        let mut s = match &self.value {
            None => format!("{} sets {name}", self.source),
            Some(v) => format!("{} sets {name}={v}", self.source),
        };
        if let Some(why) = self.refused() {
            s.push_str(&format!(", which {} refuses to load with ({why})", self.module));
        }
        s
    }
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
    let d = opts.dialect;
    let mut p = Plan::default();
    // 1. The verdict is the judge of whether nesting can work here at all.
    let mut impossible = if want == Want::On {
        verdict_blockers(host)
    } else {
        Vec::new()
    };
    let (module, module_evidence) = match vendor_module(host) {
        Ok(v) => v,
        Err(Error::Unsupported(why)) => {
            if impossible.is_empty() {
                impossible.push(Blocker::new(
                    "plan.no_vendor_module",
                    why,
                    Some("nestcore enables nesting for kvm_intel and kvm_amd (x86) only".into()),
                ));
            }
            p.blockers = impossible;
            p.summary = format!("Turning nested virtualization {} is blocked.", wanted(want));
            return Ok(p);
        }
        Err(e) => return Err(e),
    };
    let st = state(host)?;
    let m = module;
    let v = want.value();
    let cl = cmdline_name(&m);
    p.notes.push(format!("{m} chosen from {module_evidence}"));
    let builtin = matches!(st.module_state, ModuleState::BuiltIn { .. });

    // 2. Where each layer stands.
    let cfg = modprobe::load(host)?;
    let mod_eff = cfg
        .effective(&m, "nested")
        .map(|o| Setting::new(&m, o.location(), o.value.clone()));
    let boot = find_boot_files(host)?;
    let boot_set = boot_settings(&boot, &m, builtin);
    let running = st
        .running_cmdline
        .clone()
        .map(|value| Setting::new(&m, "/proc/cmdline".into(), value));
    let opposite = |s: &Setting| s.works_against(want);
    let mut persist = persist;
    if want == Want::Off {
        // Off in every layer that sets it on, whoever set it.
        if let Some(s) = mod_eff.as_ref().filter(|s| s.is_on() == Some(true) && !builtin) {
            if !persist.modprobe {
                persist.modprobe = true;
                p.notes.push(format!(
                    "modprobe.d is turned off too: {}, which would turn nesting on again at the next load",
                    s.shown(&format!("{m} nested"))
                ));
            }
        }
        let on: Vec<&Setting> = boot_set.iter().filter(|s| s.is_on() == Some(true)).collect();
        if !on.is_empty() && !persist.cmdline {
            persist.cmdline = true;
            p.notes.push(format!(
                "the kernel command line is turned off too: {}; kmod applies it after modprobe.d",
                on.iter().map(|s| s.shown(&cl)).collect::<Vec<_>>().join("; ")
            ));
        }
    }
    let runtime_ok = st.runtime == Some(want.as_bool());
    if builtin {
        // A built-in module reads only the kernel command line.
        let boot_opposite: Vec<&Setting> = boot_set.iter().filter(|s| opposite(s)).collect();
        if persist.modprobe {
            persist.modprobe = false;
            p.notes.push(format!(
                "modprobe.d is left alone: {m} is built into the kernel, which reads only the kernel command line"
            ));
            if !persist.cmdline && !persist.runtime && (!runtime_ok || !boot_opposite.is_empty()) {
                if want == Want::Off {
                    persist.cmdline = true;
                    p.notes.push(format!(
                        "the kernel command line instead: {m} is built in, only {cl}={v} there turns it off"
                    ));
                } else {
                    p.blockers.push(Blocker::new(
                        "plan.builtin_module",
                        format!(
                            "{m} is built into the kernel: it reads only the kernel command line, and modprobe.d has no effect on it"
                        ),
                        Some(format!(
                            "plan again with {} ({cl}={v}) and reboot",
                            d.persist(Persist {
                                cmdline: true,
                                ..Persist::default()
                            })
                        )),
                    ));
                }
            }
        }
    }

    // 3. The layers.
    let mut changes = Vec::new();
    if persist.runtime && !runtime_ok {
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
    if persist.modprobe && plan_modprobe(host, &m, want, opts, &cfg, &mut p)? > 0 {
        changes.push("modprobe.d");
    }
    if persist.cmdline && plan_cmdline(host, &m, want, &boot, &mut p)? > 0 {
        changes.push("kernel command line");
    }

    // 4. Who overrides whom. kmod reads modprobe.d, then the running kernel's command line
    // (libkmod-config.c kmod_config_new: the files, then kmod_config_parse_kcmdline), and the
    // kernel applies the parameters in that order: the command line wins at every load.
    let name = format!("{m} nested");
    if let Some(r) = running.as_ref().filter(|r| opposite(r)) {
        let unknown_origin = !persist.cmdline
            && persist.modprobe
            && boot.files.is_empty()
            && boot_set.iter().all(|b| !opposite(b));
        let sets = r
            .value
            .as_deref()
            .map(|x| format!("{cl}={x}"))
            .unwrap_or_else(|| cl.clone());
        // A refused value: kmod passes it at every load, before any other, and the kernel
        // refuses the load (kernel/params.c parse_args), explicit `nested=` or not.
        let sets = match r.refused() {
            Some(why) => format!(
                "{sets}, which {m} refuses to load with ({why}): kmod passes it at every load, so every load of {m} \
                 fails"
            ),
            None => sets,
        };
        let until = if persist.cmdline {
            "the edited boot configuration"
        } else {
            "a command line without it"
        };
        if (persist.modprobe || persist.runtime) && !unknown_origin {
            p.warnings.push(if r.refused().is_some() {
                format!(
                    "the running kernel's command line sets {sets}{} until a reboot with {until}",
                    if persist.runtime { ", the reload now too," } else { "" }
                )
            } else {
                format!(
                    "the running kernel's command line sets {sets}: kmod applies it after modprobe.d, so until a reboot \
                     with {until} it wins over {} whenever {m} loads{}",
                    modprobe::DROP_IN,
                    if persist.runtime { " (the reload now passes nested explicitly, which wins)" } else { "" }
                )
            });
        }
        if !persist.cmdline && boot_set.iter().all(|b| !opposite(b)) {
            if unknown_origin {
                // Where it comes from is unknown, so nestcore cannot change that layer: a
                // modprobe.d setting would lose to it after the next boot too.
                p.blockers.push(Blocker::new(
                    "plan.running_cmdline",
                    format!(
                        "the running kernel's command line sets {sets}{}, and no boot loader configuration was found \
                         here to change it",
                        if r.refused().is_some() { "" } else { ", which kmod applies after modprobe.d" }
                    ),
                    Some(format!(
                        "remove {cl} where this kernel's command line comes from (the boot loader, a unified kernel \
                         image, the kernel's built-in command line) and reboot; {} changes the running module now",
                        d.persist(Persist {
                            runtime: true,
                            ..Persist::default()
                        })
                    )),
                ));
            } else if !boot.files.is_empty() {
                p.warnings.push(format!(
                    "no boot loader configuration found here carries the running kernel's {cl}: it came from a \
                     one-off edit at the boot menu, a unified kernel image or the kernel's built-in command line"
                ));
            }
        }
    }
    let boot_opposite: Vec<&Setting> = boot_set.iter().filter(|s| opposite(s)).collect();
    if !persist.cmdline && !boot_opposite.is_empty() && want == Want::On && !builtin {
        p.blockers.push(Blocker::new(
            "plan.overridden",
            format!(
                "{} on the kernel command line, which kmod applies after modprobe.d: nested would be off again \
                 after the next boot",
                boot_opposite.iter().map(|s| s.shown(&cl)).collect::<Vec<_>>().join("; ")
            ),
            Some(format!(
                "plan again with {} to change the kernel command line too",
                d.persist(Persist {
                    cmdline: true,
                    ..persist
                })
            )),
        ));
    }
    if persist.cmdline && !builtin {
        if let Some(s) = mod_eff.as_ref().filter(|s| opposite(s)) {
            if !persist.modprobe {
                p.warnings.push(format!(
                    "{}: the kernel command line wins over it at every load, but it decides again if {cl} is \
                     ever removed",
                    s.shown(&name)
                ));
            }
        }
    }
    if persist.runtime && !persist.modprobe && !persist.cmdline {
        let later: Vec<String> = mod_eff
            .iter()
            .filter(|s| opposite(s))
            .chain(boot_opposite.iter().copied())
            .map(|s| s.shown(&name))
            .collect();
        if !later.is_empty() {
            p.warnings.push(format!(
                "only the running module changes: at its next load {} again",
                later.join("; ")
            ));
        }
    }
    for dir in modprobe::DIRS {
        for n in host.read_dir(dir).unwrap_or_default() {
            if n.ends_with(plan::BACKUP_SUFFIX) {
                p.warnings.push(format!(
                    "{dir}/{n} is a backup an older nestcore left where module-init-tools (CentOS 6's modprobe) \
                     reads every file: remove it, or it may apply its options after nestcore's"
                ));
            }
        }
    }

    // 5. The verdict's blockers, or --force.
    if opts.force {
        for b in impossible {
            p.warnings.push(format!("forced past ({}): {b}", d.force()));
        }
    } else if !impossible.is_empty() {
        for b in impossible.iter_mut() {
            let force = format!("{} writes the configuration anyway", d.force());
            b.remedy = Some(match b.remedy.take() {
                Some(r) => format!("{r} ({force})"),
                None => force,
            });
        }
        impossible.append(&mut p.blockers);
        p.blockers = impossible;
    }

    // 6. The running module keeps what it has until it loads again: no layer but runtime
    // changes it now.
    let lag = (st.runtime == Some(!want.as_bool()) && !persist.runtime).then(|| {
        let is = if want.as_bool() { "off" } else { "on" };
        let until = if builtin {
            format!("until the host reboots with {cl}={v} ({m} is built in and cannot be reloaded)")
        } else {
            format!(
                "until {m} loads again: {} reloads it now (when no VM runs), or reboot",
                d.persist(Persist {
                    runtime: true,
                    ..Persist::default()
                })
            )
        };
        format!("the running {m} still has nested {is}: it stays {is} {until}")
    });
    if let (Some(l), Want::Off) = (&lag, want) {
        if !p.actions.is_empty() {
            p.warnings.push(l.clone());
        }
    }
    let now = st
        .runtime
        .map(|b| if b { "on" } else { "off" })
        .unwrap_or("unknown");
    p.summary = if !p.blockers.is_empty() {
        format!(
            "Turning {m} nested {} is blocked (runtime now: {now}).",
            wanted(want)
        )
    } else if let (true, Some(l)) = (p.actions.is_empty(), &lag) {
        format!(
            "{m} nested is {} in the layers asked ({}): nothing to do there, but {l}.",
            wanted(want),
            persist.names().join(", ")
        )
    } else if p.actions.is_empty() {
        format!(
            "{m} nested is already {} for the layers asked (runtime: {now}): nothing to do.",
            wanted(want)
        )
    } else {
        format!(
            "Turn {m} nested {} (runtime now: {now}) via {}.",
            wanted(want),
            changes.join(", ")
        )
    };
    p.put_actions_in_apply_order();
    Ok(p)
}

fn wanted(w: Want) -> &'static str {
    match w {
        Want::On => "on",
        Want::Off => "off",
    }
}

/// Plans the modprobe.d part; returns the number of actions added.
fn plan_modprobe(
    host: &Host,
    m: &str,
    want: Want,
    opts: Options,
    cfg: &ModprobeConfig,
    p: &mut Plan,
) -> Result<usize> {
    let before = p.actions.len();
    let v = want.value();
    let contributions = cfg.contributions(m, "nested");
    for c in &contributions {
        if c.file != modprobe::DROP_IN {
            p.notes.push(format!(
                "{} sets {m} nested={}",
                c.location(),
                c.value.as_deref().unwrap_or("(bare)")
            ));
        }
    }
    // One judge for every layer: how the module takes the value when it loads.
    let judge = |o: &modprobe::OptionSource| crate::kvm::param_load_value(m, "nested", o.value.as_deref());
    let ok = |o: &modprobe::OptionSource| judge(o) == Some(Ok(want.as_bool()));
    // kmod hands the kernel every options line of the module, and the kernel refuses the load
    // at an invalid value (kernel/params.c parse_args): such a line fails every load, wherever
    // it sorts.
    let refused = |o: &modprobe::OptionSource| match judge(o) {
        Some(Err(why)) => Some(why),
        _ => None,
    };
    let effective_ok = cfg.effective(m, "nested").is_some_and(ok);
    let drop_in_name = modprobe::file_name(modprobe::DROP_IN);
    // Lines that would beat the drop-in: later file names with another value, and refused
    // values anywhere.
    let conflicts: Vec<&&modprobe::OptionSource> = contributions
        .iter()
        .filter(|o| !ok(o) && o.file != modprobe::DROP_IN)
        .filter(|o| {
            opts.neutralise_conflicts
                || ModprobeConfig::sorts_after(&o.file, drop_in_name)
                || refused(o).is_some()
        })
        .collect();
    if effective_ok
        && conflicts
            .iter()
            .all(|o| !ModprobeConfig::sorts_after(&o.file, drop_in_name) && refused(o).is_none())
    {
        return Ok(0);
    }
    for c in &conflicts {
        if !opts.neutralise_conflicts {
            let why = match refused(c) {
                Some(why) => format!(
                    ", which {m} refuses to load with ({why}): kmod passes every options line to the kernel, \
                     which then refuses the load, whatever {} says",
                    modprobe::DROP_IN
                ),
                None => format!(" and is read after {}: it would win", modprobe::DROP_IN),
            };
            p.blockers.push(Blocker::new(
                "plan.modprobe_conflict",
                format!(
                    "{} sets {m} nested={}{why}",
                    c.location(),
                    c.value.as_deref().unwrap_or(""),
                ),
                Some(format!(
                    "remove that line, or plan again with {} to comment it out",
                    opts.dialect.neutralise_conflicts()
                )),
            ));
        } else {
            p.notes.push(format!(
                "{} sets {m} nested={}: neutralised, as asked",
                c.location(),
                c.value.as_deref().unwrap_or("")
            ));
        }
    }
    if opts.neutralise_conflicts {
        let mut files: Vec<&str> = conflicts.iter().map(|o| o.file.as_str()).collect();
        files.dedup();
        for f in files {
            let text = host.read_text(f)?;
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

/// What one boot loader configuration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BootKind {
    /// A BLS entry; `true` when its options come from grubenv's `$kernelopts`.
    Bls(bool),
    /// grubenv, for entries with `$kernelopts`.
    Grubenv,
    /// `/etc/kernel/cmdline`.
    KernelCmdline,
    /// `/etc/default/grub`.
    Grub2,
    /// `/etc/default/grub.d/*.cfg`, sourced after it.
    Grub2Dropin,
    /// GRUB legacy.
    GrubLegacy,
    /// extlinux / syslinux.
    Extlinux,
}

/// Every boot loader configuration found on the host, in the order they are planned.
#[derive(Debug, Default)]
struct BootFiles {
    files: Vec<(BootKind, Found)>,
    /// BLS entries use `$kernelopts` and no grubenv was found.
    kernelopts_without_grubenv: bool,
}

fn find_boot_files(host: &Host) -> Result<BootFiles> {
    let mut b = BootFiles::default();
    let mut seen = std::collections::HashSet::new();
    let mut add = |b: &mut BootFiles, kind, f: Found| {
        // A file reached twice (the symlink /etc/grub.conf) counts once.
        if seen.insert(f.path.clone()) {
            b.files.push((kind, f));
        }
    };
    let mut needs_kernelopts = false;
    for dir in BLS_DIRS {
        for n in host.read_dir(dir).unwrap_or_default() {
            if !n.ends_with(".conf") {
                continue;
            }
            let Some(f) = read_config(host, &format!("{dir}/{n}"))? else {
                continue;
            };
            let ko = bootloader::bls::parse(&f.text).uses_kernelopts();
            needs_kernelopts |= ko;
            add(&mut b, BootKind::Bls(ko), f);
        }
    }
    if needs_kernelopts {
        let mut env = None;
        for e in [
            "/boot/grub2/grubenv",
            "/boot/efi/EFI/redhat/grubenv",
            "/boot/grub/grubenv",
        ] {
            if let Some(f) = read_config(host, e)? {
                env = Some(f);
                break;
            }
        }
        match env {
            Some(f) => add(&mut b, BootKind::Grubenv, f),
            None => b.kernelopts_without_grubenv = true,
        }
    }
    if let Some(f) = read_config(host, "/etc/kernel/cmdline")? {
        add(&mut b, BootKind::KernelCmdline, f);
    }
    if let Some(f) = read_config(host, "/etc/default/grub")? {
        add(&mut b, BootKind::Grub2, f);
        for n in host.read_dir("/etc/default/grub.d").unwrap_or_default() {
            if n.ends_with(".cfg") {
                if let Some(g) = read_config(host, &format!("/etc/default/grub.d/{n}"))? {
                    add(&mut b, BootKind::Grub2Dropin, g);
                }
            }
        }
    }
    for path in GRUB_LEGACY {
        if let Some(f) = read_config(host, path)? {
            add(&mut b, BootKind::GrubLegacy, f);
        }
    }
    for path in EXTLINUX {
        if let Some(f) = read_config(host, path)? {
            add(&mut b, BootKind::Extlinux, f);
        }
    }
    Ok(b)
}

/// Where the boot configurations set `module`'s nested (`kvm-intel.nested`), as the module will
/// get it when the host boots from them ([`Cmdline::module_param`]: a loadable module gets
/// kmod's view, after a bare `--` too; a built-in one the kernel's): one setting per file (per
/// entry for GRUB legacy and extlinux). A value nestcore cannot read (shell expansion in
/// /etc/default/grub) is left out; editing it is refused later.
fn boot_settings(b: &BootFiles, module: &str, builtin: bool) -> Vec<Setting> {
    use bootloader::{bls, extlinux, grub2, grub_legacy, kernel_cmdline};
    let name = &cmdline_name(module);
    let mut out = Vec::new();
    let mut push = |source: String, c: &Cmdline| {
        if let Some(value) = c.module_param(name, builtin) {
            out.push(Setting::new(module, source, value));
        }
    };
    for (kind, f) in &b.files {
        match kind {
            BootKind::Bls(false) => {
                if let Some(o) = bls::parse(&f.text).options {
                    push(f.path.clone(), &Cmdline::parse(&o));
                }
            }
            BootKind::Bls(true) => {}
            BootKind::Grubenv => {
                if let Some((_, v)) = bls::grubenv_vars(&f.text)
                    .into_iter()
                    .find(|(k, _)| k == bls::KERNELOPTS)
                {
                    push(format!("{} ($kernelopts)", f.path), &Cmdline::parse(&v));
                }
            }
            BootKind::KernelCmdline => push(f.path.clone(), &kernel_cmdline::parse(&f.text)),
            BootKind::Grub2 | BootKind::Grub2Dropin => {
                // GRUB_CMDLINE_LINUX_DEFAULT follows GRUB_CMDLINE_LINUX on the kernel line.
                for var in [grub2::CMDLINE_DEFAULT_VAR, grub2::CMDLINE_VAR] {
                    if let Ok(Some(c)) = grub2::cmdline(&f.text, var) {
                        if c.module_param(name, builtin).is_some() {
                            push(format!("{} ({var})", f.path), &c);
                            break;
                        }
                    }
                }
            }
            BootKind::GrubLegacy => {
                for (title, c) in grub_legacy::cmdlines(&f.text, &Selection::all_linux()) {
                    push(format!("{} (entry {title:?})", f.path), &c);
                }
            }
            BootKind::Extlinux => {
                for (title, c) in extlinux::cmdlines(&f.text, &Selection::all_linux()) {
                    push(format!("{} (label {title:?})", f.path), &c);
                }
            }
        }
    }
    out
}

/// Plans the kernel command-line part; returns the number of actions added.
fn plan_cmdline(host: &Host, m: &str, want: Want, boot: &BootFiles, p: &mut Plan) -> Result<usize> {
    use bootloader::{bls, extlinux, grub2, grub_legacy, kernel_cmdline};
    let before = p.actions.len();
    let name = cmdline_name(m);
    let v = want.value();
    let edit = ArgsEdit::set(&name, v);
    let reason = format!("{name}={v} on the kernel command line");
    let mut loaders: Vec<&str> = Vec::new();
    let push = |p: &mut Plan, f: &Found, new: String, why: String| {
        if let Some(a) = write_action(&f.path, Some(&f.text), new, why, When::AfterReboot) {
            p.actions.push(a);
        }
    };
    let bls_entries = boot
        .files
        .iter()
        .filter(|(k, _)| matches!(k, BootKind::Bls(_)))
        .count();
    let mut grub2_regen = false;
    for (kind, f) in &boot.files {
        match kind {
            BootKind::Bls(kernelopts) => {
                let new = if *kernelopts {
                    bls::edit_entry(&f.text, &edit.removals_only())?
                } else {
                    bls::edit_entry(&f.text, &edit)?
                };
                push(p, f, new, reason.clone());
                if !loaders.contains(&"BLS entries") {
                    loaders.push("BLS entries");
                }
            }
            BootKind::Grubenv => {
                let new = bls::edit_grubenv(&f.text, bls::KERNELOPTS, &edit)?;
                push(p, f, new, format!("{reason} ($kernelopts)"));
            }
            BootKind::KernelCmdline => {
                let new = kernel_cmdline::edit(&f.text, &edit)?;
                push(p, f, new, format!("{reason} (kernels installed later)"));
                loaders.push("/etc/kernel/cmdline");
            }
            BootKind::Grub2 => {
                let mut new = grub2::edit(&f.text, grub2::CMDLINE_VAR, &edit)?;
                new = grub2::edit(&new, grub2::CMDLINE_DEFAULT_VAR, &edit.removals_only())?;
                grub2_regen |= new != f.text;
                push(p, f, new, format!("{reason} (GRUB_CMDLINE_LINUX)"));
                loaders.push("GRUB 2");
            }
            BootKind::Grub2Dropin => {
                let mut gn = grub2::edit(&f.text, grub2::CMDLINE_VAR, &edit.removals_only())?;
                gn = grub2::edit(&gn, grub2::CMDLINE_DEFAULT_VAR, &edit.removals_only())?;
                grub2_regen |= gn != f.text;
                push(
                    p,
                    f,
                    gn,
                    format!("remove {name} that would override /etc/default/grub"),
                );
            }
            BootKind::GrubLegacy => {
                let new = grub_legacy::edit(&f.text, &Selection::all_linux(), &edit)?;
                push(p, f, new, format!("{reason} (every kernel line)"));
                loaders.push("GRUB legacy");
            }
            BootKind::Extlinux => {
                let new = extlinux::edit(&f.text, &Selection::all_linux(), &edit)?;
                push(p, f, new, format!("{reason} (every append line)"));
                loaders.push("extlinux");
            }
        }
    }
    if boot.kernelopts_without_grubenv {
        p.blockers.push(Blocker::new(
            "plan.kernelopts_without_grubenv",
            "BLS entries use $kernelopts but no grubenv was found",
            Some(format!(
                "set {name}={v} in the entries' options by hand (or restore /boot/grub2/grubenv)"
            )),
        ));
    }
    if bls_entries == 0 && grub2_regen {
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
    if loaders.is_empty() {
        p.blockers.push(Blocker::new(
            "plan.no_boot_loader",
            "No boot loader configuration found (looked for BLS entries, /etc/kernel/cmdline, /etc/default/grub, \
             grub.conf/menu.lst, extlinux.conf)",
            Some(format!("add {name}={v} to the kernel command line by hand")),
        ));
    } else {
        p.notes
            .push(format!("kernel command line found in: {}", loaders.join(", ")));
    }
    if p.actions.len() > before {
        p.timeline
            .push((When::AfterReboot, format!("the kernel boots with {name}={v}")));
    }
    Ok(p.actions.len() - before)
}

/// The plan that puts back exactly what the newest apply recorded in the store that is not
/// undone yet changed: every file it edited restored byte for byte (with its mode and owner),
/// every file it created removed, every module it reloaded reloaded with the value before, and
/// the same boot configuration and initramfs programs run again. Nothing is changed until the
/// plan is applied; applying it marks the transaction undone, so the next undo takes the apply
/// before it: undoing again and again walks back through the history, one apply a step. The
/// summary names the apply it undoes and the earlier ones that remain.
///
/// A file changed since the apply is a blocker (undo would lose that change), as is a copy
/// missing from the store. No transaction, or every one already undone, gives an empty plan.
///
/// # Errors
/// [`Error::Io`] / [`Error::Parse`] when the manifest cannot be read.
pub fn plan_undo(host: &Host) -> Result<Plan> {
    use crate::backup::{read_manifest, sha256, transactions, TxState, STORE};
    let mut p = Plan::default();
    // The newest transaction with a manifest that is not undone: a folder without one is an
    // apply killed before it wrote anything (the manifest comes before the first target). Each
    // undo marks its transaction undone, so undoing again walks back through the history.
    let mut chosen = None;
    let mut undone = Vec::new();
    let mut earlier = Vec::new();
    for id in transactions(host).into_iter().rev() {
        let manifest = format!("{STORE}/{id}/{}", crate::backup::MANIFEST);
        if !host.exists(&manifest) {
            p.notes.push(format!(
                "{STORE}/{id} has no manifest (an apply stopped before it changed anything): skipped"
            ));
            continue;
        }
        let m = read_manifest(host, &id)?;
        match (&chosen, m.state) {
            (None, TxState::Undone) => undone.push(id),
            (None, _) => chosen = Some(m),
            (Some(_), TxState::Undone) => {}
            (Some(_), _) => earlier.push(id),
        }
    }
    let Some(m) = chosen else {
        p.summary = if undone.is_empty() {
            format!("Nothing to undo: no apply is recorded in {STORE}.")
        } else {
            undone.reverse();
            format!(
                "Nothing to undo: every apply recorded in {STORE} ({}) is already undone.",
                undone.join(", ")
            )
        };
        return Ok(p);
    };
    if !undone.is_empty() {
        undone.reverse();
        p.notes.push(format!(
            "already undone: apply {} (newer than {})",
            undone.join(", "),
            m.id
        ));
    }
    p.notes.push(format!(
        "the last apply {}is {} ({}): {}",
        if undone.is_empty() { "" } else { "not yet undone " },
        m.dir(),
        match m.state {
            TxState::Pending => "it did not finish",
            TxState::Applied | TxState::Undone => "applied",
        },
        m.summary
    ));
    earlier.reverse();
    let remains = match earlier.len() {
        0 => String::new(),
        1 => format!(
            " 1 earlier apply remains ({}): undo again to undo it.",
            earlier[0]
        ),
        n => format!(
            " {n} earlier applies remain ({}): undo again to undo the newest.",
            earlier.join(", ")
        ),
    };
    let (mut restored, mut removed) = (0, 0);
    for f in m.files.iter().rev() {
        let current = match host.read_bytes(&f.path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&f.path, e)),
        };
        let cur_sha = current.as_deref().map(sha256);
        let before_sha = f.before.as_ref().map(|o| o.sha256.clone());
        if cur_sha == before_sha {
            continue; // already as before (an apply killed before this file)
        }
        if cur_sha != f.after_sha256 {
            p.blockers.push(Blocker::new(
                "plan.changed_since_apply",
                format!(
                    "{} changed since apply {} wrote it: undoing would lose that change",
                    f.path, m.id
                ),
                Some(match f.before.as_ref().and_then(|o| o.copy.clone()) {
                    Some(c) => format!("compare it with the original in {c} and put it back by hand"),
                    None => format!("put {} back by hand", f.path),
                }),
            ));
            continue;
        }
        let old = current
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned());
        match &f.before {
            None => {
                let Some(old) = old else { continue };
                removed += 1;
                p.actions.push(Action::RemoveFile {
                    diff: plan::removal_diff(&f.path, &old),
                    path: f.path.clone(),
                    old,
                    reason: format!("apply {} created it", m.id),
                    when: undo_when(&f.path),
                });
            }
            Some(orig) => {
                let original = match (&orig.generated, &orig.copy) {
                    (Some(g), _) => modprobe::drop_in_text(&g.module, &g.value),
                    (None, Some(c)) => match host.read_bytes(c) {
                        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                        Err(e) => {
                            p.blockers.push(Blocker::new(
                                "plan.backup_missing",
                                format!("the original of {} cannot be read from {c}: {e}", f.path),
                                None,
                            ));
                            continue;
                        }
                    },
                    (None, None) => continue,
                };
                if sha256(original.as_bytes()) != orig.sha256 {
                    p.blockers.push(Blocker::new(
                        "plan.backup_missing",
                        format!(
                            "the original of {} in {} does not match its manifest",
                            f.path,
                            m.dir()
                        ),
                        None,
                    ));
                    continue;
                }
                restored += 1;
                p.actions.push(Action::WriteFile {
                    diff: unified_diff(&f.path, old.as_deref(), &original),
                    path: f.path.clone(),
                    old,
                    new: original,
                    reason: format!("put back as it was before apply {}", m.id),
                    when: undo_when(&f.path),
                });
            }
        }
    }
    let mut reloads = Vec::new();
    for mc in &m.modules {
        match (&mc.before, mc.was_loaded) {
            (Some(before), true) => {
                p.actions.push(Action::ReloadModule {
                    module: mc.module.clone(),
                    params: vec![(mc.param.clone(), before.clone())],
                    previous: Some(mc.after.clone()),
                    loaded: true,
                    reason: format!("{} {} was {before} before apply {}", mc.module, mc.param, m.id),
                });
                p.verify = modprobe::parse_bool(before).map(|want| plan::Verify {
                    path: format!("/sys/module/{}/parameters/{}", mc.module, mc.param),
                    want,
                });
                reloads.push(format!("{} reloaded with {}={before}", mc.module, mc.param));
            }
            _ => p.notes.push(format!(
                "{} was not loaded before apply {}: it stays loaded (modprobe -r {} unloads it)",
                mc.module, m.id, mc.module
            )),
        }
    }
    let wrote_any = p.actions.iter().any(|a| a.path().is_some());
    if wrote_any {
        for c in &m.commands {
            let Some((program, args)) = c.split_first() else {
                continue;
            };
            // What the command does again, from the command itself: guests' programs take
            // effect when the guest (or nova-compute) restarts, the boot ones at a reboot.
            let (reason, when) = match program.as_str() {
                "virsh" => ("define the restored domain in libvirt", When::AfterRestart),
                "systemctl" => ("restart the service so it reads the restored file", When::Now),
                _ => ("regenerate from the restored configuration", When::AfterReboot),
            };
            p.actions.push(Action::Run {
                command: Command {
                    program: program.clone(),
                    args: args.to_vec(),
                },
                reason: reason.into(),
                when,
            });
        }
    }
    for r in &reloads {
        p.timeline.push((When::Now, r.clone()));
    }
    if p.actions
        .iter()
        .any(|a| a.path().is_some_and(|x| undo_when(x) == When::AfterReload))
    {
        p.timeline.push((
            When::AfterReload,
            "the module loads with the modprobe.d options it had before".into(),
        ));
    }
    let written = || p.actions.iter().filter_map(Action::path);
    let regenerates = p.actions.iter().any(|a| {
        matches!(
            a,
            Action::Run {
                when: When::AfterReboot,
                ..
            }
        )
    });
    if regenerates || written().any(|x| undo_when(x) == When::AfterReboot) {
        p.timeline.push((
            When::AfterReboot,
            "the host boots with the configuration it had before".into(),
        ));
    }
    if written().any(is_guest_definition) {
        p.timeline.push((
            When::AfterRestart,
            "each guest gets the CPU it had before at its next full stop and start".into(),
        ));
    }
    p.undoes = Some(m.id.clone());
    let summary = if !p.blockers.is_empty() {
        format!("Undoing apply {} is blocked.", m.id)
    } else if p.actions.is_empty() {
        format!(
            "Nothing to undo: every file of apply {} is already as it was before.",
            m.id
        )
    } else {
        let mut parts = Vec::new();
        if restored > 0 {
            parts.push(format!(
                "restore {restored} file{}",
                if restored == 1 { "" } else { "s" }
            ));
        }
        if removed > 0 {
            parts.push(format!(
                "remove {removed} file{}",
                if removed == 1 { "" } else { "s" }
            ));
        }
        parts.extend(reloads);
        format!(
            "Undo apply {} ({}): {}.",
            m.id,
            m.summary.trim_end_matches('.'),
            parts.join(", ")
        )
    };
    p.summary = summary + &remains;
    p.put_actions_in_apply_order();
    Ok(p)
}

/// When putting `path` back takes effect.
fn undo_when(path: &str) -> When {
    if path.contains("/modprobe.d/") {
        When::AfterReload
    } else if is_guest_definition(path) {
        When::AfterRestart
    } else {
        When::AfterReboot
    }
}

/// A file `nestcore guests` edits: a libvirt domain, nova's configuration, a Proxmox VM.
fn is_guest_definition(path: &str) -> bool {
    ["/etc/libvirt/", "/etc/nova/", "/etc/pve/"]
        .iter()
        .any(|d| path.starts_with(d))
}

/// What `nestcore enable` prints and its exit code: 0 when the host is (or, after `apply`,
/// ends) as wanted, 1 when not (a plan not applied, blocked, or applied past the verdict's
/// blockers with `force`). `persist` defaults to `modprobe`.
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

/// [`enable_cli`] with [`Options`] (`--neutralise-conflicts`, `--force`).
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
    let forced = plan.warnings.iter().any(|w| w.starts_with("forced past"));
    print_plan(host, &plan, apply, json, forced, exec)
}

/// What `nestcore enable --undo` prints and its exit code: the plan that puts back what the last
/// apply changed ([`plan_undo`]), carried out with `apply`. 0 when there is
/// nothing (left) to undo or the undo was applied, 1 when the plan is shown but not applied,
/// or blocked.
///
/// # Errors
/// As [`plan_undo`] and [`Plan::apply`].
pub fn undo_cli(host: &Host, apply: bool, json: bool, exec: &dyn Executor) -> Result<(String, i32)> {
    let plan = plan_undo(host)?;
    print_plan(host, &plan, apply, json, false, exec)
}

/// Shows `plan`, applies it when asked and possible, and gives the exit code.
fn print_plan(
    host: &Host,
    plan: &Plan,
    apply: bool,
    json: bool,
    forced: bool,
    exec: &dyn Executor,
) -> Result<(String, i32)> {
    let blocked = !plan.blockers.is_empty();
    // An undo with nothing left to put back is applied all the same: that marks its apply
    // undone, so the next undo goes on to the one before.
    let report = if apply && !blocked && (!plan.is_empty() || plan.undoes.is_some()) {
        Some(plan.apply(host, exec)?)
    } else {
        None
    };
    let code = if forced || blocked {
        1
    } else if plan.is_empty() || report.is_some() {
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
            plan,
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
                    let what = if w.removed {
                        "removed"
                    } else if w.created {
                        "created"
                    } else {
                        "wrote"
                    };
                    s.push_str(&format!(
                        "  {what} {}{}\n",
                        w.path,
                        w.backup
                            .as_ref()
                            .map(|b| format!(" (original kept as {b})"))
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
                if let Some(t) = &r.transaction {
                    s.push_str(&format!(
                        "  recorded in {t}: `nestcore enable --undo` puts it back\n"
                    ));
                }
                if let Some(id) = &r.undone {
                    s.push_str(&format!("  apply {id} is undone\n"));
                }
                if forced {
                    s.push_str(
                        "  applied past the blockers (--force): nesting still cannot work on this host\n",
                    );
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
        assert!(
            text.contains("original kept as /var/lib/nestcore/backup/0001/files/etc/kernel/cmdline"),
            "{text}"
        );
        assert!(!d.path().join("etc/kernel/cmdline.nestcore-bak").exists());
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

    /// B5: every layer is judged by the kernel's parser of the parameter's type (the lab's
    /// measurements): kvm_amd's int refuses what kvm_intel's bool takes.
    #[test]
    fn settings_are_judged_as_the_module_loads_them() {
        let s = |m: &str, v: Option<&str>| Setting::new(m, "x".into(), v.map(str::to_string));
        for v in [Some("Y"), Some("N"), Some("on"), Some(""), None] {
            let a = s("kvm_amd", v);
            assert!(a.refused().is_some() && a.is_on().is_none(), "{v:?}");
            assert!(a.works_against(Want::On) && a.works_against(Want::Off), "{v:?}");
            assert!(
                a.shown("n").contains("which kvm_amd refuses to load with"),
                "{v:?}"
            );
        }
        assert_eq!(s("kvm_amd", Some("0x1")).is_on(), Some(true));
        assert_eq!(s("kvm_amd", Some("010")).is_on(), Some(true));
        assert_eq!(s("kvm_amd", Some("0")).is_on(), Some(false));
        assert_eq!(s("kvm_intel", Some("Y")).is_on(), Some(true));
        assert_eq!(s("kvm_intel", None).is_on(), Some(true));
        assert!(s("kvm_intel", Some("e")).refused().is_some());
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
