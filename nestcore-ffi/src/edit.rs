//! Pure text editors: kernel command lines and boot loader configurations (grubby's `--args` /
//! `--remove-args`). Text in, text out; nothing is read from or written to a host.

use std::ffi::c_char;

use nestcore::cmdline::Editor;

use crate::args;
use crate::status::nestcore_status;

/// Edits the kernel arguments of one boot loader configuration's text, like
/// `grubby --update-kernel UPDATE_KERNEL --args ARGS --remove-args REMOVE_ARGS` (and
/// `nestcore kargs`), and returns the edited text. Every byte that does not have to change is
/// kept. Nothing is read or written: the caller reads and writes the file.
///
/// - `loader`: "grub" (GRUB legacy grub.conf/menu.lst), "grub2" (/etc/default/grub), "bls" (one
///   Boot Loader Specification entry), "extlinux" or "kernel-cmdline" (/etc/kernel/cmdline).
/// - `update_kernel`: "ALL", "DEFAULT", an index list ("0,2"), "TITLE=..." or a kernel path
///   (matched relative to `boot_filesystem_or_null`, grubby's `--boot-filesystem`, e.g. "/boot").
///   grub2 accepts only ALL and DEFAULT (it applies to every entry).
/// - `args_or_null`: each argument replaces the first parameter of the same name in place, or is
///   appended (names compare with `-` equal to `_`).
/// - `remove_args_or_null`: `k` removes `k` with any value, `k=v` only where the value is `v`.
///
/// Fails with NESTCORE_STATUS_INVALID_ARGUMENT for an unknown loader or `update_kernel`, or a bad
/// argument list (a bare `--`, an unbalanced quote); NESTCORE_STATUS_PARSE for a configuration
/// that cannot be edited safely; NESTCORE_STATUS_UNSUPPORTED for what the format cannot express
/// (one entry of /etc/default/grub). `*out` receives the edited text, an owned string to release
/// with `nestcore_string_free()` (NULL on failure).
///
/// # Safety
/// Every string must be NULL or NUL-terminated (`config_text`, `loader` and `update_kernel` must
/// not be NULL); `out` must be NULL (an error) or point to a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_kargs_edit(
    config_text: *const c_char,
    loader: *const c_char,
    update_kernel: *const c_char,
    args_or_null: *const c_char,
    remove_args_or_null: *const c_char,
    boot_filesystem_or_null: *const c_char,
    out: *mut *mut c_char,
) -> nestcore_status {
    let edit = || {
        // SAFETY: the caller promises NUL-terminated strings or NULL.
        let text = unsafe { args::utf8(config_text, "config_text") }?;
        // SAFETY: as above.
        let loader = unsafe { args::utf8(loader, "loader") }?;
        // SAFETY: as above.
        let update_kernel = unsafe { args::utf8(update_kernel, "update_kernel") }?;
        // SAFETY: as above.
        let add = unsafe { args::utf8_opt(args_or_null, "args_or_null") }?;
        // SAFETY: as above.
        let remove = unsafe { args::utf8_opt(remove_args_or_null, "remove_args_or_null") }?;
        // SAFETY: as above.
        let boot = unsafe { args::utf8_opt(boot_filesystem_or_null, "boot_filesystem_or_null") }?;
        Ok(nestcore::bootloader::kargs_cli(
            text,
            loader,
            update_kernel,
            add,
            remove,
            boot,
        )?)
    };
    // SAFETY: the caller promises `out` is NULL or writable.
    unsafe { args::string_result(out, edit) }
}

/// Edits a kernel command line (`/proc/cmdline`, a `linux` line's arguments) with grubby's
/// semantics: first `args_or_null` (each argument replaces the first not yet replaced parameter
/// of the same name in place, or is appended before a bare `--`), then `remove_args_or_null`
/// (`k` removes every `k`, `k=v` every `k` whose value is exactly `v`). Names compare with `-`
/// equal to `_`; everything not edited is kept byte for byte.
///
/// Fails with NESTCORE_STATUS_INVALID_ARGUMENT for an argument list with a bare `--`, an
/// unbalanced quote or an argument without a name, NESTCORE_STATUS_PARSE when `line` itself has
/// an unbalanced quote. `*out` receives the edited line, an owned string to release with
/// `nestcore_string_free()` (NULL on failure).
///
/// # Safety
/// `line` must be NULL (an error) or NUL-terminated, the others NULL or NUL-terminated; `out` must
/// be NULL (an error) or point to a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_cmdline_edit(
    line: *const c_char,
    args_or_null: *const c_char,
    remove_args_or_null: *const c_char,
    out: *mut *mut c_char,
) -> nestcore_status {
    let edit = || {
        // SAFETY: the caller promises NUL-terminated strings or NULL (here and below).
        let line = unsafe { args::utf8(line, "line") }?;
        // SAFETY: as above.
        let add = unsafe { args::utf8_opt(args_or_null, "args_or_null") }?;
        // SAFETY: as above.
        let remove = unsafe { args::utf8_opt(remove_args_or_null, "remove_args_or_null") }?;
        let mut e = Editor::new(line);
        if let Some(a) = add {
            e.add_args(a)?;
        }
        if let Some(r) = remove {
            e.remove_args(r)?;
        }
        Ok(e.into_string())
    };
    // SAFETY: the caller promises `out` is NULL or writable.
    unsafe { args::string_result(out, edit) }
}
