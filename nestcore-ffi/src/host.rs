//! `nestcore_host`: the machine to inspect, live or recorded.

use std::ffi::c_char;

use nestcore::Host;

use crate::args::{self, Out};
use crate::status::{call, guard, nestcore_status, FfiError};

/// A machine to inspect: the live one, or a recorded one (a folder laid out like `/` plus a CPUID
/// dump). Made by `nestcore_host_new_live()` or `nestcore_host_new_root()`, released by
/// `nestcore_host_free()`.
///
/// Immutable once made: any number of threads may use one host at the same time (for example run
/// `nestcore_check()` on it), as long as none of them frees it meanwhile.
pub struct nestcore_host {
    pub(crate) host: Host,
}

/// Opens the live machine: root `/`, the CPUID instruction (on x86), ioctls on /dev/kvm allowed.
/// Nothing is read until `nestcore_check()`.
///
/// On success `*out` receives a host to release with `nestcore_host_free()`; on failure it is set to
/// NULL.
///
/// # Safety
/// `out` must be NULL (an error) or point to a writable `nestcore_host *`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_host_new_live(out: *mut *mut nestcore_host) -> nestcore_status {
    call(|| {
        // SAFETY: the caller promises `out` is NULL or writable.
        let out = unsafe { Out::new_nulled(out, "out") }?;
        let host = Box::new(nestcore_host { host: Host::live() });
        // SAFETY: `out` is a valid, writable pointer (checked and promised above).
        unsafe { out.set(Box::into_raw(host)) };
        Ok(())
    })
}

/// Opens a recorded machine: `root` is a folder laid out like `/` (`/proc/cpuinfo`,
/// `/sys/module/...`, `dev/kvm` as a presence marker); `cpuid_or_null` is a recorded CPUID dump
/// (`cpuid -r` output, libvirt `<cpudata>` XML or nestcore JSON, told apart by content) or NULL for
/// none. A recorded host is never opened with ioctls.
///
/// Both strings must be UTF-8 (NESTCORE_STATUS_INVALID_UTF8 otherwise): paths go into the JSON
/// report, which is UTF-8. Fails with NESTCORE_STATUS_NOT_FOUND when a path does not exist,
/// NESTCORE_STATUS_IO when `root` is not a folder, NESTCORE_STATUS_PARSE when the dump does not
/// parse, NESTCORE_STATUS_INVALID_ARGUMENT for an empty path.
///
/// On success `*out` receives a host to release with `nestcore_host_free()`; on failure it is set to
/// NULL.
///
/// # Safety
/// `root` and `cpuid_or_null` must be NULL or NUL-terminated strings; `out` must be NULL (an error)
/// or point to a writable `nestcore_host *`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_host_new_root(
    root: *const c_char,
    cpuid_or_null: *const c_char,
    out: *mut *mut nestcore_host,
) -> nestcore_status {
    call(|| {
        // SAFETY: the caller promises `out` is NULL or writable.
        let out = unsafe { Out::new_nulled(out, "out") }?;
        // SAFETY: the caller promises a NUL-terminated string or NULL.
        let root = unsafe { args::utf8(root, "root") }?;
        if root.is_empty() {
            return Err(FfiError::invalid("Argument `root` is an empty path"));
        }
        let cpuid = if cpuid_or_null.is_null() {
            None
        } else {
            // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
            let c = unsafe { args::utf8(cpuid_or_null, "cpuid_or_null") }?;
            if c.is_empty() {
                return Err(FfiError::invalid("Argument `cpuid_or_null` is an empty path"));
            }
            Some(c)
        };
        let mut host = Host::from_root(root)?;
        if let Some(c) = cpuid {
            host = host.with_cpuid_file(c)?;
        }
        // SAFETY: `out` is a valid, writable pointer (checked and promised above).
        unsafe { out.set(Box::into_raw(Box::new(nestcore_host { host }))) };
        Ok(())
    })
}

/// Releases a host. NULL is a no-op. Reports made from it stay valid (they do not borrow it).
///
/// # Safety
/// `host` must be NULL or a host from this library, not yet freed, and not in use by another
/// thread; it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn nestcore_host_free(host: *mut nestcore_host) {
    guard((), || {
        if !host.is_null() {
            // SAFETY: by the contract, `host` came from `Box::into_raw` here and is freed once.
            drop(unsafe { Box::from_raw(host) });
        }
    });
}

/// 1 for the live machine, 0 for a recorded root.
///
/// # Safety
/// `host` must be NULL (an error) or a live host from this library; `out` must be NULL (an error)
/// or point to a writable `int`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_host_is_live(
    host: *const nestcore_host,
    out: *mut std::ffi::c_int,
) -> nestcore_status {
    call(|| {
        // SAFETY: the caller promises a live host or NULL.
        let host = unsafe { args::handle(host, "host") }?;
        let out = Out::new(out, "out")?;
        // SAFETY: non-NULL (checked), writable by the contract.
        unsafe { out.set(std::ffi::c_int::from(host.host.is_live())) };
        Ok(())
    })
}
