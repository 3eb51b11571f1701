//! Where the time of one live report goes: each stage timed separately, median of many runs.
//!
//! `cargo run --release -p nestcore --example breakdown`

#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(f());
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    median(v)
}

fn main() {
    #[cfg(target_os = "linux")]
    kvm_parts();
    let runs = 2000;
    let host = nestcore::Host::live();
    let (info, _) = nestcore::cpu::CpuinfoBlock::read(&host);
    let cpu = nestcore::cpu::detect(&host, &info);
    let rows: Vec<(&str, f64)> = vec![
        (
            "read /proc/cpuinfo (first block)",
            time(runs, || nestcore::cpu::CpuinfoBlock::read(&host)),
        ),
        ("CPUID leaf 0x0 (one execution)", time(runs, || host.cpuid(0, 0))),
        (
            "cpu::detect (CPUID + flags)",
            time(runs, || nestcore::cpu::detect(&host, &info)),
        ),
        ("read /proc/cmdline", time(runs, || host.read("/proc/cmdline"))),
        (
            "read a missing sysfs file",
            time(runs, || host.read("/sys/class/dmi/id/sys_vendor")),
        ),
        (
            "hypervisor::detect",
            time(runs, || {
                nestcore::hypervisor::detect(&host, &info, cpu.hypervisor_bit, None)
            }),
        ),
        (
            "kvm::detect (modules + /dev/kvm ioctls)",
            time(runs, || {
                nestcore::kvm::detect(&host, &cpu, nestcore::kvm::KvmOptions::default())
            }),
        ),
        ("whole check (no probe)", time(runs, || nestcore::check(&host))),
    ];
    println!("{:44} {:>10}", "stage", "median µs");
    for (name, us) in rows {
        println!("{name:44} {us:>10.1}");
    }
}

#[cfg(target_os = "linux")]
#[allow(dead_code)]
fn kvm_parts() {
    let runs = 500;
    let open = time(runs, kvm_ioctls::Kvm::new);
    let kvm = kvm_ioctls::Kvm::new().unwrap();
    let api = time(runs, || kvm.get_api_version());
    let ext = time(runs, || kvm.check_extension_raw(157));
    let cpuid = time(runs, || {
        kvm.get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
    });
    println!(
        "open /dev/kvm {open:.1}  api {api:.1}  check_extension {ext:.1}  get_supported_cpuid {cpuid:.1}"
    );
}
