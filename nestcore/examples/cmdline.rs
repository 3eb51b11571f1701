//! nestcore's reading of a kernel command line, as JSON, for the lab's differential test against
//! the kernel (tests/lab/scenarios/09-kernel-cmdline): the parameters the kernel parses, what
//! follows a bare `--` (init's arguments) parsed again by the same rules, and the value kvm_amd
//! gets. It reads `/proc/cmdline` under ROOT through [`nestcore::Host`], the way `nestcore
//! check` does.
//!
//! `cargo run --release -p nestcore --example cmdline -- ROOT`

#![allow(missing_docs)]

use nestcore::cmdline::{Cmdline, Param};
use serde_json::{json, Value};

fn params(ps: &[Param]) -> Value {
    ps.iter()
        .map(|p| json!({"name": p.name, "value": p.value}))
        .collect()
}

fn main() {
    let root = std::env::args().nth(1).unwrap_or_else(|| "/".into());
    let host = match nestcore::Host::from_root(&root) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("cmdline: {root}: {e}");
            std::process::exit(2);
        }
    };
    let text = match host.read("/proc/cmdline") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cmdline: {root}/proc/cmdline: {e}");
            std::process::exit(2);
        }
    };
    // As nestcore::check reads it (lib.rs read_cmdline).
    let c = Cmdline::parse(text.trim_end_matches(['\n', '\0']));
    // What follows `--`, parsed by the same rules; a second `--` ends that part too.
    let init = c.init_args.as_deref().map(Cmdline::parse);
    let out = json!({
        "params": params(&c.params),
        "init_args": c.init_args,
        "init_params": init.as_ref().map(|i| params(&i.params)),
        "init_rest": init.as_ref().and_then(|i| i.init_args.clone()),
        // As kmod applies it to the loadable module: "(absent)", "(bare)" or the value.
        "kvm_amd.nested": match c.module_param("kvm_amd.nested", false) {
            None => "(absent)".to_string(),
            Some(None) => "(bare)".to_string(),
            Some(Some(v)) => v,
        },
    });
    println!("{out}");
}
