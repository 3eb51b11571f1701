//! `nestcore_plan`: planning nested virtualization on or off, reading the plan, and applying it.

use std::ffi::{c_char, c_int};

use nestcore::nested::{self, Dialect, Persist, Want};
use nestcore::plan::{DeferringExecutor, Executor, Plan, SystemExecutor};

use crate::args::{self, Out};
use crate::host::nestcore_host;
use crate::status::{call, guard, nestcore_status, FfiError, FfiResult};

/// `persist_flags` bit of `nestcore_plan_nested()`: reload the vendor KVM module now
/// (`modprobe -r kvm_intel`, then `modprobe kvm_intel nested=1`).
pub const NESTCORE_PERSIST_RUNTIME: u32 = 1;
/// `persist_flags` bit of `nestcore_plan_nested()`: write nestcore's drop-in in /etc/modprobe.d
/// (and regenerate the initramfs when the modules load from it).
pub const NESTCORE_PERSIST_MODPROBE: u32 = 2;
/// `persist_flags` bit of `nestcore_plan_nested()`: put `kvm-intel.nested=1` /
/// `kvm-amd.nested=1` on the kernel command line of every boot loader configuration found.
pub const NESTCORE_PERSIST_CMDLINE: u32 = 4;

/// Every `NESTCORE_PERSIST_*` bit this library knows.
const PERSIST_ALL: u32 = NESTCORE_PERSIST_RUNTIME | NESTCORE_PERSIST_MODPROBE | NESTCORE_PERSIST_CMDLINE;

/// `plan_flags` bit of `nestcore_plan_nested_with()`: comment out (or override in
/// /etc/modprobe.d) the modprobe.d lines that set the opposite value, instead of reporting them
/// as blockers.
pub const NESTCORE_PLAN_NEUTRALISE_CONFLICTS: u32 = 1;
/// `plan_flags` bit of `nestcore_plan_nested_with()`: plan nesting on even where the host's
/// check says it cannot work (no VMX/SVM, disabled in the firmware, not passed on by the
/// hypervisor below, a PVM guest); those blockers become warnings.
pub const NESTCORE_PLAN_FORCE: u32 = 2;

/// Every `NESTCORE_PLAN_*` bit this library knows.
const PLAN_ALL: u32 = NESTCORE_PLAN_NEUTRALISE_CONFLICTS | NESTCORE_PLAN_FORCE;

/// A plan to turn nested virtualization on or off: the actions (files to write, programs to
/// run), why, when each takes effect, warnings, and blockers. Made by `nestcore_plan_nested()`,
/// released by `nestcore_plan_free()`. Making a plan changes nothing; only
/// `nestcore_plan_apply()` does.
///
/// Immutable: any number of threads may read one plan at the same time, as long as none of them
/// frees it meanwhile. It does not borrow the host it was made from.
pub struct nestcore_plan {
    plan: Plan,
}

/// The `persist_flags` of `nestcore_plan_nested()` as the core's [`Persist`].
fn persist_in(flags: u32) -> FfiResult<Persist> {
    if flags & !PERSIST_ALL != 0 {
        return Err(FfiError::invalid(format!(
            "Argument `persist_flags` has unknown bits 0x{:x} (known: NESTCORE_PERSIST_RUNTIME, \
             NESTCORE_PERSIST_MODPROBE, NESTCORE_PERSIST_CMDLINE)",
            flags & !PERSIST_ALL
        )));
    }
    if flags == 0 {
        return Err(FfiError::invalid(
            "Argument `persist_flags` is 0: name at least one of NESTCORE_PERSIST_RUNTIME, \
             NESTCORE_PERSIST_MODPROBE, NESTCORE_PERSIST_CMDLINE",
        ));
    }
    Ok(Persist {
        runtime: flags & NESTCORE_PERSIST_RUNTIME != 0,
        modprobe: flags & NESTCORE_PERSIST_MODPROBE != 0,
        cmdline: flags & NESTCORE_PERSIST_CMDLINE != 0,
    })
}

fn item<'a>(items: &'a [String], index: usize, what: &str) -> FfiResult<&'a str> {
    items.get(index).map(String::as_str).ok_or_else(|| {
        FfiError::invalid(format!(
            "{what} index {index} is out of range (the plan has {})",
            items.len()
        ))
    })
}

/// Runs `f` on the plan behind `plan` and writes its answer to `out`: the shape of every scalar
/// accessor.
///
/// # Safety
/// `plan` must be NULL or a live plan; `out` NULL or writable.
unsafe fn read<T>(
    plan: *const nestcore_plan,
    out: *mut T,
    f: impl FnOnce(&Plan) -> FfiResult<T>,
) -> nestcore_status {
    // SAFETY: forwarded from the caller.
    unsafe { args::read_with(plan, "plan", out, |h| f(&h.plan)) }
}

/// Like [`read`] for an owned string.
///
/// # Safety
/// `plan` must be NULL or a live plan; `out` NULL or writable.
unsafe fn read_string(
    plan: *const nestcore_plan,
    out: *mut *mut c_char,
    f: impl FnOnce(&Plan) -> FfiResult<String>,
) -> nestcore_status {
    // SAFETY: forwarded from the caller.
    unsafe { args::read_string_with(plan, "plan", out, |h| f(&h.plan)) }
}

/// The shape of every export that makes a plan: `out` NULLed first, the host checked, `make`
/// run on it, the plan boxed into `*out`.
///
/// # Safety
/// `host` must be NULL or a live host; `out` NULL or writable.
unsafe fn make_plan(
    host: *const nestcore_host,
    out: *mut *mut nestcore_plan,
    make: impl FnOnce(&nestcore::Host) -> FfiResult<Plan>,
) -> nestcore_status {
    call(|| {
        // SAFETY: the caller promises `out` is NULL or writable.
        let out = unsafe { Out::new_nulled(out, "out") }?;
        // SAFETY: the caller promises a live host or NULL.
        let host = unsafe { args::handle(host, "host") }?;
        let plan = make(&host.host)?;
        // SAFETY: non-NULL (checked), writable by the caller's promise.
        unsafe { out.set(Box::into_raw(Box::new(nestcore_plan { plan }))) };
        Ok(())
    })
}

/// `want_on` as the core's [`Want`].
fn want_in(want_on: c_int) -> FfiResult<Want> {
    Ok(if args::flag(want_on, "want_on")? {
        Want::On
    } else {
        Want::Off
    })
}

/// Plans nested virtualization on (`want_on` 1) or off (`want_on` 0) for `host`, through the
/// layers in `persist_flags` (NESTCORE_PERSIST_RUNTIME | NESTCORE_PERSIST_MODPROBE |
/// NESTCORE_PERSIST_CMDLINE; at least one). With `neutralise_conflicts` 1, conflicting
/// modprobe.d lines are commented out (or a distribution file overridden in /etc) instead of
/// being reported as blockers. Nothing on the host changes: see `nestcore_plan_apply()`.
/// The same as `nestcore_plan_nested_with()` with `plan_flags`
/// NESTCORE_PLAN_NEUTRALISE_CONFLICTS or 0.
///
/// The plan looks at the whole host: off is off in every persistent layer that sets nesting on
/// (a modprobe.d line or a boot loader configuration that sets it on is changed too; the
/// running module keeps it until it loads again unless NESTCORE_PERSIST_RUNTIME), a layer
/// that overrides the one written is named in the warnings, and nesting on where the host's
/// check says it cannot work is blocked with the check's reason and remedy.
///
/// A plan with nothing to do (the host is already as wanted) is a success:
/// `nestcore_plan_is_empty()` tells. A plan that cannot be applied as it is (the check says
/// nesting cannot work here, a conflict, no boot loader configuration found, no x86 vendor
/// module) is also a success: its blockers say why (`nestcore_plan_blocker_code()`).
///
/// `want_on` and `neutralise_conflicts` must be 0 or 1, `persist_flags` non-zero with only known
/// bits (NESTCORE_STATUS_INVALID_ARGUMENT otherwise). Fails with NESTCORE_STATUS_UNSUPPORTED when
/// a runtime reload is impossible (built-in or busy module: the message points to
/// NESTCORE_PERSIST_CMDLINE), NESTCORE_STATUS_PARSE for a configuration that cannot be edited
/// safely.
///
/// On success `*out` receives a plan to release with `nestcore_plan_free()`; on failure it is set
/// to NULL.
///
/// # Safety
/// `host` must be NULL (an error) or a live host from this library; `out` must be NULL (an error)
/// or point to a writable `nestcore_plan *`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_nested(
    host: *const nestcore_host,
    want_on: c_int,
    persist_flags: u32,
    neutralise_conflicts: c_int,
    out: *mut *mut nestcore_plan,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe {
        make_plan(host, out, |h| {
            let want = want_in(want_on)?;
            let persist = persist_in(persist_flags)?;
            let mut opts = nested::Options::default();
            opts.neutralise_conflicts = args::flag(neutralise_conflicts, "neutralise_conflicts")?;
            opts.dialect = Dialect::C;
            Ok(nested::plan_with(h, want, persist, opts)?)
        })
    }
}

/// `nestcore_plan_nested()` with `plan_flags`: NESTCORE_PLAN_NEUTRALISE_CONFLICTS (comment out
/// conflicting modprobe.d lines instead of reporting them as blockers) and NESTCORE_PLAN_FORCE
/// (plan nesting on even where the host's check says it cannot work: those blockers become
/// warnings, and `nestcore_plan_apply()` carries the plan out). Blockers about the plan itself
/// (a conflict, no boot loader configuration) stay with NESTCORE_PLAN_FORCE.
///
/// `want_on` must be 0 or 1, `persist_flags` non-zero with only known bits, `plan_flags` only
/// known bits (NESTCORE_STATUS_INVALID_ARGUMENT otherwise); otherwise as
/// `nestcore_plan_nested()`. On success `*out` receives a plan to release with
/// `nestcore_plan_free()`; on failure it is set to NULL.
///
/// # Safety
/// `host` must be NULL (an error) or a live host from this library; `out` must be NULL (an error)
/// or point to a writable `nestcore_plan *`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_nested_with(
    host: *const nestcore_host,
    want_on: c_int,
    persist_flags: u32,
    plan_flags: u32,
    out: *mut *mut nestcore_plan,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe {
        make_plan(host, out, |h| {
            let want = want_in(want_on)?;
            let persist = persist_in(persist_flags)?;
            if plan_flags & !PLAN_ALL != 0 {
                return Err(FfiError::invalid(format!(
                    "Argument `plan_flags` has unknown bits 0x{:x} (known: NESTCORE_PLAN_NEUTRALISE_CONFLICTS, \
                     NESTCORE_PLAN_FORCE)",
                    plan_flags & !PLAN_ALL
                )));
            }
            let mut opts = nested::Options::default();
            opts.neutralise_conflicts = plan_flags & NESTCORE_PLAN_NEUTRALISE_CONFLICTS != 0;
            opts.force = plan_flags & NESTCORE_PLAN_FORCE != 0;
            opts.dialect = Dialect::C;
            Ok(nested::plan_with(h, want, persist, opts)?)
        })
    }
}

/// The plan that puts back exactly what the newest `nestcore_plan_apply()` on `host` not yet
/// undone changed, from the backup store (/var/lib/nestcore/backup under the host's root): every
/// file it edited restored byte for byte, every file it created removed, every module it
/// reloaded reloaded with the value before, the boot configuration regenerated. Nothing changes
/// until the plan is applied with `nestcore_plan_apply()`, which then marks that apply undone:
/// the next undo plan puts back the apply before it. No apply recorded (or all undone) gives an
/// empty plan; a file changed since the apply is a blocker.
///
/// On success `*out` receives a plan to release with `nestcore_plan_free()`; on failure it is set
/// to NULL. Fails with NESTCORE_STATUS_IO / NESTCORE_STATUS_PARSE when the store's manifest
/// cannot be read.
///
/// # Safety
/// `host` must be NULL (an error) or a live host from this library; `out` must be NULL (an error)
/// or point to a writable `nestcore_plan *`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_undo(
    host: *const nestcore_host,
    out: *mut *mut nestcore_plan,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { make_plan(host, out, |h| Ok(nested::plan_undo(h)?)) }
}

/// Releases a plan. NULL is a no-op.
///
/// # Safety
/// `plan` must be NULL or a plan from this library, not yet freed, and not in use by another
/// thread; it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_free(plan: *mut nestcore_plan) {
    guard((), || {
        if !plan.is_null() {
            // SAFETY: by the contract, `plan` came from `Box::into_raw` here and is freed once.
            drop(unsafe { Box::from_raw(plan) });
        }
    });
}

/// 1 when the plan has no action (the host is already as wanted, or everything is blocked), 0
/// otherwise.
///
/// # Safety
/// `plan` must be NULL (an error) or a live plan; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_is_empty(
    plan: *const nestcore_plan,
    out: *mut c_int,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(plan, out, |p| Ok(c_int::from(p.is_empty()))) }
}

/// One sentence: what the plan achieves, or that nothing needs to change. `*out` receives an
/// owned string to release with `nestcore_string_free()` (NULL on failure).
///
/// # Safety
/// `plan` must be NULL (an error) or a live plan; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_summary(
    plan: *const nestcore_plan,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(plan, out, |p| Ok(p.summary.clone())) }
}

/// The number of actions, in the order `nestcore_plan_apply()` runs them (files first, then
/// programs).
///
/// # Safety
/// `plan` must be NULL (an error) or a live plan; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_actions_count(
    plan: *const nestcore_plan,
    out: *mut usize,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(plan, out, |p| Ok(p.actions.len())) }
}

/// One line saying what action `index` does ("edit /etc/default/grub: ...", "run `update-grub`:
/// ..."). `*out` receives an owned string to release with `nestcore_string_free()`. An index at
/// or past `nestcore_plan_actions_count()` is NESTCORE_STATUS_INVALID_ARGUMENT.
///
/// # Safety
/// `plan` must be NULL (an error) or a live plan; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_action_description(
    plan: *const nestcore_plan,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe {
        read_string(plan, out, |p| {
            p.actions.get(index).map(|a| a.describe()).ok_or_else(|| {
                FfiError::invalid(format!(
                    "Action index {index} is out of range (the plan has {})",
                    p.actions.len()
                ))
            })
        })
    }
}

/// The number of blockers: reasons the plan cannot be applied as it is
/// (`nestcore_plan_apply()` refuses while there are any).
///
/// # Safety
/// `plan` must be NULL (an error) or a live plan; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_blockers_count(
    plan: *const nestcore_plan,
    out: *mut usize,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(plan, out, |p| Ok(p.blockers.len())) }
}

/// Blocker `index`: its reason, then its remedy (`reason. Remedy: remedy`). `*out` receives an
/// owned string to release with `nestcore_string_free()`. An index at or past
/// `nestcore_plan_blockers_count()` is NESTCORE_STATUS_INVALID_ARGUMENT.
///
/// # Safety
/// `plan` must be NULL (an error) or a live plan; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_blocker(
    plan: *const nestcore_plan,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(plan, out, |p| blocker(p, index).map(ToString::to_string)) }
}

fn blocker(p: &Plan, index: usize) -> FfiResult<&nestcore::plan::Blocker> {
    p.blockers.get(index).ok_or_else(|| {
        FfiError::invalid(format!(
            "Blocker index {index} is out of range (the plan has {})",
            p.blockers.len()
        ))
    })
}

/// The stable code of blocker `index`: the check's finding code when the check says nesting
/// cannot work here (`cpu.firmware_disabled`, `cpu.extension_missing`,
/// `cpu.extension_hidden_by_hypervisor`, `kvm.pvm_backend`), else the planner's
/// (`plan.modprobe_conflict`, `plan.no_boot_loader`, `plan.overridden`, `plan.builtin_module`,
/// `plan.no_vendor_module`, `plan.changed_since_apply`, ...). `*out` receives an owned string
/// to release with `nestcore_string_free()`. An index at or past
/// `nestcore_plan_blockers_count()` is NESTCORE_STATUS_INVALID_ARGUMENT.
///
/// # Safety
/// `plan` must be NULL (an error) or a live plan; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_blocker_code(
    plan: *const nestcore_plan,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(plan, out, |p| blocker(p, index).map(|b| b.code.clone())) }
}

/// What to do about blocker `index`. `*out` receives an owned string to release with
/// `nestcore_string_free()`, or NULL when the blocker has no remedy (a success). An index at or
/// past `nestcore_plan_blockers_count()` is NESTCORE_STATUS_INVALID_ARGUMENT.
///
/// # Safety
/// `plan` must be NULL (an error) or a live plan; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_blocker_remedy(
    plan: *const nestcore_plan,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    call(|| {
        // SAFETY: the caller promises `out` is NULL or writable.
        let out = unsafe { Out::new_nulled(out, "out") }?;
        // SAFETY: the caller promises a live plan or NULL.
        let p = unsafe { args::handle(plan, "plan") }?;
        if let Some(r) = &blocker(&p.plan, index)?.remedy {
            // SAFETY: non-NULL (checked), writable by the caller's promise.
            unsafe { out.set(args::owned_string(r)) };
        }
        Ok(())
    })
}

/// The number of warnings: what deserves attention (conflicts the plan overrides, another layer
/// that will override the one the plan writes, blockers forced past). Information (the vendor
/// module and its evidence, where the kernel command line lives) is in the notes.
///
/// # Safety
/// `plan` must be NULL (an error) or a live plan; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_warnings_count(
    plan: *const nestcore_plan,
    out: *mut usize,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(plan, out, |p| Ok(p.warnings.len())) }
}

/// Warning `index`, in one sentence. `*out` receives an owned string to release with
/// `nestcore_string_free()`. An index at or past `nestcore_plan_warnings_count()` is
/// NESTCORE_STATUS_INVALID_ARGUMENT.
///
/// # Safety
/// `plan` must be NULL (an error) or a live plan; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_warning(
    plan: *const nestcore_plan,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe {
        read_string(plan, out, |p| {
            item(&p.warnings, index, "Warning").map(str::to_owned)
        })
    }
}

/// The number of notes: how the planner decided (the vendor module and its evidence, where the
/// kernel command line lives, layers included because they set the opposite).
///
/// # Safety
/// `plan` must be NULL (an error) or a live plan; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_notes_count(
    plan: *const nestcore_plan,
    out: *mut usize,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read(plan, out, |p| Ok(p.notes.len())) }
}

/// Note `index`, in one sentence. `*out` receives an owned string to release with
/// `nestcore_string_free()`. An index at or past `nestcore_plan_notes_count()` is
/// NESTCORE_STATUS_INVALID_ARGUMENT.
///
/// # Safety
/// `plan` must be NULL (an error) or a live plan; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_note(
    plan: *const nestcore_plan,
    index: usize,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(plan, out, |p| item(&p.notes, index, "Note").map(str::to_owned)) }
}

/// The plan as the text `nestcore enable` prints: summary, numbered actions with unified diffs,
/// when each takes effect, notes, warnings, blockers with their remedies. `*out` receives an owned string to release with
/// `nestcore_string_free()` (NULL on failure).
///
/// # Safety
/// `plan` must be NULL (an error) or a live plan; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_render(
    plan: *const nestcore_plan,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(plan, out, |p| Ok(p.render())) }
}

/// The plan as JSON (pretty-printed): the `plan` object of `nestcore enable --json` (`summary`,
/// `actions` with `kind` and their details, `timeline`, `notes`, `warnings`, `blockers` with
/// `code`, `reason` and `remedy`, `verify`, and `undoes` for an undo plan).
/// `*out` receives an owned string to release with `nestcore_string_free()` (NULL on failure).
///
/// # Safety
/// `plan` must be NULL (an error) or a live plan; `out` must be NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_to_json(
    plan: *const nestcore_plan,
    out: *mut *mut c_char,
) -> nestcore_status {
    // SAFETY: forwarded contract.
    unsafe { read_string(plan, out, |p| serde_json::to_string_pretty(p).map_err(json_error)) }
}

/// Serialising plain structs of strings, numbers and vectors does not fail; if it ever did, it is
/// an error, not a panic.
fn json_error(e: serde_json::Error) -> FfiError {
    FfiError::new(nestcore_status::Other, format!("Cannot write JSON: {e}"))
}

/// Applies `plan` to `host`: THE ONLY FUNCTION OF THIS LIBRARY THAT CHANGES A HOST. Pass the host
/// the plan was made for.
///
/// Files are written only under the host's root (`/` for the live host, the folder of a recorded
/// host): each target is resolved under the root before anything is written, and a symlink that
/// leads out of it is refused. Each write is atomic and keeps the file's mode and owner. What
/// the apply changes is kept in the backup store, /var/lib/nestcore/backup under the root (never
/// beside the file, where a consumer would read it): the originals and a manifest, which
/// `nestcore_plan_undo()` reads. When a step fails, what was written is restored (and the
/// programs that had succeeded run again), the store's record removed, and the failure
/// returned; should a restore fail too, the message names the files not restored and the
/// store's record is kept, for `nestcore_plan_undo()`.
///
/// Programs (`modprobe`, `update-grub`, `update-initramfs`, `dracut`, ...):
/// - `defer_commands` 1: none is run; they are listed under `deferred` in the report, for the
///   operator to run in that system (in a chroot, or on the real host). The right choice for a
///   recorded root.
/// - `defer_commands` 0: they are run (found in the host's sbin folders, without a shell) on the
///   live host; for a recorded host they are refused (NESTCORE_STATUS_UNSUPPORTED, after the
///   files written are restored), because they would act on this machine and not on the root.
///
/// A plan with blockers is refused (NESTCORE_STATUS_UNSUPPORTED) and changes nothing. Applying a
/// plan whose changes are already on the host writes nothing (the files are listed under
/// `unchanged`).
///
/// On success `*report_json_out` receives what was done as JSON (`written` with `path`, `backup`
/// (the original's copy in the store), `created`, `removed`; `unchanged`; `commands` run with
/// their `status`; `deferred`; `rolled_back`; `verified`; `transaction`, the store's manifest;
/// `undone`, for an undo plan), an owned string to release with `nestcore_string_free()`; on
/// failure it is set to NULL. `defer_commands` must be 0 or 1.
///
/// # Safety
/// `plan` and `host` must be NULL (an error) or live handles from this library;
/// `report_json_out` must be NULL (an error) or point to a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_plan_apply(
    plan: *const nestcore_plan,
    host: *const nestcore_host,
    defer_commands: c_int,
    report_json_out: *mut *mut c_char,
) -> nestcore_status {
    call(|| {
        // SAFETY: the caller promises `report_json_out` is NULL or writable.
        let out = unsafe { Out::new_nulled(report_json_out, "report_json_out") }?;
        // SAFETY: the caller promises a live plan or NULL.
        let plan = unsafe { args::handle(plan, "plan") }?;
        // SAFETY: the caller promises a live host or NULL.
        let host = unsafe { args::handle(host, "host") }?;
        let exec: &dyn Executor = if args::flag(defer_commands, "defer_commands")? {
            &DeferringExecutor
        } else {
            &SystemExecutor
        };
        let report = plan.plan.apply(&host.host, exec)?;
        let json = serde_json::to_string_pretty(&report).map_err(json_error)?;
        // SAFETY: non-NULL (checked), writable by the caller's promise.
        unsafe { out.set(args::owned_string(&json)) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_flags_are_distinct_bits() {
        assert_eq!(NESTCORE_PLAN_NEUTRALISE_CONFLICTS & NESTCORE_PLAN_FORCE, 0);
        assert_eq!(PLAN_ALL, 3);
    }

    #[test]
    fn persist_flags() {
        let p = persist_in(NESTCORE_PERSIST_MODPROBE | NESTCORE_PERSIST_CMDLINE).unwrap_or_default();
        assert!(!p.runtime && p.modprobe && p.cmdline);
        assert!(persist_in(0).is_err());
        assert!(persist_in(8).is_err());
        assert!(persist_in(u32::MAX).is_err());
    }
}
