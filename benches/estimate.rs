//! Estimate benchmark: `ksmctl estimate`'s scan throughput against a plain
//! read of the same memory, side by side in one run, and the sampled
//! estimate against the full one.
//!
//! The memory is ksm-bench's workload (WORKERS x MiB, 50% image, 10% zero,
//! 10% volatile, rest unique). The plain read copies every page of the
//! workers' mergeable areas with `process_vm_readv` in 4 MiB batches, as
//! the estimate does, and does nothing else; the estimate also reads
//! pagemap and kpageflags, hashes every page and counts the contents.
//!
//! `cargo bench --bench estimate [-- WORKERS MIB ROUNDS] [-- --no-warm-up]`
//! (root; default 4 x 1024, 2 rounds, after two unmeasured reads of all
//! the memory; see below). It holds the ksmd lock ([`KsmdLock`]) for the run
//! so that no experiment's ksmd merges the workers meanwhile; it changes
//! no knob. It asserts nothing (it is not a test); docs/estimate.md has
//! the figures.

use std::path::Path;
use std::time::Instant;

use ksmtuned::bench::experiment::KsmdLock;
use ksmtuned::bench::workload::{WorkerOptions, Workers, WorkloadSpec};
use ksmtuned::estimate::{self, GroupBy, Options, Selection};
use ksmtuned::kernel::pagemap::read_process_memory;
use ksmtuned::kernel::{sys, vmas};
use ksmtuned::Root;

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn plain_read(pids: &[u32], page: u64) -> u64 {
    let mut buf = vec![0u8; 1024 * page as usize];
    let mut total = 0u64;
    for &pid in pids {
        for a in vmas::read(&Root::default(), pid).unwrap() {
            if !a.mergeable() {
                continue;
            }
            let mut addr = a.start;
            while addr < a.end {
                let len = ((a.end - addr) as usize).min(buf.len());
                let n = read_process_memory(pid, &mut buf, &[(addr, len)]).unwrap();
                total += n as u64;
                std::hint::black_box(&buf);
                addr += len as u64;
            }
        }
    }
    total
}

fn main() {
    if sys::euid() != 0 {
        eprintln!("SKIPPED: the estimate benchmark needs root");
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let workers: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(4);
    let mib: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2);
    let _lock = match KsmdLock::acquire() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("estimate bench: cannot take the ksmd lock: {e}");
            std::process::exit(1);
        }
    };
    let page = sys::page_size();
    let spec = WorkloadSpec {
        workers,
        pages_per_worker: mib * 1024 * 1024 / page,
        dup: 0.5,
        zero: 0.1,
        volatile: 0.1,
        image_repeat: 0.1,
        seed: 1,
    };
    let opts = WorkerOptions {
        merge: "madvise".into(),
        comm: "qemu-system-x86".into(),
        churn_ms: 1000,
        thp: false,
    };
    let exe = Path::new(env!("CARGO_BIN_EXE_ksm-bench"));
    let mut w = Workers::spawn(exe, &spec, &opts, &|| false).unwrap();
    let pids = w.pids();
    let bytes = spec.total_pages() * page;
    println!("{}", spec.describe(page));
    println!(
        "{:<28} {:>8} {:>8} {:>10} {:>12}",
        "", "wall s", "cpu s", "GiB/s", "GiB/s/core"
    );
    let gib = bytes as f64 / (1u64 << 30) as f64;
    let row = |name: &str, wall: f64, cpu: f64| {
        println!(
            "{name:<28} {wall:>8.2} {cpu:>8.2} {:>10.2} {:>12.2}",
            gib / wall,
            gib / cpu.max(1e-9)
        );
        gib / cpu.max(1e-9)
    };
    // Two unmeasured reads first: the kernel marks a page accessed on its
    // first read and moves it to the active LRU list on its second
    // (`folio_mark_accessed`), so without them whichever is measured
    // second in round 1 pays for activating every page (about 0.18 s of
    // 4 GiB here: the first estimate, after the first plain read), not for
    // anything it does. A guest's memory in use is active already.
    if !std::env::args().any(|a| a == "--no-warm-up") {
        for _ in 0..2 {
            assert_eq!(plain_read(&pids, page), bytes);
        }
    }
    let mut results = Vec::new();
    for round in 0..rounds {
        let (t, c) = (Instant::now(), cpu_seconds());
        let n = plain_read(&pids, page);
        assert_eq!(n, bytes);
        let plain = row(
            &format!("plain read (round {})", round + 1),
            t.elapsed().as_secs_f64(),
            cpu_seconds() - c,
        );
        let mut est = None;
        for sample in [1u64, 16] {
            let o = Options {
                pids: pids.clone(),
                guests: false,
                selection: Selection::Mergeable,
                sample,
                matrix: false,
                group_by: GroupBy::Process,
                domains: ksmtuned::config::TrustDomains::None,
                max_cpu: 50,
                cpu_limit: None,
                thp: None,
            };
            let (t, c) = (Instant::now(), cpu_seconds());
            let e = estimate::build(&Root::default(), &o, page, &mut |_| {}).unwrap();
            let per_core = row(
                &format!("estimate --sample {sample}"),
                t.elapsed().as_secs_f64(),
                cpu_seconds() - c,
            );
            if sample == 1 {
                results.push(per_core / plain);
                est = Some(e);
            } else {
                let full = est.as_ref().unwrap();
                let d = e.saved_bytes as f64 / full.saved_bytes as f64 - 1.0;
                println!(
                    "  sampled saving {} vs full {} ({:+.2}%, stated bound ±{}); table {} vs {}",
                    e.saved_bytes,
                    full.saved_bytes,
                    d * 100.0,
                    e.saved_error_bytes,
                    e.table_bytes,
                    full.table_bytes
                );
            }
        }
    }
    let attainable = spec.attainable(256).for_zero_pages(false) * page;
    println!("attainable (ksm-bench, max_page_sharing 256, use_zero_pages 0): {attainable} bytes");
    println!(
        "estimate throughput per core / plain read's: {}",
        results
            .iter()
            .map(|r| format!("{:.2}", r))
            .collect::<Vec<_>>()
            .join(", ")
    );
    w.stop();
}
