//! grubby's own `--args` / `--remove-args` test cases (GRUB legacy and extlinux), run against
//! `nestcore::bootloader::kargs_cli`: the output must equal grubby's expected file byte for byte.
//!
//! The corpus lives outside the repository (../shared/corpora/grubby, or NESTCORE_GRUBBY_CORPUS);
//! without it the test prints why and passes.

use std::path::PathBuf;

fn corpus() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NESTCORE_GRUBBY_CORPUS") {
        return Some(PathBuf::from(p));
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared/corpora/grubby"))
        .find(|p| p.join("cases.json").is_file())
        .or_else(|| {
            Some(PathBuf::from("/work/shared/corpora/grubby")).filter(|p| p.join("cases.json").is_file())
        })
}

const OPTS: [&str; 4] = ["--update-kernel", "--args", "--remove-args", "--boot-filesystem"];

#[test]
fn grubby_args_cases() {
    let Some(base) = corpus() else {
        println!("skipped: grubby corpus not found (set NESTCORE_GRUBBY_CORPUS)");
        return;
    };
    let text = std::fs::read_to_string(base.join("cases.json")).expect("cases.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("cases.json is JSON");
    let cases = json["cases"].as_array().expect("cases array");
    let (mut total, mut good) = (0, 0);
    let mut bad = Vec::new();
    for c in cases {
        let loader = c["bootloader"].as_str().unwrap_or("");
        if !matches!(loader, "grub" | "extlinux") || c["kind"].as_str() != Some("config-output") {
            continue;
        }
        let args: Vec<&str> = c["args"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        if !args
            .iter()
            .any(|a| a.starts_with("--args") || a.starts_with("--remove-args"))
        {
            continue;
        }
        if args
            .iter()
            .filter(|a| a.starts_with("--"))
            .any(|a| !OPTS.contains(&a.split('=').next().unwrap_or("")))
        {
            continue;
        }
        total += 1;
        // grubby accepts --opt=value and --opt value.
        let (mut uk, mut add, mut rm, mut bfs) = (None, None, None, None);
        let mut j = 0;
        while j < args.len() {
            let (opt, val) = match args[j].split_once('=') {
                Some((o, v)) => (o, v.to_string()),
                None if j + 1 < args.len() && !args[j + 1].starts_with("--") => {
                    j += 1;
                    (args[j - 1], args[j].to_string())
                }
                None => (args[j], String::new()),
            };
            match opt {
                "--update-kernel" => uk = Some(val),
                "--args" => add = Some(val),
                "--remove-args" => rm = Some(val),
                "--boot-filesystem" => bfs = Some(val),
                _ => {}
            }
            j += 1;
        }
        let input =
            std::fs::read_to_string(base.join(c["input_config"].as_str().unwrap_or(""))).expect("input");
        let want =
            std::fs::read_to_string(base.join(c["expected"].as_str().unwrap_or(""))).expect("expected");
        let name = format!("{} {} -> {}", c["input_config"], args.join(" "), c["expected"]);
        match nestcore::bootloader::kargs_cli(
            &input,
            loader,
            uk.as_deref().unwrap_or("ALL"),
            add.as_deref(),
            rm.as_deref(),
            bfs.as_deref(),
        ) {
            Ok(out) if out == want => good += 1,
            Ok(out) => bad.push(format!(
                "{name}: output differs:\n--- got\n{out}\n--- want\n{want}"
            )),
            Err(e) => bad.push(format!("{name}: error {e}")),
        }
    }
    println!("grubby corpus: {good}/{total} cases byte-identical");
    assert!(total > 0, "no cases selected from {}", base.display());
    assert!(bad.is_empty(), "{} failing:\n{}", bad.len(), bad.join("\n\n"));
}
