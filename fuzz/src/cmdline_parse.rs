//! The kernel command line: `Cmdline::parse` and `render`.
//!
//! Input: field 0 is the line.

use nestcore::cmdline::{normalize, Cmdline, Param};

use crate::{no_new_controls, Input};

/// Whether `render` documents that it writes `p` so that it parses back the same: a name
/// without white space, `=` or `"`, a value without `"`.
fn writable(p: &Param) -> bool {
    !p.name.is_empty()
        && !p
            .name
            .contains(|c: char| c.is_ascii_whitespace() || c == '\u{b}' || c == '=' || c == '"')
        && !p.value.as_deref().is_some_and(|v| v.contains('"'))
}

/// The kernel's `isspace()` for ASCII: white space plus the vertical tab (lab scenario 09).
fn is_space(b: u8) -> bool {
    b.is_ascii_whitespace() || b == 0x0b
}

fn pairs(c: &Cmdline) -> Vec<(String, Option<String>)> {
    c.params
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect()
}

/// The target.
pub fn run(data: &[u8]) {
    let input = Input::new(data);
    let line = input.field(0);
    let c = Cmdline::parse(line);
    // Spans: in order, inside the line, on character boundaries, white space between them.
    let mut at = 0;
    for p in &c.params {
        let tok = line
            .get(p.span.clone())
            .unwrap_or_else(|| panic!("span {:?} of {line:?}", p.span));
        assert!(!tok.is_empty(), "empty token at {:?} of {line:?}", p.span);
        let gap = &line[at..p.span.start];
        assert!(gap.bytes().all(is_space), "{gap:?} between tokens of {line:?}");
        assert!(p.span.start >= at);
        at = p.span.end;
        // The name and value come from the token (quotes removed).
        assert!(
            tok.contains(p.name.as_str()),
            "name {:?} not in token {tok:?}",
            p.name
        );
        if let Some(v) = &p.value {
            assert!(tok.contains(v.as_str()), "value {v:?} not in token {tok:?}");
        }
        // The last occurrence wins.
        let last = c.all(&p.name).last().unwrap();
        assert_eq!(c.get(&p.name), Some(last.value.as_deref()));
        assert_eq!(normalize(&p.name), p.normalized_name());
    }
    match &c.init_args {
        Some(init) => assert!(line.ends_with(init.as_str()), "init args {init:?} of {line:?}"),
        None => assert!(line[at..].bytes().all(is_space), "unparsed tail of {line:?}"),
    }
    // render: no control character the line did not have; parse(render(x)) == x for the
    // parameters render can write, and render is a fixed point.
    let r = c.render();
    no_new_controls("render", line, &r, 0);
    let w = Cmdline {
        params: c.params.iter().filter(|p| writable(p)).cloned().collect(),
        init_args: c.init_args.clone().filter(|i| !i.contains('"')),
    };
    let wr = w.render();
    let back = Cmdline::parse(&wr);
    assert_eq!(pairs(&back), pairs(&w), "{line:?} rendered {wr:?}");
    assert_eq!(back.init_args, w.init_args, "{line:?} rendered {wr:?}");
    assert_eq!(back.render(), wr);
}
