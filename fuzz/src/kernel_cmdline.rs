//! `/etc/kernel/cmdline` (kernel-install, systemd-boot, UKIs): one line of arguments.
//!
//! Input: field 0 the file, 1 `--args`, 2 `--remove-args`.

use nestcore::bootloader::{kernel_cmdline, ArgsEdit};

use crate::{cpairs, edited_as_asked, no_new_controls, Input};

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let text = input.field(0);
    let _ = kernel_cmdline::parse(text);
    let edits = [
        ArgsEdit {
            add: input.karg(1),
            remove: input.karg(2),
            ..ArgsEdit::default()
        },
        ArgsEdit::set("kvm-intel.nested", "1"),
        ArgsEdit::unset("kvm-intel.nested"),
    ];
    for edit in &edits {
        let Ok(out) = kernel_cmdline::edit(text, edit) else {
            continue;
        };
        // One line of arguments (an empty file gains its newline); what follows it is kept;
        // the line holds the edit; twice is once.
        let (first, rest) = out.split_once('\n').unwrap_or((&out, ""));
        let (tfirst, trest) = text.split_once('\n').unwrap_or((text, ""));
        assert_eq!(rest, trest, "{text:?} -> {out:?}");
        assert_eq!(first.ends_with('\r'), tfirst.ends_with('\r'));
        let c = kernel_cmdline::parse(&out);
        edited_as_asked(
            "kernel cmdline",
            edit.add.as_deref(),
            edit.remove.as_deref(),
            &cpairs(&c),
        );
        if !edit.set.is_empty() {
            assert_eq!(c.get("kvm_intel.nested"), Some(Some("1")), "{out:?}");
        }
        if !edit.unset.is_empty() {
            assert_eq!(c.get("kvm_intel.nested"), None, "{out:?}");
        }
        let again = kernel_cmdline::edit(&out, edit).unwrap();
        crate::twice_is_once(
            "/etc/kernel/cmdline",
            &out,
            &again,
            edit.add.is_some() && edit.remove.is_some(),
        );
        no_new_controls("/etc/kernel/cmdline", text, &out, usize::from(text.is_empty()));
    }
}
