//! nova.conf `[libvirt]` CPU settings: `NovaSettings::parse`, `to_ini`.
//!
//! Input: field 0 the nova.conf text.

use nestcore::cpu::Extension;
use nestcore::guest::nova::NovaSettings;
use nestcore::ErrorKind;

use crate::{no_new_controls_but, Input};

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let text = input.field(0);
    let n = match NovaSettings::parse(text) {
        Ok(n) => n,
        Err(e) => {
            assert!(
                matches!(e.kind(), ErrorKind::Parse | ErrorKind::InvalidInput),
                "{e}"
            );
            return;
        }
    };
    assert!(n.validate().is_ok());
    // Written back: the same settings, a fixed point, `key = value` lines of one section.
    let ini = n.to_ini();
    let back = NovaSettings::parse(&ini).unwrap_or_else(|e| panic!("{e}: {text:?} -> {ini:?}"));
    assert_eq!(back, n, "{text:?} -> {ini:?}");
    assert_eq!(back.to_ini(), ini);
    assert!(ini.starts_with("[libvirt]\n"));
    for l in ini.lines().skip(1) {
        assert!(l.contains(" = "), "{l:?} in {ini:?}");
    }
    assert_eq!(ini.lines().count(), 1 + ini.matches(" = ").count(), "{ini:?}");
    no_new_controls_but("nova", text, &ini, &['\n']);
    for ext in [Extension::Vmx, Extension::Svm] {
        let _ = n.nesting(ext);
    }
}
