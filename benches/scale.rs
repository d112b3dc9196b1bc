//! Scale benchmark: the cost of one ksmtuned adjustment cycle (the
//! daemon's sample (a `Sampler` for the classic policy) — /proc/meminfo, the QEMU processes and their RSS,
//! KSM's files — and the classic decision, with its debug lines written to
//! /dev/null) with 100, 1,000 and 10,000 processes on the host, against
//! the original bash cycle (`benches/ksmtuned-classic-cycle.sh`, a
//! reconstruction that forks pgrep, ps, awk and date as the original did)
//! on the same host.
//!
//! Ours is measured both ways the daemon can follow processes: with the
//! kernel's process events (the default; a cycle reads only what changed)
//! and with a listing of /proc and every process's name each cycle (the
//! fallback where events are unavailable). The last column is what the
//! event thread spent while the new processes of that row started, per
//! 1,000 process starts: the cost the event design moves out of the cycle.
//!
//! `cargo bench --bench scale [-- COUNTS...]` (root: it raises the process
//! limit). Extra processes are forked by a spawner child and sleep in
//! pause(); they die with it, and it with the benchmark (PR_SET_PDEATHSIG); four of them are "guests"
//! named qemu-kvm (a symlink to sleep(1)), so both cycles count them.
//! It prints a table of medians of wall time and of CPU time (ours: the
//! cycle thread's; bash: bash and everything it forked, from the children's
//! rusage, per cycle): on a busy machine the wall time also counts waiting
//! for a CPU. It asserts nothing (it is not a test).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use ksmtuned::config::{Config, PolicyKind};
use ksmtuned::daemon::DebugLog;
use ksmtuned::kernel::proc;
use ksmtuned::policy::classic;
use ksmtuned::sample::census::{Census, Source};
use ksmtuned::sample::Sampler;
use ksmtuned::Root;

const OURS_CYCLES: usize = 60;
const BASH_CYCLES: usize = 15;

fn host_processes(root: &Root) -> usize {
    proc::pids(root).map(|p| p.len()).unwrap_or(0)
}

/// Start `n` processes that wait in pause() until killed: a spawner child
/// forks them (so the forks happen in another process, as on a real host:
/// forking here would make every page the event thread touches a
/// copy-on-write fault and bill that to it), tells us over a pipe when
/// they are all there, and waits. The sleepers die with the spawner, the
/// spawner with us (PR_SET_PDEATHSIG). Returns the spawner's pid.
fn spawn_sleepers(n: usize) -> libc::pid_t {
    let mut fds = [0; 2];
    // SAFETY: a valid array of two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: the child only calls async-signal-safe functions (fork,
    // prctl, write, pause, _exit) and never returns, so other threads of
    // this process do not matter.
    let spawner = unsafe { libc::fork() };
    match spawner {
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        0 => unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::close(fds[0]);
            for _ in 0..n {
                match libc::fork() {
                    -1 => libc::_exit(1),
                    0 => {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        loop {
                            libc::pause();
                        }
                    }
                    _ => {}
                }
            }
            libc::write(fds[1], b"k".as_ptr().cast(), 1);
            loop {
                libc::pause();
            }
        },
        pid => {
            // SAFETY: closing our copy of the write end, reading one byte.
            unsafe { libc::close(fds[1]) };
            let mut b = 0u8;
            let r = unsafe { libc::read(fds[0], (&mut b as *mut u8).cast(), 1) };
            unsafe { libc::close(fds[0]) };
            assert_eq!(r, 1, "the spawner failed to fork {n} processes");
            pid
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
fn ours(sampler: &mut Sampler, cycles: usize) -> (Vec<f64>, Vec<f64>, u64) {
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
        let s = sampler.take().expect("sampling");
        let total = s.mem.as_ref().expect("meminfo").mem_total;
        let params = classic::Params::new(&config, total);
        let input = classic::Input::try_from(&s).expect("a classic sample");
        let d = classic::adjust(&params, &mut state, input.committed, input.free);
        for l in &d.debug_lines {
            log.line(l).expect("appending the debug line");
        }
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        cpu.push(thread_cpu_ms() - c0);
        committed = input.committed;
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

/// CPU time of this process's `proc-events` thread (the census's), in
/// milliseconds, from its schedstat (nanoseconds).
fn event_thread_cpu_ms() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for t in tasks.flatten() {
        let dir = t.path();
        let is_it =
            std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == "proc-events");
        if is_it {
            return std::fs::read_to_string(dir.join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
                .map_or(0.0, |ns| ns / 1e6);
        }
    }
    0.0
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
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ksmtuned-classic-cycle.sh");
    raise_limits(*counts.iter().max().unwrap());

    // Four guests: comm qemu-kvm (a link to sleep), as both cycles count.
    let dir = tempfile::tempdir().unwrap();
    let qemu = dir.path().join("qemu-kvm");
    std::os::unix::fs::symlink("/bin/sleep", &qemu).unwrap();
    let guests: Vec<Child> = (0..4)
        .map(|_| Command::new(&qemu).arg("3600").spawn().unwrap())
        .collect();

    // The daemon's two ways of following processes: the kernel's process
    // events (the default where available) and a listing of /proc on every
    // cycle (the fallback), each with its own table, as the daemon has.
    let me = Some(std::process::id());
    let mut events = Sampler::for_policy(&root, PolicyKind::Classic, me);
    if let Some(Source::Listing(why)) = events.census_source() {
        panic!("the kernel's process events are needed for this benchmark: {why}");
    }
    let mut listing = Sampler::for_policy(&root, PolicyKind::Classic, me);
    listing.set_census(Census::listing(&root, "the fallback, measured"));

    let mut spawners = Vec::new();
    println!(
        "{:>9} | {:>8} {:>8} {:>8} | {:>8} {:>8} | {:>8} {:>8} | {:>7} {:>7} | {:>7}",
        "processes",
        "events",
        "p90",
        "CPU",
        "listing",
        "CPU",
        "bash",
        "CPU",
        "x bash",
        "x list",
        "ev/1000"
    );
    println!(
        "{:>9} | {:>8} {:>8} {:>8} | {:>8} {:>8} | {:>8} {:>8} | {:>7} {:>7} | {:>7}",
        "", "ms", "ms", "ms", "ms", "ms", "ms", "ms", "wall", "wall", "ms CPU"
    );
    for &n in &counts {
        let have = host_processes(&root);
        // The event thread's CPU time while the new processes start: what
        // following them costs, per 1,000 process starts.
        let thread0 = event_thread_cpu_ms();
        let started = n.saturating_sub(have);
        if started > 0 {
            spawners.push(spawn_sleepers(started));
        }
        // Let the event thread catch up.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let per_1000 =
            (started > 0).then(|| (event_thread_cpu_ms() - thread0) / started as f64 * 1000.0);
        let actual = host_processes(&root);
        // Warm-up: the first cycle after the starts reads the new names.
        ours(&mut events, 3);
        ours(&mut listing, 3);
        let (mut t, mut c, committed) = ours(&mut events, OURS_CYCLES);
        let (mut lt, mut lc, lcommitted) = ours(&mut listing, OURS_CYCLES);
        assert_eq!(committed, lcommitted, "both ways count the same QEMU RSS");
        let (mut b, bcpu) = bash(&script, BASH_CYCLES);
        let p90 = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[(v.len() * 9 / 10).min(v.len() - 1)]
        };
        let (om, oc, bm) = (median(&mut t), median(&mut c), median(&mut b));
        let (lm, lcm) = (median(&mut lt), median(&mut lc));
        println!(
            "{:>9} | {:>8.3} {:>8.3} {:>8.3} | {:>8.2} {:>8.2} | {:>8.1} {:>8.1} | {:>6.0}x {:>6.0}x | {:>7}",
            actual,
            om,
            p90(&mut t),
            oc,
            lm,
            lcm,
            bm,
            bcpu,
            bm / om,
            lm / om,
            per_1000.map_or("-".to_string(), |v| format!("{v:.2}")),
        );
        eprintln!("  (committed {committed} KiB: the QEMU-named processes on the host)");
    }

    for &pid in &spawners {
        // SAFETY: our own children; their sleepers die with them.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    for mut g in guests {
        let _ = g.kill();
        let _ = g.wait();
    }
}
