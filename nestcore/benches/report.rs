//! Benchmarks: the live report (no probe), recorded roots with 2 and 1024 CPUs, and each parser.
//!
//! `cargo bench -p nestcore --bench report`

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};

const BLOCK: &str = "processor\t: {N}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\nstepping\t: 7\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc vmx smx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch\nvmx flags\t: vnmi preemption_timer posted_intr invvpid ept_x_only ept_ad ept_1gb flexpriority apicv tsc_offset vtpr mtf vapic ept vpid unrestricted_guest vapic_reg vid ple shadow_vmcs pml\nbogomips\t: 5000.00\n\n";

/// A recorded Intel host with `cpus` CPUs in /proc/cpuinfo and /sys/devices/system/cpu.
fn make_root(dir: &Path, cpus: usize) {
    let w = |p: &str, c: &str| {
        let p = dir.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    };
    let mut info = String::new();
    for n in 0..cpus {
        info.push_str(&BLOCK.replace("{N}", &n.to_string()));
        w(&format!("sys/devices/system/cpu/cpu{n}/online"), "1\n");
    }
    w("proc/cpuinfo", &info);
    w(
        "proc/cmdline",
        "BOOT_IMAGE=/vmlinuz ro quiet kvm-intel.nested=1\n",
    );
    w("proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
    w("sys/module/kvm_intel/initstate", "live\n");
    w("sys/module/kvm_intel/refcnt", "0\n");
    std::fs::create_dir_all(dir.join("sys/module/kvm_intel/holders")).unwrap();
    for (p, v) in [
        ("nested", "Y"),
        ("ept", "Y"),
        ("vpid", "Y"),
        ("enable_shadow_vmcs", "Y"),
        ("enable_apicv", "Y"),
    ] {
        w(&format!("sys/module/kvm_intel/parameters/{p}"), &format!("{v}\n"));
    }
    w("sys/module/kvm/initstate", "live\n");
    w("sys/class/dmi/id/sys_vendor", "Dell Inc.\n");
    w("sys/class/dmi/id/product_name", "PowerEdge R640\n");
    w("dev/kvm", "");
    w(
        "cpuid.txt",
        "CPU 0:\n   0x00000000 0x00: eax=0x00000016 ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n   0x00000001 0x00: eax=0x00050657 ebx=0x00400800 ecx=0x7ffefbff edx=0xbfebfbff\n   0x80000001 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000121 edx=0x2c100800\n",
    );
}

fn bench(c: &mut Criterion) {
    let live = nestcore::Host::live();
    c.bench_function("check/live-no-probe", |b| {
        b.iter(|| black_box(nestcore::check(&live)))
    });

    for cpus in [2usize, 1024] {
        let d = tempfile::tempdir().unwrap();
        make_root(d.path(), cpus);
        let host = nestcore::Host::from_root(d.path())
            .unwrap()
            .with_cpuid_file(d.path().join("cpuid.txt"))
            .unwrap();
        c.bench_function(&format!("check/recorded-{cpus}-cpus"), |b| {
            b.iter(|| black_box(nestcore::check(&host)))
        });
    }

    // The same 2-CPU host with the 15 libvirt domains of tests/fixtures/guests/libvirt-intel:
    // check's guests.summary finding, and the whole `nestcore guests` scan (files only).
    let d = tempfile::tempdir().unwrap();
    make_root(d.path(), 2);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/guests/libvirt-intel/root/etc/libvirt/qemu");
    std::fs::create_dir_all(d.path().join("etc/libvirt/qemu")).unwrap();
    for e in std::fs::read_dir(&fixtures).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), d.path().join("etc/libvirt/qemu").join(e.file_name())).unwrap();
        }
    }
    let host = nestcore::Host::from_root(d.path())
        .unwrap()
        .with_cpuid_file(d.path().join("cpuid.txt"))
        .unwrap();
    c.bench_function("check/recorded-2-cpus-15-domains", |b| {
        b.iter(|| black_box(nestcore::check(&host)))
    });
    let report = nestcore::check(&host);
    c.bench_function("guests/scan-15-domains", |b| {
        b.iter(|| {
            black_box(nestcore::guests::scan(
                &host,
                &report,
                &nestcore::guests::Options::files(),
            ))
        })
    });

    let info = BLOCK.replace("{N}", "0").repeat(4);
    c.bench_function("parse/cpuinfo-block", |b| {
        b.iter(|| black_box(nestcore::cpu::CpuinfoBlock::parse(black_box(&info))))
    });
    // Why the first block is hand-parsed: procfs-core's CpuInfo parses every block.
    let all: String = (0..1024).map(|n| BLOCK.replace("{N}", &n.to_string())).collect();
    c.bench_function("parse/cpuinfo-1024-cpus-procfs-core", |b| {
        b.iter(|| {
            black_box(
                <procfs_core::CpuInfo as procfs_core::FromRead>::from_read(black_box(all.as_bytes()))
                    .unwrap(),
            )
        })
    });
    // /proc/self/cgroup of a docker container on a cgroup v1 host, through procfs-core.
    let cgroup: String = [
        "12:pids",
        "11:memory",
        "10:cpu,cpuacct",
        "9:blkio",
        "8:devices",
        "7:freezer",
        "6:net_cls,net_prio",
        "5:perf_event",
        "4:hugetlb",
        "3:cpuset",
        "2:rdma",
        "1:name=systemd",
    ]
    .iter()
    .map(|h| format!("{h}:/docker/3f4ae2b2c1d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1\n"))
    .collect::<String>()
        + "0::/system.slice/containerd.service\n";
    // What it replaced: substring tests on the whole text (kept here only to compare).
    c.bench_function("parse/cgroup-substring-scan", |b| {
        b.iter(|| {
            let t = black_box(cgroup.as_str());
            black_box(
                t.contains("/docker/")
                    || t.contains("/libpod")
                    || t.contains("/lxc/")
                    || t.contains("kubepods"),
            )
        })
    });
    c.bench_function("parse/cgroup-procfs-core", |b| {
        b.iter(|| {
            black_box(
                <procfs_core::ProcessCGroups as procfs_core::FromRead>::from_read(black_box(
                    cgroup.as_bytes(),
                ))
                .unwrap(),
            )
        })
    });
    let line = "BOOT_IMAGE=(hd0,gpt2)/vmlinuz-6.1.0 root=UUID=0000 ro quiet splash \"acpi_osi=Windows 2015\" kvm-intel.nested=1 intel_iommu=on -- init-arg";
    c.bench_function("parse/cmdline", |b| {
        b.iter(|| black_box(nestcore::cmdline::Cmdline::parse(black_box(line))))
    });
    let dump = "CPU 0:\n   0x00000000 0x00: eax=0x00000016 ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n"
        .to_string()
        + &(1..64)
            .map(|l| {
                format!("   0x{l:08x} 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000\n")
            })
            .collect::<String>();
    c.bench_function("parse/cpuid-r-64-leaves", |b| {
        b.iter(|| black_box(nestcore::host::CpuidDump::parse(black_box(&dump)).unwrap()))
    });
}

const GRUB_LEGACY: &str = "default=0\ntimeout=5\nhiddenmenu\ntitle CentOS 6 (2.6.32-754.el6.x86_64)\n\troot (hd0,0)\n\tkernel /vmlinuz-2.6.32-754.el6.x86_64 ro root=/dev/mapper/vg-root rd_NO_LUKS LANG=en_US.UTF-8 quiet\n\tinitrd /initramfs-2.6.32-754.el6.x86_64.img\ntitle CentOS 6 (2.6.32-696.el6.x86_64)\n\troot (hd0,0)\n\tkernel /vmlinuz-2.6.32-696.el6.x86_64 ro root=/dev/mapper/vg-root quiet\n\tinitrd /initramfs-2.6.32-696.el6.x86_64.img\n";
const DEFAULT_GRUB: &str = "# If you change this file, run 'update-grub'\nGRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"console=ttyS0,115200 intel_iommu=on\"\n";
const MODPROBE: &str = "# distro defaults\noptions kvm_intel nested=0 ept=1\noptions kvm-amd nested=1 \\\n  npt=1\nblacklist pcspkr\ninstall foo /bin/true\n";
const DOMAIN: &str = "<domain type='kvm'>\n  <name>guest</name>\n  <memory unit='KiB'>2097152</memory>\n  <vcpu>4</vcpu>\n  <os><type arch='x86_64' machine='q35'>hvm</type></os>\n  <cpu mode='custom' match='exact' check='partial'>\n    <model fallback='forbid'>Skylake-Server-v4</model>\n    <topology sockets='1' cores='2' threads='2'/>\n    <feature policy='disable' name='vmx'/>\n    <feature policy='require' name='pcid'/>\n  </cpu>\n  <devices><disk type='file' device='disk'><source file='/var/lib/libvirt/images/g.qcow2'/><target dev='vda' bus='virtio'/></disk></devices>\n</domain>\n";

fn parsers_and_generators(c: &mut Criterion) {
    use nestcore::bootloader::{grub2, grub_legacy, ArgsEdit, Selection};
    use nestcore::guest::{libvirt, nova, qemu};
    c.bench_function("parse/modprobe.d-file", |b| {
        b.iter(|| {
            black_box(nestcore::modprobe::parse_options(
                "/etc/modprobe.d/kvm.conf",
                black_box(MODPROBE),
            ))
        })
    });
    let edit = ArgsEdit {
        add: Some("kvm-intel.nested=1".into()),
        ..ArgsEdit::default()
    };
    let all = Selection::all_linux();
    c.bench_function("edit/grub-legacy-args", |b| {
        b.iter(|| black_box(grub_legacy::edit(black_box(GRUB_LEGACY), &all, &edit).unwrap()))
    });
    c.bench_function("edit/etc-default-grub-args", |b| {
        b.iter(|| black_box(grub2::edit(black_box(DEFAULT_GRUB), grub2::CMDLINE_VAR, &edit).unwrap()))
    });
    c.bench_function("parse/libvirt-domain-cpu", |b| {
        b.iter(|| black_box(libvirt::Cpu::from_xml(black_box(DOMAIN)).unwrap()))
    });
    let cpu = libvirt::Cpu::from_xml(DOMAIN).unwrap();
    c.bench_function("render/libvirt-cpu", |b| b.iter(|| black_box(cpu.to_xml())));
    c.bench_function("edit/libvirt-ensure-nested", |b| {
        b.iter(|| black_box(libvirt::ensure_nested(black_box(DOMAIN), nestcore::cpu::Vendor::Intel).unwrap()))
    });
    c.bench_function("parse/qemu-cpu", |b| {
        b.iter(|| black_box(qemu::CpuArg::parse(black_box("Skylake-Server-v4,+vmx,-hle,pcid=on")).unwrap()))
    });
    c.bench_function("render/qemu-cpu", |b| {
        b.iter(|| black_box(qemu::CpuArg::from_libvirt(&cpu).unwrap().to_string()))
    });
    c.bench_function("render/nova", |b| {
        b.iter(|| black_box(nova::NovaSettings::from_libvirt(&cpu).unwrap().to_ini()))
    });
    let facts = nestcore::guest::HostFacts::new(nestcore::cpu::Vendor::Amd);
    c.bench_function("generate/recommendation", |b| {
        b.iter(|| {
            black_box(nestcore::guest::recommend(
                &facts,
                &nestcore::guest::Needs::single_host(),
            ))
        })
    });
}

criterion_group!(benches, bench, parsers_and_generators);
criterion_main!(benches);
