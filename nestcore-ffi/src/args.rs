//! Checking what comes in from C (pointers, strings, integers) and writing what goes out
//! (out-parameters, owned strings). Every export goes through these, so NULL, invalid UTF-8 and
//! out-of-range values become statuses in one place.

use std::ffi::{c_char, c_int, CStr, CString};
use std::ptr::NonNull;

use crate::status::{FfiError, FfiResult};

/// A non-NULL out-parameter, not yet written.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// Checks `p` for NULL.
    pub(crate) fn new(p: *mut T, name: &str) -> FfiResult<Out<T>> {
        NonNull::new(p).map(Out).ok_or_else(|| FfiError::null(name))
    }

    /// Writes `value` without reading or dropping what was there (C memory may be uninitialised).
    ///
    /// # Safety
    /// The pointer given to [`Out::new`] must be valid for a write of `T` and suitably aligned.
    pub(crate) unsafe fn set(self, value: T) {
        // SAFETY: non-NULL by construction; valid and aligned by this function's contract.
        unsafe { self.0.as_ptr().write(value) }
    }
}

impl<T> Out<*mut T> {
    /// A pointer out-parameter, set to NULL at once so that a failure leaves NULL behind (which
    /// the caller can pass to a `_free` function).
    ///
    /// # Safety
    /// `p` must be NULL or valid for a write of a pointer.
    pub(crate) unsafe fn new_nulled(p: *mut *mut T, name: &str) -> FfiResult<Out<*mut T>> {
        let out = Out::new(p, name)?;
        // SAFETY: non-NULL (checked by `new`), valid by this function's contract.
        unsafe { out.0.as_ptr().write(std::ptr::null_mut()) };
        Ok(out)
    }
}

/// A shared reference to a handle the caller passed in.
///
/// # Safety
/// `p` must be NULL or point to a live `T` made by this library, not freed while `'a` lasts.
pub(crate) unsafe fn handle<'a, T>(p: *const T, name: &str) -> FfiResult<&'a T> {
    // SAFETY: by this function's contract, a non-NULL `p` points to a live T.
    unsafe { p.as_ref() }.ok_or_else(|| FfiError::null(name))
}

/// A UTF-8 string argument.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string that stays unchanged while `'a` lasts.
pub(crate) unsafe fn utf8<'a>(p: *const c_char, name: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(FfiError::null(name));
    }
    // SAFETY: non-NULL, and NUL-terminated by this function's contract.
    let bytes = unsafe { CStr::from_ptr(p) };
    bytes.to_str().map_err(|e| {
        FfiError::new(
            crate::nestcore_status::InvalidUtf8,
            format!(
                "Argument `{name}` is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// An optional UTF-8 string argument: NULL is `None`.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string that stays unchanged while `'a` lasts.
pub(crate) unsafe fn utf8_opt<'a>(p: *const c_char, name: &str) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL, and NUL-terminated by this function's contract.
    unsafe { utf8(p, name) }.map(Some)
}

/// An array of `len` UTF-8 strings (`features`, ...): NULL is accepted only with `len == 0`, and
/// every element must be non-NULL.
///
/// # Safety
/// `p` must be NULL or point to `len` pointers, each NULL or a NUL-terminated string, all
/// unchanged while `'a` lasts.
pub(crate) unsafe fn utf8_array<'a>(
    p: *const *const c_char,
    len: usize,
    name: &str,
) -> FfiResult<Vec<&'a str>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err(FfiError::new(
            crate::nestcore_status::NullArgument,
            format!("Argument `{name}` is NULL but `{name}_len` is {len}"),
        ));
    }
    // SAFETY: non-NULL, and `len` readable pointers by this function's contract.
    let items = unsafe { std::slice::from_raw_parts(p, len) };
    items
        .iter()
        .enumerate()
        // SAFETY: each element is NULL or a NUL-terminated string by this function's contract.
        .map(|(i, &s)| unsafe { utf8(s, &format!("{name}[{i}]")) })
        .collect()
}

/// Runs `f` and hands its string to C through `out` as an owned string (NULL on failure): the
/// shape of every export that turns text into text.
///
/// # Safety
/// `out` must be NULL (an error) or point to a writable `char *`.
pub(crate) unsafe fn string_result(
    out: *mut *mut c_char,
    f: impl FnOnce() -> FfiResult<String>,
) -> crate::nestcore_status {
    crate::status::call(|| {
        // SAFETY: the caller promises `out` is NULL or writable.
        let out = unsafe { Out::new_nulled(out, "out") }?;
        let s = f()?;
        // SAFETY: non-NULL (checked), writable by the caller's promise.
        unsafe { out.set(owned_string(&s)) };
        Ok(())
    })
}

/// A boolean flag that comes in as an `int`: only 0 and 1 are accepted, so that a value meant for
/// a future flags word is not silently read as "true".
pub(crate) fn flag(value: c_int, name: &str) -> FfiResult<bool> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(FfiError::invalid(format!(
            "Argument `{name}` must be 0 or 1, not {v}"
        ))),
    }
}

/// An owned C string for `s`, released by `nestcore_string_free`. A NUL byte inside `s` (possible
/// only when a host file contained one) is replaced by U+FFFD rather than cutting the string.
pub(crate) fn owned_string(s: &str) -> *mut c_char {
    let c = match CString::new(s) {
        Ok(c) => c,
        Err(_) => CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default(),
    };
    c.into_raw()
}

/// Frees a string that this library returned (any function documented as returning an owned
/// string: JSON, text, ids, finding fields). NULL is a no-op.
///
/// # Safety
/// `s` must be NULL or a string returned by this library and not yet freed; it must not be used
/// afterwards. Strings from other allocators (malloc, strdup) must not be passed.
#[no_mangle]
pub unsafe extern "C" fn nestcore_string_free(s: *mut c_char) {
    crate::status::guard((), || {
        if !s.is_null() {
            // SAFETY: by the contract, `s` came from `CString::into_raw` in `owned_string` and is
            // freed once.
            drop(unsafe { CString::from_raw(s) });
        }
    });
}

/// Runs `f` on the object behind the handle `h` (named `name` in errors) and writes its answer
/// to `out`: the shape of every scalar accessor of a report, a plan or a guests report.
///
/// # Safety
/// `h` must be NULL or point to a live `H`; `out` NULL or writable.
pub(crate) unsafe fn read_with<H, T>(
    h: *const H,
    name: &str,
    out: *mut T,
    f: impl FnOnce(&H) -> FfiResult<T>,
) -> crate::nestcore_status {
    crate::status::call(|| {
        // SAFETY: the caller promises a live object or NULL.
        let h = unsafe { handle(h, name) }?;
        let out = Out::new(out, "out")?;
        let v = f(h)?;
        // SAFETY: non-NULL (checked), writable by the caller's promise.
        unsafe { out.set(v) };
        Ok(())
    })
}

/// Like [`read_with`] for an owned string.
///
/// # Safety
/// As [`read_with`].
pub(crate) unsafe fn read_string_with<H>(
    h: *const H,
    name: &str,
    out: *mut *mut c_char,
    f: impl FnOnce(&H) -> FfiResult<String>,
) -> crate::nestcore_status {
    // SAFETY: the caller promises a live object or NULL.
    let get = || f(unsafe { handle(h, name) }?);
    // SAFETY: the caller promises `out` is NULL or writable.
    unsafe { string_result(out, get) }
}
