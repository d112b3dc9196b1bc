//! `ksm-testkit probe`: map PAGES identical pages, opt them in, print
//! "ready PID" and wait until standard input closes.

use std::io::Write;

use anyhow::{bail, Context};
use ksmtuned::kernel::mapping::{fill_identical, Backing, Mapping};
use ksmtuned::kernel::sys;

/// A probe for tests: map PAGES identical pages, opt them in, print
/// "ready PID" and wait until standard input closes.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of identical pages.
    #[arg(long, default_value_t = 4096)]
    pages: usize,
    /// How to opt in: madvise, prctl or none (e.g. under `ksmctl exec`).
    #[arg(long, default_value = "madvise")]
    merge: String,
    /// Process name to take (e.g. qemu-kvm, to be counted as a guest).
    #[arg(long)]
    comm: Option<String>,
    /// Content seed: probes with the same seed have identical pages.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// More pages, in the same mapping after the identical ones:
    /// all-zero, unique (different from every other page anywhere),
    /// and never touched (not in RAM).
    #[arg(long, default_value_t = 0)]
    zero_pages: usize,
    #[arg(long, default_value_t = 0)]
    unique_pages: usize,
    #[arg(long, default_value_t = 0)]
    untouched_pages: usize,
    /// A second opted-in mapping of pages all different from each other,
    /// identical to those of every probe with the same --distinct-seed
    /// (content shared between processes, page by page).
    #[arg(long, default_value_t = 0)]
    distinct_pages: usize,
    #[arg(long, default_value_t = 1)]
    distinct_seed: u64,
    /// A second mapping, never opted in, of pages identical to the first.
    #[arg(long, default_value_t = 0)]
    unmergeable_pages: usize,
    /// What backs the memory: private, shared (MAP_SHARED), hugetlb
    /// (MAP_HUGETLB; PAGES are then rounded up to whole huge pages) or thp
    /// (private, left to transparent huge pages: PAGES rounded up to whole
    /// huge pages, one more mapped so that they can be aligned).
    #[arg(long, default_value = "private")]
    backing: String,
    /// Lock the memory (mlock).
    #[arg(long)]
    lock: bool,
    /// Words after `--` only show in the command line (e.g. a QEMU
    /// option a test wants seen).
    #[arg(last = true)]
    label: Vec<String>,
}

pub fn run(args: &Args, out: &mut impl Write) -> anyhow::Result<i32> {
    let (pages, zero, unique, untouched, unmergeable) = (
        args.pages,
        args.zero_pages,
        args.unique_pages,
        args.untouched_pages,
        args.unmergeable_pages,
    );
    if let Some(name) = &args.comm {
        sys::set_comm(name).context("setting the process name")?;
    }
    if args.merge == "prctl" {
        sys::set_memory_merge(true).context("prctl(PR_SET_MEMORY_MERGE)")?;
    }
    let page = sys::page_size() as usize;
    let extra = zero + unique + untouched;
    let mut len = (pages.max(1) + extra) * page;
    const HUGE: usize = 2 << 20;
    let thp = args.backing == "thp";
    let backing = match args.backing.as_str() {
        "private" => Backing::Private,
        "thp" => {
            len = len.div_ceil(HUGE) * HUGE + HUGE;
            Backing::Private
        }
        "shared" => Backing::Shared,
        "hugetlb" => {
            len = len.div_ceil(HUGE) * HUGE;
            Backing::HugeTlb
        }
        other => bail!("--backing {other:?}: expected private, shared, hugetlb or thp"),
    };
    let mut map = Mapping::with_backing(len, backing)
        .with_context(|| format!("mapping {len} bytes of {backing:?} probe memory"))?;
    if matches!(backing, Backing::Private) && !thp {
        // No transparent huge page: untouched pages stay out of RAM.
        map.advise(libc::MADV_NOHUGEPAGE).ok();
    }
    match args.merge.as_str() {
        "madvise" => map.merge(true).context("madvise(MADV_MERGEABLE)")?,
        "prctl" | "none" => {}
        other => bail!("--merge {other:?}: expected madvise, prctl or none"),
    }
    let mem = map.as_mut_slice();
    let same_len = if extra == 0 { len } else { pages.max(1) * page };
    let (same, rest) = mem.split_at_mut(same_len);
    fill_identical(same, page, args.seed);
    let (zeros, rest) = rest.split_at_mut(zero * page);
    // Written, so that they are in RAM (not the shared zero page).
    for p in zeros.chunks_mut(page) {
        p.fill(0);
        std::hint::black_box(&*p);
    }
    let pid = u64::from(std::process::id());
    for (i, p) in rest[..unique * page].chunks_mut(page).enumerate() {
        fill_identical(p, page, args.seed);
        p[..8].copy_from_slice(&pid.to_le_bytes());
        p[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    }
    let mut second = None;
    if unmergeable > 0 {
        let mut m = Mapping::anonymous(unmergeable * page).context("mapping probe memory")?;
        m.advise(libc::MADV_NOHUGEPAGE).ok();
        fill_identical(m.as_mut_slice(), page, args.seed);
        second = Some(m);
    }
    let mut distinct = None;
    if args.distinct_pages > 0 {
        let n = args.distinct_pages;
        let mut m = Mapping::anonymous(n * page).context("mapping probe memory")?;
        m.advise(libc::MADV_NOHUGEPAGE).ok();
        if args.merge == "madvise" {
            m.merge(true).context("madvise(MADV_MERGEABLE)")?;
        }
        // Tagged so that no other probe page has this content.
        const TAG: u64 = 0x6469_7374_696e_6374;
        for (i, p) in m.as_mut_slice().chunks_mut(page).enumerate() {
            fill_identical(p, page, args.distinct_seed);
            p[..8].copy_from_slice(&TAG.to_le_bytes());
            p[8..16].copy_from_slice(&args.distinct_seed.to_le_bytes());
            p[16..24].copy_from_slice(&(i as u64).to_le_bytes());
        }
        distinct = Some(m);
    }
    if args.lock {
        map.lock().context("mlock")?;
    }
    writeln!(out, "ready {}", std::process::id())?;
    out.flush()?;
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    drop(map);
    drop(second);
    drop(distinct);
    Ok(0)
}
