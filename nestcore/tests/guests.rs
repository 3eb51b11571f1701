//! `nestcore guests` on recorded hosts with guest definitions (tests/fixtures/guests/NAME: `host`
//! names the host fixture the definitions sit on, `root/` holds the definitions, `expect.json`
//! each guest's verdict decided by hand from libvirt's, QEMU's, nova's and Proxmox's documented
//! behaviour). Also: the JSON against schema/guests.schema.json (and broken JSON against it),
//! fixes applied to copies (twice: the second changes nothing), every domain nestcore writes
//! defined by a real libvirt (`virsh -c test:///default define --validate`, skipped with the
//! reason where virsh is missing), hostile definitions, libvirt's API through a recorded virsh,
//! and check's summary finding.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};

use std::process::Command as Proc;

use nestcore::guests::{self, GuestsReport, Options};
use nestcore::plan::{Action, CommandOutput, DeferringExecutor, RecordingExecutor};
use nestcore::Host;
use serde_json::Value;

use common::guests_dir;

/// A writable root: the host fixture named in `host`, with the guest definitions laid over it.
struct Fixture {
    dir: tempfile::TempDir,
    cpuid: PathBuf,
    expect: Value,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let (dir, cpuid) = common::guest_fixture_root(name);
        let text = std::fs::read_to_string(guests_dir().join(name).join("expect.json")).unwrap();
        Fixture {
            dir,
            cpuid,
            expect: serde_json::from_str(&text).unwrap(),
        }
    }

    fn host(&self) -> Host {
        Host::from_root(self.dir.path())
            .unwrap()
            .with_cpuid_file(&self.cpuid)
            .unwrap()
    }

    fn scan(&self) -> GuestsReport {
        let host = self.host();
        let report = nestcore::check(&host);
        guests::scan(&host, &report, &Options::files())
    }
}

fn all_fixtures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(guests_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(common::workspace().join("schema/guests.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

#[test]
fn every_fixture_meets_its_hand_decided_verdicts() {
    let mut failures = Vec::new();
    for name in all_fixtures() {
        let fx = Fixture::new(&name);
        let r = fx.scan();
        let want = fx.expect["guests"].as_array().unwrap();
        if r.guests.len() != want.len() {
            failures.push(format!(
                "{name}: {} guests found, {} expected: {:?}",
                r.guests.len(),
                want.len(),
                r.guests.iter().map(|g| &g.name).collect::<Vec<_>>()
            ));
        }
        for w in want {
            let source = w["source"].as_str().unwrap_or("libvirt");
            let gname = w["name"].as_str().unwrap();
            let Some(g) = r
                .guests
                .iter()
                .find(|g| g.source.as_str() == source && g.name == gname)
            else {
                failures.push(format!("{name}: no {source} guest {gname}"));
                continue;
            };
            let got = serde_json::to_value(g).unwrap();
            let mut line = Vec::new();
            if got["gets_extension"] != w["gets_extension"] {
                line.push(format!(
                    "gets_extension {} (want {})",
                    got["gets_extension"], w["gets_extension"]
                ));
            }
            if got["reason"]["code"] != w["code"] {
                line.push(format!("code {} (want {})", got["reason"]["code"], w["code"]));
            }
            if g.fix.is_some() != w["fix"].as_bool().unwrap() {
                line.push(format!(
                    "fix {:?} (want {})",
                    g.fix.as_ref().map(|p| &p.summary),
                    w["fix"]
                ));
            }
            let blocked = g.fix.as_ref().is_some_and(|p| !p.blockers.is_empty());
            if blocked != w["blocked"].as_bool().unwrap_or(false) {
                line.push(format!("blockers {:?}", g.fix.as_ref().map(|p| &p.blockers)));
            }
            if let Some(run) = w.get("running") {
                if got["running"] != *run {
                    line.push(format!("running {} (want {run})", got["running"]));
                }
            }
            if let Some(scope) = w.get("scope") {
                if got["scope"] != *scope {
                    line.push(format!("scope {} (want {scope})", got["scope"]));
                }
            }
            if !line.is_empty() {
                failures.push(format!(
                    "{name}/{gname}: {}\n    {}",
                    line.join(", "),
                    g.reason.message
                ));
            }
        }
        if r.exit_code() != fx.expect["exit_code"].as_i64().unwrap() as i32 {
            failures.push(format!(
                "{name}: exit code {} (want {})",
                r.exit_code(),
                fx.expect["exit_code"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn json_follows_the_schema_and_the_schema_rejects_broken_json() {
    let schema = schema();
    for name in all_fixtures() {
        let r = Fixture::new(&name).scan();
        let v: Value = serde_json::from_str(&r.to_json()).unwrap();
        let errs = common::violations(&schema, &v);
        assert!(errs.is_empty(), "{name}: {errs:#?}");
    }
    let v: Value = serde_json::from_str(&Fixture::new("libvirt-intel").scan().to_json()).unwrap();
    type Breakage = Box<dyn Fn(&mut Value)>;
    let breakages: Vec<(&str, Breakage)> = vec![
        (
            "source outside the vocabulary",
            Box::new(|v| v["guests"][0]["source"] = "xen".into()),
        ),
        (
            "gets_extension as a string",
            Box::new(|v| v["guests"][0]["gets_extension"] = "yes".into()),
        ),
        (
            "an unknown reason code",
            Box::new(|v| v["guests"][0]["reason"]["code"] = "nope".into()),
        ),
        (
            "a reason without a message",
            Box::new(|v| {
                v["guests"][0]["reason"]
                    .as_object_mut()
                    .unwrap()
                    .remove("message");
            }),
        ),
        (
            "a guest without fix",
            Box::new(|v| {
                v["guests"][0].as_object_mut().unwrap().remove("fix");
            }),
        ),
        (
            "a fix that is not a plan",
            Box::new(|v| v["guests"][0]["fix"] = serde_json::json!(["edit"])),
        ),
        (
            "a write action without its diff",
            Box::new(|v| {
                let g = v["guests"]
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .find(|g| g["name"] == "nocpu")
                    .unwrap();
                g["fix"]["actions"][0].as_object_mut().unwrap().remove("diff");
            }),
        ),
        (
            "a command with a path for a program",
            Box::new(|v| {
                let g = v["guests"]
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .find(|g| g["name"] == "nocpu")
                    .unwrap();
                g["fix"]["actions"][1]["command"]["program"] = "/bin/sh".into();
            }),
        ),
        (
            "nested_for_guests unknown word",
            Box::new(|v| v["host"]["nested_for_guests"] = "maybe".into()),
        ),
        (
            "no host",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("host");
            }),
        ),
        (
            "a negative count",
            Box::new(|v| v["summary"]["total"] = (-1).into()),
        ),
        (
            "a scope of another shape",
            Box::new(|v| v["guests"][0]["scope"] = "user".into()),
        ),
    ];
    for (what, breaks) in breakages {
        let mut bad = v.clone();
        breaks(&mut bad);
        assert!(
            !common::violations(&schema, &bad).is_empty(),
            "the schema accepted {what}"
        );
    }
}

/// The lines of `old` that are not in `new`, and of `new` not in `old` (a multiset difference).
fn changed_lines<'a>(old: &'a str, new: &'a str) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut removed: Vec<&str> = old.lines().collect();
    let mut added = Vec::new();
    for l in new.lines() {
        match removed.iter().position(|r| *r == l) {
            Some(i) => {
                removed.remove(i);
            }
            None => added.push(l),
        }
    }
    (removed, added)
}

#[test]
fn fixes_apply_to_copies_keep_everything_else_and_are_idempotent() {
    for name in all_fixtures() {
        let fx = Fixture::new(&name);
        let host = fx.host();
        let before = fx.scan();
        for g in &before.guests {
            for a in g.fix.iter().flat_map(|p| &p.actions) {
                if let Action::WriteFile { path, old, new, .. } = a {
                    let (removed, added) = changed_lines(old.as_deref().unwrap(), new);
                    // Byte-preserving: only CPU, feature, model, domain type and nova keys change.
                    let allowed = |l: &str| {
                        let t = l.trim_start();
                        [
                            "<cpu",
                            "</cpu>",
                            "<feature",
                            "<model",
                            "<domain ",
                            "<topology",
                            "cpu_",
                            "virt_type",
                        ]
                        .iter()
                        .any(|p| t.starts_with(p))
                    };
                    assert!(
                        removed.iter().chain(&added).all(|l| allowed(l)),
                        "{name}/{}: {path} changed more than its CPU: -{removed:?} +{added:?}",
                        g.name
                    );
                }
            }
        }
        let applied = guests::apply(&before, &host, &DeferringExecutor);
        assert!(applied.iter().all(|a| a.error.is_none()), "{name}: {applied:#?}");
        let after = guests::scan(&host, &nestcore::check(&host), &Options::files());
        for g in &before.guests {
            let fixed = g.fix.as_ref().is_some_and(|p| {
                p.blockers.is_empty() && p.actions.iter().any(|a| matches!(a, Action::WriteFile { .. }))
            });
            let now = after
                .guests
                .iter()
                .find(|a| a.source == g.source && a.name == g.name)
                .unwrap();
            if fixed && before.host.nested_for_guests == nestcore::report::NestedForGuests::Available {
                assert_eq!(
                    now.gets_extension,
                    Some(true),
                    "{name}/{}: after the fix: {:?}",
                    g.name,
                    now.reason
                );
                assert!(
                    now.fix.is_none(),
                    "{name}/{}: still a fix after applying it",
                    g.name
                );
            }
            if fixed {
                // The guest's own configuration is fine now: only the host (if anything) stands
                // in the way.
                assert!(
                    now.reason.code.starts_with("host_") || now.gets_extension == Some(true),
                    "{name}/{}: {:?}",
                    g.name,
                    now.reason
                );
            }
        }
        // Deferred programs are the ones the plans name, in order.
        let deferred: Vec<String> = applied
            .iter()
            .flat_map(|a| a.report.as_ref().unwrap().deferred.iter().map(|c| c.to_string()))
            .collect();
        if name == "proxmox" {
            assert!(
                deferred.contains(&"qm set 100 --cpu host".to_string()),
                "{deferred:?}"
            );
            assert!(
                deferred.contains(&"qm set 105 --cpu host --kvm 1".to_string()),
                "{deferred:?}"
            );
            assert!(
                deferred.contains(&"qm set 109 --cpu host,hidden=1,flags=+aes".to_string()),
                "{deferred:?}"
            );
            assert!(
                !deferred.iter().any(|c| c.contains(" 107 ")),
                "a blocked fix ran: {deferred:?}"
            );
        }
        if name == "libvirt-intel" {
            assert!(
                deferred.contains(&"virsh -c qemu:///system define /etc/libvirt/qemu/nocpu.xml".to_string())
            );
            assert!(!deferred.iter().any(|c| c.contains("session1")), "{deferred:?}");
        }
        if name == "nova-custom" {
            assert_eq!(deferred, vec!["systemctl restart nova-compute"]);
        }
        if name == "nova-disabled" {
            assert_eq!(deferred, vec!["systemctl restart openstack-nova-compute"]);
        }
        // Twice: nothing left to write.
        let again = guests::apply(&after, &host, &DeferringExecutor);
        assert!(
            again
                .iter()
                .all(|a| a.report.as_ref().unwrap().written.is_empty()),
            "{name}: the second apply wrote {again:#?}"
        );
    }
}

#[test]
fn edits_are_exactly_the_documented_forms() {
    let fx = Fixture::new("libvirt-intel");
    let r = fx.scan();
    let new_of = |n: &str| {
        let g = r.guests.iter().find(|g| g.name == n).unwrap();
        match &g.fix.as_ref().unwrap().actions[0] {
            Action::WriteFile { new, .. } => new.clone(),
            a => panic!("{a:?}"),
        }
    };
    assert!(new_of("custom-novmx").contains(
        "    <model fallback='allow'>Skylake-Client-IBRS</model>\n    <feature policy='require' name='vmx'/>\n  </cpu>"
    ));
    assert!(new_of("nocpu").contains(
        "  <vcpu placement='static'>2</vcpu>\n  <cpu mode='host-model'>\n    <feature policy='require' name='vmx'/>\n  </cpu>\n"
    ));
    assert!(new_of("tcg").starts_with("<!--") && new_of("tcg").contains("<domain type='kvm'>"));
    assert!(
        new_of("disabled").contains("<cpu mode='host-passthrough' check='none'>\n  </cpu>")
            || !new_of("disabled").contains("name='vmx'")
    );
    let from_amd = new_of("from-amd");
    assert!(
        from_amd.contains("<feature policy='disable' name='svm'/>")
            && from_amd.contains("<feature policy='require' name='vmx'/>")
    );
    // The comment libvirt writes at the top stays.
    assert!(new_of("custom-novmx").starts_with("<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE."));

    let nova = Fixture::new("nova-none").scan();
    let g = &nova.guests[0];
    let Action::WriteFile { new, diff, .. } = &g.fix.as_ref().unwrap().actions[0] else {
        panic!()
    };
    assert!(
        new.ends_with("[libvirt]\nvirt_type = kvm\ncpu_mode = host-model\ncpu_model_extra_flags = vmx\n"),
        "{new}"
    );
    assert!(new.contains("password = secret"), "the rest of nova.conf stays");
    assert!(
        diff.contains("-cpu_mode = none\n+cpu_mode = host-model\n"),
        "{diff}"
    );
    let amd = Fixture::new("nova-amd").scan();
    let g = amd
        .guests
        .iter()
        .find(|g| g.source == guests::Source::Nova)
        .unwrap();
    let Action::WriteFile { path, new, .. } = &g.fix.as_ref().unwrap().actions[0] else {
        panic!()
    };
    assert_eq!(path, "/etc/nova/nova.conf");
    assert!(
        new.contains("cpu_mode = host-model\ncpu_model_extra_flags = svm\n"),
        "{new}"
    );
    let inst = amd
        .guests
        .iter()
        .find(|g| g.source == guests::Source::Libvirt)
        .unwrap();
    assert_eq!(inst.managed_by.as_deref(), Some("nova"));
    assert_eq!(inst.id.as_deref(), Some("2f1d9a5e-3c4b-4e6f-8a7b-9c0d1e2f3a4b"));
    assert!(inst.fix.as_ref().unwrap().blockers[0]
        .to_string()
        .contains("openstack server reboot --hard 2f1d9a5e"));
}

fn virsh_validates(file: &Path) -> Result<(), String> {
    let out = Proc::new("virsh")
        .args(["-q", "-c", "test:///default", "define", "--validate"])
        .arg(file)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn real_libvirt_defines_every_fixture_domain_and_every_edit() {
    if Proc::new("virsh").arg("--version").output().is_err() {
        println!("skipped: virsh not found (apt-get install libvirt-clients)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0;
    for name in all_fixtures() {
        let fx = Fixture::new(&name);
        let r = fx.scan();
        for g in r.guests.iter().filter(|g| g.source == guests::Source::Libvirt) {
            let Some(path) = &g.path else { continue };
            let original = fx.dir.path().join(path.trim_start_matches('/'));
            let intended_broken = matches!(g.reason.code, "malformed" | "invalid");
            let res = virsh_validates(&original);
            assert_eq!(
                res.is_err(),
                intended_broken,
                "{name}/{}: libvirt on the fixture: {res:?}",
                g.name
            );
            for a in g.fix.iter().flat_map(|p| &p.actions) {
                if let Action::WriteFile { new, .. } = a {
                    n += 1;
                    let f = tmp.path().join(format!("{n}.xml"));
                    std::fs::write(&f, new).unwrap();
                    if let Err(e) = virsh_validates(&f) {
                        panic!("{name}/{}: libvirt rejects nestcore's edit: {e}\n{new}", g.name);
                    }
                }
            }
        }
    }
    assert!(n >= 10, "only {n} edits defined");
    println!("libvirt defined {n} edited domains");
}

#[test]
fn hostile_definitions_are_reported_one_by_one() {
    let fx = Fixture::new("libvirt-intel");
    let q = fx.dir.path().join("etc/libvirt/qemu");
    std::fs::write(
        q.join("huge.xml"),
        "<domain type='kvm'>".to_string() + &" ".repeat(300 * 1024) + "</domain>",
    )
    .unwrap();
    std::os::unix::fs::symlink("../../../../../../../../etc/shadow", q.join("escape.xml")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/x.xml", q.join("dangling.xml")).unwrap();
    std::fs::create_dir(q.join("folder.xml")).unwrap();
    std::fs::write(q.join("binary.xml"), [0xff_u8, 0xfe, 0x00, 0x3c]).unwrap();
    std::fs::write(q.join("billion.xml"), "<!DOCTYPE d [<!ENTITY a 'aaaaaaaa'><!ENTITY b '&a;&a;&a;&a;'>]><domain type='kvm'><name>&b;</name></domain>").unwrap();
    std::fs::write(
        q.join("twocpus.xml"),
        "<domain type='kvm'><name>twocpus</name><cpu mode='host-passthrough'/><cpu/></domain>",
    )
    .unwrap();
    std::fs::write(q.join("notype.xml"), "<domain><name>notype</name></domain>").unwrap();
    // Well-formed once read lossily (review B8): a fix would have written U+FFFD back, or never
    // applied (the bytes differ from what was read).
    std::fs::write(
        q.join("latin1.xml"),
        b"<domain type='kvm'><name>latin1</name><description>caf\xe9</description><os><type arch='x86_64'>hvm</type></os></domain>",
    )
    .unwrap();
    let c = std::ffi::CString::new(q.join("fifo.xml").to_str().unwrap()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // A nova.conf.d that is a file, and a Proxmox folder that is a symlink out of the root.
    std::fs::create_dir_all(fx.dir.path().join("etc/nova")).unwrap();
    std::fs::write(
        fx.dir.path().join("etc/nova/nova.conf"),
        "[libvirt]\ncpu_mode = host-passthrough\n",
    )
    .unwrap();
    std::fs::write(fx.dir.path().join("etc/nova/nova.conf.d"), "not a folder").unwrap();
    std::fs::create_dir_all(fx.dir.path().join("etc/pve")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../../../../../../etc",
        fx.dir.path().join("etc/pve/qemu-server"),
    )
    .unwrap();

    let r = fx.scan();
    let code = |n: &str| {
        r.guests
            .iter()
            .find(|g| g.name == n)
            .unwrap_or_else(|| {
                panic!(
                    "no guest {n}: {:?}",
                    r.guests.iter().map(|g| &g.name).collect::<Vec<_>>()
                )
            })
            .reason
            .code
    };
    assert_eq!(code("huge"), "too_large");
    assert_eq!(code("escape"), "symlink_outside_root");
    assert_eq!(code("dangling"), "unreadable");
    assert_eq!(code("fifo"), "not_a_file");
    assert_eq!(code("binary"), "malformed");
    assert_eq!(code("billion"), "malformed");
    assert_eq!(code("twocpus"), "invalid");
    assert_eq!(code("notype"), "invalid");
    let latin1 = r.guests.iter().find(|g| g.name == "latin1").unwrap();
    assert_eq!(latin1.reason.code, "malformed", "{:?}", latin1.reason);
    assert!(
        latin1.reason.message.contains("not valid UTF-8 at byte"),
        "{:?}",
        latin1.reason
    );
    assert!(
        r.guests.iter().all(|g| g.name != "folder"),
        "a folder named .xml is not a definition"
    );
    let nova = r
        .guests
        .iter()
        .find(|g| g.source == guests::Source::Nova)
        .unwrap();
    assert_eq!(nova.reason.code, "not_a_file");
    let pve = r
        .guests
        .iter()
        .find(|g| g.source == guests::Source::Proxmox)
        .unwrap();
    assert_eq!(pve.reason.code, "symlink_outside_root");
    // ... and the good ones are still judged as before.
    assert_eq!(code("passthrough"), "cpu_passthrough");
    assert_eq!(code("nocpu"), "default_model");
    for g in &r.guests {
        assert!(
            !g.reason.message.chars().any(|c| c.is_control()),
            "{}: {:?}",
            g.name,
            g.reason.message
        );
    }
    assert!(common::violations(&schema(), &serde_json::from_str(&r.to_json()).unwrap()).is_empty());
}

fn ok(stdout: &str) -> nestcore::Result<CommandOutput> {
    Ok(CommandOutput {
        status: 0,
        stdout: stdout.into(),
        stderr: String::new(),
    })
}

#[test]
fn libvirt_api_through_a_recorded_virsh() {
    let fx = Fixture::new("libvirt-amd");
    let dir = fx.dir.path().to_path_buf();
    let epyc = std::fs::read_to_string(dir.join("etc/libvirt/qemu/epyc.xml")).unwrap();
    let hostmodel = std::fs::read_to_string(dir.join("etc/libvirt/qemu/hostmodel.xml")).unwrap();
    let caps = "<domainCapabilities><cpu><mode name='host-passthrough' supported='yes'/>\
                <mode name='host-model' supported='yes'><model fallback='forbid'>EPYC-Rome</model>\
                <feature policy='require' name='svm'/></mode></cpu></domainCapabilities>";
    let exec = RecordingExecutor::new().on("virsh", move |_h, cmd| {
        let a: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
        match &a[2..] {
            ["list", "--all", "--name"] => ok("epyc\nhostmodel\ntransient\n\n"),
            ["list", "--name"] => ok("epyc\n"),
            ["domcapabilities", "--virttype", "kvm"] => ok(caps),
            // libvirt's form of the file: no header comment, same <cpu>.
            ["dumpxml", "--inactive", "--domain", "epyc"] => ok(epyc.split("-->\n\n").nth(1).unwrap()),
            // Differs from the file: somebody edited the file without virsh define.
            ["dumpxml", "--inactive", "--domain", "hostmodel"] => {
                ok(&hostmodel.replace("<cpu mode='host-model' check='partial'>", "<cpu mode='host-model' check='full'>"))
            }
            ["dumpxml", "--inactive", "--domain", "transient"] => {
                ok("<domain type='kvm'><name>transient</name><cpu mode='custom'><model>qemu64</model></cpu></domain>")
            }
            _ => Ok(CommandOutput {
                status: 1,
                stdout: String::new(),
                stderr: format!("error: unexpected {a:?}"),
            }),
        }
    });
    let host = fx.host();
    let report = nestcore::check(&host);
    let r = guests::scan(&host, &report, &Options::with_virsh(&exec));
    assert_eq!(r.sources[0].read, "virsh");
    let g = |n: &str| r.guests.iter().find(|g| g.name == n).unwrap();
    assert_eq!(g("epyc").read_from, guests::ReadFrom::Virsh);
    assert_eq!(g("epyc").running, Some(true));
    assert_eq!(g("epyc").reason.code, "model_lacks");
    assert!(g("epyc")
        .caveats
        .iter()
        .any(|c| c.contains("virsh shutdown epyc")));
    let fix = g("epyc").fix.as_ref().unwrap();
    assert!(fix.blockers.is_empty(), "{:?}", fix.blockers);
    // domcapabilities says this host-model requires svm: believed over the vendor rule.
    assert_eq!(g("hostmodel").reason.code, "host_model_includes");
    assert_eq!(g("hostmodel").gets_extension, Some(true));
    // A domain only libvirt knows: judged, not editable.
    assert_eq!(g("transient").path, None);
    let b = &g("transient").fix.as_ref().unwrap().blockers[0];
    assert_eq!(b.code, "guests.no_definition_file");
    assert!(b.reason.contains("no definition file"));
    // Files libvirt does not list are still judged from the file.
    assert_eq!(g("nocpu").read_from, guests::ReadFrom::File);
    assert!(exec
        .calls()
        .iter()
        .all(|c| c.program == "virsh" && c.args[..2] == ["-c", "qemu:///system"]));

    // A file that differs from what libvirt holds: the fix is blocked, not guessed.
    let exec2 = RecordingExecutor::new().on("virsh", move |_h, cmd| match cmd.args[2].as_str() {
        "list" => ok("epyc\n"),
        _ => ok(
            "<domain type='kvm'><name>epyc</name><cpu mode='custom'><model>Opteron_G5</model></cpu></domain>",
        ),
    });
    let r = guests::scan(&host, &report, &Options::with_virsh(&exec2));
    let e = r.guests.iter().find(|g| g.name == "epyc").unwrap();
    let b = &e.fix.as_ref().unwrap().blockers[0];
    assert_eq!(b.code, "guests.definition_differs");
    assert!(b.reason.contains("differs from the definition libvirt holds"));

    // Only the line breaks of the <cpu> differ: the same definition, the fix goes ahead.
    let reflowed = std::fs::read_to_string(dir.join("etc/libvirt/qemu/epyc.xml"))
        .unwrap()
        .replace("check='partial'>\n    <model", "check='partial'><model");
    assert!(reflowed.contains("check='partial'><model"));
    let exec3 = RecordingExecutor::new().on("virsh", move |_h, cmd| match cmd.args[2].as_str() {
        "list" => ok("epyc\n"),
        _ => ok(&reflowed),
    });
    let r = guests::scan(&host, &report, &Options::with_virsh(&exec3));
    let e = r.guests.iter().find(|g| g.name == "epyc").unwrap();
    assert!(e.fix.as_ref().unwrap().blockers.is_empty(), "{:?}", e.fix);

    // virsh that cannot connect: the files, and the reason said.
    let down = RecordingExecutor::new().on("virsh", |_h, _c| {
        Ok(CommandOutput {
            status: 1,
            stdout: String::new(),
            stderr: "error: failed to connect to the hypervisor\n".into(),
        })
    });
    let r = guests::scan(&host, &report, &Options::with_virsh(&down));
    assert_eq!(r.sources[0].read, "files");
    assert!(
        r.sources[0].detail.contains("failed to connect"),
        "{}",
        r.sources[0].detail
    );
    assert_eq!(r.guests.len(), 5);
}

#[test]
fn check_gains_one_summary_finding_only_where_guests_are_defined() {
    let fx = Fixture::new("libvirt-intel");
    let report = nestcore::check(&fx.host());
    let found: Vec<_> = report
        .verdict
        .findings
        .iter()
        .filter(|f| f.code == guests::SUMMARY_CODE)
        .collect();
    assert_eq!(found.len(), 1);
    // Session definitions are not counted by check (it reads the system's only): 14 here.
    let r = fx.scan();
    let system: Vec<_> = r
        .guests
        .iter()
        .filter(|g| g.scope.as_deref() != Some("session:root"))
        .collect();
    let yes = system.iter().filter(|g| g.gets_extension == Some(true)).count();
    assert_eq!(
        found[0].message,
        format!(
            "{yes} of {} defined guests will get vmx (2 cannot be told)",
            system.len()
        )
    );
    assert!(found[0].remedy.as_ref().unwrap().contains("nestcore guests"));
    assert_eq!(found[0].level, nestcore::report::Level::Warn);
    // The report stays valid, and its exit code is the host's, not the guests'.
    assert!(common::violations(&common::schema(), &report.to_value()).is_empty());
    assert_eq!(report.exit_code(), 0);
    // Recorded hosts without guests: no such finding.
    for e in std::fs::read_dir(common::hosts_dir()).unwrap() {
        let h = common::fixture_host(&e.unwrap().path());
        assert!(nestcore::check(&h)
            .verdict
            .finding(guests::SUMMARY_CODE)
            .is_none());
    }
    let all_good = Fixture::new("nova-passthrough");
    let f = nestcore::check(&all_good.host())
        .verdict
        .finding(guests::SUMMARY_CODE)
        .cloned()
        .unwrap();
    assert_eq!(
        (f.message.as_str(), f.level),
        (
            "1 of 1 defined guests will get vmx",
            nestcore::report::Level::Pass
        )
    );
    assert_eq!(f.remedy, None);
}

/// Review B7: a TCG domain of another architecture was "fixed" into a KVM guest with vmx
/// ("domain type qemu became kvm; added <feature name='vmx'/>") on an x86 host. KVM runs only
/// guests of the host's architecture, and VT-x/AMD-V are x86's: it is reported, never fixed.
#[test]
fn a_guest_of_another_architecture_is_never_fixed() {
    let fx = Fixture::new("libvirt-intel");
    let q = fx.dir.path().join("etc/libvirt/qemu");
    for (name, arch) in [("arm", "aarch64"), ("power", "ppc64le"), ("zed", "s390x")] {
        std::fs::write(
            q.join(format!("{name}.xml")),
            format!("<domain type='qemu'><name>{name}</name><os><type arch='{arch}' machine='virt'>hvm</type></os><cpu mode='custom'><model>cortex-a57</model></cpu></domain>"),
        )
        .unwrap();
    }
    // An i686 guest is x86: still fixable.
    std::fs::write(
        q.join("old.xml"),
        "<domain type='qemu'><name>old</name><os><type arch='i686'>hvm</type></os></domain>",
    )
    .unwrap();
    let r = fx.scan();
    for name in ["arm", "power", "zed"] {
        let g = r.guests.iter().find(|g| g.name == name).unwrap();
        assert_eq!(g.reason.code, "foreign_arch", "{name}: {:?}", g.reason);
        assert_eq!(g.gets_extension, Some(false), "{name}");
        assert!(g.fix.is_none(), "{name}: {:?}", g.fix);
    }
    let old = r.guests.iter().find(|g| g.name == "old").unwrap();
    assert!(old.fix.is_some(), "{:?}", old.reason);
}
