//! C ABI for nestcore. Filled in by the C ABI issue; for now it only exposes the version.

/// The nestcore version this library was built from, as a NUL-terminated string.
#[no_mangle]
pub extern "C" fn nestcore_version() -> *const std::ffi::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
