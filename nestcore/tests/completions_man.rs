//! `nestcore completions SHELL` and `nestcore man DIR`, generated from the clap definitions at run
//! time: the bash script loads in a bare `bash --norc` and completes every subcommand and option
//! (read off `nestcore::cli::command()`, so subcommands added later are checked too); zsh and
//! fish scripts parse in their shells (skipped with the reason when the shell is missing); every
//! man page renders with groff and man without a warning and names every option.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::Command;

fn nestcore(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nestcore"))
        .args(args)
        .output()
        .unwrap()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The words bash offers for `line` (completing its last word; a trailing space starts a new one).
fn bash_complete(script: &Path, line: &str) -> Vec<String> {
    let program = r#"
source "$1" || exit 9
spec=$(complete -p nestcore) || exit 8
fn=${spec#*-F }; fn=${fn%% *}
read -r -a COMP_WORDS <<<"$2"
[ "${2: -1}" = " " ] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE=$2; COMP_POINT=${#COMP_LINE}
prev=""; [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD-1]}
"$fn" nestcore "${COMP_WORDS[COMP_CWORD]}" "$prev"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", program, "bash"])
        .arg(script)
        .arg(line)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{line:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{line:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn bash_completes_every_subcommand_and_option() {
    if !have("bash") {
        eprintln!("skipped: bash is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("nestcore.bash");
    let out = nestcore(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    std::fs::write(&script, &out.stdout).unwrap();

    let cmd = nestcore::cli::command();
    let top = bash_complete(&script, "nestcore ");
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    assert!(subs.len() >= 8, "{subs:?}");
    for sub in &subs {
        let name = sub.get_name();
        assert!(
            top.iter().any(|w| w == name),
            "`nestcore <TAB>` lacks {name}: {top:?}"
        );
        // A unique prefix completes to the subcommand alone.
        let prefix = &name[..name.len().min(4)];
        if subs.iter().filter(|s| s.get_name().starts_with(prefix)).count() == 1 {
            assert_eq!(
                bash_complete(&script, &format!("nestcore {prefix}")),
                [name],
                "{prefix}"
            );
        }
        // Every long option of the subcommand is offered after `--`.
        let opts = bash_complete(&script, &format!("nestcore {name} --"));
        for arg in sub.get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(
                    opts.contains(&format!("--{long}")),
                    "nestcore {name} --<TAB> lacks --{long}: {opts:?}"
                );
            }
        }
    }
    assert_eq!(bash_complete(&script, "nestcore check --for"), ["--format"]);
    assert_eq!(
        bash_complete(&script, "nestcore check --format "),
        ["text", "json", "prometheus"]
    );
    let shells: Vec<String> = bash_complete(&script, "nestcore completions ")
        .into_iter()
        .filter(|w| !w.starts_with('-'))
        .collect();
    assert_eq!(shells, ["bash", "zsh", "fish"]);
}

#[test]
fn zsh_and_fish_scripts_parse() {
    for (shell, check) in [("zsh", &["-n"][..]), ("fish", &["--no-execute"][..])] {
        let out = nestcore(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        for sub in nestcore::cli::command().get_subcommands() {
            assert!(
                text.contains(sub.get_name()),
                "{shell} script lacks {}",
                sub.get_name()
            );
        }
        if !have(shell) {
            eprintln!("skipped: {shell} is not installed, the script was not parsed by it");
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("script");
        std::fs::write(&file, &text).unwrap();
        let out = Command::new(shell).args(check).arg(&file).output().unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{shell} {check:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let out = nestcore(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn man_pages_for_every_subcommand_render_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man1");
    let out = nestcore(&["man", man.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cmd = nestcore::cli::command();
    let mut want = vec![("nestcore.1".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        want.push((format!("nestcore-{}.1", sub.get_name()), sub.clone()));
    }
    let mut files: Vec<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut names: Vec<String> = want.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    assert_eq!(files, names);
    // The command prints what it wrote, one path a line.
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().lines().count(),
        names.len()
    );

    let groff = have("groff");
    let man_cmd = have("man");
    if !groff {
        eprintln!("skipped: groff is not installed (apt-get install groff-base): pages not rendered");
    }
    for (file, sub) in &want {
        let path = man.join(file);
        let roff = std::fs::read_to_string(&path).unwrap();
        let title = file.trim_end_matches(".1");
        assert!(
            roff.contains(&format!(".TH {title} 1")),
            "{file}: {}",
            &roff[..roff.len().min(200)]
        );
        if !groff {
            continue;
        }
        // -ww: every warning; -z: no output, diagnostics only.
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "groff on {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-P-c", "-P-b", "-P-u"])
            .arg(&path)
            .output()
            .unwrap();
        let page = String::from_utf8(out.stdout).unwrap();
        for arg in sub.get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(page.contains(&format!("--{long}")), "{file} lacks --{long}");
            }
        }
        if man_cmd {
            let out = Command::new("man")
                .args(["--warnings", "-l"])
                .arg(&path)
                .env("MANWIDTH", "80")
                .env("MAN_KEEP_FORMATTING", "0")
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stderr.is_empty() && !out.stdout.is_empty(),
                "man -l {file}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // The top page lists each subcommand's page.
    let top = std::fs::read_to_string(man.join("nestcore.1")).unwrap();
    for (file, _) in &want[1..] {
        let title = file.trim_end_matches(".1");
        assert!(
            top.contains(&title.replace('-', "\\-")) || top.contains(title),
            "nestcore.1 lacks {title}"
        );
    }
}

#[test]
fn man_into_an_unwritable_place_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = nestcore(&["man", file.join("man1").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a-file"));
}
