//! The checks: pure functions from [`Facts`] to [`Finding`]s. Thresholds
//! are constants here, so the documentation and the tests quote the same
//! numbers.

use crate::config::PolicyKind;
use crate::human;
use crate::kernel::ksm::{KsmState, Run};
use crate::policy::classic;

use super::gather::{Facts, ProcFacts};
use super::rails::Headroom;
use super::{Finding, Severity};

/// Every finding's identifier, in the order of docs/troubleshooting.md.
pub const IDS: &[&str] = &[
    "not-root",
    "ksm-not-built",
    "ksm-unreadable",
    "ksm-read-only",
    "running-in-guest",
    "selinux",
    "ksm-unit-masked",
    "ksmd-stopped",
    "ksmd-stopped-by-tuner",
    "tuner-config-invalid",
    "no-mergeable-memory",
    "service-could-opt-in",
    "guest-merge-off",
    "guest-memory-shared",
    "guest-memory-hugetlb",
    "guest-memory-pinned",
    "guest-memory-locked",
    "thp-in-mergeable-memory",
    "scan-too-slow",
    "advisor-fights-tuner",
    "libvirt-writes-ksm",
    "advisor-settings",
    "prctl-exec-defect",
    "whole-process-opt-in",
    "negative-profit",
    "profit-sums-differ",
    "wasted-scanning",
    "volatile-pages",
    "max-page-sharing-reached",
    "merge-across-nodes-numa",
    "unmerge-risk",
];

/// A systemd service is suggested for `MemoryKSM=yes` from this much
/// anonymous memory (KiB): below it the rmap items cost more than a few
/// duplicates save.
pub const SERVICE_ANON_MIN_KIB: u64 = 256 * 1024;
/// At most this many services are named.
const SERVICES_NAMED: usize = 5;

/// Guest memory KSM cannot merge is reported from this size per process
/// (KiB): smaller shared mappings are QEMU's and the libraries' own.
pub const UNMERGEABLE_MIN_KIB: u64 = 16 * 1024;
/// One full scan slower than this (seconds) is too slow: merging needs
/// two full scans, so new guests wait more than half an hour.
pub const SLOW_SCAN_SECONDS: u64 = 15 * 60;
/// Wasted scanning: pages_unshared above this many times pages_sharing...
pub const UNSHARED_RATIO: u64 = 10;
/// ...and volatile pages above this share (percent) of those KSM tracks...
pub const VOLATILE_PERCENT: u64 = 50;
/// ...count only from this much memory (bytes), below it is noise.
pub const COUNTERS_MIN_BYTES: u64 = 64 << 20;

/// Run every check.
pub fn check(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    if !f.root_user {
        out.push(Finding::new(
            "not-root",
            Severity::Info,
            "ksmctl doctor is not running as root",
            "other users' /proc/PID/ksm_stat and smaps cannot be read, so per-process \
             findings (guests with merging off, memory KSM cannot merge) may be missing",
            "run it as root: sudo ksmctl doctor",
        ));
    }
    if f.in_vm {
        out.push(Finding::new(
            "running-in-guest",
            Severity::Info,
            "this kernel runs in a virtual machine (the CPU's hypervisor flag)",
            "KSM here merges only this machine's own processes; the memory of the guests \
             running on the host is merged by the host's KSM, not this one",
            "nothing, if KSM is meant for guests nested in this machine; otherwise run \
             ksmctl doctor on the host",
        ));
    }
    selinux(f, &mut out);
    if !f.ksm_present {
        out.push(Finding::new(
            "ksm-not-built",
            Severity::Warning,
            format!("{} does not exist", f.ksm_dir.display()),
            "this kernel was built without CONFIG_KSM: nothing can be merged, and \
             ksmtuned has nothing to tune",
            "use a kernel built with CONFIG_KSM=y (every major distribution's is)",
        ));
        return out;
    }
    let Some(state) = &f.ksm else {
        out.push(Finding::new(
            "ksm-unreadable",
            Severity::Warning,
            f.ksm_error
                .clone()
                .unwrap_or_else(|| "KSM's files could not be read".to_string()),
            "without KSM's settings and counters no other check can run",
            "check the file named above (permissions, a bind mount, an unexpected value)",
        ));
        return out;
    };
    if f.root_user && f.ksm_writable == Some(false) {
        out.push(Finding::new(
            "ksm-read-only",
            Severity::Warning,
            format!(
                "{}/run cannot be written, even as root",
                f.ksm_dir.display()
            ),
            "/sys is mounted read-only here, as in most containers: KSM belongs to the \
             host's kernel, and neither ksmctl nor ksmtuned can start or tune it from here",
            "manage KSM on the host (or run this container privileged with a writable /sys)",
        ));
    }
    ksmd_state(f, state, &mut out);
    if let Some(tc) = &f.tuner_config {
        if !tc.errors.is_empty() {
            out.push(Finding::new(
                "tuner-config-invalid",
                Severity::Warning,
                tc.errors.join("; "),
                "ksmtuned refuses to start (or to reload) with an invalid configuration",
                "fix the line named above; `ksmtuned --check-config` checks the file",
            ));
        }
    }
    opt_in(f, &mut out);
    unmergeable(f, &mut out);
    today::huge_pages(f, &mut out);
    scanning(f, state, &mut out);
    writers::libvirt(f, &mut out);
    today::advisor(state, &mut out);
    today::whole_process(f, &mut out);
    paying(f, state, &mut out);
    today::profit_sums(f, state, &mut out);
    unmerge_risk(f, state, &mut out);
    out
}

/// SELinux's mode and the ksmtuned module: a warning when enforcing with
/// only the distribution's module, which confines the daemon without what
/// it needs (the process events, its metrics port, other users'
/// ksm_stat: issue 30); a note otherwise.
fn selinux(f: &Facts, out: &mut Vec<Finding>) {
    let Some(se) = &f.selinux else { return };
    let mode = if se.enforcing {
        "enforcing"
    } else {
        "permissive"
    };
    let policy = se
        .policy
        .as_deref()
        .map(|p| format!(" (policy {p})"))
        .unwrap_or_default();
    let prios = se
        .store_priorities
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let (module, severity, why, what) = if se.ours_loaded() {
        (
            "this package's ksmtuned module is loaded".to_string(),
            Severity::Info,
            "the daemon runs confined to ksmtuned_t with what it needs: the kernel's process \
             events, its metrics port (ksmtuned_metrics_port_t), other users' ksm_stat"
                .to_string(),
            "nothing; a metrics port other than 9926 needs its label: semanage port -a -t \
             ksmtuned_metrics_port_t -p tcp PORT"
                .to_string(),
        )
    } else if se.module_loaded() {
        (
            format!(
                "only the distribution's ksmtuned module is loaded (ksmtuned_t without \
                 ksmtuned_metrics_port_t{})",
                if prios.is_empty() {
                    String::new()
                } else {
                    format!("; module store priority {prios}")
                }
            ),
            if se.enforcing {
                Severity::Warning
            } else {
                Severity::Info
            },
            format!(
                "that module was written for the shell script: it {} ksmtuned the kernel's \
                 process events (it lists /proc every cycle instead), any metrics port, other \
                 users' /proc/PID/ksm_stat (their opted-in processes go uncounted) and signals \
                 from `ksmtuned retune` run by a script; the daemon keeps tuning and logs each \
                 once",
                if se.enforcing {
                    "denies"
                } else {
                    "would deny (permissive: only logged)"
                }
            ),
            "install this package's module (the ksmtuned-selinux package, or semodule -X 200 \
             -i ksmtuned.pp), then systemctl restart ksmtuned; ausearch -m avc -c ksmtuned shows \
             the denials"
                .to_string(),
        )
    } else {
        (
            if se.store_disabled {
                "the distribution's ksmtuned module is installed but disabled, as Debian ships \
                 it"
                .to_string()
            } else {
                "no ksmtuned module is loaded".to_string()
            },
            Severity::Info,
            "the daemon is not confined to a domain of its own: it runs in the one systemd \
             starts services in, where nothing of ksmtuned's is denied"
                .to_string(),
            "nothing; to confine it, install this package's module (ksmtuned-selinux), or \
             semodule -e ksmtuned for the distribution's (which denies what this daemon \
             needs: see this finding's warning)"
                .to_string(),
        )
    };
    let runs = match &se.tuner_context {
        Some((pid, c)) => format!(
            "; ksmtuned (pid {pid}) runs in {}",
            crate::kernel::selinux::context_type(c).unwrap_or(c)
        ),
        None => String::new(),
    };
    out.push(
        Finding::new(
            "selinux",
            severity,
            format!("SELinux is {mode}{policy}; {module}{runs}"),
            why,
            what,
        )
        .num("enforcing", u8::from(se.enforcing))
        .num("module_loaded", u8::from(se.module_loaded()))
        .num("own_module_loaded", u8::from(se.ours_loaded())),
    );
}

fn list(procs: &[&ProcFacts]) -> String {
    let mut names: Vec<String> = procs.iter().take(5).map(|p| p.label()).collect();
    if procs.len() > 5 {
        names.push(format!("and {} more", procs.len() - 5));
    }
    names.join(", ")
}

fn pids(procs: &[&ProcFacts]) -> serde_json::Value {
    procs.iter().map(|p| p.pid).collect::<Vec<_>>().into()
}

fn any_opted_in(f: &Facts) -> bool {
    f.processes.iter().any(|p| p.opted_in())
}

fn ksmd_state(f: &Facts, state: &KsmState, out: &mut Vec<Finding>) {
    let Some(run) = state.run else { return };
    if run == Run::Merge {
        return;
    }
    let run_n = run.as_u8();
    // Merged pages are memory that was opted in, even when no process's
    // ksm_stat could be read: the counters are checked too.
    let merged = state.pages_sharing.unwrap_or(0) > 0 || state.pages_shared.unwrap_or(0) > 0;
    let work = any_opted_in(f) || f.processes.iter().any(|p| p.qemu) || merged;
    let severity = if work {
        Severity::Warning
    } else {
        Severity::Info
    };
    let work_note = if merged {
        "pages merged earlier stay merged, but memory opted in since is not merged"
    } else if work {
        "memory is opted in to KSM, but nothing merges it"
    } else {
        "no process has memory opted in either, so nothing is lost yet"
    };
    if let Some(unit) = &f.masked_unit {
        out.push(
            Finding::new(
                "ksm-unit-masked",
                severity,
                format!(
                    "ksmd is stopped (run = {run_n}) and {} is masked (a link to /dev/null)",
                    unit.display()
                ),
                format!(
                    "a masked unit means KSM is not to be managed on this host (tuned \
                     profiles and some hypervisor setups mask it); {work_note}"
                ),
                format!(
                    "if KSM should run here: systemctl unmask {} and start it",
                    unit.file_name().unwrap_or_default().to_string_lossy()
                ),
            )
            .num("run", run_n),
        );
        return;
    }
    if f.tuners.is_empty() {
        out.push(
            Finding::new(
                "ksmd-stopped",
                severity,
                format!("ksmd is stopped (run = {run_n}) and no tuner (ksmtuned) is running"),
                format!("nothing will start it: {work_note}"),
                "start the tuner (systemctl enable --now ksmtuned) to run KSM when memory \
                 is needed, or run it always with ksmctl start (systemctl enable --now ksm)",
            )
            .num("run", run_n),
        );
        return;
    }
    let tuner = &f.tuners[0];
    let config = f.tuner_config.as_ref().map(|t| t.config.clone());
    let config = config.unwrap_or_default();
    let mut finding = match (config.policy, &f.mem) {
        (PolicyKind::Classic, Some(mem)) => {
            let flavour = config.flavour.unwrap_or_default();
            let params = classic::Params::new(&config, flavour, mem.mem_total);
            let committed = f.committed_kib.unwrap_or_else(|| f.guest_rss_kib(flavour));
            let free = mem.classic_free();
            let d = classic::adjust(&params, &mut classic::State::default(), committed, free);
            let sum = u128::from(committed) + u128::from(params.thres);
            let (seen, what) = if d.run == Run::Stop {
                (
                    format!(
                        "ksmd is stopped (run = {run_n}) by {} (pid {}), classic policy: \
                         committed {} + threshold {} = {} < total {}, and free {} > threshold",
                        tuner.comm,
                        tuner.pid,
                        human::ubytes(committed * 1024),
                        human::ubytes(params.thres * 1024),
                        human::bytes(sum as i128 * 1024),
                        human::ubytes(params.total * 1024),
                        human::ubytes(free * 1024),
                    ),
                    "nothing, if that is what you want. To merge earlier, raise \
                     KSM_THRES_COEF (percent of memory) or KSM_THRES_CONST (KiB) in \
                     /etc/ksmtuned.conf and reload (systemctl reload ksmtuned), or choose \
                     KSM_POLICY=adaptive, which merges whatever is opted in"
                        .to_string(),
                )
            } else {
                (
                    format!(
                        "ksmd is stopped (run = {run_n}) although {} (pid {})'s classic rule \
                         would run it now ({})",
                        tuner.comm, tuner.pid, d.reason
                    ),
                    format!(
                        "wait one KSM_MONITOR_INTERVAL ({} s) or ask it now with ksmctl \
                         retune; if ksmd stays stopped, read the tuner's log (journalctl -u \
                         ksmtuned)",
                        config.monitor_interval
                    ),
                )
            };
            Finding::new(
                "ksmd-stopped-by-tuner",
                Severity::Info,
                seen,
                "classic ksmtuned runs KSM only when QEMU's memory plus a threshold \
                 (KSM_THRES_COEF % of memory, at least KSM_THRES_CONST KiB) exceeds the \
                 total, or free memory (MemFree + Buffers + Cached) falls below the \
                 threshold: on a host with room to spare it never merges",
                what,
            )
            .num("committed_bytes", committed.saturating_mul(1024))
            .num("threshold_bytes", params.thres.saturating_mul(1024))
            .num("total_bytes", params.total.saturating_mul(1024))
            .num("free_bytes", free.saturating_mul(1024))
        }
        (policy, _) => Finding::new(
            "ksmd-stopped-by-tuner",
            Severity::Info,
            format!(
                "ksmd is stopped (run = {run_n}); {} (pid {}) is running with the {policy} policy",
                tuner.comm, tuner.pid
            ),
            "the adaptive policy stops ksmd when a scan finds nothing more to merge and \
             starts it again when processes come or memory runs short",
            "nothing; ksmtuned's status line (systemctl status ksmtuned) says why it stopped",
        ),
    };
    finding = finding.num("run", run_n).num("tuner_pid", tuner.pid);
    out.push(finding);
}

fn opt_in(f: &Facts, out: &mut Vec<Finding>) {
    let unmergeable = |p: &ProcFacts| {
        p.smaps.is_some_and(|m| {
            m.shared_writable_kib >= UNMERGEABLE_MIN_KIB || m.hugetlb_kib >= UNMERGEABLE_MIN_KIB
        })
    };
    let off: Vec<&ProcFacts> = f
        .processes
        .iter()
        .filter(|p| p.qemu)
        .filter(|p| {
            p.merge_off_arg
                || (!unmergeable(p)
                    && p.ksm_stat
                        .as_ref()
                        .is_some_and(|s| s.mergeable == Some(false) && s.merge_any != Some(true)))
        })
        .collect();
    if !off.is_empty() {
        out.push(
            Finding::new(
                "guest-merge-off",
                Severity::Warning,
                format!(
                    "{} QEMU process(es) have no memory opted in to KSM: {}",
                    off.len(),
                    list(&off)
                ),
                "QEMU opts guest RAM in (madvise MADV_MERGEABLE) unless started with \
                 -machine mem-merge=off, which libvirt's <memoryBacking><nosharepages/> and \
                 Proxmox's allow-ksm: 0 set; KSM never looks at such a guest",
                "if these guests should share memory: remove <nosharepages/> from the \
                 domain XML (virsh edit), or set allow-ksm: 1 (Proxmox), then restart the \
                 guest",
            )
            .num("processes", off.len())
            .num("pids", pids(&off)),
        );
    }
    // Without root the other processes' ksm_stat is hidden: no conclusion.
    // Nor while KSM's counters track pages: they were opted in by someone
    // (whose ksm_stat could not be read, or who is gone since).
    let tracked = f.ksm.as_ref().map_or(0, |k| {
        [
            k.pages_shared,
            k.pages_sharing,
            k.pages_unshared,
            k.pages_volatile,
        ]
        .into_iter()
        .flatten()
        .sum::<u64>()
    });
    if f.root_user && !any_opted_in(f) && tracked == 0 {
        out.push(Finding::new(
            "no-mergeable-memory",
            Severity::Info,
            format!(
                "no process has memory opted in to KSM ({} QEMU process(es) seen)",
                f.processes.iter().filter(|p| p.qemu).count()
            ),
            "KSM merges only memory a process opted in (madvise MADV_MERGEABLE, as QEMU \
             does for guest RAM, or prctl PR_SET_MEMORY_MERGE for a whole process): with \
             none, ksmd has nothing to scan",
            "nothing, if no guests run here. Other services can opt in: MemoryKSM=yes in \
             their systemd unit (systemd 256+, Linux 6.4+) or start them with ksmctl exec",
        ));
    }
    services(f, out);
}

/// Services with much anonymous memory and none of it opted in: what
/// `MemoryKSM=yes` would offer KSM (worth it only where copies exist,
/// which `ksmctl estimate --all-anonymous` tells first).
fn services(f: &Facts, out: &mut Vec<Finding>) {
    let big: Vec<_> = f
        .services
        .iter()
        .filter(|s| s.anon_kib >= SERVICE_ANON_MIN_KIB)
        .collect();
    if !f.root_user || big.is_empty() {
        return;
    }
    let mut names: Vec<String> = big
        .iter()
        .take(SERVICES_NAMED)
        .map(|s| format!("{} ({})", s.unit, human::ubytes(s.anon_kib * 1024)))
        .collect();
    if big.len() > SERVICES_NAMED {
        names.push(format!("and {} more", big.len() - SERVICES_NAMED));
    }
    let total = big.iter().fold(0u64, |a, s| a.saturating_add(s.anon_kib));
    let pids: Vec<u32> = big.iter().flat_map(|s| s.pids.iter().copied()).collect();
    let first = &big[0];
    out.push(
        Finding::new(
            "service-could-opt-in",
            Severity::Info,
            format!(
                "{} systemd service(s) hold {} of anonymous memory with none of it opted in \
                 to KSM: {}",
                big.len(),
                human::ubytes(total * 1024),
                names.join(", ")
            ),
            "KSM only scans memory a process opted in; services that keep many identical \
             pages (caches of the same data, several workers of one program) could share \
             them, at the price of ksmd's scanning and of KSM's side channel between them",
            format!(
                "see what it would save first: ksmctl estimate --all-anonymous {}; if it \
                 pays, add MemoryKSM=yes to the unit (systemctl edit {}; systemd 256+, Linux \
                 6.4+) and restart it",
                first
                    .pids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                first.unit
            ),
        )
        .num("services", big.len())
        .num("anonymous_bytes", total.saturating_mul(1024))
        .num("pids", pids),
    );
}

fn unmergeable(f: &Facts, out: &mut Vec<Finding>) {
    let cand: Vec<&ProcFacts> = f
        .processes
        .iter()
        .filter(|p| p.qemu || p.opted_in())
        .collect();
    let sum = |v: &[&ProcFacts], field: fn(&ProcFacts) -> u64| -> u64 {
        v.iter().fold(0u64, |a, p| a.saturating_add(field(p)))
    };
    type Kind = (
        &'static str,
        fn(&ProcFacts) -> u64,
        &'static str,
        &'static str,
        &'static str,
    );
    let kinds: [Kind; 3] = [
        (
            "guest-memory-shared",
            |p| p.smaps.map_or(0, |m| m.shared_writable_kib),
            "shared (MAP_SHARED: memfd, /dev/shm or file-backed) memory",
            "KSM merges only private anonymous memory; the kernel accepts MADV_MERGEABLE on \
             a shared mapping and silently ignores it. QEMU's guest RAM is shared with \
             memory-backend-memfd or share=on, which vhost-user devices (virtiofs, \
             DPDK/OVS) require",
            "if memory savings matter more than vhost-user: back guest RAM with private \
             memory (libvirt: drop <access mode='shared'/> and the memfd source from \
             <memoryBacking>; QEMU: share=off)",
        ),
        (
            "guest-memory-hugetlb",
            |p| p.smaps.map_or(0, |m| m.hugetlb_kib),
            "hugetlbfs memory",
            "KSM never merges hugetlbfs pages (libvirt <hugepages/>, QEMU \
             memory-backend-file on /dev/hugepages): these guests trade merging for fewer \
             TLB misses",
            "choose per guest: hugepages or KSM. Transparent huge pages are merged (split \
             first), so removing <hugepages/> lets KSM work",
        ),
        (
            "guest-memory-locked",
            |p| p.smaps.map_or(0, |m| m.locked_kib),
            "locked (mlock, QEMU -overcommit mem-lock=on) memory",
            "KSM still merges locked memory, but locked memory cannot be swapped: after an \
             unmerge it must fit in RAM, so free swap does not protect these guests",
            "count this memory as RAM only when judging an unmerge (see unmerge-risk)",
        ),
    ];
    for (id, field, what, why, todo) in kinds {
        let hit: Vec<&ProcFacts> = cand
            .iter()
            .copied()
            .filter(|p| field(p) >= UNMERGEABLE_MIN_KIB)
            .collect();
        if hit.is_empty() {
            continue;
        }
        let total = sum(&hit, field);
        let severity = if id == "guest-memory-locked" {
            Severity::Info
        } else {
            Severity::Warning
        };
        out.push(
            Finding::new(
                id,
                severity,
                format!(
                    "{} of {what} in {}",
                    human::ubytes(total.saturating_mul(1024)),
                    list(&hit)
                ),
                why,
                todo,
            )
            .num("bytes", total.saturating_mul(1024))
            .num("pids", pids(&hit)),
        );
    }
    let vfio: Vec<&ProcFacts> = cand.iter().copied().filter(|p| p.vfio).collect();
    if !vfio.is_empty() {
        out.push(
            Finding::new(
                "guest-memory-pinned",
                Severity::Warning,
                format!(
                    "{} hold a VFIO device (PCI passthrough): their memory is pinned",
                    list(&vfio)
                ),
                "a device assigned with VFIO needs all guest RAM pinned in place; KSM \
                 cannot merge pinned pages (their extra references fail its check), so \
                 these guests save nothing",
                "nothing to tune: passthrough guests and KSM exclude each other. Leave \
                 them out of your savings estimate",
            )
            .num("pids", pids(&vfio)),
        );
    }
}

/// ksmd's scan rate in pages per second from its settings (`None`:
/// continuous, sleep_millisecs = 0).
pub fn scan_rate(pages_to_scan: u64, sleep_ms: u64) -> Option<f64> {
    (sleep_ms > 0).then(|| pages_to_scan as f64 * 1000.0 / sleep_ms as f64)
}

fn scanning(f: &Facts, state: &KsmState, out: &mut Vec<Finding>) {
    let mergeable_kib = f
        .processes
        .iter()
        .filter_map(|p| p.smaps)
        .fold(0u64, |a, m| a.saturating_add(m.mergeable_rss_kib));
    if state.run == Some(Run::Merge) && !state.advisor_active() && mergeable_kib > 0 {
        if let (Some(n), Some(sleep)) = (state.pages_to_scan, state.sleep_millisecs) {
            let pages = mergeable_kib.saturating_mul(1024) / f.page_size.max(1);
            if let Some(rate) = scan_rate(n, sleep) {
                let secs = if rate > 0.0 {
                    pages as f64 / rate
                } else {
                    f64::INFINITY
                };
                if secs > SLOW_SCAN_SECONDS as f64 {
                    let shown = if secs.is_finite() {
                        format!("{:.0} min", secs / 60.0)
                    } else {
                        "forever (pages_to_scan = 0)".to_string()
                    };
                    let mut finding = Finding::new(
                        "scan-too-slow",
                        Severity::Warning,
                        format!(
                            "one full scan of {} of mergeable memory takes {shown} at \
                             pages_to_scan = {n} per sleep_millisecs = {sleep} ({:.0} pages/s)",
                            human::ubytes(mergeable_kib.saturating_mul(1024)),
                            rate
                        ),
                        format!(
                            "a page is merged only after two full scans (checksum, then \
                             compare), so new guests wait twice that before saving anything; \
                             the limit here is {} min per scan",
                            SLOW_SCAN_SECONDS / 60
                        ),
                        "let a tuner pick the rate (ksmtuned, or the kernel's advisor: \
                         ksmctl set advisor_mode=scan-time), or raise pages_to_scan / lower \
                         sleep_millisecs with ksmctl set",
                    )
                    .num("mergeable_bytes", mergeable_kib.saturating_mul(1024))
                    .num("pages_per_second", rate.round() as u64);
                    if secs.is_finite() {
                        finding = finding.num("full_scan_seconds", secs.round() as u64);
                    }
                    out.push(finding);
                }
            }
        }
    }
    if state.advisor_active() {
        let scripts: Vec<_> = f.tuners.iter().filter(|t| t.script).collect();
        if let Some(t) = scripts.first() {
            out.push(
                Finding::new(
                    "advisor-fights-tuner",
                    Severity::Warning,
                    format!(
                        "advisor_mode = scan-time, and the original ksmtuned script ({}, pid {}) \
                         is running",
                        t.comm, t.pid
                    ),
                    "with the kernel's scan-time advisor on, the kernel owns pages_to_scan and \
                     refuses writes to it (EINVAL); the original script writes it on every \
                     cycle, fails, and logs an error each time",
                    "choose one: ksmctl set advisor_mode=none, or stop the script (our \
                     ksmtuned leaves pages_to_scan to the advisor when it is on)",
                )
                .num("tuner_pid", t.pid),
            );
        }
    }
    if state.general_profit.is_some() && state.smart_scan.is_none() {
        out.push(Finding::new(
            "prctl-exec-defect",
            Severity::Info,
            "this kernel has general_profit but not smart_scan: Linux 6.4 to 6.6",
            "on these kernels a whole-process opt-in (prctl PR_SET_MEMORY_MERGE) is lost \
             when the process calls exec, so systemd's MemoryKSM=yes and ksmctl exec opt \
             nothing in (fixed in 6.7); madvise opt-ins, QEMU's included, work",
            "opt services in from inside (madvise), or use a kernel from 6.7 on",
        ));
    }
}

fn paying(f: &Facts, state: &KsmState, out: &mut Vec<Finding>) {
    let page = f.page_size.max(1);
    if let Some(profit) = state.general_profit {
        if profit < 0 {
            out.push(
                Finding::new(
                    "negative-profit",
                    Severity::Warning,
                    format!(
                        "general_profit = {} (saved {} minus KSM's bookkeeping)",
                        human::bytes(i128::from(profit)),
                        human::ubytes(state.saved_bytes(page))
                    ),
                    "KSM costs more memory than it saves here: every page it scans needs an \
                     rmap item (64 bytes), and little of the memory opted in is duplicate",
                    "opt in only memory with duplicates (ksmctl ps shows each process's \
                     profit), or stop KSM: ksmctl stop (merged pages stay merged)",
                )
                .num("general_profit_bytes", profit)
                .num("saved_bytes", state.saved_bytes(page)),
            );
        }
    }
    let sharing = state.pages_sharing.unwrap_or(0);
    let unshared = state.pages_unshared.unwrap_or(0);
    if unshared.saturating_mul(page) >= COUNTERS_MIN_BYTES
        && unshared > UNSHARED_RATIO.saturating_mul(sharing.max(1))
    {
        out.push(
            Finding::new(
                "wasted-scanning",
                Severity::Warning,
                format!(
                    "pages_unshared = {} against pages_sharing = {} (more than {UNSHARED_RATIO} \
                     to 1)",
                    human::count(unshared),
                    human::count(sharing)
                ),
                "the kernel's documentation: a high ratio of pages_unshared to \
                 pages_sharing means wasted effort; ksmd keeps checksumming pages that \
                 never find a twin, and each costs an rmap item",
                match state.smart_scan {
                    Some(1) => "opt in less (only guests that run the same OS); smart_scan \
                                is already on, so ksmd already skips pages that keep failing"
                        .to_string(),
                    Some(_) => "let ksmd skip pages that keep failing: ksmctl set \
                                smart_scan=1; and opt in less (only guests that run the \
                                same OS)"
                        .to_string(),
                    None => "opt in less (only guests that run the same OS); from Linux \
                             6.7 ksmd can skip such pages itself (smart_scan)"
                        .to_string(),
                },
            )
            .num("pages_unshared", unshared)
            .num("pages_sharing", sharing),
        );
    }
    let volatile = state.pages_volatile.unwrap_or(0);
    let tracked = state
        .pages_shared
        .unwrap_or(0)
        .saturating_add(sharing)
        .saturating_add(unshared)
        .saturating_add(volatile);
    if volatile.saturating_mul(page) >= COUNTERS_MIN_BYTES
        && volatile.saturating_mul(100) > tracked.saturating_mul(VOLATILE_PERCENT)
    {
        out.push(
            Finding::new(
                "volatile-pages",
                Severity::Warning,
                format!(
                    "pages_volatile = {} of {} pages KSM tracks ({}%)",
                    human::count(volatile),
                    human::count(tracked),
                    volatile * 100 / tracked.max(1)
                ),
                "most opted-in memory changes between two scans, faster than KSM can \
                 merge it: the scanning is spent on memory that will not stay merged",
                "opt in memory that stays put (idle guests, page cache of guests), or scan \
                 less often (a higher sleep_millisecs) so only stable pages are compared",
            )
            .num("pages_volatile", volatile)
            .num("pages_tracked", tracked),
        );
    }
    if let Some(chains) = state.stable_node_chains.filter(|&c| c > 0) {
        out.push(
            Finding::new(
                "max-page-sharing-reached",
                Severity::Info,
                format!(
                    "stable_node_chains = {chains}, stable_node_dups = {}: some content has \
                     more than max_page_sharing = {} copies",
                    state.stable_node_dups.unwrap_or(0),
                    state.max_page_sharing.unwrap_or(0)
                ),
                "each KSM page is shared at most max_page_sharing times; beyond that the \
                 kernel keeps duplicate KSM pages in chains, which saves less and costs \
                 some scanning. Empty (zero-filled) pages are the usual cause",
                if state.use_zero_pages == Some(1) {
                    "use_zero_pages is on already, so these are copies of other content: \
                     raising max_page_sharing (ksmctl set --unmerge max_page_sharing=N) \
                     shares them further, at the cost of a full unmerge"
                } else {
                    "ksmctl set use_zero_pages=1 merges empty pages with the zero page \
                     instead; raising max_page_sharing (ksmctl set --unmerge \
                     max_page_sharing=N) needs a full unmerge"
                },
            )
            .num("stable_node_chains", chains)
            .num("stable_node_dups", state.stable_node_dups.unwrap_or(0)),
        );
    }
    if let (Some(nodes), Some(1)) = (f.numa_nodes, state.merge_across_nodes) {
        if nodes > 1 {
            out.push(
                Finding::new(
                    "merge-across-nodes-numa",
                    Severity::Info,
                    format!("merge_across_nodes = 1 on a host with {nodes} NUMA nodes"),
                    "a page merged across nodes lives on one node, and guests on the other \
                     nodes read it remotely; the kernel's documentation suggests 0 on NUMA \
                     hosts unless saving memory matters more than memory latency",
                    "ksmctl set --unmerge merge_across_nodes=0 (it unmerges everything \
                     first: check unmerge-risk)",
                )
                .num("numa_nodes", nodes),
            );
        }
    }
}

fn unmerge_risk(f: &Facts, state: &KsmState, out: &mut Vec<Finding>) {
    let Some(mem) = &f.mem else { return };
    let h = Headroom::new(state, mem, f.page_size);
    if h.fits() {
        return;
    }
    out.push(
        Finding::new(
            "unmerge-risk",
            Severity::Warning,
            h.describe(),
            "unmerging (ksmctl unmerge, run=2, a guest turning merging off, or a mass \
             copy-on-write) gives every saved page back at once: the host would run out \
             of memory, and the out-of-memory killer picks a guest",
            "do not unmerge now (ksmctl unmerge and set --unmerge refuse without \
             --force); add swap or free memory (stop or migrate guests) first",
        )
        .num("saved_bytes", h.saved_bytes)
        .num("available_bytes", h.available_bytes)
        .num("swap_free_bytes", h.swap_free_bytes)
        .num(
            "headroom_bytes",
            i64::try_from(h.headroom_bytes()).unwrap_or(i64::MIN),
        ),
    );
}

mod today;
mod writers;
pub use today::{PROFIT_SUM_SLACK_BYTES, WHOLE_PROCESS_LOSS_MIN_BYTES};

#[cfg(test)]
mod tests;
