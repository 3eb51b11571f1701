//! modprobe.d files: logical lines, `options` lines, and `neutralise` (the edit of a file that
//! sets the opposite value).
//!
//! Input: field 0 the file, 1 the module and 2 the parameter to neutralise (when field 1 is
//! empty: those of the first `options` line, else kvm_intel nested).

use nestcore::cmdline::normalize;
use nestcore::modprobe::{self, OptionSource};

use crate::{lines, no_new_control_kinds, Input};

fn key(o: &OptionSource) -> (String, String, Option<String>) {
    (o.module.clone(), o.param.clone(), o.value.clone())
}

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let text = input.field(0);
    let physical = lines(text).len();
    let logical = modprobe::logical_lines(text);
    let mut prev = 0;
    for l in &logical {
        assert!(l.line > prev && l.physical >= 1, "{l:?}");
        assert!(
            l.line + l.physical - 1 <= physical.max(1),
            "{l:?} past the end of {physical} lines"
        );
        // kmod splits a line at spaces and tabs only (strtok_r(line, "\t ")): a first word
        // "\r#..." is an unknown command, not a comment, and stays a logical line.
        let first = l.text.split([' ', '\t']).find(|w| !w.is_empty()).unwrap_or("");
        assert!(!first.starts_with('#'), "a comment kept: {l:?}");
        prev = l.line + l.physical - 1;
    }
    let opts = modprobe::parse_options("f", text);
    for o in &opts {
        assert!(
            logical.iter().any(|l| l.line == o.line && l.text == o.text),
            "{o:?}"
        );
        // Normalized: `-` is `_` in module names outside brackets, as kmod keeps them. A `[`
        // opens a range that ends at the first `]` after it; brackets do not nest (libkmod-util.c
        // `underscores`: `i += strcspn(&s[i], "]")`; kmod 30 keeps `a[-[]` as it is).
        let mut outside = String::new();
        let mut in_range = false;
        for c in o.module.chars() {
            match c {
                '[' if !in_range => in_range = true,
                ']' if in_range => in_range = false,
                c if !in_range => outside.push(c),
                _ => {}
            }
        }
        assert!(
            !outside.contains('-') && !o.param.contains('-'),
            "not normalized: {o:?}"
        );
        assert!(!o.module.is_empty());
    }
    let (module, param) = match (input.field(1), opts.first()) {
        ("", Some(o)) => (o.module.clone(), o.param.clone()),
        ("", None) => ("kvm_intel".to_string(), "nested".to_string()),
        (m, _) => (m.to_string(), input.field(2).to_string()),
    };
    let (m, p) = (normalize(&module), normalize(&param));
    let hit = |o: &OptionSource| o.module == m && o.param == p;
    let out = modprobe::neutralise(text, &module, &param);
    let after = modprobe::parse_options("f", &out);
    // Nothing sets it any more; every other setting is kept, in order; twice is once.
    assert!(!after.iter().any(hit), "neutralise {m} {p} left it in {out:?}");
    let before: Vec<_> = opts.iter().filter(|o| !hit(o)).map(key).collect();
    assert_eq!(
        after.iter().map(key).collect::<Vec<_>>(),
        before,
        "{text:?} -> {out:?}"
    );
    assert_eq!(
        modprobe::neutralise(&out, &module, &param),
        out,
        "neutralise twice"
    );
    // Lines of logical lines without the setting are kept byte for byte, in order.
    let hit_lines: Vec<usize> = logical
        .iter()
        .filter(|l| opts.iter().any(|o| o.line == l.line && hit(o)))
        .flat_map(|l| l.line..l.line + l.physical)
        .collect();
    let mut rest = lines(&out).into_iter();
    for (i, l) in lines(text).into_iter().enumerate() {
        if !hit_lines.contains(&(i + 1)) {
            assert!(
                rest.any(|o| o == l),
                "lost line {} {l:?}: {text:?} -> {out:?}",
                i + 1
            );
        }
    }
    if hit_lines.is_empty() {
        assert_eq!(out, text);
    }
    // The original line stays as a comment next to its rewrite: no control character but those
    // of the input.
    no_new_control_kinds("neutralise", &format!("{text}{module}{param}"), &out);
}
