//! The C ABI of nestcore (`libnestcore`, `include/nestcore.h`): thin wrappers over the Rust API,
//! status codes, a thread-local last error. The header is generated from this crate by cbindgen
//! (see `cbindgen.toml`); `tests/header.rs` fails when the committed header drifts.
//!
//! Conventions (those of rustls-ffi):
//! - every name starts with `nestcore_`; opaque handles come in `_new`/`_free` pairs, and freeing
//!   NULL does nothing;
//! - inputs first, out-parameters last; every fallible function returns a [`nestcore_status`]
//!   and records the detail for `nestcore_last_error_message()`;
//! - strings out are owned (released with `nestcore_string_free()`) or written to a caller buffer
//!   that reports the size it needs; nothing is truncated silently;
//! - enums and flags come in as integers and are validated; NULL, invalid UTF-8 and out-of-range
//!   values are statuses, never crashes;
//! - no panic crosses the boundary: every export runs in one guard (`status::guard`).
//!
//! Only `nestcore_plan_apply()` and `nestcore_guests_apply()` change a host; everything else
//! reads a host or turns text into text.
//!
//! New functions are added; existing ones keep their signature and meaning for a given
//! [`NESTCORE_ABI_VERSION`].

#![allow(non_camel_case_types)] // C type names: nestcore_host, nestcore_status, ...

mod args;
mod edit;
mod guest;
mod guests;
mod host;
mod plan;
mod report;
mod status;

use std::ffi::c_char;

pub use args::nestcore_string_free;
pub use edit::*;
pub use guest::*;
pub use guests::*;
pub use host::*;
pub use plan::*;
pub use report::*;
pub use status::{nestcore_last_error_message, nestcore_status, nestcore_status_name};

/// The version of the C ABI described by this header. It changes only when an existing function
/// or type changes incompatibly (then the soname changes too); adding functions does not change it.
/// Compare it with `nestcore_abi_version()` to detect a header/library mismatch.
pub const NESTCORE_ABI_VERSION: u32 = 1;

/// The C ABI version of the loaded library (see NESTCORE_ABI_VERSION).
#[no_mangle]
pub extern "C" fn nestcore_abi_version() -> u32 {
    status::guard(NESTCORE_ABI_VERSION, || NESTCORE_ABI_VERSION)
}

/// The nestcore version this library was built from ("0.1.0"), as a static NUL-terminated string.
/// Never NULL; do not free it.
#[no_mangle]
pub extern "C" fn nestcore_version() -> *const c_char {
    const VERSION: &std::ffi::CStr =
        match std::ffi::CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    status::guard(VERSION.as_ptr(), || VERSION.as_ptr())
}

// Handles are shared between threads by C callers: make sure that is sound.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<nestcore_host>();
    shareable::<nestcore_report>();
    shareable::<nestcore_plan>();
    shareable::<nestcore_guests>();
};
