//! Shared helpers for the guest integration tests: where libvirt's corpus and schemas are, a
//! proptest strategy for valid guest `<cpu>` models, and hand-written domain fixtures.
#![allow(dead_code)] // Each test file uses a different part.

use std::path::PathBuf;

use nestcore::guest::libvirt::{
    AccessType, Associativity, Cache, CacheMode, CachePolicy, Check, Cpu, Fallback, Feature, Interconnect,
    Interconnects, Match, MaxPhysAddr, MemAccess, Mode, Model, Numa, NumaCache, NumaCell, OnOff,
    PhysAddrMode, Policy, Sibling, Sized, Topology, YesNo,
};
use proptest::prelude::*;
use proptest::sample::select;

/// `../shared` next to the workspace root.
pub(crate) fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// libvirt's checkout in the shared corpus, or why it is not there.
pub(crate) fn libvirt_corpus() -> Result<PathBuf, String> {
    let dir = shared_dir().join("corpora/libvirt");
    if dir.join("tests").is_dir() {
        Ok(dir)
    } else {
        Err(format!("libvirt corpus not found at {}", dir.display()))
    }
}

/// The RelaxNG schema folder: $NESTCORE_LIBVIRT_SCHEMAS or the corpus's src/conf/schemas.
pub(crate) fn schema_dir() -> Result<PathBuf, String> {
    let dir = match std::env::var_os("NESTCORE_LIBVIRT_SCHEMAS") {
        Some(d) => PathBuf::from(d),
        None => shared_dir().join("corpora/libvirt/src/conf/schemas"),
    };
    if dir.join("domain.rng").is_file() {
        Ok(dir)
    } else {
        Err(format!("no domain.rng in {}", dir.display()))
    }
}

/// A minimal domain around a `<cpu>` (or nothing), with `vcpus` vCPUs.
pub(crate) fn wrap_in_domain(cpu_xml: &str, vcpus: u32) -> String {
    format!(
        "<domain type='kvm'>\n  <name>nestcore-test</name>\n  <memory unit='KiB'>1048576</memory>\n  \
<vcpu placement='static'>{vcpus}</vcpu>\n  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n  </os>\n  \
{cpu_xml}\n  <devices/>\n</domain>\n"
    )
}

/// Hand-written domains covering the shapes ensure_nested/disable_nested meet.
pub(crate) fn domain_fixtures() -> Vec<(&'static str, String)> {
    let head = "<?xml version='1.0' encoding='UTF-8'?>\n<!-- a comment before the root -->\n<domain type=\"kvm\" id='7'>\n  <name>fixture</name>\n  <memory unit='KiB'>2097152</memory>\n  <vcpu placement=\"static\" current='2'>4</vcpu>\n  <os firmware='efi'>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    <boot dev='hd'/>\n  </os>\n  <features><acpi/><apic/></features>\n";
    let tail = "  <clock offset='utc'>\n    <timer name='rtc' tickpolicy='catchup'/>\n  </clock>\n  <devices>\n    <!-- disks -->\n    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='/var/lib/libvirt/images/a&amp;b.qcow2'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n  </devices>\n</domain>\n";
    let cpus = [
        ("no-cpu", String::new()),
        ("host-passthrough", "  <cpu mode='host-passthrough' check='none' migratable='on'/>\n".to_string()),
        ("host-passthrough-disabled", "  <cpu mode='host-passthrough'>\n    <feature policy='disable' name='vmx'/>\n    <feature policy='disable' name='svm'/>\n  </cpu>\n".to_string()),
        ("maximum", "  <cpu mode='maximum' migratable='off'/>\n".to_string()),
        ("host-model", "  <cpu mode='host-model' check='partial'/>\n".to_string()),
        ("host-model-fallback", "  <cpu mode=\"host-model\">\n    <model fallback=\"allow\"/>\n    <topology sockets='1' dies='1' cores='2' threads='2'/>\n  </cpu>\n".to_string()),
        ("custom-forbid", "  <cpu match='exact' mode='custom'>\n    <model fallback='forbid'>Skylake-Client-v4</model>\n    <vendor>Intel</vendor>\n    <feature name='vmx' policy='forbid'/>\n    <feature name='pcid' policy='require'/>\n  </cpu>\n".to_string()),
        ("custom-amd", "  <cpu mode='custom' match='minimum' check='full'>\n    <model>EPYC-Rome</model>\n    <!-- svm below -->\n    <feature policy='optional' name='svm'/>\n  </cpu>\n".to_string()),
        ("numa-only", "  <cpu>\n    <topology sockets='2' cores='2' threads='1'/>\n    <numa>\n      <cell id='0' cpus='0-1' memory='1048576' unit='KiB'/>\n      <cell id='1' cpus='2-3' memory='1048576' unit='KiB'/>\n    </numa>\n  </cpu>\n".to_string()),
        ("empty-cpu", "  <cpu></cpu>\n".to_string()),
    ];
    cpus.into_iter()
        .map(|(name, cpu)| (name, format!("{head}{cpu}{tail}")))
        .collect()
}

fn text() -> impl Strategy<Value = String> {
    // Printable text, including everything XML must escape; never empty.
    "[a-zA-Z0-9 _.'\"<>&;\\]\\[/=-]{0,16}[a-zA-Z0-9<>&'\"\\]]"
}

fn feature_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{1,12}"
}

fn unit() -> impl Strategy<Value = String> {
    select(vec!["KiB", "MiB", "G", "b", "bytes", "TB", "k"]).prop_map(str::to_string)
}

/// NUMA cell `i` of a guest: the id is its position (or left out), its vCPUs are its own
/// (cells never share one), distances name existing cells (10 to itself, 11..=255 to others),
/// cache levels are distinct 1..=3 and sizes fit libvirt's 64-bit byte counts: what libvirt's
/// own parser accepts (numa_conf.c), checked in tests/differential_libvirt.rs.
fn cell(i: u32, n: u32) -> impl Strategy<Value = NumaCell> {
    (
        (
            any::<bool>(),
            select(vec![
                format!("{}", 2 * i),
                format!("{}-{}", 2 * i, 2 * i + 1),
                format!("{}-{},^{}", 2 * i, 2 * i + 1, 2 * i),
            ]),
        ),
        (1u64..1 << 20, proptest::option::of(unit())),
        proptest::option::of(select(MemAccess::ALL.to_vec())),
        proptest::option::of(select(YesNo::ALL.to_vec())),
        proptest::option::of(proptest::collection::btree_map(0..n, 11u32..=255, 1..3)),
        proptest::collection::btree_map(
            1u32..=3,
            (
                select(Associativity::ALL.to_vec()),
                select(CachePolicy::ALL.to_vec()),
                (0u32..1 << 20, unit()),
                (0u32..256, unit()),
            ),
            0..2,
        ),
    )
        .prop_map(
            move |((with_id, cpus), (memory, unit), mem_access, discard, distances, caches)| NumaCell {
                id: with_id.then_some(i),
                cpus: Some(cpus),
                memory,
                unit,
                mem_access,
                discard,
                distances: distances.map(|d| {
                    d.into_iter()
                        .map(|(id, value)| Sibling {
                            id,
                            value: if id == i { 10 } else { value },
                        })
                        .collect()
                }),
                caches: caches
                    .into_iter()
                    .map(|(level, (associativity, policy, (sv, su), (lv, lu)))| NumaCache {
                        level,
                        associativity,
                        policy,
                        size: Sized { value: sv, unit: su },
                        line: Sized { value: lv, unit: lu },
                    })
                    .collect(),
            },
        )
}

fn interconnect(
    bandwidth: bool,
    initiator: u32,
    target: u32,
    cache: Option<u32>,
) -> impl Strategy<Value = Interconnect> {
    (select(AccessType::ALL.to_vec()), 0u64..100000, unit()).prop_map(move |(kind, value, unit)| {
        Interconnect {
            initiator,
            target,
            cache,
            kind,
            value,
            unit: bandwidth.then_some(unit),
        }
    })
}

fn numa() -> impl Strategy<Value = Numa> {
    (1u32..3)
        .prop_flat_map(|n| {
            let cells: Vec<_> = (0..n).map(|i| cell(i, n)).collect();
            (cells, 0..n, 0..n, any::<bool>(), any::<(bool, bool)>())
        })
        .prop_flat_map(|(cells, initiator, target, with_cache, (lat, bw))| {
            // One latency and one bandwidth at most, of the same link: never twice, never both
            // directions (libvirt refuses both).
            let cache = with_cache
                .then(|| cells[target as usize].caches.first().map(|c| c.level))
                .flatten();
            (
                Just(cells),
                proptest::option::of(interconnect(false, initiator, target, cache)),
                proptest::option::of(interconnect(true, initiator, target, cache)),
                Just((lat, bw)),
            )
        })
        .prop_map(|(cells, latency, bandwidth, (lat, bw))| Numa {
            cells,
            interconnects: (lat || bw).then(|| Interconnects {
                latencies: latency.into_iter().collect(),
                bandwidths: bandwidth.into_iter().collect(),
            }),
        })
}

/// Valid guest `<cpu>` models (what libvirt's schema and nestcore's checks accept), with hostile
/// text in the model and vendor names.
pub(crate) fn arb_guest_cpu() -> impl Strategy<Value = Cpu> {
    let attrs = (
        proptest::option::of(select(Mode::ALL.to_vec())),
        proptest::option::of(select(Match::ALL.to_vec())),
        proptest::option::of(select(Check::ALL.to_vec())),
        proptest::option::of(select(OnOff::ALL.to_vec())),
        proptest::option::of(select(OnOff::ALL.to_vec())),
    );
    let model = proptest::option::of((
        proptest::option::of(text()),
        proptest::option::of(select(Fallback::ALL.to_vec())),
        proptest::option::of("[A-Za-z ]{12}"),
    ));
    let body = (
        proptest::option::of(text()),
        proptest::option::of((
            1u32..5,
            proptest::option::of(1u32..3),
            proptest::option::of(1u32..3),
            1u32..9,
            1u32..3,
        )),
        proptest::collection::btree_map(feature_name(), select(Policy::ALL.to_vec()), 0..6),
        proptest::option::of((proptest::option::of(1u8..=3), select(CacheMode::ALL.to_vec()))),
        proptest::option::of((
            select(PhysAddrMode::ALL.to_vec()),
            proptest::option::of(32u32..57),
            proptest::option::of(32u32..57),
        )),
        proptest::option::of(numa()),
    );
    (attrs, model, body).prop_map(
        |(
            (mode, matching, check, deprecated, migratable),
            model,
            (vendor, topo, features, cache, maxphys, numa),
        )| {
            let mut cpu = Cpu::new();
            cpu.mode = mode;
            let host_model = mode == Some(Mode::HostModel);
            cpu.matching = if host_model { None } else { matching };
            cpu.check = check;
            cpu.deprecated_features = deprecated;
            cpu.migratable = if matches!(mode, Some(Mode::HostPassthrough | Mode::Maximum)) {
                migratable
            } else {
                None
            };
            cpu.model = model.map(|(name, fallback, vendor_id)| Model {
                name: if host_model { None } else { name },
                fallback,
                vendor_id,
            });
            // libvirt: "CPU vendor specified without CPU model".
            cpu.vendor = vendor;
            cpu.topology = topo.map(|(sockets, dies, clusters, cores, threads)| Topology {
                sockets,
                dies,
                clusters,
                cores,
                threads,
            });
            cpu.features = features
                .into_iter()
                .map(|(name, p)| Feature {
                    policy: Some(p),
                    name,
                })
                .collect();
            let custom = matches!(mode, None | Some(Mode::Custom));
            if custom
                && !cpu.features.is_empty()
                && cpu.model.as_ref().and_then(|m| m.name.as_ref()).is_none()
            {
                let m = cpu.model.get_or_insert_with(Model::default);
                m.name = Some("qemu64".into());
            }
            if cpu.model.as_ref().and_then(|m| m.name.as_ref()).is_none() {
                cpu.vendor = None;
                // libvirt: "check attribute specified for CPU with no model".
                if custom {
                    cpu.check = None;
                }
            }
            cpu.cache = cache.map(|(level, mode)| Cache { level, mode });
            cpu.maxphysaddr = maxphys.map(|(mode, bits, limit)| MaxPhysAddr { mode, bits, limit });
            // Enough vCPUs for the NUMA cells' ids (libvirt: "CPU IDs in <numa> exceed the <vcpu>
            // count"); a domain without topology gets 4 (wrap_in_domain).
            if let (Some(t), Some(n)) = (cpu.topology.as_mut(), numa.as_ref()) {
                t.cores = t.cores.max(2 * n.cells.len() as u32);
            }
            cpu.numa = numa;
            cpu
        },
    )
}
