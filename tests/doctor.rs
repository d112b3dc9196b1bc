//! `ksmctl doctor` and the unmerge rails, end to end: each finding
//! produced for real on this kernel where it can be (probes with shared,
//! hugetlb, locked or unmerged memory, ksmd stopped, the advisor against
//! a tuner script, a read-only /sys in a private mount namespace), and
//! over fixture trees where it cannot (old kernels, NUMA, tight memory,
//! a masked unit). A healthy host gets no warning; bad files never panic.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use ksmtuned::doctor::checks::IDS;
use ksmtuned::kernel::ksm::{Knob, Ksm, Run, Setting};
use ksmtuned::Root;
use support::{copy_tree, real_ksm, wait_for, Experiment, Kill, Probe, KSMCTL};

const KSM: &str = "sys/kernel/mm/ksm";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ksmctl(root: Option<&Path>, args: &[&str]) -> Out {
    let mut c = Command::new(KSMCTL);
    if let Some(r) = root {
        c.arg("--root").arg(r);
    }
    let o = c.args(args).env_remove("KSM_ROOT").output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `ksmctl doctor --json`: the exit status and the report, checked for
/// shape (known ids, exit status agreeing with `attention`).
fn doctor(root: Option<&Path>) -> (i32, Value) {
    let o = ksmctl(root, &["doctor", "--json"]);
    assert!(
        o.code == 0 || o.code == 4,
        "exit {}: {}{}",
        o.code,
        o.stdout,
        o.stderr
    );
    let v: Value =
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", o.stdout));
    assert_eq!(v["attention"], o.code == 4, "{}", o.stdout);
    for f in v["findings"].as_array().unwrap() {
        let id = f["id"].as_str().unwrap();
        assert!(IDS.contains(&id), "unknown id {id}");
        for k in ["seen", "why", "what_to_do"] {
            assert!(!f[k].as_str().unwrap().is_empty(), "{id}: empty {k}");
        }
    }
    (o.code, v)
}

fn finding<'a>(v: &'a Value, id: &str) -> Option<&'a Value> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
}

fn must<'a>(v: &'a Value, id: &str) -> &'a Value {
    finding(v, id).unwrap_or_else(|| panic!("no {id} in {v:#}"))
}

fn ids(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

fn warnings(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "warning")
        .map(|f| format!("{}: {}", f["id"], f["seen"]))
        .collect()
}

fn fixture(era: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(era),
        dir.path(),
    );
    dir
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn meminfo(avail_kib: u64, swap_free_kib: u64) -> String {
    format!(
        "MemTotal: 4194304 kB\nMemFree: {avail_kib} kB\nMemAvailable: {avail_kib} kB\n\
         Buffers: 0 kB\nCached: 0 kB\nSwapTotal: {swap_free_kib} kB\nSwapFree: {swap_free_kib} kB\n"
    )
}

// ---------------------------------------------------------------- fixtures

#[test]
fn old_kernels_and_bad_files_never_panic() {
    for era in ["linux-2.6.32", "linux-5.15", "linux-6.18", "obs-6.18"] {
        let dir = fixture(era);
        let (_, v) = doctor(Some(dir.path()));
        // Text and JSON agree on the findings.
        let text = ksmctl(Some(dir.path()), &["doctor"]);
        for id in ids(&v) {
            assert!(text.stdout.contains(&id), "{era}: {id} not in the text");
        }
    }
    // No KSM at all.
    let empty = tempfile::tempdir().unwrap();
    let (code, v) = doctor(Some(empty.path()));
    assert_eq!(code, 4);
    assert!(must(&v, "ksm-not-built")["seen"]
        .as_str()
        .unwrap()
        .ends_with("/sys/kernel/mm/ksm does not exist"));
    // Garbage in KSM's files, meminfo, a process's files.
    let dir = fixture("linux-6.18");
    let root = dir.path();
    write(root, "proc/meminfo", "MemTotal: lots\n");
    write(root, "proc/4242/ksm_stat", "ksm_rmap_items x\n");
    write(
        root,
        "proc/4242/smaps",
        "zz-yy rw-s\nSize: huge kB\nVmFlags: ht\n",
    );
    write(root, "proc/4242/cmdline", "\u{0}\u{0}");
    write(root, "sys/devices/system/node/online", "0-x\n");
    write(root, "etc/ksmtuned.conf", "KSM_THRES_COEF=abc\n");
    let (code, v) = doctor(Some(root));
    assert_eq!(code, 4);
    assert!(must(&v, "tuner-config-invalid")["seen"]
        .as_str()
        .unwrap()
        .contains("KSM_THRES_COEF"));
    write(root, &format!("{KSM}/run"), "garbage\n");
    let (code, v) = doctor(Some(root));
    assert_eq!(code, 4);
    assert!(must(&v, "ksm-unreadable")["seen"]
        .as_str()
        .unwrap()
        .contains("garbage"));
}

#[test]
fn numa_host_merging_across_nodes() {
    let dir = fixture("linux-5.15");
    write(dir.path(), &format!("{KSM}/merge_across_nodes"), "1\n");
    let (_, v) = doctor(Some(dir.path()));
    assert!(finding(&v, "merge-across-nodes-numa").is_none());
    write(dir.path(), "sys/devices/system/node/online", "0-1\n");
    let (_, v) = doctor(Some(dir.path()));
    assert_eq!(
        must(&v, "merge-across-nodes-numa")["numbers"]["numa_nodes"],
        2
    );
    // The fixture's own setting (0): nothing to say.
    write(dir.path(), &format!("{KSM}/merge_across_nodes"), "0\n");
    let (_, v) = doctor(Some(dir.path()));
    assert!(finding(&v, "merge-across-nodes-numa").is_none());
}

#[test]
fn kernel_6_5_loses_prctl_across_exec() {
    let dir = fixture("linux-6.18");
    for gone in [
        "smart_scan",
        "pages_skipped",
        "advisor_mode",
        "advisor_max_cpu",
        "advisor_target_scan_time",
        "advisor_min_pages_to_scan",
        "advisor_max_pages_to_scan",
    ] {
        fs::remove_file(dir.path().join(KSM).join(gone)).unwrap();
    }
    let (_, v) = doctor(Some(dir.path()));
    must(&v, "prctl-exec-defect");
    let (_, v) = doctor(Some(fixture("linux-6.18").path()));
    assert!(finding(&v, "prctl-exec-defect").is_none());
}

#[test]
fn stopped_by_masked_unit_or_by_the_classic_rule() {
    let dir = fixture("linux-6.18");
    let root = dir.path();
    write(root, &format!("{KSM}/run"), "0\n");
    // The fixture's tuner (pid 4242 in run/ksmtuned/ksmtuned.pid) and 24 GiB with
    // 20 GiB free: classic ksmtuned keeps ksmd stopped.
    let (_, v) = doctor(Some(root));
    let f = must(&v, "ksmd-stopped-by-tuner");
    assert_eq!(f["severity"], "info");
    assert_eq!(f["numbers"]["total_bytes"], 24594036u64 * 1024);
    assert_eq!(
        f["numbers"]["threshold_bytes"],
        24594036u64 * 20 / 100 * 1024
    );
    assert_eq!(f["numbers"]["tuner_pid"], 4242);
    let seen = f["seen"].as_str().unwrap();
    assert!(
        seen.contains("< total 23.5 GiB, and free 20.1 GiB > threshold"),
        "{seen}"
    );
    // Masked: that is the reason, whatever runs.
    let unit = root.join("etc/systemd/system/ksm.service");
    fs::create_dir_all(unit.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/dev/null", &unit).unwrap();
    let (_, v) = doctor(Some(root));
    must(&v, "ksm-unit-masked");
    assert!(finding(&v, "ksmd-stopped-by-tuner").is_none());
}

/// SELinux as a RHEL host shows it: enforcing, the targeted policy's
/// module store with the distribution's ksmtuned module, the tuner in
/// ksmtuned_t: a warning naming the fix; this package's module at
/// priority 200: a note; Debian's disabled module: a note; no selinuxfs:
/// nothing. (This host has no SELinux: the files are a fixture's; the
/// live-policy question is a unit test's and the enforcing guest's.)
#[test]
fn selinux_mode_and_module_from_selinuxfs_and_the_module_store() {
    let dir = fixture("linux-6.18");
    let root = dir.path();
    let (_, v) = doctor(Some(root));
    assert!(finding(&v, "selinux").is_none(), "no selinuxfs: {v:#}");
    write(root, "sys/fs/selinux/enforce", "1");
    write(root, "sys/fs/selinux/mls", "1");
    write(
        root,
        "etc/selinux/config",
        "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
    );
    let store = "var/lib/selinux/targeted/active/modules";
    write(root, &format!("{store}/100/ksmtuned/cil"), "(compressed)");
    write(root, &format!("{store}/100/base/cil"), "(compressed)");
    write(
        root,
        "proc/4242/attr/current",
        "system_u:system_r:ksmtuned_t:s0\0",
    );
    let (code, v) = doctor(Some(root));
    let f = must(&v, "selinux");
    assert_eq!(f["severity"], "warning", "{f:#}");
    assert_eq!(code, 4);
    assert_eq!(
        f["seen"],
        "SELinux is enforcing (policy targeted); only the distribution's ksmtuned module is \
         loaded (ksmtuned_t without ksmtuned_metrics_port_t; module store priority 100); \
         ksmtuned (pid 4242) runs in ksmtuned_t"
    );
    assert_eq!(f["numbers"]["enforcing"], 1);
    write(root, &format!("{store}/200/ksmtuned/cil"), "(compressed)");
    let (_, v) = doctor(Some(root));
    let f = must(&v, "selinux");
    assert_eq!(f["severity"], "info");
    assert_eq!(f["numbers"]["own_module_loaded"], 1);
    // Debian: policy "default", the module disabled, the tuner unconfined.
    fs::remove_dir_all(root.join(format!("{store}/200"))).unwrap();
    write(root, "etc/selinux/config", "SELINUXTYPE=default\n");
    let store = "var/lib/selinux/default/active/modules";
    write(root, &format!("{store}/100/ksmtuned/cil"), "(compressed)");
    write(root, &format!("{store}/disabled/ksmtuned"), "");
    write(root, "sys/fs/selinux/enforce", "0");
    write(
        root,
        "proc/4242/attr/current",
        "system_u:system_r:unconfined_service_t:s0\0",
    );
    let (_, v) = doctor(Some(root));
    let f = must(&v, "selinux");
    assert_eq!(f["severity"], "info");
    assert_eq!(
        f["seen"],
        "SELinux is permissive (policy default); the distribution's ksmtuned module is \
         installed but disabled, as Debian ships it; ksmtuned (pid 4242) runs in \
         unconfined_service_t"
    );
    // The text view has it too.
    let o = ksmctl(Some(root), &["doctor"]);
    assert!(o.stdout.contains("SELinux is permissive"), "{}", o.stdout);
}

/// PCI passthrough cannot be produced here (no device to assign): a QEMU
/// process in a fixture whose command line assigns one.
#[test]
fn passthrough_guest_is_pinned() {
    let dir = fixture("linux-6.18");
    let root = dir.path();
    write(root, "proc/777/comm", "qemu-system-x86\n");
    write(
        root,
        "proc/777/cmdline",
        "/usr/bin/qemu-system-x86_64\0-name\0guest=gpu-vm\0-device\0vfio-pci,host=0000:01:00.0\0",
    );
    write(
        root,
        "proc/777/status",
        "Name:\tqemu-system-x86\nVmRSS:\t8388608 kB\n",
    );
    let (code, v) = doctor(Some(root));
    assert_eq!(code, 4);
    let f = must(&v, "guest-memory-pinned");
    assert_eq!(f["numbers"]["pids"], serde_json::json!([777]));
    assert!(
        f["seen"].as_str().unwrap().contains("guest gpu-vm"),
        "{f:#}"
    );
}

/// Services with much anonymous memory and nothing opted in: found by
/// their cgroup, summed per unit, suggested for MemoryKSM=yes after an
/// estimate; a service that opted in, a small one, and processes outside
/// any service are not named.
#[test]
fn services_that_could_opt_in_to_ksm() {
    let dir = fixture("linux-6.18");
    let root = dir.path();
    let proc_ = |pid: u32, comm: &str, cgroup: &str, anon_kib: u64, ksm_stat: Option<&str>| {
        write(root, &format!("proc/{pid}/comm"), &format!("{comm}\n"));
        write(root, &format!("proc/{pid}/cmdline"), &format!("{comm}\0"));
        write(
            root,
            &format!("proc/{pid}/cgroup"),
            &format!("0::{cgroup}\n"),
        );
        write(
            root,
            &format!("proc/{pid}/status"),
            &format!("Name:\t{comm}\nVmRSS:\t{anon_kib} kB\nRssAnon:\t{anon_kib} kB\n"),
        );
        if let Some(s) = ksm_stat {
            write(root, &format!("proc/{pid}/ksm_stat"), s);
        }
    };
    let not_opted = "ksm_rmap_items 0\nksm_zero_pages 0\nksm_merging_pages 0\n\
ksm_process_profit 0\nksm_merge_any: no\nksm_mergeable: no\n";
    let opted = "ksm_rmap_items 10\nksm_zero_pages 0\nksm_merging_pages 0\n\
ksm_process_profit 0\nksm_merge_any: yes\nksm_mergeable: yes\n";
    proc_(
        801,
        "postgres",
        "/system.slice/postgresql@15-main.service",
        300 * 1024,
        Some(not_opted),
    );
    proc_(
        802,
        "postgres",
        "/system.slice/postgresql@15-main.service",
        200 * 1024,
        Some(not_opted),
    );
    proc_(
        803,
        "java",
        "/system.slice/app.service",
        2 * 1024 * 1024,
        Some(opted),
    );
    proc_(
        804,
        "tiny",
        "/system.slice/tiny.service",
        1024,
        Some(not_opted),
    );
    proc_(
        805,
        "bash",
        "/user.slice/user-0.slice/session-1.scope",
        4 * 1024 * 1024,
        None,
    );
    let (_, v) = doctor(Some(root));
    if !v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == "not-root")
    {
        let f = must(&v, "service-could-opt-in");
        let seen = f["seen"].as_str().unwrap();
        assert!(
            seen.starts_with("1 systemd service(s) hold 500 MiB"),
            "{f:#}"
        );
        assert!(seen.contains("postgresql@15-main.service"), "{f:#}");
        assert_eq!(f["numbers"]["pids"], serde_json::json!([801, 802]));
        assert!(
            f["what_to_do"]
                .as_str()
                .unwrap()
                .contains("ksmctl estimate --all-anonymous 801 802"),
            "{f:#}"
        );
    } else {
        eprintln!("SKIPPED: services_that_could_opt_in_to_ksm: needs root (the finding does)");
    }
}

/// The rail over a fixture: 214 pages saved (856 KiB with 4 KiB pages)
/// against 100 KiB available and no swap.
#[test]
fn unmerge_refused_when_memory_is_tight() {
    let dir = fixture("linux-6.18");
    let root = dir.path();
    let page = ksmtuned::kernel::sys::page_size();
    write(root, "proc/meminfo", &meminfo(100, 0));
    let (code, v) = doctor(Some(root));
    assert_eq!(code, 4);
    let f = must(&v, "unmerge-risk");
    assert_eq!(f["numbers"]["saved_bytes"], 214 * page);
    assert_eq!(f["numbers"]["available_bytes"], 100 * 1024);
    assert_eq!(
        f["numbers"]["headroom_bytes"],
        100 * 1024 - 214 * page as i64
    );
    let run_file = root.join(KSM).join("run");
    for args in [
        &["unmerge"][..],
        &["set", "--unmerge", "max_page_sharing=512"],
    ] {
        let o = ksmctl(Some(root), args);
        assert_eq!(o.code, 1, "{args:?}: {}", o.stderr);
        assert!(
            o.stderr
                .starts_with("ksmctl: refusing to unmerge: unmerging would give back"),
            "{}",
            o.stderr
        );
        assert!(
            o.stderr.contains("(100 KiB MemAvailable + 0 B free swap)")
                && o.stderr.contains("--force"),
            "{}",
            o.stderr
        );
        assert_eq!(
            fs::read_to_string(&run_file).unwrap().trim(),
            "1",
            "{args:?} wrote run"
        );
        assert_eq!(
            fs::read_to_string(root.join(KSM).join("max_page_sharing"))
                .unwrap()
                .trim(),
            "256"
        );
    }
    // Swap makes room: allowed.
    write(root, "proc/meminfo", &meminfo(100, 1 << 20));
    let (_, v) = doctor(Some(root));
    assert!(finding(&v, "unmerge-risk").is_none());
    write(root, "proc/meminfo", &meminfo(100, 0));
    // --force goes ahead.
    let o = ksmctl(
        Some(root),
        &["set", "--unmerge", "--force", "max_page_sharing=512"],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        fs::read_to_string(root.join(KSM).join("max_page_sharing"))
            .unwrap()
            .trim(),
        "512"
    );
    let o = ksmctl(Some(root), &["unmerge", "--force"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(fs::read_to_string(&run_file).unwrap().trim(), "2");
    // Without a readable meminfo the rail cannot judge: refused.
    write(root, &format!("{KSM}/run"), "1\n");
    fs::remove_file(root.join("proc/meminfo")).unwrap();
    let o = ksmctl(Some(root), &["unmerge"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("refusing to unmerge without knowing"),
        "{}",
        o.stderr
    );
    // run=2 written with set is the same unmerge.
    write(root, "proc/meminfo", &meminfo(100, 0));
    for v in ["run=2", "run=unmerge"] {
        let o = ksmctl(Some(root), &["set", v]);
        assert_eq!(o.code, 1, "{v}: {}", o.stderr);
        assert!(
            o.stderr.starts_with("ksmctl: refusing to unmerge"),
            "{}",
            o.stderr
        );
        assert_eq!(fs::read_to_string(&run_file).unwrap().trim(), "1");
    }
    let o = ksmctl(Some(root), &["set", "--force", "run=2"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(fs::read_to_string(&run_file).unwrap().trim(), "2");
}

// ---------------------------------------------------------- the real kernel

/// A `ksm-testkit probe` with extra arguments (backing, locking, a label).
fn probe(args: &[&str]) -> Probe {
    Probe::with_args(args)
}

fn pids_of(f: &Value) -> Vec<u64> {
    f["numbers"]["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect()
}

#[test]
fn real_guest_memory_ksm_cannot_merge() {
    let Some(ksm) = real_ksm("real_guest_memory_ksm_cannot_merge") else {
        return;
    };
    // Reading only, but under the lock: the other real tests must not see
    // these probes (nor these tests theirs).
    let _exp = Experiment::begin(&ksm).unwrap();
    let shared = probe(&[
        "--comm",
        "qemu-kvm",
        "--pages",
        "8192",
        "--backing",
        "shared",
    ]);
    let locked = probe(&["--comm", "qemu-kvm", "--pages", "8192", "--lock"]);
    let off = probe(&[
        "--comm",
        "qemu-kvm",
        "--merge",
        "none",
        "--pages",
        "16",
        "--",
        "-machine",
        "pc,mem-merge=off",
    ]);
    let (_, v) = doctor(None);
    let f = must(&v, "guest-memory-shared");
    assert!(pids_of(f).contains(&u64::from(shared.pid)), "{f:#}");
    assert!(f["numbers"]["bytes"].as_u64().unwrap() >= 32 << 20);
    let f = must(&v, "guest-memory-locked");
    assert!(pids_of(f).contains(&u64::from(locked.pid)), "{f:#}");
    assert!(!pids_of(f).contains(&u64::from(shared.pid)));
    let f = must(&v, "guest-merge-off");
    assert!(pids_of(f).contains(&u64::from(off.pid)), "{f:#}");
    assert!(
        !pids_of(f).contains(&u64::from(shared.pid)),
        "shared memory explains it"
    );
    assert!(!pids_of(f).contains(&u64::from(locked.pid)));
}

/// `/proc/sys/vm/nr_hugepages` put back on drop.
struct HugePages(String);

impl Drop for HugePages {
    fn drop(&mut self) {
        if let Err(e) = fs::write("/proc/sys/vm/nr_hugepages", &self.0) {
            eprintln!(
                "warning: could not restore nr_hugepages to {}: {e}",
                self.0.trim()
            );
        }
    }
}

#[test]
fn real_hugetlb_guest_memory() {
    let Some(ksm) = real_ksm("real_hugetlb_guest_memory") else {
        return;
    };
    let _exp = Experiment::begin(&ksm).unwrap();
    let path = "/proc/sys/vm/nr_hugepages";
    let Ok(before) = fs::read_to_string(path) else {
        eprintln!("SKIPPED: real_hugetlb_guest_memory: no {path} (kernel without hugetlbfs)");
        return;
    };
    let _restore = HugePages(before.clone());
    let want = before.trim().parse::<u64>().unwrap_or(0) + 16;
    if fs::write(path, want.to_string()).is_err() {
        eprintln!("SKIPPED: real_hugetlb_guest_memory: cannot reserve huge pages in {path}");
        return;
    }
    let free = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("HugePages_Free:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    if free < 16 {
        eprintln!(
            "SKIPPED: real_hugetlb_guest_memory: only {free} free huge pages after asking \
             for {want} (memory fragmented)"
        );
        return;
    }
    let p = probe(&[
        "--comm",
        "qemu-kvm",
        "--pages",
        "8192",
        "--backing",
        "hugetlb",
    ]);
    let (_, v) = doctor(None);
    let f = must(&v, "guest-memory-hugetlb");
    assert!(pids_of(f).contains(&u64::from(p.pid)), "{f:#}");
    assert!(f["numbers"]["bytes"].as_u64().unwrap() >= 32 << 20, "{f:#}");
}

const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// THP's mode put back on drop (panics included).
struct ThpMode(String);

impl ThpMode {
    /// Set `mode`, keeping the current one; `None` without THP.
    fn set(mode: &str) -> Option<ThpMode> {
        let now = fs::read_to_string(THP_ENABLED).ok()?;
        let before = ksmtuned::kernel::thp::selected(&now)?;
        let guard = ThpMode(before);
        fs::write(THP_ENABLED, mode).ok()?;
        Some(guard)
    }
}

impl Drop for ThpMode {
    fn drop(&mut self) {
        if let Err(e) = fs::write(THP_ENABLED, &self.0) {
            eprintln!(
                "warning: could not restore {THP_ENABLED} to {}: {e}",
                self.0
            );
        }
    }
}

/// A process mapping THP-aligned duplicate memory under THP=always: doctor
/// names it with the huge pages in its mergeable areas and the split
/// counters, and warns (64 MiB and more under `always`).
#[test]
fn real_huge_pages_in_mergeable_memory() {
    let Some(ksm) = real_ksm("real_huge_pages_in_mergeable_memory") else {
        return;
    };
    let _exp = Experiment::begin(&ksm).unwrap();
    let Some(_thp) = ThpMode::set("always") else {
        eprintln!("SKIPPED: real_huge_pages_in_mergeable_memory: no writable {THP_ENABLED}");
        return;
    };
    // 96 MiB of identical pages, opted in with madvise.
    let p = probe(&["--pages", "24576", "--backing", "thp"]);
    let huge_kib = fs::read_to_string(format!("/proc/{}/smaps", p.pid))
        .map(|t| ksmtuned::kernel::smaps::parse(&t).mergeable_anon_huge_kib)
        .unwrap_or(0);
    if huge_kib < 64 * 1024 {
        eprintln!(
            "SKIPPED: real_huge_pages_in_mergeable_memory: the kernel gave the probe only \
             {huge_kib} KiB of huge pages (memory fragmented?)"
        );
        return;
    }
    let (_, v) = doctor(None);
    let f = must(&v, "thp-in-mergeable-memory");
    assert_eq!(f["severity"], "warning", "{f:#}");
    assert!(pids_of(f).contains(&u64::from(p.pid)), "{f:#}");
    assert!(
        f["numbers"]["mergeable_huge_bytes"].as_u64().unwrap() >= huge_kib * 1024,
        "{f:#}"
    );
    assert_eq!(f["numbers"]["thp_always"], 1);
    assert!(f["numbers"]["thp_split_page"].is_u64(), "{f:#}");
    assert!(f["seen"]
        .as_str()
        .unwrap()
        .starts_with("transparent huge pages are always: "));
}

/// Linux 6.14+'s ksm_stat tells a whole-process opt-in (prctl) from an
/// madvise one: doctor names the prctl probe, and counts the madvise one.
#[test]
fn real_whole_process_opt_in() {
    let Some(ksm) = real_ksm("real_whole_process_opt_in") else {
        return;
    };
    let _exp = Experiment::begin(&ksm).unwrap();
    let whole = probe(&["--merge", "prctl", "--pages", "64"]);
    let some = probe(&["--merge", "madvise", "--pages", "64"]);
    let stat = fs::read_to_string(format!("/proc/{}/ksm_stat", whole.pid)).unwrap_or_default();
    if !stat.contains("ksm_merge_any") {
        eprintln!(
            "SKIPPED: real_whole_process_opt_in: this kernel's ksm_stat has no ksm_merge_any \
             (before Linux 6.14)"
        );
        return;
    }
    let (_, v) = doctor(None);
    let f = must(&v, "whole-process-opt-in");
    assert!(pids_of(f).contains(&u64::from(whole.pid)), "{f:#}");
    assert!(!pids_of(f).contains(&u64::from(some.pid)), "{f:#}");
    assert!(f["numbers"]["madvise_processes"].as_u64().unwrap() >= 1);
}

/// Set knobs for an experiment (validated like user input).
fn set(ksm: &Ksm, pairs: &[(Knob, &str)]) {
    for (k, v) in pairs {
        ksm.write(k.parse(v).unwrap()).unwrap();
    }
}

/// A healthy host: ksmd running at a sane rate, a probe merged, nothing
/// else wrong: no warning, exit 0. Then the same host with ksmd stopped,
/// and with ksmd crawling.
#[test]
fn real_healthy_then_stopped_then_slow() {
    let Some(ksm) = real_ksm("real_healthy_then_stopped_then_slow") else {
        return;
    };
    let exp = Experiment::begin(&ksm).unwrap();
    if exp.before().advisor_mode.is_some() {
        set(&ksm, &[(Knob::AdvisorMode, "none")]);
    }
    set(
        &ksm,
        &[
            (Knob::PagesToScan, "1000"),
            (Knob::SleepMillisecs, "10"),
            (Knob::Run, "1"),
        ],
    );
    let probe = Probe::start("qemu-kvm", 4096, "madvise", 1);
    wait_for("the probe's pages to merge", 60, || probe.merging() > 1000);
    let (code, v) = doctor(None);
    assert_eq!(warnings(&v), Vec::<String>::new(), "{v:#}");
    assert_eq!(code, 0);
    let text = ksmctl(None, &["doctor"]);
    assert!(
        text.stdout.starts_with("Nothing needs attention"),
        "{}",
        text.stdout
    );
    assert_eq!(text.code, 0);

    // Stopped, no tuner: the guest's memory waits for nothing.
    ksm.write(Setting::run(Run::Stop)).unwrap();
    let (code, v) = doctor(None);
    let f = must(&v, "ksmd-stopped");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["numbers"]["run"], 0);
    assert_eq!(code, 4);

    // Crawling: 1 page per second over 16 MiB is more than an hour a scan.
    set(
        &ksm,
        &[
            (Knob::PagesToScan, "1"),
            (Knob::SleepMillisecs, "1000"),
            (Knob::Run, "1"),
        ],
    );
    let (code, v) = doctor(None);
    let f = must(&v, "scan-too-slow");
    assert_eq!(f["numbers"]["pages_per_second"], 1);
    assert!(
        f["numbers"]["full_scan_seconds"].as_u64().unwrap() >= 4096,
        "{f:#}"
    );
    assert_eq!(code, 4);
    drop(probe);
    exp.restore().unwrap();
}

/// A script named ksmtuned (as the original is) while the kernel's
/// advisor owns pages_to_scan; with ksmd stopped, the classic rule's
/// numbers for this host.
#[test]
fn real_advisor_against_the_original_script() {
    let Some(ksm) = real_ksm("real_advisor_against_the_original_script") else {
        return;
    };
    let exp = Experiment::begin(&ksm).unwrap();
    if exp.before().advisor_mode.is_none() {
        eprintln!(
            "SKIPPED: real_advisor_against_the_original_script: this kernel has no \
             scan-time advisor (Linux 6.8+)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script: PathBuf = dir.path().join("ksmtuned");
    fs::write(&script, "#!/bin/sh\nread x\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    // The configuration it names (the host's /etc/ksmtuned.conf is
    // not this test's): the defaults, classic.
    let conf = dir.path().join("ksmtuned.conf");
    fs::write(&conf, "# defaults\n").unwrap();
    let tuner = Kill(
        Command::new(&script)
            .arg("--config")
            .arg(&conf)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = tuner.0.id();
    wait_for("the script to be named ksmtuned", 10, || {
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "ksmtuned")
    });
    set(&ksm, &[(Knob::AdvisorMode, "scan-time"), (Knob::Run, "0")]);
    let (code, v) = doctor(None);
    drop(tuner);
    exp.restore().unwrap();
    let f = must(&v, "advisor-fights-tuner");
    assert_eq!(f["numbers"]["tuner_pid"], pid);
    assert_eq!(code, 4);
    // The advisor's settings, as the kernel has them.
    let f = must(&v, "advisor-settings");
    let max_cpu = ksm.read().unwrap().advisor_max_cpu.unwrap();
    assert_eq!(f["numbers"]["advisor_max_cpu_percent"], max_cpu, "{f:#}");
    assert!(f["seen"]
        .as_str()
        .unwrap()
        .contains(&format!("advisor_max_cpu = {max_cpu}%")));
    // This host has room: classic ksmtuned would keep ksmd stopped.
    let f = must(&v, "ksmd-stopped-by-tuner");
    assert_eq!(f["numbers"]["tuner_pid"], pid);
    let mem = ksmtuned::kernel::meminfo::MemInfo::read(&Root::default()).unwrap();
    assert_eq!(f["numbers"]["total_bytes"], mem.mem_total * 1024);
    assert_eq!(
        f["numbers"]["threshold_bytes"],
        (mem.mem_total * 20 / 100).max(2048) * 1024
    );
}

/// A container's view: /sys/kernel/mm/ksm bind-mounted read-only in a
/// private mount namespace (nothing changes for the rest of the host).
#[test]
fn real_read_only_ksm_as_in_a_container() {
    let Some(ksm) = real_ksm("real_read_only_ksm_as_in_a_container") else {
        return;
    };
    let _exp = Experiment::begin(&ksm).unwrap();
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind -o ro /sys/kernel/mm/ksm /sys/kernel/mm/ksm && exec {KSMCTL} doctor --json"
        ))
        .output();
    let o = match o {
        Ok(o) if o.status.code().is_some_and(|c| c == 0 || c == 4) => o,
        Ok(o) => {
            eprintln!(
                "SKIPPED: real_read_only_ksm_as_in_a_container: cannot bind-mount \
                 /sys/kernel/mm/ksm read-only in a mount namespace: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED: real_read_only_ksm_as_in_a_container: no unshare(1): {e}");
            return;
        }
    };
    assert_eq!(o.status.code(), Some(4));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = must(&v, "ksm-read-only");
    assert!(f["seen"]
        .as_str()
        .unwrap()
        .contains("/sys/kernel/mm/ksm/run cannot be written"));
    // Outside, the host's KSM is writable as before.
    let (_, v) = doctor(None);
    assert!(finding(&v, "ksm-read-only").is_none());
}

// ------------------------------------------------------------------- docs

fn troubleshooting() -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/troubleshooting.md"))
        .unwrap()
}

/// docs/troubleshooting.md has one section per finding, in the checks'
/// order, and no section for a finding that does not exist.
#[test]
fn troubleshooting_has_a_section_per_finding() {
    let doc = troubleshooting();
    let sections: Vec<&str> = doc.lines().filter_map(|l| l.strip_prefix("### ")).collect();
    assert_eq!(sections, IDS, "sections of docs/troubleshooting.md");
}

/// The outputs the page shows are the real ones.
#[test]
fn troubleshooting_examples_are_real_output() {
    if ksmtuned::kernel::sys::euid() != 0 || ksmtuned::kernel::sys::page_size() != 4096 {
        eprintln!("SKIPPED: the example was taken as root with 4 KiB pages");
        return;
    }
    let doc = troubleshooting();
    let example = doc
        .split("<!-- doctor-example -->\n```\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the doctor example block");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/linux-6.18");
    let o = ksmctl(Some(&fixture), &["doctor"]);
    assert_eq!(o.code, 4);
    assert_eq!(
        o.stdout, example,
        "regenerate the example in docs/troubleshooting.md"
    );
    // The rail's refusal, up to the "..." the page cuts it at.
    let shown = doc
        .lines()
        .find(|l| l.starts_with("ksmctl: refusing to unmerge: "))
        .and_then(|l| l.strip_suffix("; ..."))
        .expect("the refusal line");
    let dir = fixture_copy_with_meminfo(100, 0);
    let o = ksmctl(Some(dir.path()), &["unmerge"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.starts_with(shown), "{}\nvs\n{shown}", o.stderr);
}

fn fixture_copy_with_meminfo(avail_kib: u64, swap_free_kib: u64) -> TempDir {
    let dir = fixture("linux-6.18");
    write(
        dir.path(),
        "proc/meminfo",
        &meminfo(avail_kib, swap_free_kib),
    );
    dir
}
