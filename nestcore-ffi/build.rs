//! Gives libnestcore.so its soname, so that programs record `libnestcore.so.0` and keep working
//! across compatible releases (the ABI version is `NESTCORE_ABI_VERSION`; a soname bump goes with
//! an incompatible change of it).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" || os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnestcore.so.0");
    }
}
