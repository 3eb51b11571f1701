//! The live machine: checks invariants only, never one machine's answer. Skips with a printed
//! reason where it cannot run. Reads only; the probe creates a throw-away VM in this process.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use nestcore::cpu::Extension;
use nestcore::kvm::DeviceState;
use nestcore::report::Level;

fn first_block() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    Some(text.split("\n\n").next().unwrap_or_default().to_string())
}

fn field<'a>(block: &'a str, key: &str) -> Option<&'a str> {
    block.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

#[test]
fn live_report_agrees_with_proc_cpuinfo() {
    let Some(block) = first_block() else {
        println!("skipped: /proc/cpuinfo is not readable here");
        return;
    };
    let report = nestcore::check(&nestcore::Host::live());
    assert!(report.host.live);
    let flags: Vec<&str> = field(&block, "flags")
        .map(|f| f.split_whitespace().collect())
        .unwrap_or_default();
    if field(&block, "flags").is_some() {
        assert_eq!(report.cpu.flags_vmx, Some(flags.contains(&"vmx")));
        assert_eq!(report.cpu.flags_svm, Some(flags.contains(&"svm")));
        assert_eq!(report.cpu.flags_hypervisor, Some(flags.contains(&"hypervisor")));
        // Linux never shows vmx/svm the CPU lacks: flags imply the extension.
        if flags.contains(&"vmx") {
            assert_eq!(report.cpu.extension, Extension::Vmx);
        }
        if flags.contains(&"svm") {
            assert_eq!(report.cpu.extension, Extension::Svm);
        }
    }
    if let (Some(v), Some(r)) = (field(&block, "vendor_id"), report.cpu.vendor_id.as_deref()) {
        assert_eq!(v, r.trim(), "CPUID and /proc/cpuinfo disagree on the vendor");
    }
    if let (Some(f), Some(r)) = (field(&block, "cpu family"), report.cpu.family) {
        assert_eq!(f.parse::<u32>().unwrap(), r);
    }
    if let (Some(m), Some(r)) = (field(&block, "model"), report.cpu.model) {
        assert_eq!(m.parse::<u32>().unwrap(), r);
    }
    // The kernel sets the hypervisor flag from CPUID.1:ECX[31] (or for Xen PV).
    if report.cpu.hypervisor_bit == Some(true) {
        assert!(flags.contains(&"hypervisor"));
    }
    if report.virtualization.hypervisor == "none" {
        assert!(report.virtualization.signatures.is_empty());
    }
    println!(
        "live: ext={} hyp={} container={} backend={:?} device={:?} kvm_usable={:?} nested={}",
        report.cpu.extension.as_str(),
        report.virtualization.hypervisor,
        report.virtualization.container,
        report.kvm.backend,
        report.kvm.device.state,
        report.verdict.kvm_usable,
        report.verdict.nested_for_guests.as_str()
    );
}

#[test]
fn live_device_state_matches_a_real_open() {
    let open = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm");
    let report = nestcore::check(&nestcore::Host::live());
    match open {
        Ok(_) => {
            assert!(
                matches!(
                    report.kvm.device.state,
                    DeviceState::Usable | DeviceState::WrongApiVersion
                ),
                "{:?}",
                report.kvm.device
            );
            assert_eq!(
                report.verdict.kvm_usable == Some(true),
                report.kvm.device.state == DeviceState::Usable
            );
        }
        Err(e) => {
            println!("/dev/kvm does not open here ({e}): checking that the report says why");
            assert_ne!(report.kvm.device.state, DeviceState::Usable);
            assert_eq!(report.verdict.kvm_usable, Some(false));
            let code = match e.raw_os_error() {
                Some(libc::ENOENT) => "kvm.device_missing",
                Some(libc::EACCES) => "kvm.permission_denied",
                Some(libc::EPERM) => "kvm.device_cgroup",
                _ => return,
            };
            assert!(report.verdict.finding(code).is_some(), "missing {code}");
        }
    }
    // KVM offering VMX/SVM to guests implies the vendor module's nested is on, or unknown.
    if report.kvm.nested_effective == Some(true) {
        assert_ne!(report.kvm.nested, nestcore::kvm::Tri::Disabled);
    }
}

#[test]
fn live_probe_agrees_with_the_device() {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        println!("skipped: /dev/kvm does not open here, so there is nothing to probe");
        return;
    }
    let report = nestcore::check_with(&nestcore::Host::live(), nestcore::CheckOptions::with_probe(true));
    let probe = report.kvm.probe.as_ref().expect("a usable /dev/kvm is probed");
    println!(
        "probe: ok={} stage={} {} µs error={:?}",
        probe.ok, probe.stage, probe.duration_us, probe.error
    );
    if probe.ok {
        assert_eq!(probe.stage, "done");
        assert_eq!(probe.instructions, 3);
        assert!(report.verdict.finding("kvm.probe_ok").is_some());
    } else {
        let f = report
            .verdict
            .finding("kvm.probe_failed")
            .expect("a failed probe is a finding");
        assert_eq!(f.level, Level::Fail);
        assert_eq!(report.verdict.kvm_usable, Some(false));
    }
}

#[test]
fn live_report_validates_against_the_schema() {
    let report = nestcore::check(&nestcore::Host::live());
    let errors = common::violations(&common::schema(), &report.to_value());
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn cpuid_cost_is_bounded() {
    // At most 6 CPUID executions for one report on a host with one hypervisor signature (in a
    // guest every CPUID traps to the hypervisor).
    let host = nestcore::Host::live();
    let report = nestcore::check(&host);
    let nestcore::host::CpuidSource::Native(n) = host.cpuid_source() else {
        println!("skipped: no CPUID instruction here");
        return;
    };
    let sigs = report.virtualization.signatures.len();
    println!(
        "CPUID executions: {} with {sigs} hypervisor signature(s)",
        n.executions()
    );
    assert!(n.executions() <= 5 + sigs.max(1), "{} executions", n.executions());
}

/// Issue 13: on this machine too, the check is the judge of whether nesting can work: every
/// finding that says it cannot is a blocker of the plan to turn it on (planning only reads).
#[test]
fn live_plan_is_blocked_exactly_where_the_check_says_nesting_cannot_work() {
    if !std::path::Path::new("/proc/cpuinfo").exists() {
        println!("skipped: no /proc here");
        return;
    }
    let host = nestcore::Host::live();
    let report = nestcore::check(&host);
    let persist = nestcore::nested::Persist::from_names(&["modprobe"]).unwrap();
    let plan = match nestcore::nested::plan(&host, nestcore::nested::Want::On, persist) {
        Ok(p) => p,
        Err(e) => {
            println!("skipped: this machine cannot be planned for: {e}");
            return;
        }
    };
    let codes: Vec<&str> = plan.blockers.iter().map(|b| b.code.as_str()).collect();
    // Stated in the check's own answer, not in the planner's list of codes: where the check says
    // no host setting can give guests the extension, the plan is blocked; where it says they
    // have it, nothing about the CPU or KVM blocks; and every CPU or KVM blocker is a finding of
    // the check, with the same code (the plan never invents a reason the check does not give).
    let answer = report.verdict.nested_for_guests;
    if answer == nestcore::report::NestedForGuests::Unsupported {
        assert!(!codes.is_empty(), "unsupported, yet the plan is not blocked");
    }
    for c in codes
        .iter()
        .filter(|c| c.starts_with("cpu.") || c.starts_with("kvm."))
    {
        assert_ne!(
            answer,
            nestcore::report::NestedForGuests::Available,
            "{c} blocks, yet nesting is available"
        );
        assert!(
            report.verdict.finding(c).is_some(),
            "blocker {c} is no finding of the check"
        );
    }
    println!("check: {answer:?}; plan blockers: {codes:?}");
}
