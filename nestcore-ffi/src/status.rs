//! Status codes, the thread-local last error, and the one guard that every export runs in.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use nestcore::ErrorKind;

/// The result of every fallible nestcore function.
///
/// The values are fixed: they never change meaning, and new ones may be added (treat an
/// unknown non-zero value as a failure). `nestcore_last_error_message()` gives the detail of the
/// last failure on the calling thread.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nestcore_status {
    /// Success.
    Ok = 0,
    /// A pointer argument that must not be NULL was NULL.
    NullArgument = 1,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 2,
    /// An argument was out of range (an enum or flag value, an index) or otherwise not acceptable.
    InvalidArgument = 3,
    /// A file or folder that the caller named does not exist.
    NotFound = 4,
    /// The operating system refused access (EACCES, EPERM).
    PermissionDenied = 5,
    /// Input did not parse (for example a CPUID dump).
    Parse = 6,
    /// Another I/O failure (for example a root that is not a folder).
    Io = 7,
    /// Not possible on this host or platform.
    Unsupported = 8,
    /// The caller's buffer is too small; the needed size was reported and nothing was truncated.
    BufferTooSmall = 9,
    /// A bug: nestcore panicked. The panic was caught; the message says where.
    Panic = 10,
    /// An error that this version of the C ABI does not classify more precisely.
    Other = 11,
}

impl nestcore_status {
    /// The name of the constant in the C header, e.g. "NESTCORE_STATUS_OK".
    pub(crate) fn name(self) -> &'static std::ffi::CStr {
        match self {
            nestcore_status::Ok => c"NESTCORE_STATUS_OK",
            nestcore_status::NullArgument => c"NESTCORE_STATUS_NULL_ARGUMENT",
            nestcore_status::InvalidUtf8 => c"NESTCORE_STATUS_INVALID_UTF8",
            nestcore_status::InvalidArgument => c"NESTCORE_STATUS_INVALID_ARGUMENT",
            nestcore_status::NotFound => c"NESTCORE_STATUS_NOT_FOUND",
            nestcore_status::PermissionDenied => c"NESTCORE_STATUS_PERMISSION_DENIED",
            nestcore_status::Parse => c"NESTCORE_STATUS_PARSE",
            nestcore_status::Io => c"NESTCORE_STATUS_IO",
            nestcore_status::Unsupported => c"NESTCORE_STATUS_UNSUPPORTED",
            nestcore_status::BufferTooSmall => c"NESTCORE_STATUS_BUFFER_TOO_SMALL",
            nestcore_status::Panic => c"NESTCORE_STATUS_PANIC",
            nestcore_status::Other => c"NESTCORE_STATUS_OTHER",
        }
    }

    /// Every status, for validating integers that come in from C.
    pub(crate) const ALL: [nestcore_status; 12] = [
        nestcore_status::Ok,
        nestcore_status::NullArgument,
        nestcore_status::InvalidUtf8,
        nestcore_status::InvalidArgument,
        nestcore_status::NotFound,
        nestcore_status::PermissionDenied,
        nestcore_status::Parse,
        nestcore_status::Io,
        nestcore_status::Unsupported,
        nestcore_status::BufferTooSmall,
        nestcore_status::Panic,
        nestcore_status::Other,
    ];
}

/// A failure on its way to C: the status to return and the message for the last error.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub(crate) status: nestcore_status,
    pub(crate) message: String,
}

impl FfiError {
    pub(crate) fn new(status: nestcore_status, message: impl Into<String>) -> FfiError {
        FfiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn null(arg: &str) -> FfiError {
        FfiError::new(nestcore_status::NullArgument, format!("Argument `{arg}` is NULL"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> FfiError {
        FfiError::new(nestcore_status::InvalidArgument, message)
    }
}

/// The one place where nestcore's error kinds become C status codes.
impl From<nestcore::Error> for FfiError {
    fn from(e: nestcore::Error) -> FfiError {
        let status = match e.kind() {
            ErrorKind::NotFound => nestcore_status::NotFound,
            ErrorKind::PermissionDenied => nestcore_status::PermissionDenied,
            ErrorKind::Parse => nestcore_status::Parse,
            ErrorKind::InvalidInput => nestcore_status::InvalidArgument,
            ErrorKind::Io => nestcore_status::Io,
            ErrorKind::Unsupported => nestcore_status::Unsupported,
            _ => nestcore_status::Other,
        };
        // The message with its sources: "Cannot access /x: No such file or directory (os error 2)".
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        FfiError { status, message }
    }
}

/// A result inside an export.
pub(crate) type FfiResult<T = ()> = Result<T, FfiError>;

thread_local! {
    /// The message of the last failure on this thread, NUL-free (it goes out as a C string).
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_last_error(message: &str) {
    // `try_with`: during thread teardown the slot may be gone; then there is no one to read it.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut s) = slot.try_borrow_mut() {
            s.clear();
            s.push_str(&message.replace('\0', "\u{FFFD}"));
        }
    });
}

fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut s) = slot.try_borrow_mut() {
            // Give the memory back: a thread that once failed should not keep a large message.
            *s = String::new();
        }
    });
}

/// The one guard: runs `f`, and if it panics, records the panic as the last error and returns
/// `on_panic` instead of unwinding into C. Every export runs in it (through [`call`] for the
/// fallible ones).
pub(crate) fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    // AssertUnwindSafe: on a panic, whatever `f` built is dropped during unwinding and the caller
    // only sees `on_panic`; out-parameters are written only as the last step of a success.
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".to_owned());
            set_last_error(&format!(
                "Internal error (a bug in nestcore, please report it): {what}"
            ));
            // Dropping the payload runs foreign code (its Drop); keep even that from unwinding.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            on_panic
        }
    }
}

/// Runs a fallible export: clears this thread's last error, runs `f` in the [`guard`], and turns
/// its result into a status (recording the message of a failure).
pub(crate) fn call(f: impl FnOnce() -> FfiResult) -> nestcore_status {
    guard(nestcore_status::Panic, || {
        clear_last_error();
        match f() {
            Ok(()) => nestcore_status::Ok,
            Err(e) => {
                set_last_error(&e.message);
                e.status
            }
        }
    })
}

/// Writes the message of the last failure on the calling thread into `buf` as a NUL-terminated
/// string.
///
/// `*out_needed` receives the size the message needs including its NUL (1 when there was no
/// failure: the message is then ""). When `len` is smaller than that, nothing but an empty string
/// (when `len > 0`) is written and `NESTCORE_STATUS_BUFFER_TOO_SMALL` is returned: call again with
/// a buffer of `*out_needed` bytes. To ask for the size only, pass `buf = NULL, len = 0`.
///
/// Every fallible function clears the last error when it starts and sets it when it fails; this
/// function never changes it, so it can be called again after `BUFFER_TOO_SMALL`. The last error
/// is per thread: a failure on one thread is never seen on another.
///
/// # Safety
/// `buf` must be NULL (with `len == 0`) or point to `len` writable bytes; `out_needed` must point
/// to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn nestcore_last_error_message(
    buf: *mut c_char,
    len: usize,
    out_needed: *mut usize,
) -> nestcore_status {
    guard(nestcore_status::Panic, || {
        if out_needed.is_null() {
            return nestcore_status::NullArgument;
        }
        let message = LAST_ERROR
            .try_with(|slot| slot.try_borrow().map(|s| s.clone()).unwrap_or_default())
            .unwrap_or_default();
        let needed = message.len() + 1;
        // SAFETY: checked non-NULL above; the caller promises it points to a writable size_t.
        unsafe { out_needed.write(needed) };
        if buf.is_null() {
            return if len == 0 {
                nestcore_status::BufferTooSmall
            } else {
                nestcore_status::NullArgument
            };
        }
        if len < needed {
            if len > 0 {
                // SAFETY: buf is non-NULL and the caller promises `len` (> 0) writable bytes.
                unsafe { buf.write(0) };
            }
            return nestcore_status::BufferTooSmall;
        }
        // SAFETY: buf points to `len >= needed = message.len() + 1` writable bytes, and the source
        // is a Rust string of our own that cannot overlap the caller's buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(message.as_ptr(), buf.cast::<u8>(), message.len());
            buf.add(message.len()).write(0);
        }
        nestcore_status::Ok
    })
}

/// A static, NUL-terminated name for `status` ("NESTCORE_STATUS_PARSE"), or
/// "NESTCORE_STATUS_UNKNOWN" for a value this library does not know. Never NULL; do not free it.
#[no_mangle]
pub extern "C" fn nestcore_status_name(status: u32) -> *const c_char {
    guard(c"NESTCORE_STATUS_UNKNOWN".as_ptr(), || {
        nestcore_status::ALL
            .iter()
            .find(|s| **s as u32 == status)
            .map_or(c"NESTCORE_STATUS_UNKNOWN".as_ptr(), |s| s.name().as_ptr())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        let mut needed = 0usize;
        let mut buf = vec![0 as c_char; 512];
        // SAFETY: buf has 512 writable bytes, needed is a local.
        let st = unsafe { nestcore_last_error_message(buf.as_mut_ptr(), buf.len(), &mut needed) };
        assert_eq!(st, nestcore_status::Ok);
        // SAFETY: the function wrote a NUL-terminated string into buf.
        unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let st = call(|| panic!("boom {}", 42));
        assert_eq!(st, nestcore_status::Panic);
        let m = last();
        assert!(m.contains("boom 42"), "{m}");
        assert!(m.starts_with("Internal error"), "{m}");
        // The next call clears it.
        assert_eq!(call(|| Ok(())), nestcore_status::Ok);
        assert_eq!(last(), "");
    }

    #[test]
    fn a_panic_with_a_static_str_payload() {
        let st = guard(7u8, || std::panic::panic_any("static payload"));
        assert_eq!(st, 7);
        assert!(last().contains("static payload"));
    }

    #[test]
    fn error_kinds_map_to_statuses() {
        let e: FfiError = nestcore::Error::InvalidInput("x".into()).into();
        assert_eq!(e.status, nestcore_status::InvalidArgument);
        let e: FfiError = nestcore::Error::Unsupported("x".into()).into();
        assert_eq!(e.status, nestcore_status::Unsupported);
        let e: FfiError = nestcore::Host::from_root("/nonexistent/nestcore-ffi-test")
            .unwrap_err()
            .into();
        assert_eq!(e.status, nestcore_status::NotFound);
        assert!(
            e.message.contains("/nonexistent/nestcore-ffi-test"),
            "{}",
            e.message
        );
        assert!(e.message.contains("os error"), "{}", e.message);
    }

    #[test]
    fn nul_bytes_in_a_message_do_not_cut_it() {
        let st = call(|| Err(FfiError::invalid("a\0b")));
        assert_eq!(st, nestcore_status::InvalidArgument);
        assert_eq!(last(), "a\u{FFFD}b");
    }

    #[test]
    fn status_names() {
        for s in nestcore_status::ALL {
            // SAFETY: the function returns a static NUL-terminated string.
            let name = unsafe { std::ffi::CStr::from_ptr(nestcore_status_name(s as u32)) };
            assert!(name.to_str().unwrap().starts_with("NESTCORE_STATUS_"));
        }
        // SAFETY: as above.
        let unknown = unsafe { std::ffi::CStr::from_ptr(nestcore_status_name(9999)) };
        assert_eq!(unknown.to_str().unwrap(), "NESTCORE_STATUS_UNKNOWN");
    }
}
