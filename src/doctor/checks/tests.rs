//! The checks with numbers: each finding from facts made for it, and a
//! healthy host with none that needs attention.

use super::*;
use crate::doctor::gather::{ServiceFacts, TunerConfig, TunerFacts};
use crate::kernel::ksm::AdvisorMode;
use crate::kernel::meminfo::MemInfo;
use crate::kernel::proc::KsmStat;
use crate::kernel::smaps::SmapsSummary;

const GIB_KIB: u64 = 1024 * 1024;

/// A 64 GiB host, ksmd running, one guest merging well, plenty of room.
fn healthy() -> Facts {
    Facts {
        root_user: true,
        ksm_present: true,
        ksm: Some(KsmState {
            run: Some(Run::Merge),
            pages_to_scan: Some(1250),
            sleep_millisecs: Some(10),
            merge_across_nodes: Some(1),
            max_page_sharing: Some(256),
            smart_scan: Some(1),
            advisor_mode: Some(AdvisorMode::None),
            pages_shared: Some(100_000),
            pages_sharing: Some(500_000),
            pages_unshared: Some(200_000),
            pages_volatile: Some(10_000),
            general_profit: Some(1_900_000_000),
            ksm_zero_pages: Some(0),
            stable_node_chains: Some(0),
            stable_node_dups: Some(0),
            ..Default::default()
        }),
        ksm_writable: Some(true),
        ksm_dir: "/sys/kernel/mm/ksm".into(),
        mem: Some(MemInfo {
            mem_total: 64 * GIB_KIB,
            mem_free: 20 * GIB_KIB,
            mem_available: Some(30 * GIB_KIB),
            buffers: 0,
            cached: 5 * GIB_KIB,
            swap_total: 0,
            swap_free: 0,
        }),
        page_size: 4096,
        numa_nodes: Some(1),
        tuner_config: Some(TunerConfig {
            config: Default::default(),
            path: None,
            errors: vec![],
        }),
        processes: vec![guest(100, "vm1")],
        ..Default::default()
    }
}

fn guest(pid: u32, name: &str) -> ProcFacts {
    ProcFacts {
        pid,
        comm: "qemu-system-x86".into(),
        guest: Some(name.into()),
        qemu: true,
        ksm_stat: Some(KsmStat {
            rmap_items: 1000,
            merging_pages: Some(500),
            mergeable: Some(true),
            merge_any: Some(false),
            ..Default::default()
        }),
        smaps: Some(SmapsSummary {
            mergeable_kib: 8 * GIB_KIB,
            mergeable_rss_kib: 8 * GIB_KIB,
            ..Default::default()
        }),
        rss_kib: 8 * GIB_KIB,
        ..Default::default()
    }
}

fn ids(f: &Facts) -> Vec<&'static str> {
    check(f).iter().map(|f| f.id).collect()
}

fn find(f: &Facts, id: &str) -> Finding {
    check(f)
        .into_iter()
        .find(|x| x.id == id)
        .unwrap_or_else(|| panic!("no {id} in {:?}", ids(f)))
}

fn ksm(f: &mut Facts) -> &mut KsmState {
    f.ksm.as_mut().unwrap()
}

#[test]
fn healthy_host_has_no_finding() {
    assert_eq!(ids(&healthy()), Vec::<&str>::new());
}

#[test]
fn every_finding_id_is_listed_once() {
    let mut seen = std::collections::BTreeSet::new();
    for id in IDS {
        assert!(seen.insert(id), "{id} twice");
        assert!(
            id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "{id} is not kebab-case"
        );
    }
}

#[test]
fn no_ksm() {
    let f = Facts {
        ksm_present: false,
        ksm_dir: "/sys/kernel/mm/ksm".into(),
        root_user: true,
        ..Default::default()
    };
    let found = check(&f);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "ksm-not-built");
    assert_eq!(found[0].severity, Severity::Warning);
    assert!(found[0].seen.contains("/sys/kernel/mm/ksm does not exist"));
    let f = Facts {
        ksm_present: true,
        ksm_error: Some("cannot parse /x/run".into()),
        root_user: true,
        ..Default::default()
    };
    assert_eq!(find(&f, "ksm-unreadable").seen, "cannot parse /x/run");
}

#[test]
fn read_only_and_guest_and_not_root() {
    let mut f = healthy();
    f.ksm_writable = Some(false);
    f.in_vm = true;
    assert_eq!(ids(&f), ["running-in-guest", "ksm-read-only"]);
    f.root_user = false;
    // Not root: the read-only finding is not root's fault to report.
    assert_eq!(ids(&f), ["not-root", "running-in-guest"]);
    // Nor is "nothing opted in" a conclusion it can draw.
    f.processes.clear();
    assert_eq!(ids(&f), ["not-root", "running-in-guest"]);
}

#[test]
fn stopped_without_tuner() {
    let mut f = healthy();
    ksm(&mut f).run = Some(Run::Stop);
    let x = find(&f, "ksmd-stopped");
    assert_eq!(x.severity, Severity::Warning);
    assert!(x.seen.contains("run = 0"), "{}", x.seen);
    // No process seen opted in, but pages are merged (their ksm_stat
    // could not be read): the counters say memory is opted in.
    f.processes.clear();
    let x = find(&f, "ksmd-stopped");
    assert_eq!(x.severity, Severity::Warning);
    assert!(
        x.why.contains("pages merged earlier stay merged") && !x.why.contains("nothing is lost"),
        "{}",
        x.why
    );
    // Nothing opted in and nothing merged: worth knowing, not an alarm.
    ksm(&mut f).pages_sharing = Some(0);
    ksm(&mut f).pages_shared = Some(0);
    let x = find(&f, "ksmd-stopped");
    assert_eq!(x.severity, Severity::Info);
    assert!(x.why.contains("nothing is lost yet"), "{}", x.why);
}

#[test]
fn chains_advice_matches_use_zero_pages() {
    let mut f = healthy();
    ksm(&mut f).stable_node_chains = Some(2);
    ksm(&mut f).use_zero_pages = Some(0);
    let x = find(&f, "max-page-sharing-reached");
    assert!(
        x.what_to_do.contains("set use_zero_pages=1"),
        "{}",
        x.what_to_do
    );
    ksm(&mut f).use_zero_pages = Some(1);
    let x = find(&f, "max-page-sharing-reached");
    assert!(
        !x.what_to_do.contains("set use_zero_pages=1") && x.what_to_do.contains("already"),
        "{}",
        x.what_to_do
    );
}

#[test]
fn stopped_by_masked_unit() {
    let mut f = healthy();
    ksm(&mut f).run = Some(Run::Stop);
    f.masked_unit = Some("/etc/systemd/system/ksm.service".into());
    let x = find(&f, "ksm-unit-masked");
    assert!(
        x.what_to_do.contains("systemctl unmask ksm.service"),
        "{}",
        x.what_to_do
    );
    assert!(!ids(&f).contains(&"ksmd-stopped"));
}

#[test]
fn stopped_by_classic_arithmetic() {
    let mut f = healthy();
    ksm(&mut f).run = Some(Run::Stop);
    f.tuners = vec![TunerFacts {
        pid: 42,
        comm: "ksmtuned".into(),
        script: false,
    }];
    // 64 GiB, threshold 20% = 12.8 GiB; committed 8 GiB; free 25 GiB.
    let x = find(&f, "ksmd-stopped-by-tuner");
    assert_eq!(x.severity, Severity::Info);
    assert!(x.seen.contains("committed 8.00 GiB + threshold 12.8 GiB = 20.8 GiB < total 64.0 GiB, and free 25.0 GiB > threshold"), "{}", x.seen);
    // KiB arithmetic truncates, as in the original: 13,421,772 KiB.
    assert_eq!(x.numbers["threshold_bytes"], 13_421_772u64 * 1024);
    assert_eq!(x.numbers["committed_bytes"], 8u64 << 30);
    // A big guest: the rule would run ksmd, so stopped means "not yet".
    f.processes[0].rss_kib = 60 * GIB_KIB;
    let x = find(&f, "ksmd-stopped-by-tuner");
    assert!(x.seen.contains("would run it now"), "{}", x.seen);
    assert!(x.what_to_do.contains("60 s"), "{}", x.what_to_do);
    // Adaptive: its own reasons.
    f.tuner_config.as_mut().unwrap().config.policy = PolicyKind::Adaptive;
    assert!(find(&f, "ksmd-stopped-by-tuner")
        .seen
        .contains("adaptive policy"));
}

#[test]
fn invalid_tuner_config() {
    let mut f = healthy();
    f.tuner_config.as_mut().unwrap().errors = vec!["/etc/ksmtuned.conf:3: bad".into()];
    assert_eq!(
        find(&f, "tuner-config-invalid").seen,
        "/etc/ksmtuned.conf:3: bad"
    );
}

#[test]
fn nothing_opted_in_and_merge_off() {
    let mut f = healthy();
    let g = &mut f.processes[0];
    g.ksm_stat = Some(KsmStat {
        mergeable: Some(false),
        merge_any: Some(false),
        ..Default::default()
    });
    g.smaps = Some(SmapsSummary::default());
    // KSM's counters still track pages: someone opted memory in, so
    // "nothing is opted in" would contradict them.
    assert!(!ids(&f).contains(&"no-mergeable-memory"));
    let k = ksm(&mut f);
    for n in [
        &mut k.pages_shared,
        &mut k.pages_sharing,
        &mut k.pages_unshared,
        &mut k.pages_volatile,
    ] {
        *n = Some(0);
    }
    let found = ids(&f);
    assert!(
        found.contains(&"guest-merge-off") && found.contains(&"no-mergeable-memory"),
        "{found:?}"
    );
    let x = find(&f, "guest-merge-off");
    assert!(
        x.seen.contains("guest vm1 (qemu-system-x86, pid 100)"),
        "{}",
        x.seen
    );
    // Older kernels: only the command line says so.
    let g = &mut f.processes[0];
    g.ksm_stat = None;
    assert!(!ids(&f).contains(&"guest-merge-off"));
    f.processes[0].merge_off_arg = true;
    assert!(ids(&f).contains(&"guest-merge-off"));
    // No guests at all: a note.
    f.processes.clear();
    assert_eq!(ids(&f), ["no-mergeable-memory"]);
    assert_eq!(find(&f, "no-mergeable-memory").severity, Severity::Info);
}

#[test]
fn unmergeable_guest_memory() {
    let mut f = healthy();
    let mut g = guest(200, "vm2");
    g.ksm_stat.as_mut().unwrap().mergeable = Some(false);
    g.smaps = Some(SmapsSummary {
        shared_writable_kib: 4 * GIB_KIB,
        ..Default::default()
    });
    f.processes.push(g);
    let x = find(&f, "guest-memory-shared");
    assert_eq!(x.severity, Severity::Warning);
    assert!(x.seen.starts_with("4.00 GiB of shared"), "{}", x.seen);
    assert_eq!(x.numbers["pids"], serde_json::json!([200]));
    // Shared memory explains the "no" in ksm_stat: not also "merge off".
    assert!(!ids(&f).contains(&"guest-merge-off"));
    // Small shared mappings (QEMU's own) are not guest memory.
    f.processes[1].smaps.as_mut().unwrap().shared_writable_kib = UNMERGEABLE_MIN_KIB - 1;
    assert!(!ids(&f).contains(&"guest-memory-shared"));
    let g = &mut f.processes[1];
    g.smaps.as_mut().unwrap().hugetlb_kib = 2 * GIB_KIB;
    g.smaps.as_mut().unwrap().locked_kib = GIB_KIB;
    g.vfio = true;
    let found = ids(&f);
    for id in [
        "guest-memory-hugetlb",
        "guest-memory-locked",
        "guest-memory-pinned",
    ] {
        assert!(found.contains(&id), "{id} not in {found:?}");
    }
    assert_eq!(find(&f, "guest-memory-locked").severity, Severity::Info);
    assert_eq!(
        find(&f, "guest-memory-hugetlb").numbers["bytes"],
        2u64 << 30
    );
}

#[test]
fn slow_scan() {
    let mut f = healthy();
    // 8 GiB = 2,097,152 pages at 100 per 20 ms = 5000 pages/s: 419 s. Fine.
    ksm(&mut f).pages_to_scan = Some(100);
    ksm(&mut f).sleep_millisecs = Some(20);
    assert!(!ids(&f).contains(&"scan-too-slow"));
    // 64 GiB at 5000 pages/s: 3355 s, 56 min.
    f.processes[0].smaps.as_mut().unwrap().mergeable_rss_kib = 64 * GIB_KIB;
    let x = find(&f, "scan-too-slow");
    assert!(
        x.seen.contains(
            "takes 56 min at pages_to_scan = 100 per sleep_millisecs = 20 (5000 pages/s)"
        ),
        "{}",
        x.seen
    );
    assert_eq!(x.numbers["full_scan_seconds"], 3355);
    ksm(&mut f).pages_to_scan = Some(0);
    assert!(find(&f, "scan-too-slow").seen.contains("forever"));
    // The advisor picks the rate; continuous scanning is never slow.
    ksm(&mut f).advisor_mode = Some(AdvisorMode::ScanTime);
    assert!(!ids(&f).contains(&"scan-too-slow"));
    ksm(&mut f).advisor_mode = Some(AdvisorMode::None);
    ksm(&mut f).sleep_millisecs = Some(0);
    assert!(!ids(&f).contains(&"scan-too-slow"));
    assert_eq!(scan_rate(100, 20), Some(5000.0));
}

#[test]
fn advisor_and_script() {
    let mut f = healthy();
    ksm(&mut f).advisor_mode = Some(AdvisorMode::ScanTime);
    f.tuners = vec![TunerFacts {
        pid: 7,
        comm: "ksmtuned".into(),
        script: false,
    }];
    // Our ksmtuned leaves pages_to_scan to the advisor: its settings only.
    assert_eq!(ids(&f), ["advisor-settings"]);
    f.tuners[0].script = true;
    assert_eq!(ids(&f), ["advisor-fights-tuner", "advisor-settings"]);
}

#[test]
fn prctl_defect_by_files() {
    let mut f = healthy();
    ksm(&mut f).smart_scan = None;
    assert_eq!(ids(&f), ["prctl-exec-defect"]);
    ksm(&mut f).general_profit = None;
    assert_eq!(ids(&f), Vec::<&str>::new(), "before 6.4 there is no prctl");
}

#[test]
fn not_paying() {
    let mut f = healthy();
    ksm(&mut f).general_profit = Some(-20 << 20);
    let x = find(&f, "negative-profit");
    assert!(
        x.seen.starts_with("general_profit = -20.0 MiB"),
        "{}",
        x.seen
    );
    let mut f = healthy();
    // 1,000,000 unshared (3.8 GiB) against 50,000 sharing: 20 to 1.
    ksm(&mut f).pages_unshared = Some(1_000_000);
    ksm(&mut f).pages_sharing = Some(50_000);
    assert!(ids(&f).contains(&"wasted-scanning"));
    ksm(&mut f).pages_sharing = Some(100_000);
    assert!(
        !ids(&f).contains(&"wasted-scanning"),
        "10 to 1 is the limit"
    );
    // Small numbers are noise: 10,000 pages (39 MiB) against 0.
    ksm(&mut f).pages_unshared = Some(10_000);
    ksm(&mut f).pages_sharing = Some(0);
    assert!(!ids(&f).contains(&"wasted-scanning"));
    let mut f = healthy();
    ksm(&mut f).pages_volatile = Some(900_000);
    let x = find(&f, "volatile-pages");
    assert!(x.seen.contains("(52%)"), "{}", x.seen);
    ksm(&mut f).pages_volatile = Some(700_000);
    assert!(!ids(&f).contains(&"volatile-pages"), "46% is not most");
}

#[test]
fn chains_and_numa() {
    let mut f = healthy();
    ksm(&mut f).stable_node_chains = Some(3);
    ksm(&mut f).stable_node_dups = Some(40);
    assert_eq!(ids(&f), ["max-page-sharing-reached"]);
    let mut f = healthy();
    f.numa_nodes = Some(2);
    assert_eq!(ids(&f), ["merge-across-nodes-numa"]);
    ksm(&mut f).merge_across_nodes = Some(0);
    assert_eq!(ids(&f), Vec::<&str>::new());
}

#[test]
fn unmerge_risk_numbers() {
    let mut f = healthy();
    // Saved 500,000 pages = 1.9 GiB; available 1 GiB, swap 512 MiB free.
    let m = f.mem.as_mut().unwrap();
    m.mem_available = Some(GIB_KIB);
    m.swap_free = 512 * 1024;
    let x = find(&f, "unmerge-risk");
    assert_eq!(x.numbers["saved_bytes"], 500_000u64 * 4096);
    assert_eq!(
        x.numbers["headroom_bytes"],
        (1i64 << 30) + (512 << 20) - 500_000 * 4096
    );
    assert!(x.seen.contains("1.91 GiB (saved now)"), "{}", x.seen);
    f.mem.as_mut().unwrap().swap_free = 2 * GIB_KIB;
    assert!(!ids(&f).contains(&"unmerge-risk"));
}

#[test]
fn services_that_could_opt_in() {
    let mut f = healthy();
    let svc = |unit: &str, mib: u64, pids: &[u32]| ServiceFacts {
        unit: unit.into(),
        anon_kib: mib * 1024,
        pids: pids.to_vec(),
    };
    // Below the threshold: nothing to suggest.
    f.services = vec![svc("small.service", 255, &[10])];
    assert!(!ids(&f).contains(&"service-could-opt-in"));
    f.services = vec![
        svc("postgresql@15-main.service", 6144, &[20, 21]),
        svc("redis-server.service", 512, &[30]),
        svc("small.service", 100, &[10]),
    ];
    let x = find(&f, "service-could-opt-in");
    assert_eq!(x.severity, Severity::Info);
    assert!(
        x.seen.starts_with("2 systemd service(s) hold 6.50 GiB"),
        "{}",
        x.seen
    );
    assert!(
        x.seen.contains("postgresql@15-main.service (6.00 GiB)"),
        "{}",
        x.seen
    );
    assert!(!x.seen.contains("small.service"), "{}", x.seen);
    assert!(
        x.what_to_do
            .contains("ksmctl estimate --all-anonymous 20 21"),
        "{}",
        x.what_to_do
    );
    assert_eq!(x.numbers["pids"], serde_json::json!([20, 21, 30]));
    // Not root: other users' memory is not known well enough to suggest.
    f.root_user = false;
    assert!(!ids(&f).contains(&"service-could-opt-in"));
}

/// SELinux: a warning only when enforcing with the distribution's module
/// alone (it denies what this daemon needs); what is loaded is asked of
/// the live policy first, the module store otherwise.
#[test]
fn selinux_mode_and_module() {
    use crate::doctor::gather::SelinuxFacts;
    let mut f = healthy();
    assert!(!ids(&f).contains(&"selinux"), "no SELinux, no finding");
    let distribution = SelinuxFacts {
        enforcing: true,
        policy: Some("targeted".into()),
        store_priorities: vec![100],
        tuner_context: Some((4242, "system_u:system_r:ksmtuned_t:s0".into())),
        ..Default::default()
    };
    f.selinux = Some(distribution.clone());
    let x = find(&f, "selinux");
    assert_eq!(x.severity, Severity::Warning);
    assert!(
        x.seen
            .starts_with("SELinux is enforcing (policy targeted); only the distribution's")
            && x.seen.ends_with("ksmtuned (pid 4242) runs in ksmtuned_t"),
        "{}",
        x.seen
    );
    assert!(x.why.contains("denies") && x.what_to_do.contains("semodule -X 200"));
    assert_eq!(x.numbers["enforcing"], 1);
    assert_eq!(x.numbers["own_module_loaded"], 0);
    // Permissive: the same module only logs: a note.
    f.selinux = Some(SelinuxFacts {
        enforcing: false,
        ..distribution.clone()
    });
    let x = find(&f, "selinux");
    assert_eq!(x.severity, Severity::Info);
    assert!(x.why.contains("only logged"), "{}", x.why);
    // Ours at priority 200 over the distribution's.
    f.selinux = Some(SelinuxFacts {
        store_priorities: vec![100, 200],
        ..distribution.clone()
    });
    let x = find(&f, "selinux");
    assert_eq!(x.severity, Severity::Info);
    assert!(x.seen.contains("this package's ksmtuned module is loaded"));
    assert_eq!(x.numbers["own_module_loaded"], 1);
    // The live policy wins over the store: it knows ksmtuned_t but not our
    // port type, whatever the store says.
    f.selinux = Some(SelinuxFacts {
        store_priorities: vec![100, 200],
        knows_domain: Some(true),
        knows_metrics_port: Some(false),
        ..distribution.clone()
    });
    assert_eq!(find(&f, "selinux").severity, Severity::Warning);
    // Debian: installed but disabled; the tuner unconfined.
    f.selinux = Some(SelinuxFacts {
        policy: Some("default".into()),
        store_disabled: true,
        tuner_context: Some((4242, "system_u:system_r:unconfined_service_t:s0".into())),
        ..distribution.clone()
    });
    let x = find(&f, "selinux");
    assert_eq!(x.severity, Severity::Info);
    assert!(
        x.seen.contains("installed but disabled")
            && x.seen.contains("runs in unconfined_service_t"),
        "{}",
        x.seen
    );
    assert_eq!(x.numbers["module_loaded"], 0);
    // No module anywhere.
    f.selinux = Some(SelinuxFacts {
        enforcing: true,
        ..Default::default()
    });
    let x = find(&f, "selinux");
    assert!(
        x.seen == "SELinux is enforcing; no ksmtuned module is loaded",
        "{}",
        x.seen
    );
}

#[test]
fn libvirt_beside_a_tuner_is_a_second_writer() {
    let writer = crate::sample::services::OtherWriter {
        pid: 77,
        comm: "virtqemud".into(),
        command: "virsh node-memory-tune",
        files: &crate::sample::services::LIBVIRT_KSM_FILES,
    };
    // libvirt alone: it is the only writer, nothing to say.
    let mut f = healthy();
    f.tuners.clear();
    f.other_writers = vec![writer];
    assert!(!ids(&f).contains(&"libvirt-writes-ksm"));
    f.tuners = vec![TunerFacts {
        pid: 42,
        comm: "ksmtuned".into(),
        script: false,
    }];
    let x = find(&f, "libvirt-writes-ksm");
    assert_eq!(x.severity, Severity::Info);
    assert!(
        x.seen
            .starts_with("virtqemud (pid 77) runs beside the tuner ksmtuned (pid 42)")
            && x.seen
                .contains("pages_to_scan, sleep_millisecs, merge_across_nodes"),
        "{}",
        x.seen
    );
    assert!(
        x.what_to_do.contains("/etc/ksmtuned.conf"),
        "{}",
        x.what_to_do
    );
    assert_eq!(x.numbers["writer_pid"], 77);
    assert_eq!(x.numbers["tuner_pid"], 42);
}

#[test]
fn huge_pages_in_mergeable_memory() {
    let mut f = healthy();
    f.thp = crate::kernel::thp::Thp {
        mode: Some("always".into()),
        counters: crate::kernel::thp::ThpCounters {
            split_page: Some(545),
            split_pmd: Some(600),
            split_page_failed: Some(2),
            ..Default::default()
        },
        split_maps_zero_pages: true,
        anon_huge_kib: Some(GIB_KIB),
    };
    // No huge page in the mergeable areas: nothing to say.
    assert_eq!(ids(&f), Vec::<&str>::new());
    f.processes[0]
        .smaps
        .as_mut()
        .unwrap()
        .mergeable_anon_huge_kib = GIB_KIB;
    let x = find(&f, "thp-in-mergeable-memory");
    assert_eq!(x.severity, Severity::Warning);
    assert!(
        x.seen.starts_with(
            "transparent huge pages are always: 1.00 GiB of the memory opted in to KSM"
        ),
        "{}",
        x.seen
    );
    assert!(x.seen.contains("thp_split_page = 545"), "{}", x.seen);
    assert!(x.why.contains("zero page"), "{}", x.why);
    assert!(x.what_to_do.contains("echo madvise"), "{}", x.what_to_do);
    assert_eq!(x.numbers["mergeable_huge_bytes"], 1u64 << 30);
    assert_eq!(x.numbers["pids"], serde_json::json!([100]));
    // Under madvise, or little of it: a note.
    f.thp.mode = Some("madvise".into());
    assert_eq!(find(&f, "thp-in-mergeable-memory").severity, Severity::Info);
    f.thp.mode = Some("never".into());
    assert!(!ids(&f).contains(&"thp-in-mergeable-memory"));
    f.thp.mode = None;
    assert!(!ids(&f).contains(&"thp-in-mergeable-memory"));
}

#[test]
fn advisor_settings_shown_and_a_stalled_advisor() {
    let mut f = healthy();
    let k = ksm(&mut f);
    k.advisor_mode = Some(AdvisorMode::ScanTime);
    k.advisor_max_cpu = Some(70);
    k.advisor_target_scan_time = Some(200);
    k.advisor_min_pages_to_scan = Some(500);
    k.advisor_max_pages_to_scan = Some(30000);
    let x = find(&f, "advisor-settings");
    assert_eq!(x.severity, Severity::Info);
    assert!(
        x.seen.contains("advisor_target_scan_time = 200 s")
            && x.seen.contains("advisor_max_cpu = 70%")
            && x.seen.contains("advisor_max_pages_to_scan = 30,000"),
        "{}",
        x.seen
    );
    assert_eq!(x.numbers["advisor_max_cpu_percent"], 70);
    ksm(&mut f).advisor_max_pages_to_scan = Some(0);
    let x = find(&f, "advisor-settings");
    assert_eq!(x.severity, Severity::Warning);
    assert!(x.what_to_do.contains("advisor_max_pages_to_scan=30000"));
    ksm(&mut f).advisor_mode = Some(AdvisorMode::None);
    assert!(!ids(&f).contains(&"advisor-settings"));
}

fn opted(pid: u32, comm: &str, merge_any: bool, profit: i64) -> ProcFacts {
    ProcFacts {
        pid,
        comm: comm.into(),
        ksm_stat: Some(KsmStat {
            rmap_items: 100_000,
            merging_pages: Some(10),
            process_profit: Some(profit),
            merge_any: Some(merge_any),
            mergeable: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn whole_process_opt_in_by_prctl_or_madvise() {
    let mut f = healthy();
    // An older kernel (no ksm_merge_any) or madvise only: nothing.
    f.processes.push(opted(300, "cache", false, -5 << 20));
    assert!(!ids(&f).contains(&"whole-process-opt-in"));
    f.processes.push(opted(301, "worker", true, 3 << 20));
    let x = find(&f, "whole-process-opt-in");
    assert_eq!(x.severity, Severity::Info);
    assert!(
        x.seen
            .starts_with("1 process(es) opted in whole (prctl PR_SET_MEMORY_MERGE"),
        "{}",
        x.seen
    );
    assert!(x.seen.contains("worker (pid 301)") && x.seen.contains("2 opted in some areas"));
    assert_eq!(x.numbers["pids"], serde_json::json!([301]));
    assert_eq!(x.numbers["madvise_processes"], 2);
    // One that costs more than it saves: a warning naming it.
    f.processes.push(opted(302, "batch", true, -(2 << 20)));
    let x = find(&f, "whole-process-opt-in");
    assert_eq!(x.severity, Severity::Warning);
    assert!(x
        .seen
        .contains("costing more than they save: batch (pid 302)"));
    assert_eq!(x.numbers["losing_pids"], serde_json::json!([302]));
    assert_eq!(x.numbers["profit_bytes"], 1 << 20);
}

#[test]
fn process_profits_against_general_profit() {
    let mut f = healthy();
    // 100,000 pages shared: the processes' sum counts them too.
    let general = 1_900_000_000i64;
    let shared = 100_000i64 * 4096;
    f.processes[0].ksm_stat.as_mut().unwrap().process_profit = Some(general + shared);
    let x = find(&f, "profit-sums-differ");
    assert_eq!(x.severity, Severity::Info);
    assert!(
        x.why.contains("pages_shared = 100,000 pages (391 MiB)"),
        "{}",
        x.why
    );
    assert!(x.seen.ends_with("(391 MiB more)"), "{}", x.seen);
    assert_eq!(x.numbers["process_profit_sum_bytes"], general + shared);
    // Within the slack: nothing to explain.
    f.processes[0].ksm_stat.as_mut().unwrap().process_profit = Some(general + 1000);
    assert!(!ids(&f).contains(&"profit-sums-differ"));
    // Less: processes missing from the sum.
    f.processes[0].ksm_stat.as_mut().unwrap().process_profit = Some(general / 2);
    assert!(find(&f, "profit-sums-differ")
        .why
        .starts_with("the sum misses"));
    // Without root the others' ksm_stat is hidden: no conclusion.
    f.root_user = false;
    assert!(!ids(&f).contains(&"profit-sums-differ"));
}
