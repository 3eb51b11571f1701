//! GRUB's environment block (`/boot/grub2/grubenv`, RHEL 8's `$kernelopts`):
//! `bls::grubenv_vars`, `bls::edit_grubenv`.
//!
//! Input: field 0 the block (the header `# GRUB Environment Block\n` is put in front unless the
//! selector's bit 0 is set), 1 `--args`, 2 `--remove-args`.

use nestcore::bootloader::{bls, ArgsEdit};
use nestcore::cmdline::Cmdline;

use crate::{cpairs, edited_as_asked, no_new_controls, Input};

const HEADER: &str = "# GRUB Environment Block\n";

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let text = if input.selector & 1 == 0 {
        format!("{HEADER}{}", input.field(0))
    } else {
        input.field(0).to_string()
    };
    let before = bls::grubenv_vars(&text);
    let edits = [
        ArgsEdit {
            add: input.karg(1),
            remove: input.karg(2),
            ..ArgsEdit::default()
        },
        ArgsEdit::set("kvm-amd.nested", "1"),
        ArgsEdit::unset("kvm-amd.nested"),
    ];
    for edit in &edits {
        let Ok(out) = bls::edit_grubenv(&text, bls::KERNELOPTS, edit) else {
            continue;
        };
        // The block keeps its size (at least GRUB's 1024 bytes), its header and every other
        // variable; kernelopts holds the edited arguments; twice is once.
        assert_eq!(out.len(), text.len().max(1024), "{text:?} -> {out:?}");
        assert!(out.starts_with(HEADER));
        assert_eq!(
            out.matches('\n').count(),
            text.matches('\n').count(),
            "{text:?} -> {out:?}"
        );
        let after = bls::grubenv_vars(&out);
        let strip = |v: &[(String, String)]| -> Vec<(String, String)> {
            v.iter().filter(|(k, _)| k != bls::KERNELOPTS).cloned().collect()
        };
        assert_eq!(strip(&after), strip(&before), "{text:?} -> {out:?}");
        let ko = after
            .iter()
            .find(|(k, _)| k == bls::KERNELOPTS)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let c = Cmdline::parse(&ko);
        edited_as_asked(
            "grubenv",
            edit.add.as_deref(),
            edit.remove.as_deref(),
            &cpairs(&c),
        );
        if !edit.set.is_empty() {
            assert_eq!(c.get("kvm_amd.nested"), Some(Some("1")), "{out:?}");
        }
        let again = bls::edit_grubenv(&out, bls::KERNELOPTS, edit).unwrap();
        crate::twice_is_once(
            "grubenv",
            &out,
            &again,
            edit.add.is_some() && edit.remove.is_some(),
        );
        no_new_controls("grubenv", &text, &out, 0);
    }
}
