//! OpenStack nova's `[libvirt]` CPU settings: `cpu_mode`, `cpu_models`, `cpu_model_extra_flags`.
//!
//! nova's rules: `cpu_models` only with `cpu_mode = custom` (and then at least one, least capable
//! first); `cpu_model_extra_flags` works with custom, host-model and host-passthrough, where
//! `vmx` or `+vmx` means policy require and `-vmx` means disable. nova writes
//! `match="exact"` for custom CPUs and no `match` otherwise; writing it for host-model (as
//! hand-made configurations sometimes do) is what libvirt rejects.
//!
//! ```
//! use nestcore::guest::nova::{NovaCpuMode, NovaSettings};
//! use nestcore::cpu::Extension;
//!
//! let s = NovaSettings::parse("[libvirt]\ncpu_mode = host-model\ncpu_model_extra_flags = VMX\n")?;
//! assert_eq!(s.cpu_mode, Some(NovaCpuMode::HostModel));
//! assert!(s.nesting(Extension::Vmx).is_yes());
//! # Ok::<(), nestcore::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use super::libvirt::{self, Policy};
use super::NestingVerdict;
use crate::cpu::Extension;
use crate::{Error, Result};

/// nova's `[libvirt] cpu_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NovaCpuMode {
    /// `host-model` (nova's default for virt_type kvm/qemu when unset).
    HostModel,
    /// `host-passthrough`.
    HostPassthrough,
    /// `custom` with `cpu_models`.
    Custom,
    /// `none`: no `<cpu>` at all (libvirt's default model).
    None,
}

impl NovaCpuMode {
    /// The value as nova spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            NovaCpuMode::HostModel => "host-model",
            NovaCpuMode::HostPassthrough => "host-passthrough",
            NovaCpuMode::Custom => "custom",
            NovaCpuMode::None => "none",
        }
    }

    /// The mode for nova's spelling (case-insensitive, as nova's option is).
    pub fn parse(s: &str) -> Option<NovaCpuMode> {
        match s.to_ascii_lowercase().as_str() {
            "host-model" => Some(NovaCpuMode::HostModel),
            "host-passthrough" => Some(NovaCpuMode::HostPassthrough),
            "custom" => Some(NovaCpuMode::Custom),
            "none" => Some(NovaCpuMode::None),
            _ => None,
        }
    }
}

/// The three CPU keys of nova.conf's `[libvirt]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NovaSettings {
    /// `cpu_mode`; `None` when unset (nova then uses host-model for kvm/qemu).
    pub cpu_mode: Option<NovaCpuMode>,
    /// `cpu_models` (custom only), least capable first.
    pub cpu_models: Vec<String>,
    /// `cpu_model_extra_flags`: `flag`/`+flag` (require) or `-flag` (disable), lowercase.
    pub cpu_model_extra_flags: Vec<String>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidInput(reason.into())
}

impl NovaSettings {
    /// Settings with the given mode and nothing else.
    pub fn new(mode: NovaCpuMode) -> NovaSettings {
        NovaSettings {
            cpu_mode: Some(mode),
            ..NovaSettings::default()
        }
    }

    /// The settings nova needs to produce `cpu` (its nearest equivalent).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for libvirt's maximum mode (nova has none), a custom CPU without
    /// model, and `force`/`optional`/`forbid` features (nova only writes require and disable).
    pub fn from_libvirt(cpu: &libvirt::Cpu) -> Result<NovaSettings> {
        let mut s = match cpu.effective_mode() {
            libvirt::Mode::HostModel => NovaSettings::new(NovaCpuMode::HostModel),
            libvirt::Mode::HostPassthrough => NovaSettings::new(NovaCpuMode::HostPassthrough),
            libvirt::Mode::Maximum => return Err(invalid("nova has no cpu_mode for libvirt's maximum")),
            libvirt::Mode::Custom => match cpu.model.as_ref().and_then(|m| m.name.clone()) {
                Some(m) => NovaSettings {
                    cpu_models: vec![m],
                    ..NovaSettings::new(NovaCpuMode::Custom)
                },
                None => return Err(invalid("a custom CPU without a model has no nova equivalent")),
            },
        };
        for f in &cpu.features {
            match f.policy {
                Some(Policy::Require) | None => s.cpu_model_extra_flags.push(f.name.to_ascii_lowercase()),
                Some(Policy::Disable) => s
                    .cpu_model_extra_flags
                    .push(format!("-{}", f.name.to_ascii_lowercase())),
                Some(p) => {
                    return Err(invalid(format!(
                        "feature {}: nova's cpu_model_extra_flags can only require or disable, not {p}",
                        f.name
                    )))
                }
            }
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks nova's rules.
    ///
    /// # Errors
    /// [`Error::InvalidInput`]: `cpu_models` without `cpu_mode = custom`, custom without models,
    /// extra flags with `cpu_mode = none`, a model or flag name outside `[a-zA-Z0-9._-]+`.
    pub fn validate(&self) -> Result<()> {
        let mode = self.cpu_mode;
        if !self.cpu_models.is_empty() && mode != Some(NovaCpuMode::Custom) {
            return Err(invalid(format!(
                "cpu_models is only allowed with cpu_mode = custom, not {}",
                mode.map_or("unset", NovaCpuMode::as_str)
            )));
        }
        if mode == Some(NovaCpuMode::Custom) && self.cpu_models.is_empty() {
            return Err(invalid("cpu_mode = custom needs cpu_models"));
        }
        if mode == Some(NovaCpuMode::None) && !self.cpu_model_extra_flags.is_empty() {
            return Err(invalid(
                "cpu_model_extra_flags needs cpu_mode custom, host-model or host-passthrough, not none",
            ));
        }
        for m in &self.cpu_models {
            if !libvirt::is_valid_feature_name(m) {
                return Err(invalid(format!("CPU model {m:?} is not [a-zA-Z0-9._-]+")));
            }
        }
        for f in &self.cpu_model_extra_flags {
            let name = f.strip_prefix(['+', '-']).unwrap_or(f);
            if !libvirt::is_valid_feature_name(name) {
                return Err(invalid(format!(
                    "cpu_model_extra_flags entry {f:?} is not [+-]name"
                )));
            }
        }
        Ok(())
    }

    /// The policy nova applies for `flag`, following the last mention.
    pub fn flag_policy(&self, flag: &str) -> Option<Policy> {
        self.cpu_model_extra_flags.iter().rev().find_map(|f| {
            let (policy, name) = match f.strip_prefix('-') {
                Some(n) => (Policy::Disable, n),
                None => (Policy::Require, f.strip_prefix('+').unwrap_or(f)),
            };
            name.eq_ignore_ascii_case(flag).then_some(policy)
        })
    }

    /// Whether guests started with these settings get `ext`, and why.
    pub fn nesting(&self, ext: Extension) -> NestingVerdict {
        let name = ext.as_str();
        match self.flag_policy(name) {
            Some(Policy::Disable) => return NestingVerdict::no(format!("cpu_model_extra_flags has -{name}")),
            Some(_) if self.cpu_mode != Some(NovaCpuMode::None) => {
                return NestingVerdict::yes(format!("cpu_model_extra_flags requires {name}"))
            }
            _ => {}
        }
        match self.cpu_mode {
            Some(NovaCpuMode::HostPassthrough) => NestingVerdict::yes(format!("host-passthrough passes {name}")),
            Some(NovaCpuMode::HostModel) | None => NestingVerdict::unknown(format!(
                "host-model includes {name} only if the host-model CPU does (often not on AMD); add cpu_model_extra_flags = {name}"
            )),
            Some(NovaCpuMode::Custom) => NestingVerdict::unknown(format!(
                "depends on whether {} includes {name}; add cpu_model_extra_flags = {name}",
                self.cpu_models.join(", ")
            )),
            Some(NovaCpuMode::None) => NestingVerdict::unknown("cpu_mode = none: libvirt's default model decides"),
        }
    }

    /// The `[libvirt]` section text (keys that are unset are left out).
    pub fn to_ini(&self) -> String {
        let mut out = String::from("[libvirt]\n");
        if let Some(m) = self.cpu_mode {
            out.push_str(&format!("cpu_mode = {}\n", m.as_str()));
        }
        if !self.cpu_models.is_empty() {
            out.push_str(&format!("cpu_models = {}\n", self.cpu_models.join(",")));
        }
        if !self.cpu_model_extra_flags.is_empty() {
            out.push_str(&format!(
                "cpu_model_extra_flags = {}\n",
                self.cpu_model_extra_flags.join(",")
            ));
        }
        out
    }

    /// Reads the three keys from nova.conf text (oslo.config INI: `key = value` or `key: value`,
    /// `#`/`;` comments, indented continuation lines, the last occurrence wins). Other sections and
    /// keys are ignored. The result is checked with [`NovaSettings::validate`].
    ///
    /// # Errors
    /// [`Error::Parse`] for a line that is not a section, key or comment in `[libvirt]`, or an
    /// unknown cpu_mode; [`Error::InvalidInput`] as [`NovaSettings::validate`].
    pub fn parse(text: &str) -> Result<NovaSettings> {
        let what = "nova.conf [libvirt]";
        let mut in_libvirt = false;
        let mut values: Vec<(String, String)> = Vec::new();
        let mut last_key: Option<usize> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim_end();
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if trimmed.starts_with('[') {
                let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else {
                    return Err(Error::parse(
                        what,
                        format!("line {}: bad section header {trimmed:?}", n + 1),
                    ));
                };
                in_libvirt = name.trim() == "libvirt";
                last_key = None;
                continue;
            }
            if !in_libvirt {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(i) = last_key {
                    values[i].1.push('\n');
                    values[i].1.push_str(trimmed);
                    continue;
                }
            }
            let Some(pos) = trimmed.find(['=', ':']) else {
                return Err(Error::parse(
                    what,
                    format!("line {}: expected key = value, found {trimmed:?}", n + 1),
                ));
            };
            let key = trimmed[..pos].trim().to_string();
            let mut value = trimmed[pos + 1..].trim().to_string();
            if value.len() >= 2
                && (value.starts_with('"') && value.ends_with('"')
                    || value.starts_with('\'') && value.ends_with('\''))
            {
                value = value[1..value.len() - 1].to_string();
            }
            values.push((key, value));
            last_key = Some(values.len() - 1);
        }
        let get = |k: &str| {
            values
                .iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let list = |v: Option<&str>| -> Vec<String> {
            v.map(|v| {
                v.split([',', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
        };
        let cpu_mode = match get("cpu_mode") {
            None | Some("") => None,
            Some(m) => Some(NovaCpuMode::parse(m).ok_or_else(|| {
                Error::parse(
                    what,
                    format!("cpu_mode {m:?} is not host-model, host-passthrough, custom or none"),
                )
            })?),
        };
        let s = NovaSettings {
            cpu_mode,
            cpu_models: list(get("cpu_models").or(get("cpu_model"))),
            cpu_model_extra_flags: list(get("cpu_model_extra_flags"))
                .into_iter()
                .map(|f| f.to_ascii_lowercase())
                .collect(),
        };
        s.validate()?;
        Ok(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;
    use crate::guest::NestingState;

    #[test]
    fn renders() {
        let s = NovaSettings {
            cpu_models: vec!["Skylake-Client-v4".into()],
            cpu_model_extra_flags: vec!["vmx".into()],
            ..NovaSettings::new(NovaCpuMode::Custom)
        };
        s.validate().unwrap();
        assert_eq!(
            s.to_ini(),
            "[libvirt]\ncpu_mode = custom\ncpu_models = Skylake-Client-v4\ncpu_model_extra_flags = vmx\n"
        );
        assert_eq!(NovaSettings::parse(&s.to_ini()).unwrap(), s);
    }

    #[test]
    fn rules() {
        let bad = NovaSettings {
            cpu_models: vec!["Haswell".into()],
            ..NovaSettings::new(NovaCpuMode::HostModel)
        };
        assert!(bad.validate().is_err());
        assert!(NovaSettings::new(NovaCpuMode::Custom).validate().is_err());
        let none = NovaSettings {
            cpu_model_extra_flags: vec!["vmx".into()],
            ..NovaSettings::new(NovaCpuMode::None)
        };
        assert!(none.validate().is_err());
        assert!(NovaSettings::parse("[libvirt]\ncpu_mode = custom\n").is_err());
        assert!(NovaSettings::parse("[libvirt]\ncpu_mode = sideways\n").is_err());
        assert!(NovaSettings::parse("[libvirt]\nthis is not a key\n").is_err());
    }

    #[test]
    fn parses_and_judges() {
        let text = "[DEFAULT]\ncpu_mode = custom\n# comment\n[libvirt]\nvirt_type = kvm\ncpu_mode: host-passthrough\n\
                    cpu_model_extra_flags = +VMX,\n  pcid\n[other]\nx=y\n";
        let s = NovaSettings::parse(text).unwrap();
        assert_eq!(s.cpu_mode, Some(NovaCpuMode::HostPassthrough));
        assert_eq!(s.cpu_model_extra_flags, vec!["+vmx", "pcid"]);
        assert_eq!(s.flag_policy("vmx"), Some(Policy::Require));
        assert!(s.nesting(Extension::Vmx).is_yes());

        let s = NovaSettings::parse("[libvirt]\ncpu_mode = host-passthrough\ncpu_model_extra_flags = -svm\n")
            .unwrap();
        assert_eq!(s.nesting(Extension::Svm).state, NestingState::No);
        let s = NovaSettings::parse("[libvirt]\ncpu_mode = host-model\n").unwrap();
        assert_eq!(s.nesting(Extension::Svm).state, NestingState::Unknown);
        let s = NovaSettings::parse("").unwrap();
        assert_eq!(s, NovaSettings::default());
        let s = NovaSettings::parse("[libvirt]\ncpu_mode = custom\ncpu_models = 'Haswell, Skylake'\ncpu_model_extra_flags = svm, -svm\n").unwrap();
        assert_eq!(s.cpu_models, vec!["Haswell", "Skylake"]);
        assert_eq!(s.nesting(Extension::Svm).state, NestingState::No);
    }

    #[test]
    fn from_libvirt() {
        let cpu = libvirt::Cpu::host_model()
            .with_feature(Policy::Require, "svm")
            .unwrap();
        let s = NovaSettings::from_libvirt(&cpu).unwrap();
        assert_eq!(
            s.to_ini(),
            "[libvirt]\ncpu_mode = host-model\ncpu_model_extra_flags = svm\n"
        );
        assert!(NovaSettings::from_libvirt(&libvirt::Cpu::maximum()).is_err());
        let forced = libvirt::Cpu::host_model()
            .with_feature(Policy::Force, "svm")
            .unwrap();
        assert!(NovaSettings::from_libvirt(&forced).is_err());
    }
}
