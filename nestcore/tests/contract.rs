//! The JSON contract: the schema accepts real reports and rejects broken ones, and the fixed
//! vocabularies of the issue are the schema's.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use serde_json::json;

fn sample() -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    nestcore::check(&nestcore::Host::from_root(dir.path()).unwrap()).to_value()
}

#[test]
fn empty_root_report_is_valid_and_unknown() {
    let v = sample();
    assert!(common::violations(&common::schema(), &v).is_empty());
    assert_eq!(v["cpu"]["extension"], "unknown");
    assert_eq!(v["cpu"]["vendor_id"], serde_json::Value::Null);
    assert_eq!(v["cpu"]["hypervisor_bit"], serde_json::Value::Null);
    assert_eq!(v["virtualization"]["hypervisor"], "none");
    assert_eq!(v["kvm"]["nested"], "unknown");
    assert_eq!(v["verdict"]["nested_for_guests"], "unknown");
}

#[test]
fn schema_rejects_what_the_contract_forbids() {
    let schema = common::schema();
    type Breakage = Box<dyn Fn(&mut serde_json::Value)>;
    let breakages: Vec<(&str, Breakage)> = vec![
        (
            "extension outside the vocabulary",
            Box::new(|v| v["cpu"]["extension"] = json!("vt-x")),
        ),
        (
            "hypervisor id outside systemd's",
            Box::new(|v| v["virtualization"]["hypervisor"] = json!("KVM")),
        ),
        (
            "container id outside systemd's",
            Box::new(|v| v["virtualization"]["container"] = json!("k8s")),
        ),
        (
            "nested outside the vocabulary",
            Box::new(|v| v["kvm"]["nested"] = json!("Y")),
        ),
        (
            "kvm_usable as a string",
            Box::new(|v| v["verdict"]["kvm_usable"] = json!("yes")),
        ),
        (
            "nested_for_guests unknown word",
            Box::new(|v| v["verdict"]["nested_for_guests"] = json!("maybe")),
        ),
        (
            "a finding without a remedy field",
            Box::new(|v| {
                v["verdict"]["findings"] =
                    json!([{"code": "x.y", "level": "fail", "check": "c", "message": "m", "evidence": []}])
            }),
        ),
        (
            "a finding with a bad level",
            Box::new(
                |v| v["verdict"]["findings"] = json!([{"code": "x.y", "level": "error", "check": "c", "message": "m", "evidence": [], "remedy": null}]),
            ),
        ),
        (
            "missing cpu.vendor_id",
            Box::new(|v| {
                v["cpu"].as_object_mut().unwrap().remove("vendor_id");
            }),
        ),
        ("schema version 2", Box::new(|v| v["schema_version"] = json!(2))),
    ];
    for (what, breaks) in breakages {
        let mut v = sample();
        breaks(&mut v);
        assert!(
            !common::violations(&schema, &v).is_empty(),
            "schema accepted: {what}"
        );
    }
}
