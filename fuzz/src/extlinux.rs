//! extlinux / syslinux configurations: arguments on `append` lines, `root=` on a `root` line
//! (grubby's rules).
//!
//! Input: the selector picks `--update-kernel` ([`crate::UPDATE_KERNEL`], bits 0-2) and a
//! `--boot-filesystem` (bit 3: "/boot"); field 0 the configuration, 1 `--args`, 2
//! `--remove-args`.

use nestcore::bootloader::{self, extlinux, ArgsEdit, Selection};

use crate::{cpairs, first_word, lines, removed_absent, untouched, Input, UPDATE_KERNEL};

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let text = input.field(0);
    let (add, remove) = (input.karg(1), input.karg(2));
    let target = UPDATE_KERNEL[usize::from(input.selector & 7) % UPDATE_KERNEL.len()];
    let boot = (input.selector & 8 != 0).then_some("/boot");
    let cfg = extlinux::parse(text);
    let n = lines(text).len();
    for e in &cfg.entries {
        assert!(e.first_line < e.end_line && e.end_line <= n, "{e:?}");
    }
    assert!(cfg.default.is_none_or(|d| d < cfg.entries.len().max(1)));
    // append and root lines may change, appear or go; every other line stays, in order.
    // syslinux's looking_at ends a keyword at any byte up to ' ' (my_isspace), CR included:
    // `append\r` is an append line.
    let touched = |l: &str| {
        let key = first_word(l).split(|c: char| c <= ' ').next().unwrap_or("");
        matches!(key.to_ascii_lowercase().as_str(), "append" | "root")
    };
    // A CR that ends a line is white space to syslinux (readconfig's skipspace takes every
    // byte up to ' '): an unterminated last line of a CRLF file ends with "\r\n" once a line
    // is appended after it, and stays the same line.
    let cr = |v: Vec<&str>| -> Vec<String> {
        v.into_iter()
            .map(|l| l.trim_end_matches('\r').to_string())
            .collect()
    };
    let check = |out: &str| {
        assert_eq!(
            cr(untouched(out, touched)),
            cr(untouched(text, touched)),
            "{text:?} -> {out:?}"
        );
        // Each entry gains at most an append and a root line.
        assert!(
            lines(out).len() <= n + 2 * cfg.entries.len(),
            "{text:?} -> {out:?}"
        );
        // Inserted lines copy the indent of the line before them (tabs too).
        crate::no_new_control_kinds("extlinux", text, out);
    };
    if let Ok(out) = bootloader::kargs_cli(text, "extlinux", target, add.as_deref(), remove.as_deref(), boot)
    {
        check(&out);
        let again =
            bootloader::kargs_cli(&out, "extlinux", target, add.as_deref(), remove.as_deref(), boot).unwrap();
        // grubby's root rule depends on what is there: a root= that replaces one on append
        // stays there, one that replaces nothing goes to a root line (grubby's own test
        // extlinux1.2: `--args "root=/dev/hda1 hda=ide-scsi root=/dev/hda2"`). With root= twice
        // in one --args a second run finds other roots and moves them, as grubby would: no
        // idempotence is asked of it (fuzz/regressions/extlinux/root-twice-in-one-args).
        let roots = add
            .as_deref()
            .map_or(0, |a| crate::pairs(a).iter().filter(|(n, _)| n == "root").count());
        if roots < 2 {
            crate::twice_is_once("extlinux kargs", &out, &again, add.is_some() && remove.is_some());
        }
    }
    let sel = Selection::all_linux();
    let only = |add: Option<String>, remove: Option<String>| ArgsEdit {
        add,
        remove,
        ..ArgsEdit::default()
    };
    if let (Some(a), Ok(out)) = (&add, extlinux::edit(text, &sel, &only(add.clone(), None))) {
        check(&out);
        // root=/dev/... goes to a root line (grubby), every other argument onto append.
        for (_, c) in extlinux::cmdlines(&out, &sel) {
            let got = cpairs(&c);
            for (n, v) in crate::pairs(a).into_iter().filter(|(n, _)| n != "root") {
                assert!(
                    got.contains(&(n.clone(), v.clone())),
                    "{n:?}={v:?} of {a:?} not in {got:?}: {out:?}"
                );
            }
        }
    }
    if let (Some(r), Ok(out)) = (&remove, extlinux::edit(text, &sel, &only(None, remove.clone()))) {
        check(&out);
        for (_, c) in extlinux::cmdlines(&out, &sel) {
            removed_absent("extlinux --remove-args", r, &cpairs(&c));
        }
    }
    let set = ArgsEdit::set("kvm-amd.nested", "1");
    if let Ok(out) = extlinux::edit(text, &sel, &set) {
        check(&out);
        for (title, c) in extlinux::cmdlines(&out, &sel) {
            assert_eq!(
                c.get("kvm_amd.nested"),
                Some(Some("1")),
                "entry {title:?} of {out:?}"
            );
        }
        assert_eq!(
            extlinux::edit(&out, &sel, &set).unwrap(),
            out,
            "twice is not once"
        );
        let off = extlinux::edit(&out, &sel, &ArgsEdit::unset("kvm-amd.nested")).unwrap();
        for (_, c) in extlinux::cmdlines(&off, &sel) {
            assert_eq!(c.get("kvm_amd.nested"), None);
        }
    }
}
