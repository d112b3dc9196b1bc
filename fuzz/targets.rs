//! The fuzz targets, shared by the AFL++ harness (`fuzz/src/bin/ksm-fuzz.rs`)
//! and the corpus replay test (`tests/fuzz_corpus.rs`).
//!
//! Each target takes arbitrary bytes, feeds them to one parser the daemon
//! runs on text it reads from the system, and checks what a parser must
//! guarantee: no panic, and whatever it accepts satisfies the invariants the
//! rest of the code relies on (a violated invariant panics, which the fuzzer
//! reports as a crash).

use std::path::Path;

use ksmtuned::config;
use ksmtuned::config::shellvars;
use ksmtuned::kernel::ksm::{AdvisorMode, Knob, Setting};
use ksmtuned::kernel::meminfo::MemInfo;
use ksmtuned::kernel::proc::{self, KsmStat};
use ksmtuned::kernel::procevents::{self, ProcEvent};
use ksmtuned::policy::classic;

/// A fuzz target: arbitrary bytes in, a panic on a bug.
pub type Target = fn(&[u8]);

/// Every target, by the name used for `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("config", config_file),
    ("meminfo", meminfo),
    ("proc_stat", proc_stat),
    ("proc_status", proc_status),
    ("ksm_stat", ksm_stat),
    ("sysfs", sysfs_value),
    ("proc_events", proc_events),
];

/// The daemon reads these files with `read_to_string`: text that is not
/// UTF-8 is refused before any parser sees it.
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `/etc/ksmtuned.conf` (and `/etc/sysconfig/ksm`): shellvars, then the
/// typed configuration; an accepted configuration drives the classic
/// policy within its bounds.
pub fn config_file(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let parsed = shellvars::parse(Path::new("/etc/ksmtuned.conf"), s);
    for a in &parsed.assignments {
        // KSM_MAX_KERNEL_PAGES of /etc/sysconfig/ksm is read this way.
        let _ = shellvars::parse_c_integer(&a.value);
        assert!(!a.name.is_empty() && a.line >= 1);
    }
    let loaded = config::from_parsed(parsed);
    for e in &loaded.errors {
        let _ = e.to_string();
    }
    if !loaded.is_ok() {
        return;
    }
    let c = &loaded.config;
    assert!(c.monitor_interval >= 1, "{c:?}");
    assert!(0 <= c.npages_min && c.npages_min <= c.npages_max, "{c:?}");
    assert!(c.npages_max <= i64::from(u32::MAX), "{c:?}");
    for total in [1, 4096, 16 << 20, u64::MAX] {
        let p = classic::Params::new(c, c.flavour.unwrap_or_default(), total);
        assert!((10..=u64::from(u32::MAX)).contains(&p.sleep), "{p:?}");
        let mut st = classic::State::default();
        for (committed, free) in [(0, 0), (0, u64::MAX), (u64::MAX, 0), (total, total / 2)] {
            let d = classic::adjust(&p, &mut st, committed, free);
            if let Some(n) = d.pages_to_scan {
                assert!(
                    (c.npages_min as u64..=c.npages_max as u64).contains(&n),
                    "{n} {c:?}"
                );
            }
        }
    }
}

/// `/proc/meminfo`.
pub fn meminfo(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(m) = MemInfo::parse(s) {
        assert!(m.mem_total > 0);
        assert!(m.classic_free() >= m.mem_free);
    }
}

/// `/proc/PID/stat`.
pub fn proc_stat(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let _ = proc::Stat::parse(s);
}

/// `/proc/PID/status`, and the QEMU name test the scan applies to `comm`.
pub fn proc_status(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let _ = proc::parse_status_rss_kib(s);
    let comm = s.lines().next().unwrap_or("");
    let _ = proc::is_qemu_comm(comm);
}

/// `/proc/PID/ksm_stat`.
pub fn ksm_stat(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(k) = KsmStat::parse(s) {
        let _ = serde_json::to_string(&k).expect("KsmStat serialises");
    }
}

/// Values of `/sys/kernel/mm/ksm/*` and `KEY=VALUE` settings from the
/// command line: whatever is accepted prints back to the same setting.
pub fn sysfs_value(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Some(m) = AdvisorMode::parse_selection(s) {
        assert_eq!(AdvisorMode::parse_selection(m.as_str()), Some(m));
    }
    for &knob in Knob::ALL {
        if let Ok(setting) = knob.parse(s) {
            assert_eq!(setting.knob, knob);
            let again = Setting::parse_assignment(&setting.to_string())
                .unwrap_or_else(|e| panic!("{setting} does not parse back: {e}"));
            assert_eq!(again, setting);
        }
    }
    if let Ok(setting) = Setting::parse_assignment(s) {
        assert_eq!(
            Setting::parse_assignment(&setting.to_string()).ok(),
            Some(setting)
        );
    }
}

/// A datagram from the kernel's process events socket (binary: netlink
/// header, connector header, event). Every event takes at least 40 bytes
/// (16 + 20 + its 4-byte type), one with pids at least 60, so there cannot
/// be more than that allows.
pub fn proc_events(data: &[u8]) {
    let mut out = Vec::new();
    let _ = procevents::parse(data, &mut out);
    assert!(
        out.len() <= data.len() / 40,
        "{} events from {} bytes",
        out.len(),
        data.len()
    );
    let with_pids = out
        .iter()
        .filter(|e| !matches!(e, ProcEvent::Other | ProcEvent::Ack { .. }))
        .count();
    assert!(
        with_pids <= data.len() / 60,
        "{out:?} from {} bytes",
        data.len()
    );
}
