//! `nestcore_guests`: which of a host's guests (libvirt domains, nova instances, Proxmox VMs)
//! will get VMX/SVM, why, and the fix for each; and carrying the fixes out.

use std::ffi::{c_char, c_int};

use nestcore::guests::{self, GuestsReport, Options};
use nestcore::plan::{DeferringExecutor, Executor, SystemExecutor};

use crate::args::{self, Out};
use crate::host::nestcore_host;
use crate::status::{call, guard, nestcore_status, FfiError, FfiResult};

/// Every guest of a host, judged: made by `nestcore_guests_scan()`, released by
/// `nestcore_guests_free()`. Immutable: any number of threads may read one at the same time, as
/// long as none of them frees it meanwhile. It does not borrow the host it was made from.
pub struct nestcore_guests {
    report: GuestsReport,
}

/// Reads every guest definition of `host` and judges it against the host's own verdict (the
/// report of `nestcore_check()` without the probe, made here): libvirt's definitions (files;
/// with `use_virsh` 1 also what libvirt holds, through `virsh`, on the live host), nova.conf's
/// `[libvirt]` section and Proxmox VM configs. Reads only: nothing on the host changes (see
/// `nestcore_guests_apply()`). A definition that cannot be read is one guest with its reason, not
/// an error. `use_virsh` must be 0 or 1.
///
/// On success `*out` receives the guests, to release with `nestcore_guests_free()`; on failure it
/// is set to NULL.
///
/// # Safety
/// `host` must be NULL (an error) or a live host from this library; `out` must be NULL (an error)
/// or point to a writable `nestcore_guests *`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_guests_scan(
    host: *const nestcore_host,
    use_virsh: c_int,
    out: *mut *mut nestcore_guests,
) -> nestcore_status {
    call(|| {
        // SAFETY: the caller promises `out` is NULL or writable.
        let out = unsafe { Out::new_nulled(out, "out") }?;
        // SAFETY: the caller promises a live host or NULL.
        let host = unsafe { args::handle(host, "host") }?;
        let virsh = args::flag(use_virsh, "use_virsh")?;
        let report = nestcore::check(&host.host);
        let opts = if virsh {
            Options::with_virsh(&SystemExecutor)
        } else {
            Options::files()
        };
        let report = guests::scan(&host.host, &report, &opts);
        // SAFETY: non-NULL (checked), writable by the caller's promise.
        unsafe { out.set(Box::into_raw(Box::new(nestcore_guests { report }))) };
        Ok(())
    })
}

/// Releases guests from `nestcore_guests_scan()`. NULL is a no-op.
///
/// # Safety
/// `guests` must be NULL or from this library, not yet freed, and not in use by another thread;
/// it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn nestcore_guests_free(guests: *mut nestcore_guests) {
    guard((), || {
        if !guests.is_null() {
            // SAFETY: by the contract, `guests` came from `Box::into_raw` here and is freed once.
            drop(unsafe { Box::from_raw(guests) });
        }
    });
}

/// # Safety
/// `g` must be NULL or live; `out` NULL or writable.
unsafe fn read<T>(
    g: *const nestcore_guests,
    out: *mut T,
    f: impl FnOnce(&GuestsReport) -> FfiResult<T>,
) -> nestcore_status {
    // SAFETY: forwarded from the caller.
    unsafe { args::read_with(g, "guests", out, |h| f(&h.report)) }
}

/// # Safety
/// `g` must be NULL or live; `out` NULL or writable.
unsafe fn read_string(
    g: *const nestcore_guests,
    out: *mut *mut c_char,
    f: impl FnOnce(&GuestsReport) -> FfiResult<String>,
) -> nestcore_status {
    // SAFETY: forwarded from the caller.
    unsafe { args::read_string_with(g, "guests", out, |h| f(&h.report)) }
}

fn guest(r: &GuestsReport, index: usize) -> FfiResult<&guests::Guest> {
    r.guests.get(index).ok_or_else(|| {
        FfiError::invalid(format!(
            "Guest index {index} is out of range (there are {})",
            r.guests.len()
        ))
    })
}

/// How many guests were found (unreadable definitions included).
///
/// # Safety
/// `guests` must be NULL (an error) or live; `out` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_guests_count(
    guests: *const nestcore_guests,
    out: *mut usize,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(guests, out, |r| Ok(r.guests.len())) }
}

/// What `nestcore guests` exits with: 0 when every guest found gets the extension (also when
/// there is none), 1 otherwise.
///
/// # Safety
/// `guests` must be NULL (an error) or live; `out` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_guests_exit_code(
    guests: *const nestcore_guests,
    out: *mut c_int,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(guests, out, |r| Ok(r.exit_code())) }
}

/// Whether guest `index` gets VMX/SVM at its next start: 1 yes, 0 no, -1 cannot be told.
///
/// # Safety
/// `guests` must be NULL (an error) or live; `out` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_guests_gets_extension(
    guests: *const nestcore_guests,
    index: usize,
    out: *mut c_int,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe {
        read(guests, out, |r| {
            Ok(match guest(r, index)?.gets_extension {
                Some(true) => 1,
                Some(false) => 0,
                None => -1,
            })
        })
    }
}

/// Whether guest `index` has a fix with no blocker (what `nestcore_guests_apply()` would carry
/// out): 1 or 0.
///
/// # Safety
/// `guests` must be NULL (an error) or live; `out` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_guests_fixable(
    guests: *const nestcore_guests,
    index: usize,
    out: *mut c_int,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe {
        read(guests, out, |r| {
            let g = guest(r, index)?;
            Ok(c_int::from(
                g.fix
                    .as_ref()
                    .is_some_and(|p| p.blockers.is_empty() && !p.is_empty()),
            ))
        })
    }
}

/// Guest `index`'s source (`libvirt`, `nova`, `proxmox`), as an owned string.
///
/// # Safety
/// `guests` must be NULL (an error) or live; `out` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_guests_source(
    guests: *const nestcore_guests,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(guests, out, |r| Ok(guest(r, index)?.source.as_str().to_string())) }
}

/// Guest `index`'s name (domain name, Proxmox VM name, or `instances` for nova), as an owned
/// string.
///
/// # Safety
/// `guests` must be NULL (an error) or live; `out` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_guests_name(
    guests: *const nestcore_guests,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(guests, out, |r| Ok(guest(r, index)?.name.clone())) }
}

/// Guest `index`'s stable reason code (`cpu_passthrough`, `model_lacks`, `malformed`, ...; the
/// README lists them), as an owned string.
///
/// # Safety
/// `guests` must be NULL (an error) or live; `out` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_guests_reason_code(
    guests: *const nestcore_guests,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(guests, out, |r| Ok(guest(r, index)?.reason.code.to_string())) }
}

/// Guest `index`'s reason in one sentence, as an owned string.
///
/// # Safety
/// `guests` must be NULL (an error) or live; `out` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_guests_reason_message(
    guests: *const nestcore_guests,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(guests, out, |r| Ok(guest(r, index)?.reason.message.clone())) }
}

/// Everything as JSON (schema/guests.schema.json), as an owned string.
///
/// # Safety
/// `guests` must be NULL (an error) or live; `out` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_guests_to_json(
    guests: *const nestcore_guests,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(guests, out, |r| Ok(r.to_json())) }
}

/// What `nestcore guests` prints (one block per guest with its reason, fix and caveats), as an
/// owned string.
///
/// # Safety
/// `guests` must be NULL (an error) or live; `out` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_guests_render(
    guests: *const nestcore_guests,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(guests, out, |r| Ok(r.render())) }
}

/// Carries out every guest's fix that has no blocker, one plan per guest, through the same apply
/// as `nestcore_plan_apply()` (atomic writes under the host's root with backups; a guest whose
/// step fails has its files restored, the others stay done), all recorded in one transaction of
/// the backup store: one undo (`nestcore_plan_undo()`) puts them all back. Pass the host the guests were
/// scanned from. `defer_commands` 1 lists programs (`virsh define`, `qm set`, `systemctl
/// restart nova-compute`) instead of running them: the choice for a recorded root; 0 runs them
/// on the live host. Guests with a failed fix are not an error of this function: the report says
/// so per guest.
///
/// On success `*report_json_out` receives a JSON array with one object per fix (`source`,
/// `name`, `report` as from `nestcore_plan_apply()` or null, `error` or null), an owned string;
/// on failure it is set to NULL. `defer_commands` must be 0 or 1.
///
/// # Safety
/// `guests` and `host` must be NULL (an error) or live handles from this library;
/// `report_json_out` must be NULL (an error) or point to a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_guests_apply(
    guests: *const nestcore_guests,
    host: *const nestcore_host,
    defer_commands: c_int,
    report_json_out: *mut *mut c_char,
) -> nestcore_status {
    call(|| {
        // SAFETY: the caller promises `report_json_out` is NULL or writable.
        let out = unsafe { Out::new_nulled(report_json_out, "report_json_out") }?;
        // SAFETY: the caller promises live guests or NULL.
        let g = unsafe { args::handle(guests, "guests") }?;
        // SAFETY: the caller promises a live host or NULL.
        let host = unsafe { args::handle(host, "host") }?;
        let exec: &dyn Executor = if args::flag(defer_commands, "defer_commands")? {
            &DeferringExecutor
        } else {
            &SystemExecutor
        };
        let applied = guests::apply(&g.report, &host.host, exec);
        let json = serde_json::to_string_pretty(&applied)
            .map_err(|e| FfiError::new(nestcore_status::Other, format!("Cannot write JSON: {e}")))?;
        // SAFETY: non-NULL (checked), writable by the caller's promise.
        unsafe { out.set(args::owned_string(&json)) };
        Ok(())
    })
}
