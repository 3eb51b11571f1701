//! The C ABI's string entry points, called as C calls them: `nestcore_kargs_edit`,
//! `nestcore_cmdline_edit`, `nestcore_guest_cpu`, `nestcore_ensure_nested`, then
//! `nestcore_last_error_message` with buffers of every interesting size.
//!
//! Input: selector bits 0-1 pick the function, bits 2-3 the vendor and bits 4-5 the format
//! integers (3 is out of range), bit 6 `disable`; the fields are the string arguments in order
//! (a missing field is NULL; each is cut at its first NUL, as C sees it).

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use nestcore::cpu::Vendor;
use nestcore::ErrorKind;
use nestcore_ffi::{self as ffi, nestcore_status};

use crate::Input;

/// Field `i` as a C string (cut at its first NUL), `None` when absent.
fn cstr(input: &Input, i: usize) -> Option<CString> {
    input.opt(i).map(|s| {
        let cut = s.split('\0').next().unwrap_or("");
        CString::new(cut).unwrap()
    })
}

fn ptr_of(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(ptr::null(), |c| c.as_ptr())
}

fn text_of(s: &Option<CString>) -> Option<&str> {
    s.as_ref().map(|c| c.to_str().unwrap())
}

/// The status C gets for a Rust error.
fn status_for(kind: ErrorKind) -> nestcore_status {
    match kind {
        ErrorKind::NotFound => nestcore_status::NotFound,
        ErrorKind::PermissionDenied => nestcore_status::PermissionDenied,
        ErrorKind::Parse => nestcore_status::Parse,
        ErrorKind::InvalidInput => nestcore_status::InvalidArgument,
        ErrorKind::Io => nestcore_status::Io,
        ErrorKind::Unsupported => nestcore_status::Unsupported,
        _ => nestcore_status::Other,
    }
}

/// Checks one call's result against what the Rust API says, then the last error message.
fn check(what: &str, status: nestcore_status, out: *mut c_char, want: Result<String, nestcore_status>) {
    // SAFETY: a static string, never NULL.
    let name = unsafe { CStr::from_ptr(ffi::nestcore_status_name(status as u32)) };
    assert_ne!(
        name.to_bytes(),
        b"NESTCORE_STATUS_UNKNOWN",
        "{what}: status {status:?}"
    );
    assert_ne!(
        status,
        nestcore_status::Panic,
        "{what}: a panic reached the C ABI"
    );
    let got = if out.is_null() {
        None
    } else {
        // SAFETY: an owned string from the library, released below.
        let s = unsafe { CStr::from_ptr(out) }
            .to_str()
            .expect("the C ABI returned invalid UTF-8")
            .to_string();
        // SAFETY: owned by us, released once.
        unsafe { ffi::nestcore_string_free(out) };
        Some(s)
    };
    match want {
        Ok(w) => {
            assert_eq!(status, nestcore_status::Ok, "{what}");
            // A NUL in Rust's answer cannot cross; the C ABI writes U+FFFD instead.
            assert_eq!(
                got.as_deref(),
                Some(w.replace('\0', "\u{fffd}").as_str()),
                "{what}"
            );
        }
        Err(s) => {
            assert_eq!(status, s, "{what}");
            assert!(got.is_none(), "{what}: a string with a failure");
        }
    }
    // The last error: its size, refused without truncation into a short buffer, given whole
    // into one of the exact size; "" after a success.
    let mut needed = 0usize;
    // SAFETY: buf NULL with len 0 asks for the size; `needed` is writable.
    let st = unsafe { ffi::nestcore_last_error_message(ptr::null_mut(), 0, &mut needed) };
    assert_eq!(st, nestcore_status::BufferTooSmall);
    if status == nestcore_status::Ok {
        assert_eq!(needed, 1, "{what}: a last error after a success");
        return;
    }
    assert!(needed > 1, "{what}: no message for {status:?}");
    let mut buf = vec![b'x' as c_char; needed];
    let mut n2 = 0;
    // SAFETY: `buf` has needed - 1 writable bytes (one short).
    let st = unsafe { ffi::nestcore_last_error_message(buf.as_mut_ptr(), needed - 1, &mut n2) };
    assert_eq!((st, n2), (nestcore_status::BufferTooSmall, needed));
    assert_eq!(buf[0], 0, "a short buffer gets an empty string");
    // SAFETY: `buf` has `needed` writable bytes.
    let st = unsafe { ffi::nestcore_last_error_message(buf.as_mut_ptr(), needed, &mut n2) };
    assert_eq!(st, nestcore_status::Ok);
    // SAFETY: NUL-terminated by the call.
    let msg = unsafe { CStr::from_ptr(buf.as_ptr()) };
    assert_eq!(msg.to_bytes().len() + 1, needed);
    assert!(!msg.to_bytes().is_empty());
}

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let s = |i| cstr(&input, i);
    let mut out: *mut c_char = ptr::null_mut();
    match input.selector & 3 {
        0 => {
            let (text, loader, kernel, add, remove, boot) = (s(0), s(1), s(2), s(3), s(4), s(5));
            // SAFETY: NULL or NUL-terminated strings; `out` is writable.
            let st = unsafe {
                ffi::nestcore_kargs_edit(
                    ptr_of(&text),
                    ptr_of(&loader),
                    ptr_of(&kernel),
                    ptr_of(&add),
                    ptr_of(&remove),
                    ptr_of(&boot),
                    &mut out,
                )
            };
            let want = match (text_of(&text), text_of(&loader), text_of(&kernel)) {
                (Some(t), Some(l), Some(k)) => {
                    nestcore::bootloader::kargs_cli(t, l, k, text_of(&add), text_of(&remove), text_of(&boot))
                        .map_err(|e| status_for(e.kind()))
                }
                _ => Err(nestcore_status::NullArgument),
            };
            check("nestcore_kargs_edit", st, out, want);
        }
        1 => {
            let (line, add, remove) = (s(0), s(1), s(2));
            // SAFETY: as above.
            let st =
                unsafe { ffi::nestcore_cmdline_edit(ptr_of(&line), ptr_of(&add), ptr_of(&remove), &mut out) };
            let want = match text_of(&line) {
                None => Err(nestcore_status::NullArgument),
                Some(l) => {
                    let mut e = nestcore::cmdline::Editor::new(l);
                    let r = text_of(&add)
                        .map_or(Ok(false), |a| e.add_args(a))
                        .and_then(|_| text_of(&remove).map_or(Ok(false), |r| e.remove_args(r)));
                    r.map(|_| e.into_string()).map_err(|e| status_for(e.kind()))
                }
            };
            check("nestcore_cmdline_edit", st, out, want);
        }
        2 => {
            let vendor = u32::from(input.selector >> 2 & 3);
            let format = u32::from(input.selector >> 4 & 3);
            let (mode, model, topology) = (s(0), s(1), s(3));
            let features: Vec<CString> = input
                .opt(2)
                .map(|f| {
                    f.split('\n')
                        .map(|x| CString::new(x.split('\0').next().unwrap_or("")).unwrap())
                        .collect()
                })
                .unwrap_or_default();
            let fptrs: Vec<*const c_char> = features.iter().map(|c| c.as_ptr()).collect();
            // SAFETY: as above; `fptrs` holds `fptrs.len()` strings.
            let st = unsafe {
                ffi::nestcore_guest_cpu(
                    ptr::null(),
                    vendor,
                    format,
                    ptr_of(&mode),
                    ptr_of(&model),
                    fptrs.as_ptr(),
                    fptrs.len(),
                    ptr_of(&topology),
                    &mut out,
                )
            };
            let v = match vendor {
                1 => Some(Vendor::Intel),
                2 => Some(Vendor::Amd),
                _ => None,
            };
            let f = ["libvirt", "qemu", "nova"].get(format as usize);
            let want = match (v, f) {
                (Some(v), Some(f)) => {
                    let feats: Vec<String> =
                        features.iter().map(|c| c.to_str().unwrap().to_string()).collect();
                    nestcore::guest::guest_cpu_cli(
                        f,
                        text_of(&mode),
                        text_of(&model),
                        &feats,
                        text_of(&topology),
                        &nestcore::guest::HostFacts::new(v),
                    )
                    .map_err(|e| status_for(e.kind()))
                }
                _ => Err(nestcore_status::InvalidArgument),
            };
            check("nestcore_guest_cpu", st, out, want);
        }
        _ => {
            let vendor = u32::from(input.selector >> 2 & 3);
            let disable = i32::from(input.selector >> 6 & 1);
            let xml = s(0);
            // SAFETY: as above.
            let st = unsafe { ffi::nestcore_ensure_nested(ptr_of(&xml), vendor, disable, &mut out) };
            let want = match (text_of(&xml), vendor) {
                (None, _) => Err(nestcore_status::NullArgument),
                (Some(x), 1 | 2) => {
                    let v = if vendor == 1 { Vendor::Intel } else { Vendor::Amd };
                    nestcore::guest::ensure_nested_cli(x, v, disable == 1).map_err(|e| status_for(e.kind()))
                }
                _ => Err(nestcore_status::InvalidArgument),
            };
            check("nestcore_ensure_nested", st, out, want);
        }
    }
}
