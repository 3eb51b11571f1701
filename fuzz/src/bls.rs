//! Boot Loader Specification entries (`/boot/loader/entries/*.conf`): arguments on `options`
//! lines (`bls::parse`, `bls::edit_entry_for`).
//!
//! Input: the selector picks `--update-kernel` ([`crate::UPDATE_KERNEL`]); field 0 the entry, 1
//! `--args`, 2 `--remove-args`.

use nestcore::bootloader::{self, bls, ArgsEdit};
use nestcore::cmdline::Cmdline;

use crate::{args_present, cpairs, lines, no_new_controls, removed_absent, untouched, Input, UPDATE_KERNEL};

fn bls_key(l: &str) -> &str {
    l.trim_start_matches([' ', '\t'])
        .split([' ', '\t'])
        .next()
        .unwrap_or("")
}

fn options(text: &str) -> Cmdline {
    Cmdline::parse(bls::parse(text).options.as_deref().unwrap_or(""))
}

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let text = input.field(0);
    let (add, remove) = (input.karg(1), input.karg(2));
    let target = UPDATE_KERNEL[usize::from(input.selector) % UPDATE_KERNEL.len()];
    let e = bls::parse(text);
    let _ = e.uses_kernelopts();
    // A BLS key ends at white space only (systemd-boot's line_get_key_value with " \t",
    // bootspec.c's extract_first_word): `options=x` is a key `options=`, not `options`.
    // systemd-boot strips white space (CR included) from the end of a line before it splits
    // the key: `options\r   ` is an options line with no value.
    let is_options = |l: &str| bls_key(l.trim_end_matches([' ', '\t', '\r'])) == "options";
    let had_options = lines(text).iter().any(|l| is_options(l.trim_end_matches('\r')));
    let check = |edit: &ArgsEdit, out: &str| {
        // Only options lines change, or one is appended; twice is once.
        if had_options {
            assert_eq!(
                untouched(out, is_options),
                untouched(text, is_options),
                "{text:?} -> {out:?}"
            );
            assert_eq!(lines(out).len(), lines(text).len(), "{text:?} -> {out:?}");
        } else {
            assert!(out.starts_with(text), "{text:?} -> {out:?}");
        }
        let again = bls::edit_entry(out, edit).unwrap();
        crate::twice_is_once("bls", out, &again, edit.add.is_some() && edit.remove.is_some());
        no_new_controls("bls", text, out, 2);
    };
    if let Ok(out) = bootloader::kargs_cli(text, "bls", target, add.as_deref(), remove.as_deref(), None) {
        if out != text {
            let edit = ArgsEdit {
                add: add.clone(),
                remove: remove.clone(),
                ..ArgsEdit::default()
            };
            check(&edit, &out);
        }
    }
    let only = |add: Option<String>, remove: Option<String>| ArgsEdit {
        add,
        remove,
        ..ArgsEdit::default()
    };
    if let Some(a) = &add {
        if let Ok(out) = bls::edit_entry(text, &only(add.clone(), None)) {
            args_present("bls --args", a, &cpairs(&options(&out)));
            check(&only(add.clone(), None), &out);
        }
    }
    if let Some(r) = &remove {
        if let Ok(out) = bls::edit_entry(text, &only(None, remove.clone())) {
            removed_absent("bls --remove-args", r, &cpairs(&options(&out)));
            check(&only(None, remove.clone()), &out);
        }
    }
    let set = ArgsEdit::set("kvm-intel.nested", "1");
    if let Ok(out) = bls::edit_entry(text, &set) {
        assert_eq!(
            options(&out).get("kvm_intel.nested"),
            Some(Some("1")),
            "{text:?} -> {out:?}"
        );
        check(&set, &out);
        let off = bls::edit_entry(&out, &ArgsEdit::unset("kvm-intel.nested")).unwrap();
        assert_eq!(options(&off).get("kvm_intel.nested"), None, "{out:?} -> {off:?}");
    }
}
