//! QEMU `-cpu` arguments: `CpuArg::parse`, `to_string`, `ensure_extension` /
//! `disable_extension`.
//!
//! Input: field 0 the `-cpu` value; selector bit 0 svm instead of vmx.

use nestcore::cpu::Extension;
use nestcore::guest::qemu::CpuArg;
use nestcore::guest::NestingState;

use crate::Input;

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let text = input.field(0);
    let ext = if input.selector & 1 == 0 {
        Extension::Vmx
    } else {
        Extension::Svm
    };
    let Ok((a, _notes)) = CpuArg::parse_with_notes(text) else {
        return;
    };
    // Rendered: one argument, no control character, never `+f` next to `f=on`, reads back the
    // same and is a fixed point.
    let s = a.to_string();
    crate::no_new_controls("-cpu", text, &s, 0);
    assert!(!s.contains('\0'), "{text:?} -> {s:?}");
    // Options (split at single commas; `,,` is an escaped comma) never use the +f/-f forms.
    let mut opts = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ',' if chars.peek() == Some(&',') => {
                chars.next();
                opts.last_mut().unwrap().push(',');
            }
            ',' => opts.push(String::new()),
            c => opts.last_mut().unwrap().push(c),
        }
    }
    assert!(
        opts.iter().skip(1).all(|o| !o.starts_with(['+', '-'])),
        "{text:?} -> {s:?}"
    );
    let back = CpuArg::parse(&s).unwrap_or_else(|e| panic!("{e}: {text:?} -> {s:?}"));
    assert_eq!(back, a, "{text:?} -> {s:?}");
    assert_eq!(back.to_string(), s);
    assert_eq!(a.args(), ["-cpu".to_string(), s.clone()]);
    let _ = a.nesting(ext);
    // ensure then gives the extension, twice is once; disable withholds it.
    let mut on = a.clone();
    on.ensure_extension(ext);
    assert_eq!(on.nesting(ext).state, NestingState::Yes, "{s:?} -> {on}");
    assert!(!on.clone().ensure_extension(ext), "ensure twice changed {on}");
    assert_eq!(CpuArg::parse(&on.to_string()).unwrap(), on);
    let mut off = on.clone();
    off.disable_extension(ext);
    assert_eq!(off.nesting(ext).state, NestingState::No, "{on} -> {off}");
    assert!(!off.clone().disable_extension(ext), "disable twice changed {off}");
    assert_eq!(CpuArg::parse(&off.to_string()).unwrap(), off);
}
