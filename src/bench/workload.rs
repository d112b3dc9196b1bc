//! The benchmark's workload: K worker processes whose memory is filled from
//! a seeded generator, so that the bench knows exactly how many pages KSM
//! can save ("attainable").
//!
//! Every worker has the same number of pages, laid out in a seeded random
//! order of four classes:
//!
//! - image pages: copies of a common "image" (like a guest OS) shared by
//!   all workers; the image itself repeats some of its pages;
//! - zero pages (written, so that they are really allocated);
//! - unique pages (never equal to any other page);
//! - volatile pages, rewritten with new unique content every `churn_ms`
//!   (memory that is not worth merging).
//!
//! Every non-zero page starts with a tag (kind and identity), so distinct
//! contents are distinct by construction, not by chance.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::human;
use crate::kernel::mapping::Mapping;
use crate::kernel::sys;

/// What every worker holds, and how it is generated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    /// Number of worker processes.
    pub workers: usize,
    /// Pages mapped by each worker.
    pub pages_per_worker: u64,
    /// Fraction of each worker's pages copied from the common image.
    pub dup: f64,
    /// Fraction of all-zero pages.
    pub zero: f64,
    /// Fraction of pages rewritten every `churn_ms`.
    pub volatile: f64,
    /// Fraction of the image's slots that repeat another image page.
    pub image_repeat: f64,
    /// Seed of every content and layout decision.
    pub seed: u64,
}

/// Per-worker page counts of each class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounts {
    pub image: u64,
    pub zero: u64,
    pub volatile: u64,
    pub unique: u64,
}

/// The class of one page of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageClass {
    /// The `slot`-th image page of the worker (in address order).
    Image {
        slot: u64,
    },
    Zero,
    Unique,
    Volatile,
}

/// Pages KSM can save with this workload, for both `use_zero_pages`
/// settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attainable {
    /// With `use_zero_pages=0`: zero pages merge like any identical pages.
    pub without_zero_pages: u64,
    /// With `use_zero_pages=1`: every zero page maps the kernel's zero page.
    pub with_zero_pages: u64,
    /// The `max_page_sharing` the figures were computed for.
    pub max_page_sharing: u64,
}

impl Attainable {
    /// The figure for a `use_zero_pages` setting.
    pub fn for_zero_pages(&self, use_zero_pages: bool) -> u64 {
        if use_zero_pages {
            self.with_zero_pages
        } else {
            self.without_zero_pages
        }
    }
}

/// Pages saved when `n` identical pages are merged (the arithmetic lives
/// with the estimate, which projects the same thing from real memory).
pub use crate::estimate::table::saved_in_group;

/// Content tags (the first 8 bytes of every non-zero page).
const TAG_IMAGE: u64 = 0x4b53_4d42_0000_0001;
const TAG_UNIQUE: u64 = 0x4b53_4d42_0000_0002;
const TAG_VOLATILE: u64 = 0x4b53_4d42_0000_0003;

fn mix(mut z: u64) -> u64 {
    // The splitmix64 finaliser: a well-known bijective bit mixer.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl WorkloadSpec {
    /// Check the fractions and sizes; the message names the bad option.
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 {
            return Err("--workers must be at least 1".into());
        }
        if self.pages_per_worker == 0 {
            return Err("each worker needs at least one page (--mib)".into());
        }
        for (name, v) in [
            ("--dup", self.dup),
            ("--zero", self.zero),
            ("--volatile", self.volatile),
            ("--image-repeat", self.image_repeat),
        ] {
            if !(0.0..=1.0).contains(&v) || v.is_nan() {
                return Err(format!("{name} {v}: expected a fraction from 0 to 1"));
            }
        }
        let sum = self.dup + self.zero + self.volatile;
        if sum > 1.0 + 1e-9 {
            return Err(format!(
                "--dup {} + --zero {} + --volatile {} = {sum:.3}: the fractions of one worker's pages cannot add up to more than 1",
                self.dup, self.zero, self.volatile
            ));
        }
        Ok(())
    }

    /// Per-worker counts: each fraction rounded to whole pages, the rest
    /// unique.
    pub fn counts(&self) -> ClassCounts {
        let p = self.pages_per_worker;
        let part = |f: f64| ((p as f64) * f).round() as u64;
        let image = part(self.dup).min(p);
        let zero = part(self.zero).min(p - image);
        let volatile = part(self.volatile).min(p - image - zero);
        ClassCounts {
            image,
            zero,
            volatile,
            unique: p - image - zero - volatile,
        }
    }

    /// Total pages of all workers.
    pub fn total_pages(&self) -> u64 {
        self.pages_per_worker * self.workers as u64
    }

    /// Distinct contents in the image: its slots minus the repeats (at
    /// least one when there is an image).
    pub fn image_distinct(&self) -> u64 {
        let slots = self.counts().image;
        if slots == 0 {
            return 0;
        }
        let repeats = ((slots as f64) * self.image_repeat).round() as u64;
        (slots - repeats.min(slots)).max(1)
    }

    /// The content id of an image slot: the first `image_distinct` slots
    /// are the distinct contents, the others repeat one of them (chosen
    /// from the seed).
    pub fn image_content(&self, slot: u64, distinct: u64) -> u64 {
        if slot < distinct {
            slot
        } else {
            mix(self.seed ^ mix(slot ^ 0x1ae5)) % distinct
        }
    }

    /// The class of every page of one worker, in address order: exact
    /// counts, shuffled from the seed (so scanning meets the classes
    /// evenly, as in a real guest).
    pub fn layout(&self, worker: usize) -> Vec<PageClass> {
        let c = self.counts();
        let mut kinds: Vec<u8> = Vec::with_capacity(self.pages_per_worker as usize);
        for (kind, n) in [(0u8, c.image), (1, c.zero), (2, c.unique), (3, c.volatile)] {
            kinds.resize(kinds.len() + n as usize, kind);
        }
        let mut rng = fastrand::Rng::with_seed(mix(self.seed ^ mix(worker as u64 + 1)));
        rng.shuffle(&mut kinds);
        let mut slot = 0;
        kinds
            .into_iter()
            .map(|k| match k {
                0 => {
                    slot += 1;
                    PageClass::Image { slot: slot - 1 }
                }
                1 => PageClass::Zero,
                2 => PageClass::Unique,
                _ => PageClass::Volatile,
            })
            .collect()
    }

    /// How many pages KSM can save at convergence.
    ///
    /// KSM counts a set of N identical pages as one KSM page
    /// (`pages_shared`) and N-1 sharers (`pages_sharing`), with at most
    /// `max_page_sharing` mappings per KSM page. Zero pages merge with each
    /// other like that unless `use_zero_pages=1`, where each is mapped to
    /// the kernel's zero page and counted in `ksm_zero_pages`. Unique and
    /// volatile pages save nothing.
    pub fn attainable(&self, max_page_sharing: u64) -> Attainable {
        let c = self.counts();
        let k = self.workers as u64;
        let distinct = self.image_distinct();
        let mut image_saved = 0;
        if distinct > 0 {
            let mut mult = vec![0u64; distinct as usize];
            for slot in 0..c.image {
                mult[self.image_content(slot, distinct) as usize] += 1;
            }
            image_saved = mult
                .iter()
                .map(|&m| saved_in_group(m * k, max_page_sharing))
                .sum::<u64>();
        }
        let zeros = c.zero * k;
        Attainable {
            without_zero_pages: image_saved + saved_in_group(zeros, max_page_sharing),
            with_zero_pages: image_saved + zeros,
            max_page_sharing,
        }
    }

    /// One line for people: `4 workers x 1.00 GiB: 60% image (10% repeats), ...`.
    pub fn describe(&self, page_size: u64) -> String {
        format!(
            "{} workers x {}: {:.0}% image ({:.0}% of it repeats), {:.0}% zero, {:.0}% volatile, rest unique; seed {}",
            self.workers,
            human::ubytes(self.pages_per_worker * page_size),
            self.dup * 100.0,
            self.image_repeat * 100.0,
            self.zero * 100.0,
            self.volatile * 100.0,
            self.seed
        )
    }
}

/// Fill one page with tagged, seeded content.
fn fill_tagged(page: &mut [u8], tag: u64, a: u64, b: u64, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(mix(seed ^ mix(tag ^ mix(a ^ mix(b)))));
    rng.fill(page);
    page[0..8].copy_from_slice(&tag.to_le_bytes());
    page[8..16].copy_from_slice(&a.to_le_bytes());
    page[16..24].copy_from_slice(&b.to_le_bytes());
}

/// Write the content of one page of a worker (`generation` only matters
/// for volatile pages).
pub fn fill_page(
    spec: &WorkloadSpec,
    worker: usize,
    index: u64,
    class: PageClass,
    distinct: u64,
    generation: u64,
    page: &mut [u8],
) {
    match class {
        PageClass::Image { slot } => {
            let content = spec.image_content(slot, distinct);
            fill_tagged(page, TAG_IMAGE, content, 0, spec.seed);
        }
        PageClass::Zero => page.fill(0),
        PageClass::Unique => fill_tagged(page, TAG_UNIQUE, worker as u64, index, spec.seed),
        PageClass::Volatile => fill_tagged(
            page,
            TAG_VOLATILE,
            ((worker as u64) << 40) | index,
            generation,
            spec.seed,
        ),
    }
}

/// How a worker opts its memory in to KSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeMode {
    /// madvise(MADV_MERGEABLE) on the mapping, as QEMU does.
    Madvise,
    /// prctl(PR_SET_MEMORY_MERGE) for the whole process (Linux 6.4+).
    Prctl,
}

/// Everything a worker process needs besides the spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerOptions {
    pub merge: String,
    pub comm: String,
    pub churn_ms: u64,
    /// Allow transparent huge pages (default: MADV_NOHUGEPAGE, so that no
    /// THP split or zero-page shrinker changes what KSM sees).
    pub thp: bool,
}

/// The worker process: map, opt in, fill, print `ready PID`, then rewrite
/// the volatile pages every `churn_ms` until standard input closes.
pub fn worker_main(
    spec: &WorkloadSpec,
    index: usize,
    opts: &WorkerOptions,
    parent: u32,
) -> anyhow::Result<()> {
    // Die with the bench, even when it is killed with SIGKILL.
    sys::set_parent_death_signal(libc::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")?;
    if sys::parent_pid() != parent {
        bail!("the benchmark (pid {parent}) is gone");
    }
    sys::set_comm(&opts.comm)
        .with_context(|| format!("setting the process name {:?}", opts.comm))?;
    let page = sys::page_size() as usize;
    match opts.merge.as_str() {
        "prctl" => sys::set_memory_merge(true).context(
            "prctl(PR_SET_MEMORY_MERGE) (needs Linux 6.4+; use --merge madvise on older kernels)",
        )?,
        "madvise" => {}
        other => bail!("--merge {other:?}: expected madvise or prctl"),
    }
    let len = usize::try_from(spec.pages_per_worker)
        .ok()
        .and_then(|p| p.checked_mul(page))
        .context("the worker's size does not fit in memory addresses")?;
    let mut map = Mapping::anonymous(len)
        .with_context(|| format!("mapping {} for worker {index}", human::ubytes(len as u64)))?;
    if !opts.thp {
        map.advise(libc::MADV_NOHUGEPAGE)
            .context("madvise(MADV_NOHUGEPAGE)")?;
    }
    if opts.merge == "madvise" {
        map.merge(true).context("madvise(MADV_MERGEABLE)")?;
    }
    let layout = spec.layout(index);
    let distinct = spec.image_distinct();
    let mem = map.as_mut_slice();
    for (i, (chunk, class)) in mem.chunks_mut(page).zip(&layout).enumerate() {
        fill_page(spec, index, i as u64, *class, distinct, 0, chunk);
    }
    let volatile: Vec<usize> = layout
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == PageClass::Volatile)
        .map(|(i, _)| i)
        .collect();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", std::process::id())?;
    out.flush()?;
    drop(out);

    // Standard input closing is the signal to exit.
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            let _ = tx.send(());
        })
        .context("starting the stdin watcher")?;
    let churn = Duration::from_millis(opts.churn_ms.max(1));
    let mut generation = 0;
    loop {
        let wait = if volatile.is_empty() {
            Duration::from_secs(3600)
        } else {
            churn
        };
        match rx.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => break,
        }
        if volatile.is_empty() {
            continue;
        }
        generation += 1;
        for &i in &volatile {
            let chunk = &mut mem[i * page..(i + 1) * page];
            fill_page(
                spec,
                index,
                i as u64,
                PageClass::Volatile,
                distinct,
                generation,
                chunk,
            );
        }
    }
    drop(map);
    Ok(())
}

/// The running workers, in one process group of their own; dropping the
/// set ends them all (standard input closed, then SIGKILL to the group).
pub struct Workers {
    children: Vec<(Child, Option<ChildStdin>)>,
    pgid: Option<u32>,
}

impl Workers {
    /// Start `spec.workers` copies of `exe worker ...` and wait until each
    /// has filled its memory. `stop` is polled so that a signal ends the
    /// wait.
    pub fn spawn(
        exe: &Path,
        spec: &WorkloadSpec,
        opts: &WorkerOptions,
        stop: &dyn Fn() -> bool,
    ) -> anyhow::Result<Workers> {
        use std::os::unix::process::CommandExt;
        let spec_json = serde_json::to_string(spec)?;
        let opts_json = serde_json::to_string(opts)?;
        let mut set = Workers {
            children: Vec::new(),
            pgid: None,
        };
        for index in 0..spec.workers {
            let mut cmd = Command::new(exe);
            cmd.arg("worker")
                .arg("--index")
                .arg(index.to_string())
                .arg("--spec")
                .arg(&spec_json)
                .arg("--options")
                .arg(&opts_json)
                .arg("--parent")
                .arg(std::process::id().to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                // Its own group: the terminal's Ctrl-C reaches only the
                // bench, which then ends the whole group.
                .process_group(set.pgid.map_or(0, |g| g as i32));
            let mut child = cmd
                .spawn()
                .with_context(|| format!("starting worker {index} ({})", exe.display()))?;
            if set.pgid.is_none() {
                set.pgid = Some(child.id());
            }
            let stdin = child.stdin.take();
            set.children.push((child, stdin));
        }
        let started = Instant::now();
        for index in 0..set.children.len() {
            let stdout = set.children[index]
                .0
                .stdout
                .take()
                .context("worker stdout missing")?;
            let mut line = String::new();
            let n = BufReader::new(stdout)
                .read_line(&mut line)
                .with_context(|| format!("reading worker {index}'s ready line"))?;
            if stop() {
                bail!("interrupted while the workers were filling their memory");
            }
            if n == 0 || !line.starts_with("ready ") {
                let status = set.children[index].0.wait().ok();
                bail!(
                    "worker {index} exited before it was ready ({}); see its message above",
                    status.map_or("unknown status".to_string(), |s| s.to_string())
                );
            }
        }
        log::info!(
            "{} workers ready in {:.1} s",
            spec.workers,
            started.elapsed().as_secs_f64()
        );
        Ok(set)
    }

    /// The worker pids.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|(c, _)| c.id()).collect()
    }

    /// Fail when a worker has exited (it should run until told to stop).
    pub fn check(&mut self) -> anyhow::Result<()> {
        for (i, (child, _)) in self.children.iter_mut().enumerate() {
            if let Some(status) = child.try_wait().context("checking a worker")? {
                bail!(
                    "worker {i} (pid {}) exited unexpectedly ({status})",
                    child.id()
                );
            }
        }
        Ok(())
    }

    /// End every worker: close their standard input, give them a moment to
    /// unmap their memory, then SIGKILL the group, and reap them all.
    pub fn stop(&mut self) {
        for (_, stdin) in self.children.iter_mut() {
            stdin.take();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && self
                .children
                .iter_mut()
                .any(|(c, _)| matches!(c.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let alive = self
            .children
            .iter_mut()
            .any(|(c, _)| matches!(c.try_wait(), Ok(None)));
        if alive {
            // The group exists as long as one of our unreaped children
            // is in it, so the id cannot have been reused.
            if let Some(g) = self.pgid {
                let _ = sys::kill_group(g, libc::SIGKILL);
            }
        }
        for (c, _) in self.children.iter_mut() {
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(workers: usize, pages: u64, dup: f64, zero: f64, volatile: f64) -> WorkloadSpec {
        WorkloadSpec {
            workers,
            pages_per_worker: pages,
            dup,
            zero,
            volatile,
            image_repeat: 0.0,
            seed: 7,
        }
    }

    #[test]
    fn group_saving() {
        assert_eq!(saved_in_group(0, 256), 0);
        assert_eq!(saved_in_group(1, 256), 0);
        assert_eq!(saved_in_group(2, 256), 1);
        assert_eq!(saved_in_group(256, 256), 255);
        // The 257th page finds no room and no partner: it stays alone.
        assert_eq!(saved_in_group(257, 256), 255);
        assert_eq!(saved_in_group(258, 256), 256);
        assert_eq!(saved_in_group(1000, 256), 1000 - 4);
        assert_eq!(saved_in_group(5, 2), 2);
    }

    #[test]
    fn counts_are_exact_and_complete() {
        let s = spec(4, 1000, 0.6, 0.1, 0.05);
        let c = s.counts();
        assert_eq!((c.image, c.zero, c.volatile, c.unique), (600, 100, 50, 250));
        assert_eq!(c.image + c.zero + c.volatile + c.unique, 1000);
        let l = s.layout(2);
        assert_eq!(l.len(), 1000);
        assert_eq!(l.iter().filter(|c| **c == PageClass::Zero).count(), 100);
        assert_eq!(l.iter().filter(|c| **c == PageClass::Volatile).count(), 50);
        let slots: Vec<u64> = l
            .iter()
            .filter_map(|c| match c {
                PageClass::Image { slot } => Some(*slot),
                _ => None,
            })
            .collect();
        assert_eq!(slots, (0..600).collect::<Vec<_>>());
        // Seeded: same layout again, a different one for another worker.
        assert_eq!(l, s.layout(2));
        assert_ne!(l, s.layout(3));
    }

    #[test]
    fn attainable_without_repeats() {
        // 4 workers x 1000 pages: 600 image pages each, all distinct:
        // 600 groups of 4 -> 3 saved each. 100 zero pages each: 400 zero
        // pages, max_page_sharing 256 -> 2 KSM pages, 398 saved; with
        // use_zero_pages all 400 are saved.
        let s = spec(4, 1000, 0.6, 0.1, 0.05);
        let a = s.attainable(256);
        assert_eq!(a.without_zero_pages, 600 * 3 + 398);
        assert_eq!(a.with_zero_pages, 600 * 3 + 400);
        assert_eq!(a.for_zero_pages(true), a.with_zero_pages);
        // Larger sharing limit: one KSM page for all zeros.
        assert_eq!(s.attainable(10_000).without_zero_pages, 1800 + 399);
    }

    #[test]
    fn attainable_with_repeats_inside_the_image() {
        // One worker: only the image's own repeats can merge.
        let mut s = spec(1, 1000, 0.5, 0.0, 0.0);
        s.image_repeat = 0.2;
        assert_eq!(s.image_distinct(), 400);
        // 500 slots, 400 contents: 500 - 400 = 100 pages saved (no group
        // comes near max_page_sharing).
        assert_eq!(s.attainable(256).without_zero_pages, 100);
        // Three workers: 1500 image pages, 400 contents.
        s.workers = 3;
        assert_eq!(s.attainable(256).without_zero_pages, 1500 - 400);
        // Every content id is in range and the first ones are themselves.
        for slot in 0..500 {
            let c = s.image_content(slot, 400);
            assert!(c < 400);
            if slot < 400 {
                assert_eq!(c, slot);
            }
        }
    }

    #[test]
    fn nothing_to_save() {
        assert_eq!(
            spec(1, 100, 0.0, 0.0, 0.5).attainable(256).with_zero_pages,
            0
        );
        // One zero page alone saves nothing without use_zero_pages.
        let a = spec(1, 100, 0.0, 0.01, 0.0).attainable(256);
        assert_eq!((a.without_zero_pages, a.with_zero_pages), (0, 1));
        // Volatile image-sized fraction adds nothing.
        let a = spec(2, 100, 0.0, 0.0, 1.0).attainable(256);
        assert_eq!(a.without_zero_pages, 0);
    }

    #[test]
    fn validation() {
        assert!(spec(1, 10, 0.6, 0.3, 0.1).validate().is_ok());
        let e = spec(1, 10, 0.6, 0.3, 0.2).validate().unwrap_err();
        assert!(e.contains("more than 1"), "{e}");
        assert!(spec(0, 10, 0.1, 0.0, 0.0).validate().is_err());
        assert!(spec(1, 0, 0.1, 0.0, 0.0).validate().is_err());
        assert!(spec(1, 10, -0.1, 0.0, 0.0).validate().is_err());
        assert!(spec(1, 10, f64::NAN, 0.0, 0.0).validate().is_err());
    }

    /// The generated memory itself has exactly the attainable savings:
    /// count identical pages by content and apply KSM's rule.
    #[test]
    fn generated_content_matches_the_arithmetic() {
        use std::collections::HashMap;
        let page = 256; // small pages are enough to check identity
        let mut s = spec(3, 300, 0.5, 0.2, 0.1);
        s.image_repeat = 0.3;
        let distinct = s.image_distinct();
        let mut groups: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut zeros = 0;
        for w in 0..s.workers {
            for (i, class) in s.layout(w).into_iter().enumerate() {
                let mut buf = vec![0u8; page];
                fill_page(&s, w, i as u64, class, distinct, 0, &mut buf);
                if buf.iter().all(|b| *b == 0) {
                    zeros += 1;
                    assert_eq!(class, PageClass::Zero);
                } else {
                    *groups.entry(buf).or_default() += 1;
                }
            }
        }
        let nonzero_saved: u64 = groups.values().map(|&n| saved_in_group(n, 256)).sum();
        let a = s.attainable(256);
        assert_eq!(
            a.without_zero_pages,
            nonzero_saved + saved_in_group(zeros, 256)
        );
        assert_eq!(a.with_zero_pages, nonzero_saved + zeros);
        // A volatile page's next generation differs from the last one.
        let mut a0 = vec![0u8; page];
        let mut a1 = vec![0u8; page];
        fill_page(&s, 0, 5, PageClass::Volatile, distinct, 0, &mut a0);
        fill_page(&s, 0, 5, PageClass::Volatile, distinct, 1, &mut a1);
        assert_ne!(a0, a1);
    }
}
