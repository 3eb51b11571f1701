//! The shell is the oracle for /etc/default/grub: grub-mkconfig sources the file (`. FILE`), so
//! GRUB_CMDLINE_LINUX and GRUB_CMDLINE_LINUX_DEFAULT are what bash (and dash, Debian's /bin/sh)
//! make of it. nestcore's reading (`grub2::value`) must agree wherever it gives a value, and
//! after every edit nestcore makes, the shell must see exactly the edit: the parameters set, the
//! removed ones gone, every other variable as before. Checked for every fixture's
//! /etc/default/grub and grub.d/*.cfg, and for generated hostile files (quotes of every kind,
//! multi-line values, escapes, `$VAR` references, `~`, `#` inside words, `;`, `export`, CRLF).
//!
//! Safety: a hostile file is shell code. A file is sourced only when [`inert`] proves it holds
//! nothing but assignments (and comments) whose values expand no command: no `$(...)`, no
//! backquote, no command word, no redirection, no `&`, `|`, `(`; nothing a shell could run. Even
//! then it runs with an empty environment, PATH set to an empty folder (no program can be
//! found), bash in restricted mode (`-r`: no redirection, no `cd`, no `/` in command names), in
//! a temporary folder, killed after 10 s. Files that are not inert are never run: for those
//! nestcore must refuse (a Parse error) or give the value the inert part defines.
//!
//! Skips, with the reason, where bash is not installed.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nestcore::bootloader::{grub2, ArgsEdit};
use nestcore::cmdline::{normalize, Cmdline};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngSeed, TestRunner};

const VARS: [&str; 2] = [grub2::CMDLINE_VAR, grub2::CMDLINE_DEFAULT_VAR];

// ---------------------------------------------------------------------------------------------
// Which files may be sourced at all

/// Whether `text` is inert shell: only assignments `NAME=WORD` (several per command allowed,
/// optionally after `export`), `export NAME`, comments, blank lines and `;`. Words may use
/// single quotes, double quotes, backslash escapes, `$NAME` and `${NAME}`; nothing that runs or
/// substitutes a command, redirects, pipes, backgrounds, or opens a subshell. Conservative: a
/// file this refuses may still be harmless; one it accepts runs no command.
fn inert(text: &str) -> bool {
    let c: Vec<char> = text.chars().collect();
    let mut i = 0;
    let blank = |ch: char| ch == ' ' || ch == '\t';
    let name_start = |ch: char| ch.is_ascii_alphabetic() || ch == '_';
    let name_char = |ch: char| ch.is_ascii_alphanumeric() || ch == '_';
    // `$NAME` or `${NAME}` at c[i] == '$'; returns the index after it.
    let dollar = |i: usize| -> Option<usize> {
        match c.get(i + 1) {
            Some(&ch) if name_start(ch) => {
                let mut j = i + 1;
                while c.get(j).is_some_and(|&ch| name_char(ch)) {
                    j += 1;
                }
                Some(j)
            }
            Some('{') if c.get(i + 2).is_some_and(|&ch| name_start(ch)) => {
                let mut j = i + 2;
                while c.get(j).is_some_and(|&ch| name_char(ch)) {
                    j += 1;
                }
                (c.get(j) == Some(&'}')).then_some(j + 1)
            }
            _ => None,
        }
    };
    loop {
        // At the start of a command.
        while c.get(i).is_some_and(|&ch| blank(ch) || ch == '\n') {
            i += 1;
        }
        match c.get(i) {
            None => return true,
            Some('#') => {
                while c.get(i).is_some_and(|&ch| ch != '\n') {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        let mut export = false;
        if c[i..].starts_with(&['e', 'x', 'p', 'o', 'r', 't']) && c.get(i + 6).is_some_and(|&ch| blank(ch)) {
            export = true;
            i += 6;
        }
        // One or more words, each NAME=WORD (or NAME after export), until the command ends.
        let mut words = 0;
        loop {
            while c.get(i).is_some_and(|&ch| blank(ch)) {
                i += 1;
            }
            match c.get(i) {
                None | Some('\n') => break,
                Some(';') => {
                    i += 1;
                    break;
                }
                Some('#') if words > 0 || export => {
                    while c.get(i).is_some_and(|&ch| ch != '\n') {
                        i += 1;
                    }
                    break;
                }
                _ => {}
            }
            if !c.get(i).is_some_and(|&ch| name_start(ch)) {
                return false;
            }
            while c.get(i).is_some_and(|&ch| name_char(ch)) {
                i += 1;
            }
            words += 1;
            if c.get(i) != Some(&'=') {
                // A bare name is only a word of `export`.
                if export && c.get(i).is_none_or(|&ch| blank(ch) || ch == '\n' || ch == ';') {
                    continue;
                }
                return false;
            }
            i += 1;
            // The value word.
            loop {
                match c.get(i) {
                    None => return true,
                    Some(&ch) if blank(ch) || ch == '\n' || ch == ';' => break,
                    Some('\'') => {
                        i += 1;
                        while c.get(i).is_some_and(|&ch| ch != '\'') {
                            i += 1;
                        }
                        if c.get(i).is_none() {
                            return false;
                        }
                        i += 1;
                    }
                    Some('"') => {
                        i += 1;
                        loop {
                            match c.get(i) {
                                None | Some('`') => return false,
                                Some('"') => break,
                                Some('\\') => i += 2,
                                Some('$') => match dollar(i) {
                                    Some(j) => i = j,
                                    None => return false,
                                },
                                Some(_) => i += 1,
                            }
                        }
                        i += 1;
                    }
                    Some('\\') => {
                        if c.get(i + 1).is_none() {
                            return false;
                        }
                        i += 2;
                    }
                    Some('$') => match dollar(i) {
                        Some(j) => i = j,
                        None => return false,
                    },
                    Some('`' | '(' | ')' | '&' | '|' | '<' | '>') => return false,
                    Some(_) => i += 1,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shells

/// What a shell makes of a file: each of the two variables, `None` when unset.
type View = [Option<String>; 2];

struct Shell {
    path: PathBuf,
    /// bash: `-r` and `. grub` (no slash allowed); dash: `. ./grub`.
    restricted: bool,
}

fn shells() -> Vec<Shell> {
    let mut out = Vec::new();
    if let Some(p) = ["/bin/bash", "/usr/bin/bash"]
        .iter()
        .find(|p| Path::new(p).exists())
    {
        out.push(Shell {
            path: p.into(),
            restricted: true,
        });
    }
    if let Some(p) = ["/bin/dash", "/usr/bin/dash"]
        .iter()
        .find(|p| Path::new(p).exists())
    {
        out.push(Shell {
            path: p.into(),
            restricted: false,
        });
    }
    out
}

impl Shell {
    /// Sources `text` (which must be [`inert`]) and reads the two variables.
    fn view(&self, text: &str) -> View {
        assert!(
            inert(text),
            "refusing to run a shell on a file that is not inert: {text:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("grub"), text).unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let source = if self.restricted { ". grub" } else { ". ./grub" };
        let script = format!(
            "{source} || exit 97; printf '%s\\0%s\\0%s\\0%s\\0' \"${{{a}+set}}\" \"${{{a}-}}\" \"${{{b}+set}}\" \"${{{b}-}}\"",
            a = VARS[0],
            b = VARS[1]
        );
        let mut cmd = Command::new(&self.path);
        if self.restricted {
            cmd.args(["--norc", "--noprofile", "-r"]);
        }
        cmd.arg("-c")
            .arg(&script)
            .env_clear()
            .env("PATH", dir.path().join("empty"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} did not finish sourcing {text:?}", self.path.display());
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let mut out = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
        assert!(
            status.success(),
            "{} failed ({status}) on {text:?}",
            self.path.display()
        );
        let out = String::from_utf8_lossy(&out).into_owned();
        let f: Vec<&str> = out.split('\0').collect();
        [
            (f[0] == "set").then(|| f[1].to_string()),
            (f[2] == "set").then(|| f[3].to_string()),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// The comparison

/// nestcore's view of `text`: per variable `Ok(value or None)` or the refusal.
fn nestcore_view(text: &str) -> [Result<Option<String>, String>; 2] {
    VARS.map(|v| grub2::value(text, v).map_err(|e| e.to_string()))
}

/// Counts of what happened, for the report.
#[derive(Debug, Default)]
struct Tally {
    agreed: usize,
    refused: usize,
    edits: usize,
    not_inert: usize,
}

/// Compares nestcore's reading of `text` with every shell's. Refusals are counted, not errors.
fn check_reading(sh: &[Shell], text: &str, t: &mut Tally) -> Result<(), String> {
    let ours = nestcore_view(text);
    for s in sh {
        let theirs = s.view(text);
        for (k, v) in VARS.iter().enumerate() {
            match &ours[k] {
                Ok(o) if *o != theirs[k] => {
                    return Err(format!(
                        "{v}: {} reads {:?}, nestcore {o:?}",
                        s.path.display(),
                        theirs[k]
                    ));
                }
                Ok(_) => {}
                Err(_) => {}
            }
        }
    }
    if ours.iter().any(Result::is_err) {
        t.refused += 1;
    } else {
        t.agreed += 1;
    }
    Ok(())
}

/// The edits checked on every file: what `nestcore enable` does (set on GRUB_CMDLINE_LINUX,
/// the same name removed from GRUB_CMDLINE_LINUX_DEFAULT), its undo, and grubby-style lists.
fn edits() -> Vec<(usize, ArgsEdit)> {
    let set = ArgsEdit::set("kvm-intel.nested", "1");
    vec![
        (0, set.clone()),
        (1, set.removals_only()),
        (0, ArgsEdit::unset("kvm_intel.nested")),
        (1, ArgsEdit::set("kvm_amd.nested", "1")),
        (
            0,
            ArgsEdit {
                add: Some("quiet a=\"x y\" console=ttyS0,115200 b=it's".into()),
                remove: Some("rhgb splash=1".into()),
                ..ArgsEdit::default()
            },
        ),
        (
            1,
            ArgsEdit {
                remove: Some("quiet splash".into()),
                ..ArgsEdit::default()
            },
        ),
    ]
}

/// Applies every edit to `text` and checks, with the shells as the oracle, that the result is
/// still inert and that each shell sees exactly the edit.
fn check_edits(sh: &[Shell], text: &str, t: &mut Tally) -> Result<(), String> {
    for (k, edit) in edits() {
        let var = VARS[k];
        let Ok(out) = grub2::edit(text, var, &edit) else {
            continue;
        };
        t.edits += 1;
        if !inert(&out) {
            return Err(format!(
                "editing {var} with {edit:?} made an inert file run something: {out:?}"
            ));
        }
        for s in sh {
            let (before, after) = (s.view(text), s.view(&out));
            // The other variable is as it was, unless the file defines it from this one
            // (`GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX"`): then it follows the edit.
            if after[1 - k] != before[1 - k] && !refers_to(text, var) {
                return Err(format!(
                    "{} sees {} change: {:?} -> {:?}\n{out:?}",
                    s.path.display(),
                    VARS[1 - k],
                    before[1 - k],
                    after[1 - k]
                ));
            }
            let got = Cmdline::parse(after[k].as_deref().unwrap_or(""));
            let was = Cmdline::parse(before[k].as_deref().unwrap_or(""));
            let fail = |why: String| {
                Err(format!(
                    "{} after {edit:?} on {var}: {why}\n{text:?}\n->\n{out:?}",
                    s.path.display()
                ))
            };
            for (n, v) in &edit.set {
                if got.get(n) != Some(v.as_deref()) {
                    return fail(format!("{n} is {:?}", got.get(n)));
                }
            }
            for n in &edit.unset {
                if got.get(n).is_some() {
                    return fail(format!("{n} is still {:?}", got.get(n)));
                }
            }
            let gone: Vec<(String, Option<String>)> = edit
                .remove
                .as_deref()
                .map(|r| {
                    Cmdline::parse(r)
                        .params
                        .into_iter()
                        .map(|p| (normalize(&p.name), p.value))
                        .collect()
                })
                .unwrap_or_default();
            let removed = |n: &str, v: &Option<String>| {
                gone.iter()
                    .any(|(gn, gv)| *gn == normalize(n) && (gv.is_none() || gv == v))
            };
            if let Some(a) = &edit.add {
                for p in Cmdline::parse(a).params {
                    if !removed(&p.name, &p.value)
                        && !got.params.iter().any(|q| q.name == p.name && q.value == p.value)
                    {
                        return fail(format!("argument {}={:?} missing", p.name, p.value));
                    }
                }
            }
            if let Some(p) = got.params.iter().find(|p| removed(&p.name, &p.value)) {
                return fail(format!("{}={:?} should be gone", p.name, p.value));
            }
            // Parameters the edit does not name are those of before, in order.
            let named = |n: &str| {
                let n = normalize(n);
                edit.set.iter().any(|(s, _)| normalize(s) == n)
                    || edit.unset.iter().any(|s| normalize(s) == n)
                    || edit
                        .add
                        .as_deref()
                        .is_some_and(|a| Cmdline::parse(a).params.iter().any(|p| normalize(&p.name) == n))
                    || gone.iter().any(|(g, _)| *g == n)
            };
            let others = |c: &Cmdline| -> Vec<(String, Option<String>)> {
                c.params
                    .iter()
                    .filter(|p| !named(&p.name))
                    .map(|p| (p.name.clone(), p.value.clone()))
                    .collect()
            };
            if others(&got) != others(&was) {
                return fail(format!(
                    "other parameters changed: {:?} -> {:?}",
                    others(&was),
                    others(&got)
                ));
            }
        }
        check_reading(sh, &out, t)?;
    }
    Ok(())
}

/// Whether `text` expands `$var` or `${var}` anywhere.
fn refers_to(text: &str, var: &str) -> bool {
    let b = text.as_bytes();
    text.match_indices('$').any(|(i, _)| {
        let rest = &text[i + 1..];
        let rest = rest.strip_prefix('{').unwrap_or(rest);
        rest.starts_with(var)
            && b.get(i + 1 + (text[i + 1..].len() - rest.len()) + var.len())
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
    })
}

fn check_file(sh: &[Shell], text: &str, t: &mut Tally) -> Result<(), String> {
    let Some(safe) = sanitized(text) else {
        t.not_inert += 1;
        return Ok(());
    };
    // nestcore's reading does not depend on the lines that were replaced.
    let (a, b) = (nestcore_view(text), nestcore_view(&safe));
    for k in 0..2 {
        if let (Ok(x), Ok(y)) = (&a[k], &b[k]) {
            if x != y {
                return Err(format!(
                    "{}: {x:?} in the file, {y:?} with other variables' commands replaced\n{text:?}",
                    VARS[k]
                ));
            }
        }
    }
    check_reading(sh, &safe, t)
        .and_then(|()| check_edits(sh, &safe, t))
        .map_err(|e| format!("{e}\nfile: {safe:?}"))
}

/// `text` with every line that is not inert but assigns another variable than the two (like
/// Debian's GRUB_DISTRIBUTOR=`lsb_release -i -s ...`) replaced by a plain assignment, when the
/// result is inert; `None` otherwise (the file is never run).
fn sanitized(text: &str) -> Option<String> {
    if inert(text) {
        return Some(text.to_string());
    }
    let mut out = Vec::new();
    for l in text.split('\n') {
        if inert(l) {
            out.push(l.to_string());
            continue;
        }
        let body = l.trim_start_matches([' ', '\t']);
        let body = body.strip_prefix("export ").unwrap_or(body);
        let (name, _) = body.split_once('=')?;
        let plain_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain_name || VARS.contains(&name) {
            return None;
        }
        out.push(format!("{name}=replaced"));
    }
    let s = out.join("\n");
    inert(&s).then_some(s)
}

/// Every /etc/default/grub and /etc/default/grub.d/*.cfg of the fixtures.
fn fixture_files() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![common::workspace().join("tests/fixtures")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let s = p.to_string_lossy();
            if s.ends_with("etc/default/grub") || (s.contains("etc/default/grub.d/") && s.ends_with(".cfg")) {
                out.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_inert_check_refuses_what_could_run() {
    for t in [
        "reboot\n",
        "GRUB_X=$(reboot)\n",
        "GRUB_X=\"`reboot`\"\n",
        "GRUB_X=1 kill -9 -1\n",
        "GRUB_X=a; kill -9 -1\n",
        "GRUB_X=a && b\n",
        "GRUB_X=a | b\n",
        "GRUB_X=a > f\n",
        "GRUB_X=(a)\n",
        "GRUB_X=\"${a:-$(reboot)}\"\n",
        "GRUB_X=$((1+1))\n",
        "export GRUB_X=1 a b=$(x)\n",
        ". /etc/x\n",
        "GRUB_X='open\n",
        "GRUB_X=\"open\n",
        "{ GRUB_X=1; }\n",
    ] {
        assert!(!inert(t), "{t:?}");
    }
    for t in [
        "",
        "# $(reboot) `x` | & > (\n",
        "GRUB_X=1\nexport GRUB_Y='a \"$(b)\" `c`'\n",
        "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX ${GRUB_X} quiet\"\n",
        "A=1 B=\"2 3\"; C=a\\ b#c # comment\n",
        "export GRUB_X\n",
        "GRUB_X=\"multi\nline\"\n",
    ] {
        assert!(inert(t), "{t:?}");
    }
}

#[test]
fn fixtures_read_and_edit_as_the_shell_sees_them() {
    let sh = shells();
    if sh.is_empty() {
        eprintln!("skipped: neither bash nor dash found");
        return;
    }
    let files = fixture_files();
    assert!(files.len() >= 4, "{files:?}");
    let mut t = Tally::default();
    let mut failures = Vec::new();
    for (p, text) in &files {
        if let Err(e) = check_file(&sh, text, &mut t) {
            failures.push(format!("{}: {e}", p.display()));
        }
    }
    assert_eq!(t.not_inert, 0, "a fixture is not inert: {t:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!("{} fixture files: {t:?}", files.len());
}

// ---------------------------------------------------------------------------------------------
// Generated hostile files

/// A hostile value for one of the two variables, as written after `NAME=`.
fn value() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        4 => "[a-z0-9_.,:/=+-]{1,8}",
        1 => Just("kvm-intel.nested=0".to_string()),
        1 => Just("kvm_intel.nested=1".to_string()),
        1 => Just("quiet".to_string()),
        1 => Just("splash".to_string()),
    ];
    let piece = prop_oneof![
        6 => word,
        2 => Just(" ".to_string()),
        1 => Just("  ".to_string()),
        1 => Just("\t".to_string()),
        1 => Just("\n".to_string()),
        1 => Just("'".to_string()),
        1 => Just("\\\"".to_string()),
        1 => Just("\\$".to_string()),
        1 => Just("\\\\".to_string()),
        1 => Just("#".to_string()),
        1 => Just("~".to_string()),
        1 => Just("$GRUB_CMDLINE_LINUX".to_string()),
        1 => Just("${GRUB_CMDLINE_LINUX_DEFAULT}".to_string()),
        1 => Just("$GRUB_X".to_string()),
        1 => Just("\u{e9}".to_string()),
        1 => Just("\r".to_string()),
    ];
    (0u8..6, proptest::collection::vec(piece, 0..8)).prop_map(|(q, ps)| {
        let inner: String = ps.concat();
        match q {
            // "..." (a `'` inside is fine; a bare `"` would end it, so pieces hold only `\"`)
            0 | 1 => format!("\"{inner}\""),
            // '...': no escapes at all; a `'` ends it, so drop them
            2 => format!("'{}'", inner.replace('\'', "").replace("\\\"", "\"")),
            // a bare word: white space and quotes escaped or dropped
            3 => inner
                .replace([' ', '\t', '\n', '\r', '\'', '~'], "")
                .replace('#', "a#"),
            // concatenations of quoted and bare parts
            4 => format!("'{}'\"{}\"x", inner.replace('\'', ""), inner.replace('"', "")),
            _ => format!("\"{inner}\"'#'\\ a"),
        }
    })
}

/// A hostile /etc/default/grub: assignments of both variables (several times, with `export`,
/// several per line, `;`), other variables, comments, blank lines, LF or CRLF.
fn grub_file() -> impl Strategy<Value = String> {
    let var = prop_oneof![
        3 => Just(grub2::CMDLINE_VAR.to_string()),
        2 => Just(grub2::CMDLINE_DEFAULT_VAR.to_string()),
        1 => Just("GRUB_X".to_string()),
        1 => Just("GRUB_TIMEOUT".to_string()),
    ];
    let line = prop_oneof![
        6 => (proptest::option::of(Just("export ")), var.clone(), value(), proptest::option::of("[ \t]{1,2}# [a-z'\"$()]{0,8}"))
            .prop_map(|(e, v, x, c)| format!("{}{v}={x}{}", e.unwrap_or(""), c.unwrap_or_default())),
        1 => (var.clone(), value(), var, value()).prop_map(|(a, x, b, y)| format!("{a}={x} {b}={y}")),
        1 => (value(), value()).prop_map(|(x, y)| format!("GRUB_X={x}; {}={y}", grub2::CMDLINE_VAR)),
        1 => "# [ -~]{0,30}",
        1 => Just(String::new()),
        1 => Just("GRUB_DEFAULT=0".to_string()),
    ];
    (
        proptest::collection::vec(line, 0..7),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(ls, crlf, last)| {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut s = ls.join(eol);
            if last {
                s.push_str(eol);
            }
            s
        })
}

#[test]
fn hostile_files_read_and_edit_as_the_shell_sees_them() {
    let sh = shells();
    if sh.is_empty() {
        eprintln!("skipped: neither bash nor dash found");
        return;
    }
    let cases: u32 = std::env::var("NESTCORE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut runner = TestRunner::new(Config {
        rng_seed: RngSeed::Fixed(0x6261_7368),
        ..Config::default()
    });
    let strategy = grub_file();
    let mut t = Tally::default();
    let mut failures = Vec::new();
    for _ in 0..cases {
        let text = strategy.new_tree(&mut runner).unwrap().current();
        if let Err(e) = check_file(&sh, &text, &mut t) {
            failures.push(e);
        }
    }
    eprintln!("{cases} generated files: {t:?}");
    assert!(
        t.not_inert * 4 < cases as usize,
        "most generated files should be inert: {t:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} generated files disagree with the shell; the first:\n{}",
        failures.len(),
        failures[..failures.len().min(3)].join("\n\n")
    );
}
