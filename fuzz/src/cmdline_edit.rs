//! The kernel command line editor (`Editor`): grubby's `--args` / `--remove-args`, `set`,
//! `remove`.
//!
//! A module parameter (a name with a `.`) counts after a bare `--` too, as kmod reads the line:
//! a set leaves none of its name there, a removal removes it there too, and every other
//! module parameter after `--` stays, in order.
//!
//! Input: field 0 the line, 1 the `--args` list, 2 the `--remove-args` list, 3 a name and 4 a
//! value for `set` (the selector: bit 0 set without a value).

use nestcore::cmdline::{normalize, Cmdline, Editor};

use crate::{args_present, no_new_controls, pairs, removed_absent, Input};

/// The module parameters after a bare `--` (what kmod also applies), as `(name, value)`.
fn late(line: &str) -> Vec<(String, Option<String>)> {
    Cmdline::parse(line)
        .module_params_after_dashes()
        .into_iter()
        .map(|p| (p.name, p.value))
        .collect()
}

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let line = input.field(0);
    let add = input.karg(1).unwrap_or_default();
    let remove = input.karg(2).unwrap_or_default();
    let name = input.field(3).to_string();
    let value = (input.selector & 1 == 0).then(|| input.field(4).to_string());

    // --args: every argument is then a parameter, a second time changes nothing, parameters
    // whose names are not among the arguments keep their text, in order.
    let mut e = Editor::new(line);
    if let Ok(changed) = e.add_args(&add) {
        let once = e.as_str().to_string();
        assert_eq!(changed, once != line);
        args_present("add_args", &add, &pairs(&once));
        assert_eq!(
            e.add_args(&add).ok(),
            Some(false),
            "--args {add:?} twice changed {once:?}: {:?}",
            e.as_str()
        );
        let names: Vec<String> = pairs(&add).into_iter().map(|(n, _)| normalize(&n)).collect();
        let keep = |s: &str| -> Vec<(String, Option<String>)> {
            pairs(s)
                .into_iter()
                .filter(|(n, _)| !names.contains(&normalize(n)))
                .collect()
        };
        assert_eq!(
            keep(&once),
            keep(line),
            "--args {add:?} touched other parameters of {line:?}: {once:?}"
        );
        // After `--`: none of the module parameters set is left; the others stay, in order.
        let keep_late = |s: &str| -> Vec<(String, Option<String>)> {
            late(s)
                .into_iter()
                .filter(|(n, _)| !names.contains(&normalize(n)))
                .collect()
        };
        assert_eq!(
            late(&once).len(),
            keep_late(&once).len(),
            "--args {add:?} left a contrary value after `--`: {once:?}"
        );
        assert_eq!(
            keep_late(&once),
            keep_late(line),
            "--args {add:?} of {line:?}: {once:?}"
        );
        // No control character of the arguments reaches the line (issue 13: they are refused).
        no_new_controls("add_args", line, &once, 0);
    }

    // --remove-args: none of the removed is left, a second time changes nothing, the others
    // stay in order.
    let mut e = Editor::new(line);
    if let Ok(changed) = e.remove_args(&remove) {
        let once = e.as_str().to_string();
        assert_eq!(changed, once != line);
        removed_absent("remove_args", &remove, &pairs(&once));
        assert_eq!(
            e.remove_args(&remove).ok(),
            Some(false),
            "--remove-args {remove:?} twice"
        );
        let gone = pairs(&remove);
        let kept: Vec<_> = pairs(line)
            .into_iter()
            .filter(|(n, v)| {
                !gone
                    .iter()
                    .any(|(gn, gv)| normalize(gn) == normalize(n) && (gv.is_none() || gv == v))
            })
            .collect();
        assert_eq!(
            pairs(&once),
            kept,
            "--remove-args {remove:?} of {line:?}: {once:?}"
        );
        // After `--` the removed module parameters are gone too, the rest in order.
        let gone_late = |(n, v): &(String, Option<String>)| {
            gone.iter().any(|(gn, gv)| {
                gn.contains('.') && normalize(gn) == normalize(n) && (gv.is_none() || gv == v)
            })
        };
        let kept_late: Vec<_> = late(line).into_iter().filter(|p| !gone_late(p)).collect();
        assert_eq!(
            late(&once),
            kept_late,
            "--remove-args {remove:?} after `--` of {line:?}: {once:?}"
        );
        no_new_controls("remove_args", line, &once, 0);
    }

    // set: the parameter is then effective with that value, other names are untouched, twice is
    // once; remove takes it out again.
    let mut e = Editor::new(line);
    if e.set(&name, value.as_deref()).is_ok() {
        let once = e.as_str().to_string();
        let c = nestcore::cmdline::Cmdline::parse(&once);
        assert_eq!(
            c.get(&name),
            Some(value.as_deref()),
            "set {name:?}={value:?} on {line:?}: {once:?}"
        );
        assert_eq!(c.all(&name).count(), 1, "set left duplicates: {once:?}");
        // kmod's view: a module parameter has no contrary value after `--`.
        if name.contains('.') {
            assert_eq!(
                c.module_param(&name, false),
                Some(value.clone()),
                "set {name:?}={value:?} on {line:?} left a value after `--`: {once:?}"
            );
        }
        let others_late = |s: &str| -> Vec<(String, Option<String>)> {
            late(s)
                .into_iter()
                .filter(|(n, _)| normalize(n) != normalize(&name))
                .collect()
        };
        assert_eq!(
            others_late(&once),
            others_late(line),
            "set {name:?} after `--` of {line:?}: {once:?}"
        );
        assert_eq!(
            e.set(&name, value.as_deref()).ok(),
            Some(false),
            "set twice: {once:?}"
        );
        let others = |s: &str| -> Vec<(String, Option<String>)> {
            pairs(s)
                .into_iter()
                .filter(|(n, _)| normalize(n) != normalize(&name))
                .collect()
        };
        assert_eq!(
            others(&once),
            others(line),
            "set {name:?} touched others of {line:?}: {once:?}"
        );
        no_new_controls("set", line, &once, 0);
        let mut r = Editor::new(once.clone());
        r.remove(&name, None);
        assert!(
            r.parsed().get(&name).is_none(),
            "remove {name:?} left it in {:?}",
            r.as_str()
        );
        assert!(
            !name.contains('.') || r.parsed().module_param(&name, false).is_none(),
            "remove {name:?} left it after `--` in {:?}",
            r.as_str()
        );
        assert_eq!(others(r.as_str()), others(line));
    }
}
