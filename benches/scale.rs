//! Scale benchmark: the cost of one ksmtuned adjustment cycle (the
//! daemon's `sample` — /proc/meminfo, one pass over /proc, KSM's files —
//! and the classic decision, with its debug lines written to /dev/null)
//! with 100, 1,000 and 10,000 processes on the host, against the original
//! bash cycle (`bench/ksmtuned-classic-cycle.sh`, a reconstruction that
//! forks pgrep, ps, awk and date as the original did) on the same host.
//!
//! `cargo bench --bench scale [-- COUNTS...]` (root: it raises the process
//! limit). Extra processes are forked children that sleep in pause() and
//! die with the benchmark (PR_SET_PDEATHSIG); four of them are "guests"
//! named qemu-kvm (a symlink to sleep(1)), so both cycles count them.
//! It prints a table of medians of wall time and of CPU time (ours: this
//! thread's; bash: bash and everything it forked, from the children's
//! rusage, per cycle): on a busy machine the wall time also counts waiting
//! for a CPU. It asserts nothing (it is not a test).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use ksmtuned::daemon::{self, DebugLog};
use ksmtuned::ksm::Ksm;
use ksmtuned::policy::classic;
use ksmtuned::{config::Config, process, Root};

const OURS_CYCLES: usize = 60;
const BASH_CYCLES: usize = 15;

fn host_processes(root: &Root) -> usize {
    process::pids(root).map(|p| p.len()).unwrap_or(0)
}

/// Fork `n` children that wait in pause() until killed.
fn fork_sleepers(n: usize, out: &mut Vec<libc::pid_t>) {
    for _ in 0..n {
        // SAFETY: the benchmark is single-threaded here; the child only
        // calls async-signal-safe functions and never returns.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            0 => unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                loop {
                    libc::pause();
                }
            },
            pid => out.push(pid),
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn thread_cpu_ms() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain system call on a valid struct.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6
}

fn children_cpu_ms() -> f64 {
    // SAFETY: plain system call on a zeroed struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(u.ru_utime) + ms(u.ru_stime)
}

/// Our cycle: the daemon's sample and decision, N times; wall and CPU
/// milliseconds of each.
fn ours(root: &Root, ksm: &Ksm, cycles: usize) -> (Vec<f64>, Vec<f64>, u64) {
    let config = Config::default();
    let log = DebugLog {
        enabled: true,
        logfile: Some("/dev/null".into()),
    };
    let mut state = classic::State::default();
    let mut times = Vec::with_capacity(cycles);
    let mut cpu = Vec::with_capacity(cycles);
    let mut committed = 0;
    for _ in 0..cycles {
        let t0 = Instant::now();
        let c0 = thread_cpu_ms();
        let s = daemon::sample(root, ksm).expect("sampling");
        let params = classic::Params::new(&config, s.mem.mem_total);
        let d = classic::adjust(
            &params,
            &mut state,
            s.procs.qemu_rss_kib,
            s.mem.classic_free(),
        );
        for l in &d.debug_lines {
            log.line(l).expect("appending the debug line");
        }
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        cpu.push(thread_cpu_ms() - c0);
        committed = s.procs.qemu_rss_kib;
    }
    (times, cpu, committed)
}

/// The bash cycle, N times in one long-running bash (as the daemon was);
/// wall milliseconds of each, and the mean CPU milliseconds per cycle.
fn bash(script: &Path, cycles: usize) -> (Vec<f64>, f64) {
    let c0 = children_cpu_ms();
    let out = Command::new("bash")
        .arg(script)
        .arg(cycles.to_string())
        .env("DEBUG", "1")
        .env("LOGFILE", "/dev/null")
        .stderr(Stdio::inherit())
        .output()
        .expect("running bash");
    assert!(out.status.success(), "{script:?}: {}", out.status);
    let cpu = (children_cpu_ms() - c0) / cycles as f64;
    let wall = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse::<f64>().expect("microseconds") / 1e3)
        .collect();
    (wall, cpu)
}

/// Let this process fork `target` children: the soft process limit up to
/// the hard one, and pid_max checked.
fn raise_limits(target: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NPROC, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NPROC, &lim);
    }
    if lim.rlim_max < target as u64 + 1000 {
        panic!(
            "RLIMIT_NPROC is {}: raise it (ulimit -u) above {target} first",
            lim.rlim_max
        );
    }
    let pid_max: usize = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    if pid_max < target * 2 {
        panic!(
            "/proc/sys/kernel/pid_max is {pid_max}: raise it to at least {} first",
            target * 2
        );
    }
}

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = if counts.is_empty() {
        vec![100, 1000, 10000]
    } else {
        counts
    };
    let root = Root::default();
    let ksm = Ksm::new(&root);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/ksmtuned-classic-cycle.sh");
    raise_limits(*counts.iter().max().unwrap());

    // Four guests: comm qemu-kvm (a link to sleep), as both cycles count.
    let dir = tempfile::tempdir().unwrap();
    let qemu = dir.path().join("qemu-kvm");
    std::os::unix::fs::symlink("/bin/sleep", &qemu).unwrap();
    let guests: Vec<Child> = (0..4)
        .map(|_| Command::new(&qemu).arg("3600").spawn().unwrap())
        .collect();

    let mut sleepers = Vec::new();
    println!(
        "{:>9} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>6} {:>6}",
        "processes", "ours wall", "p90", "CPU", "bash wall", "p90", "CPU", "wall x", "CPU x"
    );
    for &n in &counts {
        let have = host_processes(&root);
        if have < n {
            fork_sleepers(n - have, &mut sleepers);
        }
        let actual = host_processes(&root);
        ours(&root, &ksm, 5); // warm-up
        let (mut t, mut c, committed) = ours(&root, &ksm, OURS_CYCLES);
        let (mut b, bcpu) = bash(&script, BASH_CYCLES);
        let p90 = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[(v.len() * 9 / 10).min(v.len() - 1)]
        };
        let (om, oc, bm) = (median(&mut t), median(&mut c), median(&mut b));
        println!(
            "{:>9} | {:>9.2} {:>9.2} {:>9.2} | {:>9.1} {:>9.1} {:>9.1} | {:>5.0}x {:>5.0}x",
            actual,
            om,
            p90(&mut t),
            oc,
            bm,
            p90(&mut b),
            bcpu,
            bm / om,
            bcpu / oc
        );
        eprintln!("  (committed {committed} KiB: the QEMU-named processes on the host)");
    }

    for &pid in &sleepers {
        // SAFETY: our own children.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    for &pid in &sleepers {
        // SAFETY: reaping our own children.
        unsafe {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    for mut g in guests {
        let _ = g.kill();
        let _ = g.wait();
    }
}
