//! GRUB 2's `/etc/default/grub`: shell assignments of `GRUB_CMDLINE_LINUX` and
//! `GRUB_CMDLINE_LINUX_DEFAULT` (`grub2::value`, `grub2::edit`).
//!
//! Input: field 0 the file, 1 `--args`, 2 `--remove-args`; selector bit 0 edits
//! `GRUB_CMDLINE_LINUX_DEFAULT` instead. What bash makes of the result is checked against bash
//! itself in nestcore/tests/differential_bash.rs.

use nestcore::bootloader::{grub2, ArgsEdit};
use nestcore::ErrorKind;

use crate::{no_new_controls, Input};

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let text = input.field(0);
    let (var, other) = if input.selector & 1 == 0 {
        (grub2::CMDLINE_VAR, grub2::CMDLINE_DEFAULT_VAR)
    } else {
        (grub2::CMDLINE_DEFAULT_VAR, grub2::CMDLINE_VAR)
    };
    let old = match grub2::value(text, var) {
        Ok(v) => v,
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Parse, "{e}");
            None
        }
    };
    let edit = ArgsEdit {
        add: input.karg(1),
        remove: input.karg(2),
        ..ArgsEdit::default()
    };
    check_edit(text, var, other, old.as_deref(), &edit);
    check_edit(
        text,
        var,
        other,
        old.as_deref(),
        &ArgsEdit::set("kvm-amd.nested", "1"),
    );
    check_edit(
        text,
        var,
        other,
        old.as_deref(),
        &ArgsEdit::unset("kvm-amd.nested"),
    );
}

fn check_edit(text: &str, var: &str, other: &str, old: Option<&str>, edit: &ArgsEdit) {
    // A value with a line break is never edited: grub-mkconfig writes `linux ... ro ${args}`
    // into grub.cfg through a here-document (10_linux), so the text after the break is a GRUB
    // command, not kernel arguments; keeping or dropping the break would both be wrong.
    if old.is_some_and(|v| v.contains('\n')) {
        let r = grub2::edit(text, var, edit);
        assert!(r.is_err(), "a value with a line break edited: {text:?} -> {r:?}");
        return;
    }
    let Ok(out) = grub2::edit(text, var, edit) else {
        return;
    };
    // The variable now holds exactly the edited value; the other variable is untouched. (With
    // `$VAR` references the value read is expanded and the edit applies to the text: what the
    // shell then sees is checked against bash in nestcore/tests/differential_bash.rs.)
    let got = grub2::value(&out, var).unwrap_or_else(|e| panic!("{e}: {text:?} -> {out:?}"));
    if !text.contains('$') {
        let want = edit.apply_to(old.unwrap_or("")).unwrap();
        match old {
            Some(_) => assert_eq!(got.as_deref(), Some(want.as_str()), "{text:?} -> {out:?}"),
            None if want.trim().is_empty() => assert_eq!(out, text),
            None => assert_eq!(got.as_deref(), Some(want.trim_start()), "{text:?} -> {out:?}"),
        }
        assert_eq!(
            grub2::value(&out, other).ok(),
            grub2::value(text, other).ok(),
            "{other} changed: {text:?} -> {out:?}"
        );
    }
    // Twice is once; nothing but the value changed (an appended assignment adds its line).
    let again = grub2::edit(&out, var, edit).unwrap();
    crate::twice_is_once(
        "/etc/default/grub",
        &out,
        &again,
        edit.add.is_some() && edit.remove.is_some(),
    );
    let appended = old.is_none() && out != text;
    if !appended {
        assert_eq!(
            out.matches('\n').count(),
            text.matches('\n').count(),
            "{text:?} -> {out:?}"
        );
    } else {
        assert!(out.starts_with(text), "{text:?} -> {out:?}");
    }
    // An appended assignment: its line, a line end for an unterminated last line and an empty
    // line after a continued one.
    no_new_controls("/etc/default/grub", text, &out, 3);
}
