//! `ksmctl estimate`: the command around [`crate::estimate`]: checks,
//! priority, the progress line, and the text or JSON output.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::config::TrustDomains;
use crate::estimate::{self, GroupBy, Options, Selection};
use crate::kernel::sys;
use crate::root::Root;

/// Shown after the options (and in the man page): the method, in short.
/// (A `long_about` would make `-h` and `--help` differ.)
pub const AFTER_HELP: &str = "\
ksmd may be stopped, or the kernel may not even have KSM.

By default every process's mergeable memory is read (areas marked `mg` in \
/proc/PID/smaps VmFlags: madvise(MADV_MERGEABLE), as QEMU does, or a whole \
process opted in with prctl); --all-anonymous takes all their private \
memory instead (what `ksmctl exec`, prctl or systemd's MemoryKSM= would opt \
in), --guests only QEMU processes, and PIDs only those. Only pages already \
in RAM are read (/proc/PID/pagemap first, then process_vm_readv in batches \
of 1 MiB): no page is faulted or swapped in, nothing is written, KSM's \
settings are not touched.

Each page's content is hashed (64-bit XXH3; the chance of any collision \
among N distinct pages is below N^2/2^65). From the copies of each content \
it projects KSM's own counters with this host's max_page_sharing and \
use_zero_pages (pages_shared, pages_sharing, ksm_zero_pages), the memory \
saved and general_profit with the kernel's formula (64 bytes of rmap item \
per page tracked), what KSM saves now and what is still to gain, and the \
ksmd CPU time two full scans would take (its CPU time per page measured on \
this host when KSM has run, else a stated default).

Transparent huge pages: KSM splits a huge page to merge any of its \
subpages, and since Linux 6.12 (detected by thp_underused_split_page in \
/proc/vmstat) the split maps the huge page's all-zero subpages to the \
shared zero page. The saving is then shown in two parts: what KSM's \
counters will show (pages_sharing + ksm_zero_pages) and what the splits \
free outside them; the huge pages read and how many merging would split \
are shown too.

Zero pages alone: the saving from merging only all-zero pages (each mapped \
to the kernel's zero page, as use_zero_pages=1 does) is shown next to the \
full saving, in total and per process (ZERO ONLY): what a zero-pages-only \
policy would keep. Upstream kernels have no such mode; use_zero_pages \
(ksmctl set use_zero_pages=1) is the part of it they offer.

Per process, the saving is attributed so that the rows add up: KSM keeps \
the first copy of each content found (processes are scanned in PID order) \
and every other copy is a page saved by the process that holds it. \
The table's columns: SCANNED, the memory read; ZERO, the all-zero pages \
among it (a page count, as ZERO in `ksmctl ps`); WOULD SAVE, the process's \
part of the saving; MERGED NOW, its memory mapped to KSM pages now. When \
nothing is read (a PID that has not opted in, --guests with no QEMU \
running) the first line says what was selected and why.

--matrix adds, group by group (process or guest, cgroup with --by \
cgroup, or trust domain with --by domain), the contents two groups have in common (row a, column b: the \
distinct contents both hold, one page each: who would share pages with \
whom), and the KSM pages both map now (from the KSM flag of each page \
frame in /proc/kpageflags): the audit of cross-tenant sharing. The \
diagonal is left out (a group's own figures are in the table); with one \
group there is no matrix. Without /proc/kpageflags (a --root fixture) \
the estimate runs without what KSM has merged, and says so.

--sample K keeps the contents whose hash is 0 mod K (all copies of a \
content together) and scales up; the error bound (2 standard errors) is \
shown. --by domain also shows what merging only within each trust domain \
would save and what merging across domains adds (domains as --domains or \
KSM_TRUST_DOMAINS in the configuration file say). The scan runs at a lower \
priority (--nice) and can be held to a share of one CPU (--cpu-limit). \
Needs root, except on a test tree.

Examples:
  ksmctl estimate                      what KSM would save on the mergeable memory
  ksmctl estimate --guests --matrix    QEMU guests only, and who shares with whom
  ksmctl estimate --all-anonymous 1234 a process that has not opted in
  ksmctl estimate --sample 16 --json   a big host, 1/16 of the contents kept
  ksmctl estimate --by domain --domains guest   what sharing across guests adds

Exit status: 0 ok, 1 runtime error (not root, unknown PID, a kernel \
thread), 2 usage error. See /usr/share/doc/ksmtuned/estimate.md\n(docs/estimate.md in the sources) for the method and accuracy.";

// The options of `ksmctl estimate` (no doc comment: it would become the
// subcommand's long help).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Only these processes (default: every process).
    #[arg(value_name = "PID")]
    pub pids: Vec<u32>,
    /// Only QEMU guests (processes named qemu-kvm, qemu-system-*, qemu:NAME).
    #[arg(long)]
    pub guests: bool,
    /// All private memory of the processes, not only the areas opted in to KSM.
    #[arg(long)]
    pub all_anonymous: bool,
    /// Show the matrices of contents in common and of KSM pages shared now.
    #[arg(long)]
    pub matrix: bool,
    /// Matrix groups: each process (guests by name), its cgroup, or its trust domain.
    #[arg(long, value_enum, default_value_t = GroupBy::Process, value_name = "WHAT")]
    pub by: GroupBy,
    /// Trust domains for --by domain: cgroup[:DEPTH], user or guest (default: KSM_TRUST_DOMAINS).
    #[arg(long, value_name = "HOW", value_parser = parse_domains)]
    pub domains: Option<TrustDomains>,
    /// The configuration file KSM_TRUST_DOMAINS is read from.
    #[arg(long, value_name = "FILE", default_value = crate::config::DEFAULT_CONFIG)]
    pub config: std::path::PathBuf,
    /// Keep one content in K (content-defined sampling) to bound memory.
    #[arg(long, value_name = "K", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub sample: u64,
    /// ksmd's CPU budget for the time estimate, percent of one CPU (KSM_MAX_CPU).
    #[arg(long, value_name = "PERCENT", default_value_t = crate::config::DEFAULT_MAX_CPU,
          value_parser = clap::value_parser!(u64).range(1..=100))]
    pub max_cpu: u64,
    /// Hold the scan to this percent of one CPU (sleeping between batches).
    #[arg(long, value_name = "PERCENT",
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub cpu_limit: Option<u32>,
    /// Nice steps to lower the scan's priority by.
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(i32).range(0..=39))]
    pub nice: i32,
    /// Print JSON (raw integers, unit-carrying keys).
    #[arg(long)]
    pub json: bool,
}

fn parse_domains(s: &str) -> Result<TrustDomains, String> {
    match s.parse()? {
        TrustDomains::None => {
            Err("none forms no domains: give cgroup[:DEPTH], user or guest".into())
        }
        t => Ok(t),
    }
}

/// The trust domains of `--by domain`: `--domains`, else KSM_TRUST_DOMAINS
/// from the configuration file.
fn trust_domains(root: &Root, args: &Args) -> anyhow::Result<TrustDomains> {
    if let Some(t) = args.domains {
        return Ok(t);
    }
    let file = if args.config.is_absolute() {
        root.join(&args.config)
    } else {
        args.config.clone()
    };
    if !file.exists() {
        bail!(
            "--by domain: {} does not exist, so no KSM_TRUST_DOMAINS; give --domains \
             cgroup[:DEPTH], user or guest",
            file.display()
        );
    }
    let loaded = crate::config::load(root, Some(&file), crate::config::Trust::Insecure);
    if let Some(e) = loaded.errors.first() {
        bail!("--by domain reads KSM_TRUST_DOMAINS: {e}");
    }
    match loaded.config.trust_domains {
        TrustDomains::None => bail!(
            "--by domain: {} sets no KSM_TRUST_DOMAINS; give --domains cgroup[:DEPTH], user or guest",
            file.display()
        ),
        t => Ok(t),
    }
}

/// Run `ksmctl estimate`.
pub fn command(root: &Root, args: &Args, out: &mut impl Write) -> anyhow::Result<i32> {
    // Under --root (a fixture tree) its files are read as any others.
    if sys::euid() != 0 && root.is_host() {
        bail!(
            "estimate needs root: page frame numbers in /proc/PID/pagemap, /proc/kpageflags \
             and reading other processes' memory (process_vm_readv) are root's only \
             (run it with sudo)"
        );
    }
    if args.nice > 0 {
        // Before any thread is started: they would inherit it anyway.
        if let Err(e) = sys::lower_thread_priority(args.nice) {
            log::warn!("cannot lower the priority: {e}");
        }
    }
    let opts = Options {
        pids: args.pids.clone(),
        guests: args.guests,
        selection: if args.all_anonymous {
            Selection::AllAnonymous
        } else {
            Selection::Mergeable
        },
        sample: args.sample,
        matrix: args.matrix,
        group_by: args.by,
        domains: if args.by == GroupBy::Domain {
            trust_domains(root, args)?
        } else {
            TrustDomains::None
        },
        max_cpu: args.max_cpu,
        cpu_limit: args.cpu_limit,
        thp: None,
    };
    let tty = std::io::stderr().is_terminal();
    let mut last = Instant::now();
    let mut shown = false;
    let mut progress = |p: estimate::scan::Progress| {
        if !tty || last.elapsed() < Duration::from_millis(200) {
            return;
        }
        last = Instant::now();
        shown = true;
        let pct = if p.total_bytes > 0 {
            p.done_bytes as f64 * 100.0 / p.total_bytes as f64
        } else {
            0.0
        };
        let width = 30;
        let filled = ((pct / 100.0) * width as f64).round() as usize;
        eprint!(
            "\r[{}{}] {:>3.0}%  {} of {}  (pid {})   ",
            "#".repeat(filled.min(width)),
            " ".repeat(width - filled.min(width)),
            pct,
            crate::human::ubytes(p.done_bytes),
            crate::human::ubytes(p.total_bytes),
            p.pid
        );
    };
    let result = estimate::build(root, &opts, sys::page_size(), &mut progress);
    if shown {
        eprint!("\r{:78}\r", "");
    }
    let est = match result {
        Ok(e) => e,
        Err(e) => {
            if let Some(bad) = e.downcast_ref::<estimate::BadTarget>() {
                bail!("{bad}");
            }
            return Err(e);
        }
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &est)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", est.render())?;
    }
    Ok(0)
}
