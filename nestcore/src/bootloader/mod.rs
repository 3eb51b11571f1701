//! Boot loader configurations that carry the kernel command line, each a pure parser/editor over
//! text: GRUB 2's `/etc/default/grub`, GRUB legacy `grub.conf`/`menu.lst`, Boot Loader
//! Specification entries (and GRUB's `grubenv`), extlinux/syslinux, and `/etc/kernel/cmdline`.
//!
//! Every editor keeps each byte it does not have to change; arguments are edited with
//! [`crate::cmdline::Editor`] (grubby's `--args` / `--remove-args` semantics).

pub mod bls;
pub mod extlinux;
pub mod grub2;
pub mod grub_legacy;
pub mod kernel_cmdline;

use serde::Serialize;

use crate::cmdline::Editor;
use crate::error::{Error, Result};

/// The boot loader configuration formats nestcore edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Loader {
    /// GRUB legacy 0.97: `grub.conf` / `menu.lst`, arguments on `kernel` lines.
    GrubLegacy,
    /// GRUB 2: `/etc/default/grub` (`GRUB_CMDLINE_LINUX`), regenerated into grub.cfg.
    Grub2,
    /// A Boot Loader Specification entry (`/boot/loader/entries/*.conf`, key `options`).
    Bls,
    /// extlinux / syslinux: `append` lines.
    Extlinux,
    /// `/etc/kernel/cmdline` (systemd-boot, kernel-install, UKIs).
    KernelCmdline,
}

impl Loader {
    /// The loader for a `--loader` name: grub, grub2, bls, extlinux (or syslinux),
    /// kernel-cmdline.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for another name.
    pub fn from_name(name: &str) -> Result<Loader> {
        Ok(match name {
            "grub" | "grub-legacy" | "grub_legacy" => Loader::GrubLegacy,
            "grub2" => Loader::Grub2,
            "bls" => Loader::Bls,
            "extlinux" | "syslinux" => Loader::Extlinux,
            "kernel-cmdline" | "kernel_cmdline" => Loader::KernelCmdline,
            other => {
                return Err(Error::InvalidInput(format!(
                    "Unknown loader {other:?} (expected grub, grub2, bls, extlinux or kernel-cmdline)"
                )))
            }
        })
    }
}

/// Which boot entries an edit applies to (grubby's `--update-kernel`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Every entry.
    All,
    /// The default entry.
    Default,
    /// Entries by 0-based index (`--update-kernel 0,2`).
    Indexes(Vec<usize>),
    /// The entry with this title (`--update-kernel TITLE=...`).
    Title(String),
    /// Entries whose kernel is this path, relative to the boot file system.
    Path(String),
}

impl Target {
    /// Parses an `--update-kernel` value: `ALL`, `DEFAULT`, `0,1`, `TITLE=...` or a kernel path.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty value.
    pub fn parse(s: &str) -> Result<Target> {
        if s.is_empty() {
            return Err(Error::InvalidInput("Empty --update-kernel value".into()));
        }
        if s == "ALL" {
            return Ok(Target::All);
        }
        if s == "DEFAULT" {
            return Ok(Target::Default);
        }
        if let Some(t) = s.strip_prefix("TITLE=") {
            return Ok(Target::Title(t.to_string()));
        }
        if s.bytes().all(|c| c.is_ascii_digit() || c == b',') {
            let idx: std::result::Result<Vec<usize>, _> =
                s.split(',').filter(|x| !x.is_empty()).map(str::parse).collect();
            if let Ok(idx) = idx {
                return Ok(Target::Indexes(idx));
            }
        }
        Ok(Target::Path(s.to_string()))
    }
}

/// Which entries to edit and how kernel paths are written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The entries.
    pub target: Target,
    /// The boot file system's mount point (grubby's `--boot-filesystem`): a kernel path
    /// `/boot/vmlinuz-X` is written `/vmlinuz-X` in a configuration on a separate /boot.
    /// `None`: try the path as given, then without a leading `/boot`.
    pub boot_prefix: Option<String>,
    /// Only entries that boot a Linux kernel (nestcore's own plans). grubby also adds arguments
    /// to `append` lines of chain-loading entries; `false` keeps that for compatibility.
    pub only_linux: bool,
}

impl Selection {
    /// Every Linux entry.
    pub fn all_linux() -> Selection {
        Selection {
            target: Target::All,
            boot_prefix: None,
            only_linux: true,
        }
    }

    /// Whether the kernel path written in an entry (its root specifier such as `(hd0,1)`
    /// already removed) is the target path.
    pub(crate) fn path_matches(&self, written: &str) -> bool {
        let Target::Path(want) = &self.target else {
            return false;
        };
        match &self.boot_prefix {
            Some(prefix) => {
                let prefix = prefix.trim_end_matches('/');
                want.strip_prefix(prefix).is_some_and(|rest| rest == written)
            }
            None => want == written || want.strip_prefix("/boot").is_some_and(|rest| rest == written),
        }
    }

    /// Which of `n` entries to edit, given the default entry and a way to get entry i's title
    /// and written kernel path.
    pub(crate) fn pick(
        &self,
        n: usize,
        default: Option<usize>,
        title: impl Fn(usize) -> Option<String>,
        kernel: impl Fn(usize) -> Option<String>,
    ) -> Vec<usize> {
        match &self.target {
            Target::All => (0..n).collect(),
            Target::Default => default.filter(|d| *d < n).into_iter().collect(),
            Target::Indexes(v) => v.iter().copied().filter(|i| *i < n).collect(),
            Target::Title(t) => (0..n)
                .filter(|i| title(*i).as_deref() == Some(t.as_str()))
                .collect(),
            Target::Path(_) => (0..n)
                .filter(|i| kernel(*i).is_some_and(|k| self.path_matches(&k)))
                .collect(),
        }
    }
}

/// An edit of kernel arguments: grubby's `--args` then `--remove-args`, then typed settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ArgsEdit {
    /// grubby `--args`: replace in place or append.
    pub add: Option<String>,
    /// grubby `--remove-args`: `k` any value, `k=v` that exact value.
    pub remove: Option<String>,
    /// Parameters to make effective (`name`, value), duplicates removed.
    pub set: Vec<(String, Option<String>)>,
    /// Parameters to remove with any value.
    pub unset: Vec<String>,
}

impl ArgsEdit {
    /// An edit that makes `name=value` effective.
    pub fn set(name: &str, value: &str) -> ArgsEdit {
        ArgsEdit {
            set: vec![(name.to_string(), Some(value.to_string()))],
            ..ArgsEdit::default()
        }
    }

    /// An edit that removes `name` with any value.
    pub fn unset(name: &str) -> ArgsEdit {
        ArgsEdit {
            unset: vec![name.to_string()],
            ..ArgsEdit::default()
        }
    }

    /// Whether the edit does nothing.
    pub fn is_empty(&self) -> bool {
        self.add.is_none() && self.remove.is_none() && self.set.is_empty() && self.unset.is_empty()
    }

    /// The same edit with only its removals (for places that must not gain a parameter, such as
    /// `GRUB_CMDLINE_LINUX_DEFAULT` when the setting goes into `GRUB_CMDLINE_LINUX`).
    pub fn removals_only(&self) -> ArgsEdit {
        let mut unset = self.unset.clone();
        unset.extend(self.set.iter().map(|(n, _)| n.clone()));
        ArgsEdit {
            add: None,
            remove: self.remove.clone(),
            set: Vec::new(),
            unset,
        }
    }

    /// Applies the edit through an [`Editor`]; `divert` as in [`Editor::add_args_diverting`].
    /// Returns whether the text changed.
    ///
    /// # Errors
    /// As [`Editor::add_args`] and [`Editor::set`].
    pub fn apply_diverting(&self, e: &mut Editor, divert: impl FnMut(&str, &str) -> bool) -> Result<bool> {
        let mut changed = false;
        if let Some(a) = &self.add {
            changed |= e.add_args_diverting(a, divert)?;
        }
        if let Some(r) = &self.remove {
            changed |= e.remove_args(r)?;
        }
        for (n, v) in &self.set {
            changed |= e.set(n, v.as_deref())?;
        }
        for n in &self.unset {
            changed |= e.remove(n, None);
        }
        Ok(changed)
    }

    /// Applies the edit to a command line and returns the new text.
    ///
    /// # Errors
    /// As [`ArgsEdit::apply_diverting`].
    pub fn apply_to(&self, text: &str) -> Result<String> {
        let mut e = Editor::new(text);
        self.apply_diverting(&mut e, |_, _| false)?;
        Ok(e.into_string())
    }

    /// The `--remove-args` tokens that start with `prefix` (grubby drops extlinux `root` lines
    /// for `root=...`).
    pub(crate) fn removes_with_prefix(&self, prefix: &str) -> bool {
        self.remove
            .as_deref()
            .is_some_and(|r| r.split_ascii_whitespace().any(|t| t.starts_with(prefix)))
    }
}

/// One line of a configuration, split into content and line ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) text: String,
    pub(crate) eol: String,
}

/// Splits text into lines keeping each line's ending (`\n`, `\r\n` or none for the last).
pub(crate) fn split_lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find('\n') {
            Some(i) => {
                let (body, eol) = if i > 0 && rest.as_bytes()[i - 1] == b'\r' {
                    (&rest[..i - 1], "\r\n")
                } else {
                    (&rest[..i], "\n")
                };
                out.push(Line {
                    text: body.to_string(),
                    eol: eol.to_string(),
                });
                rest = &rest[i + 1..];
            }
            None => {
                out.push(Line {
                    text: rest.to_string(),
                    eol: String::new(),
                });
                rest = "";
            }
        }
    }
    out
}

/// Joins lines back.
pub(crate) fn join_lines(lines: &[Line]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(&l.text);
        s.push_str(&l.eol);
    }
    s
}

/// A keyword line: leading indent, keyword, separator, rest (`kernel /vmlinuz ro`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KwLine<'a> {
    pub(crate) indent: &'a str,
    pub(crate) keyword: &'a str,
    pub(crate) sep: &'a str,
    pub(crate) rest: &'a str,
}

/// Splits a configuration line into keyword and rest; `eq_sep` allows `key=value`
/// (GRUB legacy). `None` for blank and `#` comment lines.
pub(crate) fn keyword_line(line: &str, eq_sep: bool) -> Option<KwLine<'_>> {
    let body = line.trim_start_matches([' ', '\t']);
    let indent = &line[..line.len() - body.len()];
    if body.is_empty() || body.starts_with('#') {
        return None;
    }
    let kw_end = body
        .find(|c: char| c == ' ' || c == '\t' || (eq_sep && c == '='))
        .unwrap_or(body.len());
    let after = &body[kw_end..];
    let rest = after.trim_start_matches(|c: char| c == ' ' || c == '\t' || (eq_sep && c == '='));
    let sep = &after[..after.len() - rest.len()];
    Some(KwLine {
        indent,
        keyword: &body[..kw_end],
        sep,
        rest,
    })
}

/// Edits the argument part of a line (`region`, possibly empty) and returns the new region; when
/// the region was empty a separating space is put in front of the first argument.
pub(crate) fn edit_region(
    region: &str,
    edit: &ArgsEdit,
    divert: impl FnMut(&str, &str) -> bool,
) -> Result<String> {
    let mut e = Editor::new(region);
    edit.apply_diverting(&mut e, divert)?;
    let mut out = e.into_string();
    // The keyword stays separated from what follows by a space or tab (the separator of every
    // format here): an edit that removed the first argument with the white space before it
    // must not glue the rest (even a bare CR) to the keyword, which would rename the line.
    let separated = crate::cmdline::is_blank(region) || region.starts_with([' ', '\t']);
    if separated && !out.is_empty() && !out.starts_with([' ', '\t']) {
        out.insert(0, ' ');
    }
    Ok(out)
}

/// `nestcore kargs`: grubby-compatible argument editing of one configuration's text; returns
/// the edited text.
///
/// `loader` is grub (legacy), grub2 (`/etc/default/grub`), bls (one entry file), extlinux or
/// kernel-cmdline; `update_kernel` is ALL, DEFAULT, an index list, `TITLE=...` or a kernel path
/// (matched relative to `boot_filesystem`, grubby's `--boot-filesystem`).
///
/// ```
/// let cfg = "default=0\ntitle L\n\troot (hd0,0)\n\tkernel /vmlinuz-1 ro root=/dev/sda1\n";
/// let out = nestcore::bootloader::kargs_cli(cfg, "grub", "ALL", Some("kvm-intel.nested=1"), None, None).unwrap();
/// assert!(out.ends_with("kernel /vmlinuz-1 ro root=/dev/sda1 kvm-intel.nested=1\n"));
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] for an unknown loader or bad arguments, [`Error::Parse`] for a
/// configuration that cannot be edited safely, [`Error::Unsupported`] for a combination the
/// format cannot express (one entry of `/etc/default/grub`).
pub fn kargs_cli(
    config_text: &str,
    loader: &str,
    update_kernel: &str,
    args: Option<&str>,
    remove_args: Option<&str>,
    boot_filesystem: Option<&str>,
) -> Result<String> {
    let loader = Loader::from_name(loader)?;
    let sel = Selection {
        target: Target::parse(update_kernel)?,
        boot_prefix: boot_filesystem.map(str::to_string),
        only_linux: false,
    };
    let edit = ArgsEdit {
        add: args.map(str::to_string),
        remove: remove_args.map(str::to_string),
        ..ArgsEdit::default()
    };
    match loader {
        Loader::GrubLegacy => grub_legacy::edit(config_text, &sel, &edit),
        Loader::Extlinux => extlinux::edit(config_text, &sel, &edit),
        Loader::Bls => bls::edit_entry_for(config_text, &sel, &edit),
        Loader::KernelCmdline => kernel_cmdline::edit(config_text, &edit),
        Loader::Grub2 => {
            if !matches!(sel.target, Target::All | Target::Default) {
                return Err(Error::Unsupported(
                    "/etc/default/grub applies to every entry: use --update-kernel ALL".into(),
                ));
            }
            grub2::edit(config_text, grub2::CMDLINE_VAR, &edit)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(Target::parse("ALL").unwrap(), Target::All);
        assert_eq!(Target::parse("0,2").unwrap(), Target::Indexes(vec![0, 2]));
        assert_eq!(Target::parse("TITLE=x y").unwrap(), Target::Title("x y".into()));
        assert_eq!(
            Target::parse("/boot/vmlinuz").unwrap(),
            Target::Path("/boot/vmlinuz".into())
        );
        assert!(Target::parse("").is_err());
    }

    #[test]
    fn path_prefix() {
        let mut s = Selection {
            target: Target::Path("/boot/vmlinuz-1".into()),
            boot_prefix: None,
            only_linux: true,
        };
        assert!(s.path_matches("/boot/vmlinuz-1"));
        assert!(s.path_matches("/vmlinuz-1"));
        s.boot_prefix = Some("/".into());
        assert!(!s.path_matches("/vmlinuz-1"));
        assert!(s.path_matches("/boot/vmlinuz-1"));
        s.boot_prefix = Some("/boot".into());
        assert!(s.path_matches("/vmlinuz-1"));
    }

    #[test]
    fn lines_round_trip() {
        for t in ["", "a", "a\n", "a\r\nb", "\n\n", "x\r\n\r\n"] {
            assert_eq!(join_lines(&split_lines(t)), t);
        }
    }

    #[test]
    fn keyword_lines() {
        let k = keyword_line("\tkernel  /vmlinuz ro", false).unwrap();
        assert_eq!(
            (k.indent, k.keyword, k.sep, k.rest),
            ("\t", "kernel", "  ", "/vmlinuz ro")
        );
        let k = keyword_line("default=0", true).unwrap();
        assert_eq!((k.keyword, k.sep, k.rest), ("default", "=", "0"));
        assert!(keyword_line("  # c", false).is_none());
        assert!(keyword_line("   ", false).is_none());
    }

    #[test]
    fn replaces_an_existing_name_in_place() {
        let conf = "title A\n\tkernel /vmlinuz ro  quiet\n";
        let out = grub_legacy::edit(
            conf,
            &Selection::all_linux(),
            &ArgsEdit {
                add: Some("ro=0".into()),
                ..ArgsEdit::default()
            },
        )
        .unwrap();
        assert_eq!(out, "title A\n\tkernel /vmlinuz ro=0  quiet\n");
    }

    /// Issue 13, the exact argument of the report: a newline inside a quoted argument wrote a
    /// new `initrd /evil"` line (grub legacy, bls, extlinux, kernel-cmdline). Every loader
    /// refuses it, and every control character, naming the character; nothing is written.
    #[test]
    fn control_characters_never_reach_any_loader() {
        let configs = [
            (
                "grub",
                "default=0\ntitle L\n\troot (hd0,0)\n\tkernel /vmlinuz-1 ro\n\tinitrd /i\n",
            ),
            ("grub2", "GRUB_CMDLINE_LINUX=\"ro\"\n"),
            ("grub2", "GRUB_CMDLINE_LINUX=ro\n"),
            ("bls", "title T\nlinux /vmlinuz\noptions ro\n"),
            ("bls", "title T\nlinux /vmlinuz\n"),
            ("extlinux", "label l\n  kernel /vmlinuz\n  append ro\n"),
            ("extlinux", "label l\n  kernel /vmlinuz\n"),
            ("kernel-cmdline", "ro\n"),
            ("kernel-cmdline", ""),
        ];
        let args = [
            ("\"x\ninitrd /evil\"", "U+000A (line feed)"),
            ("x\r\ninitrd /evil", "U+000D (carriage return)"),
            ("a=\0b", "U+0000 (NUL)"),
            ("a\u{1b}]0;x\u{7}", "U+001B (escape)"),
            ("a\tb", "U+0009 (tab)"),
        ];
        for (loader, cfg) in configs {
            for (arg, named) in args {
                for (add, remove) in [(Some(arg), None), (None, Some(arg))] {
                    let e = kargs_cli(cfg, loader, "ALL", add, remove, None).unwrap_err();
                    assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{loader} {arg:?}: {e}");
                    assert!(e.to_string().contains(named), "{loader} {arg:?}: {e}");
                }
            }
        }
        // The planner's typed settings go through the same check.
        let bad = ArgsEdit::set("kvm-intel.nested", "1\ninitrd /evil");
        assert!(grub_legacy::edit(configs[0].1, &Selection::all_linux(), &bad).is_err());
        assert!(grub2::edit(configs[1].1, grub2::CMDLINE_VAR, &bad).is_err());
        assert!(bls::edit_entry(configs[3].1, &bad).is_err());
        assert!(extlinux::edit(configs[5].1, &Selection::all_linux(), &bad).is_err());
        assert!(kernel_cmdline::edit("ro\n", &bad).is_err());
        let env = format!("# GRUB Environment Block\nkernelopts=ro\n{}", "#".repeat(990));
        assert!(bls::edit_grubenv(&env, bls::KERNELOPTS, &bad).is_err());
    }

    #[test]
    fn unknown_loader() {
        assert_eq!(
            kargs_cli("", "lilo", "ALL", None, None, None).unwrap_err().kind(),
            crate::ErrorKind::InvalidInput
        );
    }

    mod hostile {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(crate::proptest_seed::config(256))]

            #[test]
            fn editors_never_panic(text in "(\\PC|\n|\t|\"|'|=|#|\\\\){0,200}",
                                   arg in "[a-z_.=\"-]{1,12}") {
                let sel = Selection::all_linux();
                let e = ArgsEdit { add: Some(arg.clone()), remove: Some(arg.clone()), ..ArgsEdit::default() };
                let _ = grub_legacy::edit(&text, &sel, &e);
                let _ = extlinux::edit(&text, &sel, &e);
                let _ = grub2::edit(&text, grub2::CMDLINE_VAR, &e);
                let _ = bls::edit_entry(&text, &e);
                let _ = bls::edit_grubenv(&text, bls::KERNELOPTS, &e);
                let _ = kernel_cmdline::edit(&text, &e);
                for l in ["grub", "extlinux", "grub2", "bls", "kernel-cmdline"] {
                    let _ = kargs_cli(&text, l, "ALL", Some(&arg), None, None);
                }
            }

            // The generated name never collides with the line's own `ro`/`quiet` (an existing name
            // is replaced in place, grubby's rule, which `replaces_an_existing_name_in_place`
            // pins down).
            #[test]
            fn grub_legacy_edit_touches_only_kernel_lines(extra in "x[a-z]{0,7}=[0-9]{1,3}") {
                let conf = "default=0\n# c\ntitle A\n\troot (hd0,0)\n\tkernel /vmlinuz ro  quiet\n\tinitrd /i\n";
                let out = grub_legacy::edit(conf, &Selection::all_linux(), &ArgsEdit { add: Some(extra.clone()), ..ArgsEdit::default() }).unwrap();
                let changed: Vec<_> = conf.lines().zip(out.lines()).filter(|(a, b)| a != b).collect();
                prop_assert_eq!(changed.len(), 1);
                prop_assert_eq!(changed[0].1.to_string(), format!("\tkernel /vmlinuz ro  quiet {extra}"));
            }
        }
    }
}
