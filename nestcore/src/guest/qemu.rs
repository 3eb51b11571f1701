//! QEMU's `-cpu MODEL[,opt...]` argument: build, parse, normalise, and add or remove VT-x/AMD-V.
//!
//! Output always uses `feature=on|off`. Input may use the legacy `+feature`/`-feature` forms;
//! they are normalised with QEMU's own precedence (a `-f` anywhere wins, then a `+f`, then the
//! last `f=`), because mixing the two forms makes QEMU warn "Ambiguous CPU model string" and apply
//! the legacy forms last. `_` and `-` in feature names are the same feature to QEMU.
//!
//! ```
//! use nestcore::guest::qemu::CpuArg;
//! use nestcore::cpu::Extension;
//!
//! let mut arg: CpuArg = "qemu64,+vmx,-svm".parse()?;
//! assert_eq!(arg.to_string(), "qemu64,vmx=on,svm=off");
//! arg.disable_extension(Extension::Vmx);
//! assert_eq!(arg.to_string(), "qemu64,vmx=off,svm=off");
//! assert_eq!(CpuArg::host().kvm_args(), ["-accel", "kvm", "-cpu", "host"]);
//! # Ok::<(), nestcore::Error>(())
//! ```

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::libvirt::{self, Mode, Policy};
use super::NestingVerdict;
use crate::cpu::Extension;
use crate::{Error, Result};

/// The value of one `-cpu` option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OptValue {
    /// `=on` (also from `+f`, a bare `f`, `=yes`, `=true`).
    On,
    /// `=off` (also from `-f`, `=no`, `=false`).
    Off,
    /// Any other value (`phys-bits=42`, `model-id=...`).
    Value(String),
}

/// One `name=value` option after the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuOpt {
    /// The feature or property name, as written.
    pub name: String,
    /// Its value.
    pub value: OptValue,
}

/// A `-cpu` argument: a model (`host`, `max`, `qemu64`, `Skylake-Server-v4`) and its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CpuArg {
    /// The model.
    pub model: String,
    /// Options in order, one per feature (normalised).
    pub options: Vec<CpuOpt>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['-', '+'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn same_feature(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || matches!((x, y), (b'_', b'-') | (b'-', b'_')))
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidInput(reason.into())
}

/// QEMU's option splitter: `,` separates, `,,` is a literal comma.
fn split_options(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                if let Some(last) = out.last_mut() {
                    last.push(',');
                }
            } else {
                out.push(String::new());
            }
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

impl CpuArg {
    /// `-cpu host`: the host CPU with everything KVM supports (KVM only).
    pub fn host() -> CpuArg {
        CpuArg {
            model: "host".into(),
            options: Vec::new(),
        }
    }

    /// `-cpu max`: everything the accelerator can provide.
    pub fn max() -> CpuArg {
        CpuArg {
            model: "max".into(),
            options: Vec::new(),
        }
    }

    /// A named model.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the name is not `[A-Za-z0-9._-]+` (not starting with `-`/`+`).
    pub fn named(model: &str) -> Result<CpuArg> {
        if !valid_name(model) {
            return Err(invalid(format!(
                "QEMU CPU model name {model:?} is not [A-Za-z0-9._-]+"
            )));
        }
        Ok(CpuArg {
            model: model.to_string(),
            options: Vec::new(),
        })
    }

    /// Sets feature `name` on or off, in place if present (under either `_`/`-` spelling).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a name outside `[A-Za-z0-9._-]+`.
    pub fn set(&mut self, name: &str, on: bool) -> Result<()> {
        if !valid_name(name) {
            return Err(invalid(format!(
                "QEMU CPU feature name {name:?} is not [A-Za-z0-9._-]+"
            )));
        }
        let value = if on { OptValue::On } else { OptValue::Off };
        match self.options.iter_mut().find(|o| same_feature(&o.name, name)) {
            Some(o) => o.value = value,
            None => self.options.push(CpuOpt {
                name: name.to_string(),
                value,
            }),
        }
        Ok(())
    }

    /// Builder form of [`CpuArg::set`].
    ///
    /// # Errors
    /// As [`CpuArg::set`].
    pub fn with(mut self, name: &str, on: bool) -> Result<CpuArg> {
        self.set(name, on)?;
        Ok(self)
    }

    /// The value of feature `name`, if given.
    pub fn get(&self, name: &str) -> Option<&OptValue> {
        self.options
            .iter()
            .find(|o| same_feature(&o.name, name))
            .map(|o| &o.value)
    }

    fn passes_everything(&self) -> bool {
        matches!(self.model.as_str(), "host" | "max")
    }

    /// Gives the guest `ext` with the smallest change: for `host` and `max` only an explicit
    /// `ext=off` is removed; a named model gets `ext=on`. Returns whether anything changed.
    pub fn ensure_extension(&mut self, ext: Extension) -> bool {
        let name = ext.as_str();
        if !matches!(ext, Extension::Vmx | Extension::Svm) {
            return false;
        }
        if self.passes_everything() {
            let before = self.options.len();
            self.options
                .retain(|o| !(same_feature(&o.name, name) && o.value == OptValue::Off));
            return self.options.len() != before;
        }
        if self.get(name) == Some(&OptValue::On) {
            return false;
        }
        self.set(name, true).is_ok()
    }

    /// Withholds `ext` from the guest (`ext=off`). Returns whether anything changed.
    pub fn disable_extension(&mut self, ext: Extension) -> bool {
        if !matches!(ext, Extension::Vmx | Extension::Svm) || self.get(ext.as_str()) == Some(&OptValue::Off) {
            return false;
        }
        self.set(ext.as_str(), false).is_ok()
    }

    /// Whether the guest gets `ext`, and why.
    pub fn nesting(&self, ext: Extension) -> NestingVerdict {
        let name = ext.as_str();
        match self.get(name) {
            Some(OptValue::Off) => NestingVerdict::no(format!("{name}=off")),
            Some(OptValue::On) => NestingVerdict::yes(format!("{name}=on")),
            _ if self.passes_everything() => NestingVerdict::yes(format!(
                "-cpu {} passes {name} when the accelerator offers it",
                self.model
            )),
            // qemu64 lists svm, but under KVM QEMU turns svm off in every named model
            // (kvm_default_props) unless the argument names it; only TCG keeps it.
            _ if self.model == "qemu64" && ext == Extension::Svm => NestingVerdict::no(
                "qemu64 lists svm, but QEMU turns it off under KVM unless it is named; add svm=on",
            ),
            _ if self.model == "qemu64" => NestingVerdict::no("qemu64 does not include vmx; add vmx=on"),
            _ => NestingVerdict::unknown(format!(
                "depends on whether the model {} includes {name}; add {name}=on",
                self.model
            )),
        }
    }

    /// `["-cpu", "<this>"]`.
    pub fn args(&self) -> [String; 2] {
        ["-cpu".to_string(), self.to_string()]
    }

    /// `["-accel", "kvm", "-cpu", "<this>"]` (`-accel kvm` is `-enable-kvm`).
    pub fn kvm_args(&self) -> [String; 4] {
        ["-accel".into(), "kvm".into(), "-cpu".into(), self.to_string()]
    }

    /// Parses a `-cpu` value, normalising as described in the module documentation.
    ///
    /// # Errors
    /// [`Error::Parse`] for an empty model, an empty option, names outside `[A-Za-z0-9._-]+`, a
    /// NUL (no program argument can carry one), another control character inside the value, or an
    /// option value with white space at an end.
    pub fn parse(s: &str) -> Result<CpuArg> {
        Self::parse_with_notes(s).map(|(arg, _)| arg)
    }

    /// [`CpuArg::parse`], also returning notes on what normalisation changed.
    ///
    /// # Errors
    /// As [`CpuArg::parse`].
    pub fn parse_with_notes(s: &str) -> Result<(CpuArg, Vec<String>)> {
        let what = "QEMU -cpu argument";
        if s.contains('\0') {
            return Err(Error::parse(
                what,
                format!("{s:?} holds a NUL, which no program argument can carry"),
            ));
        }
        if let Some(c) = s.trim().chars().find(|c| c.is_control()) {
            return Err(Error::parse(
                what,
                format!(
                    "{s:?} holds the control character U+{:04X}: no CPU model, feature or property takes one",
                    u32::from(c)
                ),
            ));
        }
        let mut parts = split_options(s.trim()).into_iter();
        let model = parts.next().unwrap_or_default();
        if !valid_name(&model) {
            return Err(Error::parse(
                what,
                format!("model {model:?} is not [A-Za-z0-9._-]+"),
            ));
        }
        #[derive(Default)]
        struct Entry {
            name: String,
            prop: Option<OptValue>,
            plus: bool,
            minus: bool,
            forms: u8,
        }
        let mut entries: Vec<Entry> = Vec::new();
        let mut notes = Vec::new();
        for (i, part) in parts.enumerate() {
            if part.is_empty() {
                return Err(Error::parse(
                    what,
                    format!("empty option after the model (option {})", i + 1),
                ));
            }
            let (name, kind) = if let Some(n) = part.strip_prefix('+') {
                (n.to_string(), 1u8)
            } else if let Some(n) = part.strip_prefix('-') {
                (n.to_string(), 2u8)
            } else {
                match part.split_once('=') {
                    Some((n, _)) => (n.to_string(), 4u8),
                    None => (part.clone(), 4u8),
                }
            };
            if !valid_name(&name) {
                return Err(Error::parse(
                    what,
                    format!("option name {name:?} is not [A-Za-z0-9._-]+"),
                ));
            }
            let idx = match entries.iter().position(|e| same_feature(&e.name, &name)) {
                Some(i) => i,
                None => {
                    entries.push(Entry {
                        name: name.clone(),
                        ..Entry::default()
                    });
                    entries.len() - 1
                }
            };
            let e = &mut entries[idx];
            e.forms |= if kind == 4 { 4 } else { 1 };
            match kind {
                1 => e.plus = true,
                2 => e.minus = true,
                _ => {
                    let value = part.split_once('=').map_or("on", |(_, v)| v);
                    if value.trim() != value {
                        return Err(Error::parse(
                            what,
                            format!(
                                "the value {value:?} of {name} has white space at an end: the argument is trimmed as a whole, so it could not be written back the same"
                            ),
                        ));
                    }
                    e.prop = Some(match value {
                        "on" | "yes" | "true" => OptValue::On,
                        "off" | "no" | "false" => OptValue::Off,
                        v => OptValue::Value(v.to_string()),
                    });
                }
            }
        }
        let mut options = Vec::new();
        for e in entries {
            let value = if e.minus {
                OptValue::Off
            } else if e.plus {
                OptValue::On
            } else {
                e.prop.clone().unwrap_or(OptValue::On)
            };
            if e.forms == 5 || (e.plus && e.minus) {
                notes.push(format!(
                    "{}: +/- and = forms mixed (QEMU warns \"Ambiguous CPU model string\" and applies -f, then +f, last); normalised to {}",
                    e.name,
                    render_value(&value)
                ));
            }
            options.push(CpuOpt { name: e.name, value });
        }
        Ok((CpuArg { model, options }, notes))
    }

    /// The QEMU equivalent of a libvirt guest `<cpu>`: host-passthrough is `host`, maximum is
    /// `max`, custom is the model with `require`/`force` features `=on` and `disable`/`forbid`
    /// features `=off`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for host-model (libvirt expands it from the host's capabilities at
    /// start; QEMU has no such model), a custom CPU without model, and `optional` features
    /// (QEMU has no "if available").
    pub fn from_libvirt(cpu: &libvirt::Cpu) -> Result<CpuArg> {
        let mut arg = match cpu.effective_mode() {
            Mode::HostPassthrough => CpuArg::host(),
            Mode::Maximum => CpuArg::max(),
            Mode::HostModel => {
                return Err(invalid(
                    "QEMU has no host-model: libvirt expands it to a named model at start; use host (host-passthrough) or a named model",
                ))
            }
            Mode::Custom => match cpu.model.as_ref().and_then(|m| m.name.as_deref()) {
                Some(name) => CpuArg::named(name)?,
                None => return Err(invalid("a custom CPU without a model has no QEMU -cpu equivalent")),
            },
        };
        if let Some(m) = cpu.migratable {
            arg.options.push(CpuOpt {
                name: "migratable".into(),
                value: if m == libvirt::OnOff::On {
                    OptValue::On
                } else {
                    OptValue::Off
                },
            });
        }
        for f in &cpu.features {
            match f.policy {
                Some(Policy::Require | Policy::Force) | None => arg.set(&f.name, true)?,
                Some(Policy::Disable | Policy::Forbid) => arg.set(&f.name, false)?,
                Some(Policy::Optional) => {
                    return Err(invalid(format!(
                        "feature {}: QEMU has no 'optional' policy (on only if the host has it)",
                        f.name
                    )))
                }
            }
        }
        Ok(arg)
    }
}

fn render_value(v: &OptValue) -> String {
    match v {
        OptValue::On => "on".into(),
        OptValue::Off => "off".into(),
        OptValue::Value(s) => s.replace(',', ",,"),
    }
}

impl std::fmt::Display for CpuArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = self.model.clone();
        for o in &self.options {
            let _ = write!(s, ",{}={}", o.name, render_value(&o.value));
        }
        f.write_str(&s)
    }
}

impl std::str::FromStr for CpuArg {
    type Err = Error;

    fn from_str(s: &str) -> Result<CpuArg> {
        CpuArg::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;
    use crate::guest::NestingState;

    #[test]
    fn builds() {
        assert_eq!(CpuArg::host().to_string(), "host");
        assert_eq!(CpuArg::max().to_string(), "max");
        let a = CpuArg::named("qemu64").unwrap().with("vmx", true).unwrap();
        assert_eq!(a.to_string(), "qemu64,vmx=on");
        assert!(CpuArg::named("qemu64,vmx=on").is_err());
        assert!(CpuArg::named("-x").is_err());
        assert!(CpuArg::host().with("a=b", true).is_err());
    }

    #[test]
    fn normalises_legacy_forms() {
        let (a, notes) = CpuArg::parse_with_notes("qemu64,+vmx,-svm,pdpe1gb").unwrap();
        assert_eq!(a.to_string(), "qemu64,vmx=on,svm=off,pdpe1gb=on");
        assert!(notes.is_empty());
        // QEMU applies +f/-f after f=: -f wins over everything, +f over f=.
        let (a, notes) = CpuArg::parse_with_notes("Haswell,vmx=off,+vmx,svm=on,-svm,x=on,x=off").unwrap();
        assert_eq!(a.to_string(), "Haswell,vmx=on,svm=off,x=off");
        assert_eq!(notes.len(), 2, "{notes:?}");
        let a = CpuArg::parse("host,migratable=on,phys-bits=42,kvm_pv_eoi=yes,kvm-pv-eoi=false").unwrap();
        assert_eq!(a.to_string(), "host,migratable=on,phys-bits=42,kvm_pv_eoi=off");
        let a = CpuArg::parse("base,model-id=a,,b").unwrap();
        assert_eq!(a.get("model-id"), Some(&OptValue::Value("a,b".into())));
        assert_eq!(a.to_string(), "base,model-id=a,,b");
    }

    /// Found by the qemu_cpu fuzz target (fuzz/regressions/qemu_cpu/nul-in-a-value): a value
    /// with a NUL was accepted and rendered back, but no program argument can hold a NUL
    /// (execve takes C strings), so the `-cpu` argument could never reach QEMU.
    /// Found by the campaign (fuzz/regressions/qemu_cpu/control-character-in-a-value): a value
    /// ending in a newline inside the argument (`s=f\n,4=x`) rendered as the last option, where
    /// parse trims it: parse(render(x)) != x. A control character in a `-cpu` value is refused,
    /// like a NUL: no CPU model, feature or property takes one, and nestcore never writes one
    /// into a configuration (issue 13). White space around the whole value is still trimmed.
    #[test]
    fn a_control_character_is_refused() {
        for s in [
            "host,s=f\n,vmx=on",
            "host,model-id=a\u{1}b",
            "qemu64,vmx=on\t,x=1",
            "host\r,vmx=on",
        ] {
            let e = CpuArg::parse(s).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Parse, "{s:?}");
            assert!(e.to_string().contains("control character"), "{e}");
        }
        assert_eq!(CpuArg::parse("host,vmx=on\n").unwrap().to_string(), "host,vmx=on");
    }

    /// Found by the campaign (fuzz/regressions/qemu_cpu/space-at-the-end-of-a-value): `_=x ,v`
    /// kept the value "x " and, the option rendered last, parse trimmed its space. A value with
    /// white space at either end is refused: the argument is trimmed as a whole, so such a value
    /// cannot be written where it reads back the same (QEMU itself would not take "on " either).
    #[test]
    fn a_value_with_white_space_at_its_ends_is_refused() {
        for s in ["max,_=x ,v", "host,model-id= a", "host,vmx=on ,svm=off"] {
            let e = CpuArg::parse(s).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Parse, "{s:?}");
            assert!(e.to_string().contains("white space"), "{e}");
        }
        let a = CpuArg::parse("host,model-id=a b").unwrap();
        assert_eq!(CpuArg::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn a_nul_is_refused() {
        for s in ["host,vmx=o\0ff", "host,model-id=a\0b", "qemu64\0,vmx=on"] {
            assert_eq!(
                CpuArg::parse(s).unwrap_err().kind(),
                crate::ErrorKind::Parse,
                "{s:?}"
            );
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            ",vmx=on",
            "qemu64,",
            "qemu64,,",
            "qemu64,=on",
            "qemu 64",
            "qemu64,+",
            "qemu64,a b=on",
        ] {
            assert!(CpuArg::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn extension_edits() {
        let mut a = CpuArg::parse("host,vmx=off").unwrap();
        assert!(a.ensure_extension(Extension::Vmx));
        assert_eq!(a.to_string(), "host");
        assert!(!a.ensure_extension(Extension::Vmx));
        assert!(a.disable_extension(Extension::Vmx));
        assert_eq!(a.to_string(), "host,vmx=off");
        let mut q = CpuArg::parse("qemu64,-vmx").unwrap();
        assert!(q.ensure_extension(Extension::Vmx));
        assert_eq!(q.to_string(), "qemu64,vmx=on");
        assert!(!q.ensure_extension(Extension::Unknown));
        assert_eq!(q.nesting(Extension::Vmx).state, NestingState::Yes);
        // qemu64 lists svm, but KVM's defaults turn it off in named models: it must be named.
        assert_eq!(
            CpuArg::named("qemu64").unwrap().nesting(Extension::Svm).state,
            NestingState::No
        );
        let mut q = CpuArg::named("qemu64").unwrap();
        assert!(q.ensure_extension(Extension::Svm));
        assert_eq!(q.to_string(), "qemu64,svm=on");
        assert_eq!(
            CpuArg::named("qemu64").unwrap().nesting(Extension::Vmx).state,
            NestingState::No
        );
        assert_eq!(
            CpuArg::named("EPYC").unwrap().nesting(Extension::Svm).state,
            NestingState::Unknown
        );
        assert_eq!(CpuArg::host().kvm_args(), ["-accel", "kvm", "-cpu", "host"]);
    }

    #[test]
    fn from_libvirt() {
        let cpu = libvirt::Cpu::custom("Skylake-Client")
            .unwrap()
            .with_feature(Policy::Require, "vmx")
            .unwrap();
        let cpu = cpu.with_feature(Policy::Forbid, "svm").unwrap();
        assert_eq!(
            CpuArg::from_libvirt(&cpu).unwrap().to_string(),
            "Skylake-Client,vmx=on,svm=off"
        );
        assert_eq!(
            CpuArg::from_libvirt(&libvirt::Cpu::host_passthrough())
                .unwrap()
                .to_string(),
            "host"
        );
        assert!(CpuArg::from_libvirt(&libvirt::Cpu::host_model()).is_err());
        let opt = libvirt::Cpu::maximum()
            .with_feature(Policy::Optional, "vmx")
            .unwrap();
        assert!(CpuArg::from_libvirt(&opt).is_err());
    }
}
