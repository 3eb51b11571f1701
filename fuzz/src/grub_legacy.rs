//! GRUB legacy `grub.conf` / `menu.lst` (the CentOS 6 case): arguments on `kernel` lines.
//!
//! Input: the selector picks `--update-kernel` ([`crate::UPDATE_KERNEL`], bits 0-2) and a
//! `--boot-filesystem` (bit 3: "/boot"); field 0 the configuration, 1 `--args`, 2
//! `--remove-args` (absent fields are not given).

use nestcore::bootloader::{self, grub_legacy, ArgsEdit, Selection};
use nestcore::cmdline::Cmdline;

use crate::{
    args_present, cpairs, first_word, lines, no_new_controls, removed_absent, twice_is_once, untouched,
    Input, UPDATE_KERNEL,
};

/// The kernel path written on a `kernel` line (`kernel PATH ARGS`, `kernel=PATH`), "" for none.
fn kernel_path(line: &str) -> &str {
    let body = line.trim_start_matches([' ', '\t']);
    let rest = body.trim_start_matches(|c: char| c != ' ' && c != '\t' && c != '=');
    let rest = rest.trim_start_matches([' ', '\t', '=']);
    rest.split([' ', '\t']).next().unwrap_or("")
}

/// Every entry's arguments for entries whose kernel line has a path (those an edit changes).
fn edited_cmdlines(text: &str) -> Vec<Cmdline> {
    let ls = lines(text);
    grub_legacy::parse(text)
        .entries
        .iter()
        .filter_map(|e| e.kernel_line.zip(e.args.as_ref()))
        .filter(|(k, _)| !kernel_path(ls[*k].trim_end_matches('\r')).is_empty())
        .map(|(_, a)| Cmdline::parse(a))
        .collect()
}

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let text = input.field(0);
    let (add, remove) = (input.karg(1), input.karg(2));
    let target = UPDATE_KERNEL[usize::from(input.selector & 7) % UPDATE_KERNEL.len()];
    let boot = (input.selector & 8 != 0).then_some("/boot");
    let cfg = grub_legacy::parse(text);
    let n = lines(text).len();
    for e in &cfg.entries {
        assert!(
            e.first_line < n && e.end_line <= n && e.first_line < e.end_line,
            "{e:?}"
        );
        if let Some(k) = e.kernel_line {
            assert!(k > e.first_line && k < e.end_line, "{e:?}");
        }
    }
    let is_kernel = |l: &str| first_word(l).eq_ignore_ascii_case("kernel");
    // grubby's --args/--remove-args: only kernel lines change, no line is added or removed,
    // twice is once, no control character is written.
    if let Ok(out) = bootloader::kargs_cli(text, "grub", target, add.as_deref(), remove.as_deref(), boot) {
        assert_eq!(lines(&out).len(), n, "{text:?} -> {out:?}");
        assert_eq!(
            untouched(&out, is_kernel),
            untouched(text, is_kernel),
            "{text:?} -> {out:?}"
        );
        let again =
            bootloader::kargs_cli(&out, "grub", target, add.as_deref(), remove.as_deref(), boot).unwrap();
        twice_is_once("grub kargs", &out, &again, add.is_some() && remove.is_some());
        no_new_controls("grub kargs", text, &out, 0);
    }
    // Every Linux entry: --args then has each argument, --remove-args none of the removed.
    let sel = Selection::all_linux();
    let only = |add: Option<String>, remove: Option<String>| ArgsEdit {
        add,
        remove,
        ..ArgsEdit::default()
    };
    if let (Some(a), Ok(out)) = (&add, grub_legacy::edit(text, &sel, &only(add.clone(), None))) {
        for c in edited_cmdlines(&out) {
            args_present("grub --args", a, &cpairs(&c));
        }
    }
    if let (Some(r), Ok(out)) = (
        &remove,
        grub_legacy::edit(text, &sel, &only(None, remove.clone())),
    ) {
        for c in edited_cmdlines(&out) {
            removed_absent("grub --remove-args", r, &cpairs(&c));
        }
    }
    // nestcore's own edit: every Linux entry gets the parameter, twice is once, unset removes it.
    let set = ArgsEdit::set("kvm-intel.nested", "1");
    if let Ok(out) = grub_legacy::edit(text, &sel, &set) {
        assert_eq!(untouched(&out, is_kernel), untouched(text, is_kernel));
        for c in edited_cmdlines(&out) {
            assert_eq!(c.get("kvm_intel.nested"), Some(Some("1")), "{out:?}");
        }
        assert_eq!(grub_legacy::edit(&out, &sel, &set).unwrap(), out);
        let off = grub_legacy::edit(&out, &sel, &ArgsEdit::unset("kvm_intel.nested")).unwrap();
        for c in edited_cmdlines(&off) {
            assert_eq!(c.get("kvm_intel.nested"), None);
        }
        no_new_controls("grub set", text, &out, 0);
    }
}
