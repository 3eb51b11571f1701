//! The committed include/nestcore.h must be what cbindgen generates from this crate now.
//! `NESTCORE_BLESS=1 cargo test -p nestcore-ffi --test header` rewrites it.

use std::path::PathBuf;

const BLESS: &str = "NESTCORE_BLESS=1 cargo test -p nestcore-ffi --test header";

fn generate() -> String {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen wrote UTF-8")
}

#[test]
fn committed_header_matches_cbindgen() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../include/nestcore.h");
    let fresh = generate();
    if std::env::var_os("NESTCORE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &fresh).unwrap();
        eprintln!("rewrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let first = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(fresh.lines().count()));
        let show = |s: &str| s.lines().nth(first).unwrap_or("<end of file>").to_owned();
        panic!(
            "include/nestcore.h is not what cbindgen generates from nestcore-ffi/src.\n\
             first difference at line {}:\n  committed: {}\n  generated: {}\n\
             Regenerate it (and review the diff) with:\n  {BLESS}",
            first + 1,
            show(&committed),
            show(&fresh),
        );
    }
}

#[test]
fn header_declares_the_abi_version_and_every_export() {
    let h = generate();
    assert!(h.contains("#define NESTCORE_ABI_VERSION 1"), "{h}");
    for c in [
        "#define NESTCORE_PERSIST_RUNTIME 1",
        "#define NESTCORE_PERSIST_MODPROBE 2",
        "#define NESTCORE_PERSIST_CMDLINE 4",
        "NESTCORE_VENDOR_AMD = 2",
        "NESTCORE_GUEST_FORMAT_NOVA = 2",
    ] {
        assert!(h.contains(c), "{c} missing from the header");
    }
    for f in [
        "nestcore_abi_version",
        "nestcore_version",
        "nestcore_last_error_message",
        "nestcore_status_name",
        "nestcore_string_free",
        "nestcore_host_new_live",
        "nestcore_host_new_root",
        "nestcore_host_free",
        "nestcore_check",
        "nestcore_report_free",
        "nestcore_report_to_json",
        "nestcore_report_to_text",
        "nestcore_report_finding_remedy",
        "nestcore_plan_nested",
        "nestcore_plan_free",
        "nestcore_plan_render",
        "nestcore_plan_apply",
        "nestcore_kargs_edit",
        "nestcore_cmdline_edit",
        "nestcore_guest_cpu",
        "nestcore_ensure_nested",
    ] {
        assert!(
            h.contains(&format!(" {f}(")) || h.contains(&format!("*{f}(")),
            "{f} missing from the header"
        );
    }
}
