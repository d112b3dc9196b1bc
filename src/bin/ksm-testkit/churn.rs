//! `ksm-testkit churn`: start and reap short-lived processes at a steady
//! rate (the process census and the sampler under load).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Process churn for tests: start and reap RATE short-lived processes
/// per second from THREADS threads until standard input closes (or
/// SECONDS pass); print "ready PID" first and the count at the end.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Processes per second (all threads together).
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Threads starting processes.
    #[arg(long, default_value_t = 4)]
    threads: u32,
    /// Stop after this many seconds even if standard input stays open.
    #[arg(long)]
    seconds: Option<f64>,
    /// The program to run (no arguments).
    #[arg(long, default_value = "/bin/true")]
    program: PathBuf,
}

pub fn run(args: &Args, out: &mut impl Write) -> anyhow::Result<i32> {
    let (rate, threads, seconds, program) = (args.rate, args.threads, args.seconds, &args.program);
    if rate == 0 || threads == 0 {
        bail!("--rate and --threads must be at least 1");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    // Each thread keeps its share of the rate on a fixed schedule.
    let period = Duration::from_secs_f64(f64::from(threads) / f64::from(rate));
    let mut workers = Vec::new();
    for i in 0..threads {
        let (stop, started, failed) = (stop.clone(), started.clone(), failed.clone());
        let program = program.to_path_buf();
        let w = std::thread::Builder::new()
            .name(format!("churn{i}"))
            .spawn(move || {
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    match std::process::Command::new(&program)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status()
                    {
                        Ok(_) => started.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    next += period;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else if now - next > Duration::from_secs(1) {
                        // Too slow to keep up: do not try to catch up later.
                        next = now;
                    }
                }
            })
            .context("starting a churn thread")?;
        workers.push(w);
    }
    writeln!(out, "ready {}", std::process::id())?;
    out.flush()?;
    match seconds {
        Some(s) => {
            let until = t0 + Duration::from_secs_f64(s.max(0.0));
            // Standard input closing also stops it.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut sink = String::new();
                let _ = std::io::stdin().read_line(&mut sink);
                let _ = tx.send(());
            });
            let _ = rx.recv_timeout(until.saturating_duration_since(Instant::now()));
        }
        None => {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = started.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    writeln!(
        out,
        "churned {n} processes in {secs:.1} s ({:.0}/s), {failed} failed to start",
        n as f64 / secs
    )?;
    Ok(if failed > 0 && n == 0 { 1 } else { 0 })
}
