//! The adaptive policy: merge fast while there is something to gain, within
//! a ksmd CPU budget, then get out of the way.
//!
//! Classic ksmtuned looks at free memory only: it ramps `pages_to_scan` by
//! +300 a minute, and keeps ksmd scanning forever while the host counts as
//! under pressure, even after everything has been merged. The kernel's
//! scan-time advisor adjusts once per full scan and never stops ksmd. This
//! policy looks at what KSM gains and what it costs, every second:
//!
//! - **Sprint.** When there may be something to gain (start-up, a retune,
//!   a process that opted memory in appeared or exited, memory pressure
//!   rising, or merging going on at the idle rate), ksmd scans as fast as
//!   the CPU budget `KSM_MAX_CPU` (percent of one core) allows. Pages per
//!   batch come from the measured cost of a scanned page (ksmd's CPU time
//!   over `pages_scanned`): a batch of `n` pages takes `n * cost`, and with
//!   a sleep `s` between batches ksmd's share is `n*cost / (n*cost + s)`,
//!   so `n = B * s / ((1 - B) * cost)` for a budget `B`. The measured share
//!   then corrects the estimate (multiplicatively, at most x4 per step).
//! - **Converged.** Merging needs two passes over a page, so the sprint
//!   lasts at least two full scans, and ends after a full scan that saved
//!   little (less than 0.5% of the pages ksmd tracks, at least 64 pages):
//!   everything mergeable is merged, or the rest changes too fast. It also
//!   ends when ksmd does no work at all for [`NO_WORK_S`]: no process has
//!   memory opted in (ksmd sleeps in the kernel then, whatever the batch),
//!   or ksmd is not running with the chosen settings (a dry run writes
//!   nothing), so there is no progress to wait for.
//! - **Idle / stop.** After convergence ksmd is stopped when there is no
//!   memory pressure (MemAvailable above the threshold and, where the
//!   kernel has PSI, little memory stall), and otherwise scans at a
//!   near-idle budget (`IDLE_CPU`), enough to notice new duplicates: if
//!   pages keep merging at that rate, a new sprint starts. The idle batch
//!   comes from the cost of a page measured over a window of several
//!   seconds (ksmd's run time in nanoseconds; a longer window where the
//!   kernel counts it only in clock ticks), may grow by at most
//!   [`REST_GROWTH`] a second, and is cut at once when a second costs more
//!   than twice the budget: the budget is a fraction of a tick a second,
//!   and steering by one second's reading made the batch swing between
//!   about a hundred and ten thousand pages.
//! - **Back-off.** KSM costs memory too: `general_profit` (Linux 6.4+) is
//!   what merging saves minus the kernel's metadata for every page ksmd
//!   tracks. When it is negative after a sprint, or it falls at rest while
//!   nothing is lost to copy-on-write (ksmd's scanning adds more metadata
//!   than it merges), ksmd is stopped and the reason given. Merged pages
//!   stay merged; a retune or a change of processes tries again. The
//!   memory KSM's huge-page splits free outside its counters (see
//!   `sample::split`) counts as profit.
//!
//! The policy is a pure function of (parameters, its state, the sample):
//! the daemon reads the kernel, this module only computes.

use std::fmt::Write as _;

use crate::human;
use crate::kernel::ksm::Run;

use super::Decision;

mod params;
mod state;
#[cfg(test)]
mod tests;

pub use params::{Input, Params, Trigger};
pub use state::{Mode, State};

/// ksmd's share of one core when idle-scanning after convergence.
pub const IDLE_CPU: f64 = 0.005;
/// Sleep between batches while sprinting (ms): short, so that the budget
/// is spread evenly and changes take effect at once.
pub const SPRINT_SLEEP_MS: u64 = 100;
/// Sleep between batches while idle (ms): fewer wake-ups.
pub const IDLE_SLEEP_MS: u64 = 200;
/// Cost of scanning one page before it has been measured (seconds). An
/// overestimate, so the first step stays under the budget.
pub const INITIAL_COST: f64 = 2e-6;
/// A batch never takes longer than this (seconds of ksmd CPU), whatever
/// the estimates say.
pub const MAX_BATCH_SECONDS: f64 = 0.2;
/// The largest batch, whatever the estimates say (about 0.2 s of work at
/// 0.2 µs a page).
pub const MAX_BATCH_PAGES: u64 = 1_000_000;
/// The share of the budget the controller aims at.
pub const AIM: f64 = 0.8;
/// PSI memory "some avg10" (percent of time stalled) that counts as
/// pressure on its own.
pub const PSI_PRESSURE: f64 = 10.0;
/// A sprint in which ksmd does no work for this long (seconds) ends: there
/// is nothing to scan, or ksmd does not run with the chosen settings.
pub const NO_WORK_S: f64 = 3.0;
/// At rest, the shortest window (seconds) over which the cost of a page is
/// measured; longer when ksmd's CPU time comes in clock ticks.
pub const REST_WINDOW_S: f64 = 10.0;
/// The longest such window, and how much history the policy keeps.
pub const HISTORY_S: f64 = 60.0;
/// At rest the batch grows by at most this factor a second.
pub const REST_GROWTH: f64 = 1.25;
/// At rest a new batch within this fraction of the current one is not
/// worth a write.
pub const REST_DEADBAND: f64 = 0.15;
/// How often (seconds) the profit is checked at rest.
pub const PROFIT_WINDOW_S: f64 = 30.0;
/// A fall of the profit smaller than this (bytes) in a window is noise.
pub const PROFIT_FALL_BYTES: i64 = 1 << 20;

/// The share of one core ksmd used between two samples.
fn cpu_share(prev: &Input, cur: &Input) -> Option<f64> {
    let dt = cur.now - prev.now;
    match (prev.ksmd_cpu, cur.ksmd_cpu) {
        (Some(a), Some(b)) if dt >= 0.2 && b >= a => Some((b - a) / dt),
        _ => None,
    }
}

/// Whether ksmd did any work between two samples: it scanned pages (6.6+),
/// finished a full scan, or used a millisecond of CPU (a wake-up to find
/// nothing to scan costs microseconds).
fn did_work(prev: &Input, cur: &Input) -> bool {
    if let (Some(a), Some(b)) = (prev.pages_scanned, cur.pages_scanned) {
        return b > a || cur.full_scans > prev.full_scans;
    }
    cur.full_scans > prev.full_scans
        || matches!((prev.ksmd_cpu, cur.ksmd_cpu), (Some(a), Some(b)) if b - a >= 0.001)
}

/// Pages per batch for a CPU budget `b` (fraction of a core), a sleep
/// between batches and a cost per page.
pub fn batch_pages(b: f64, sleep_ms: u64, cost: f64) -> u64 {
    let b = b.clamp(0.001, 0.95);
    let cost = cost.max(1e-9);
    let n = b * (sleep_ms as f64 / 1000.0) / ((1.0 - b) * cost);
    let cap = (MAX_BATCH_SECONDS / cost).min(MAX_BATCH_PAGES as f64);
    n.min(cap).max(16.0) as u64
}

fn pct(x: f64) -> String {
    if x > 0.0 && x < 0.1 {
        format!("{:.2}%", x * 100.0)
    } else {
        format!("{:.0}%", x * 100.0)
    }
}

fn signed_bytes(b: i64) -> String {
    let s = human::ubytes(b.unsigned_abs());
    if b < 0 {
        format!("-{s}")
    } else {
        s
    }
}

/// The idle batch: from the cost of a page over a window at rest (or
/// ksmd's share over it, without `pages_scanned`), growing by at most
/// [`REST_GROWTH`] a second, cut at once when the last second cost more
/// than twice the budget. `None`: keep the batch.
fn rest_pages(st: &State, input: &Input, prev: &Input, aim: f64, budget: f64) -> Option<u64> {
    let res = input.ksmd_cpu_resolution.max(1e-9);
    let fine = res <= 1e-3;
    let cur_cpu = input.ksmd_cpu?;
    let pages = st.pages.max(16) as f64;
    // A second far over the budget: cut now (a fine reading only: one
    // tick is two seconds of the idle budget).
    if let (true, Some(share)) = (fine, cpu_share(prev, input)) {
        if share > 2.0 * budget && in_window(st, prev.now) {
            return Some((pages * aim / share).max(16.0) as u64);
        }
    }
    // The window: long enough that one quantum of the CPU reading is at
    // most 1/16 of what ksmd should use in it.
    let span = (16.0 * res / aim).clamp(REST_WINDOW_S, HISTORY_S);
    let since = st.idle_since.max(if input.pages_scanned.is_some() {
        f64::MIN
    } else {
        // ksmd's share is only comparable under one setting.
        st.set_at
    });
    let pt = st
        .history
        .iter()
        .rev()
        .filter(|p| p.now >= since)
        .find(|p| input.now - p.now >= span)?;
    let dcpu = cur_cpu - pt.cpu?;
    let dt = input.now - pt.now;
    let want = match (input.pages_scanned, pt.scanned) {
        (Some(b), Some(a)) => {
            let scanned = b.checked_sub(a).filter(|&n| n > 0)?;
            // A window with no CPU counted (ticks): half a quantum.
            let cost = dcpu.max(res / 2.0) / scanned as f64;
            batch_pages(aim, IDLE_SLEEP_MS, cost) as f64
        }
        _ => {
            if dcpu < 0.001 {
                // No work at all: nothing to scan; keep the batch.
                return None;
            }
            let share = (dcpu / dt).max(aim / 4.0);
            pages * aim / share
        }
    };
    let dt_step = (input.now - prev.now).clamp(0.0, 1.0);
    let want = want
        .min(pages * REST_GROWTH.powf(dt_step))
        .clamp(16.0, MAX_BATCH_PAGES as f64);
    ((want - pages).abs() > REST_DEADBAND * pages).then_some(want as u64)
}

/// Whether `t` falls in the idle period (so a reading there was taken
/// under the idle settings).
fn in_window(st: &State, t: f64) -> bool {
    t >= st.idle_since
}

/// One decision, in steps: learn from what ksmd did since the last
/// sample, note the pressure and where merging last made progress, start a
/// sprint or back off, end a sprint that is done, then choose the settings
/// for the mode and say why.
pub fn decide(p: &Params, st: &mut State, input: &Input, trigger: Option<Trigger>) -> Decision {
    let in_force = st.in_force(input);
    let prev = st.last.replace(*input);
    let share = prev.as_ref().and_then(|pr| cpu_share(pr, input));
    st.remember(input);
    if let Some(pr) = prev.as_ref() {
        learn_from_last_step(st, pr, input, share);
    }
    let (pressure, rising) = note_pressure(p, st, input);
    mark_merging_progress(st, input);

    let mut reason = String::new();
    sprint_or_back_off(p, st, input, trigger, rising, &mut reason);
    if st.mode == Mode::Sprint && reason.is_empty() {
        end_sprint_when_done(st, input, pressure, in_force, &mut reason);
    }
    if reason.is_empty() {
        reason.push_str(st.mode.as_str());
    }

    let (run, budget) = choose_settings(p, st, input, prev.as_ref(), share, in_force);
    describe_step(&mut reason, p, st, input, share, budget, pressure);
    Decision {
        run,
        pages_to_scan: (run == Run::Merge && !input.advisor_active).then_some(st.pages),
        sleep_millisecs: (run == Run::Merge).then_some(st.sleep_ms),
        debug_lines: Vec::new(),
        reason,
    }
}

/// Learn from what ksmd did since the last sample (whoever chose its
/// settings: the cost is ksmd's): the cost of a page, when ksmd last did
/// work, and what the last complete full scan saved.
fn learn_from_last_step(st: &mut State, pr: &Input, input: &Input, share: Option<f64>) {
    if let (Some(share), Some(a), Some(b)) = (share, pr.pages_scanned, input.pages_scanned) {
        let scanned = b.saturating_sub(a);
        if scanned >= 1000 && share > 0.0 {
            let c = share * (input.now - pr.now) / scanned as f64;
            st.cost = Some(match st.cost {
                Some(old) => 0.5 * old + 0.5 * c,
                None => c,
            });
        }
    }
    if did_work(pr, input) {
        st.work_at = Some(input.now);
    }
    // Full-scan boundaries: what did the last complete scan save?
    if input.full_scans > pr.full_scans {
        if let Some(at) = st.boundary_saved {
            st.last_scan_gain = Some(input.saved_pages.saturating_sub(at));
        }
        st.boundary_saved = Some(input.saved_pages);
    }
}

/// Whether the host is under memory pressure (MemAvailable under the
/// threshold, or PSI stalls), and whether it just became so.
fn note_pressure(p: &Params, st: &mut State, input: &Input) -> (bool, bool) {
    let psi = input.psi_some_avg10.unwrap_or(0.0);
    let pressure = input.available_kib < p.thres_kib || psi >= PSI_PRESSURE;
    let rising = pressure && !st.pressure;
    st.pressure = pressure;
    (pressure, rising)
}

/// A gain too small to go on for: under 0.5% of the pages ksmd tracks
/// (at least 64 pages).
fn small_gain(input: &Input, gain: u64) -> bool {
    let floor = (input.tracked_pages / 200).max(64);
    gain < floor
}

/// Where merging last made progress (in pages scanned), to see when it
/// has stopped without waiting for another whole full scan.
fn mark_merging_progress(st: &mut State, input: &Input) {
    if let Some(scanned) = input.pages_scanned {
        match st.gain_mark {
            Some((_, saved))
                if input.saved_pages > saved + (input.tracked_pages / 10_000).max(16) =>
            {
                st.gain_mark = Some((scanned, input.saved_pages));
            }
            Some(_) => {}
            None => st.gain_mark = Some((scanned, input.saved_pages)),
        }
    }
}

/// Start a sprint when there may be something to gain, or, at rest, back
/// off when KSM costs more than it saves; `reason` says which.
fn sprint_or_back_off(
    p: &Params,
    st: &mut State,
    input: &Input,
    trigger: Option<Trigger>,
    rising: bool,
    reason: &mut String,
) {
    let mut why = sprint_trigger(st.mode, trigger, rising);
    let mut backoff: Option<String> = None;
    if why.is_none() && st.mode == Mode::Idle {
        why = merging_at_the_idle_rate(p, st, input);
        backoff = profit_backoff(p, st, input);
    }
    if let Some(w) = &why {
        if st.mode != Mode::Sprint || trigger.is_some() {
            start_sprint(st, input);
            let _ = write!(reason, "sprint ({w})");
        }
    } else if let Some(b) = backoff {
        st.mode = Mode::Backoff;
        let _ = write!(
            reason,
            "back off: {b}; ksmd stopped (merged pages stay merged) until processes change or a retune"
        );
    }
}

/// Why (re)start a sprint, from what changed outside the counters. Rising
/// pressure does not end a back-off: KSM did not pay.
fn sprint_trigger(mode: Mode, trigger: Option<Trigger>, rising: bool) -> Option<String> {
    match trigger {
        Some(Trigger::Start) => Some("start".into()),
        Some(Trigger::Retune) => Some("retune requested".into()),
        Some(Trigger::Processes { appeared, exited }) => Some(format!(
            "mergeable processes changed (+{appeared} -{exited})"
        )),
        None if rising && mode != Mode::Backoff => Some("memory pressure rising".into()),
        None => None,
    }
}

/// At rest under pressure: still merging at the idle rate means there is
/// more to gain, a reason for a sprint (looked at every 10 s).
fn merging_at_the_idle_rate(p: &Params, st: &mut State, input: &Input) -> Option<String> {
    let mut why = None;
    match st.idle_mark {
        Some((t, saved)) if input.now - t >= 10.0 => {
            let gain = input.saved_pages.saturating_sub(saved);
            if !small_gain(input, gain) {
                why = Some(format!(
                    "{} merged at the idle rate in {:.0} s",
                    human::ubytes(gain * p.page_size),
                    input.now - t
                ));
            }
            st.idle_mark = Some((input.now, input.saved_pages));
        }
        Some(_) => {}
        None => st.idle_mark = Some((input.now, input.saved_pages)),
    }
    why
}

/// At rest: KSM paying less than it costs? Every [`PROFIT_WINDOW_S`], a
/// negative `general_profit`, or one that fell by more than what
/// copy-on-write lost, is a reason to back off.
fn profit_backoff(p: &Params, st: &mut State, input: &Input) -> Option<String> {
    let profit = input.general_profit?;
    let mut backoff = None;
    match st.profit_mark {
        Some((t, at, saved)) if input.now - t >= PROFIT_WINDOW_S => {
            let fall = at - profit;
            let lost = saved.saturating_sub(input.saved_pages) * p.page_size;
            if profit < 0 {
                backoff = Some(format!(
                    "general_profit is {}: KSM's metadata costs more than merging saves",
                    signed_bytes(profit)
                ));
            } else if fall > PROFIT_FALL_BYTES && fall > lost as i64 {
                backoff = Some(format!(
                    "general_profit fell by {} in {:.0} s while {} was merged: scanning adds more metadata than it saves",
                    human::ubytes(fall.unsigned_abs()),
                    input.now - t,
                    human::ubytes(input.saved_pages.saturating_sub(saved) * p.page_size)
                ));
            }
            st.profit_mark = Some((input.now, profit, input.saved_pages));
        }
        Some(_) => {}
        None => st.profit_mark = Some((input.now, profit, input.saved_pages)),
    }
    backoff
}

/// Enter a sprint: count full scans and progress from here.
fn start_sprint(st: &mut State, input: &Input) {
    st.mode = Mode::Sprint;
    st.sprint_scans = input.full_scans;
    st.boundary_saved = None;
    st.last_scan_gain = None;
    st.gain_mark = input.pages_scanned.map(|n| (n, input.saved_pages));
    st.idle_mark = None;
    st.profit_mark = None;
    st.work_at = Some(input.now);
}

/// A sprint ends after two full scans (merging needs two passes) once
/// merging has stopped: a tenth of a full scan without progress (where
/// the kernel counts pages_scanned), or a whole full scan that saved
/// little. It also ends when ksmd does no work at all for [`NO_WORK_S`].
fn end_sprint_when_done(
    st: &mut State,
    input: &Input,
    pressure: bool,
    in_force: bool,
    reason: &mut String,
) {
    let scans = input.full_scans.saturating_sub(st.sprint_scans);
    let quiet = match (input.pages_scanned, st.gain_mark) {
        (Some(now), Some((at, _))) => {
            now.saturating_sub(at) >= (input.tracked_pages / 10).max(4096)
        }
        _ => false,
    };
    let idle_for = st.work_at.map_or(0.0, |t| input.now - t);
    let gain = st.last_scan_gain.filter(|&g| small_gain(input, g));
    match gain.or(quiet.then_some(0)) {
        Some(gain) if scans >= 2 => {
            let volatile = if input.tracked_pages > 0 {
                input.volatile_pages as f64 / input.tracked_pages as f64
            } else {
                0.0
            };
            let evidence = if quiet {
                "nothing merged in the last tenth of a full scan".to_string()
            } else {
                format!("last full scan saved {} pages", human::count(gain))
            };
            let _ = write!(
                reason,
                "converged: {evidence}, {} tracked ({} volatile)",
                human::count(input.tracked_pages),
                pct(volatile),
            );
            settle(st, input, pressure, reason);
        }
        _ if idle_for >= NO_WORK_S => {
            rest_without_work(st, input, pressure, in_force, idle_for, reason)
        }
        _ => {
            let _ = write!(reason, "sprint");
        }
    }
}

/// After convergence: back off when KSM costs more than it saves, idle
/// scanning under memory pressure, else stop ksmd.
fn settle(st: &mut State, input: &Input, pressure: bool, reason: &mut String) {
    let negative = input.general_profit.filter(|&g| g < 0);
    st.mode = match negative {
        Some(_) => Mode::Backoff,
        None if pressure => Mode::Idle,
        None => Mode::Stopped,
    };
    st.idle_mark = None;
    st.profit_mark = None;
    st.idle_since = input.now;
    st.set_at = input.now;
    let _ = write!(
        reason,
        "; {}",
        match negative {
            Some(g) => format!(
                "KSM costs more than it saves (general_profit {}): back off, ksmd stopped (merged pages stay merged)",
                signed_bytes(g)
            ),
            None if pressure => "memory pressure: idle scanning".into(),
            None => "no memory pressure: stop ksmd".into(),
        }
    );
}

/// A sprint in which ksmd did no work: nothing is opted in, or ksmd does
/// not run with the chosen settings. Idle scanning under pressure, else
/// stop; nothing to merge is no loss, so no back-off.
fn rest_without_work(
    st: &mut State,
    input: &Input,
    pressure: bool,
    in_force: bool,
    idle_for: f64,
    reason: &mut String,
) {
    let what = if in_force {
        "ksmd found nothing to scan: no process has memory opted in to KSM".to_string()
    } else {
        format!(
            "ksmd is not running with the chosen settings (run {}, pages_to_scan {}, sleep_millisecs {} read; a dry run writes nothing), so whether there is anything to merge, and what it costs, cannot be measured",
            input.run.map_or("-".into(), |r| r.as_u8().to_string()),
            input.pages_to_scan.map_or("-".into(), |n| n.to_string()),
            input.sleep_millisecs.map_or("-".into(), |n| n.to_string()),
        )
    };
    let _ = write!(reason, "no work for {idle_for:.0} s: {what}");
    st.profit_mark = None;
    st.mode = if pressure { Mode::Idle } else { Mode::Stopped };
    st.idle_mark = None;
    st.idle_since = input.now;
    st.set_at = input.now;
    let _ = write!(
        reason,
        "; {}{}",
        if pressure {
            "memory pressure: idle scanning"
        } else {
            "no memory pressure: stop ksmd"
        },
        if in_force {
            ", a sprint when a process opts memory in"
        } else {
            ""
        }
    );
}

/// The settings for the mode: `run`, and while merging the sleep and the
/// batch for its CPU budget (remembered in the state). Returns `run` and
/// the budget.
fn choose_settings(
    p: &Params,
    st: &mut State,
    input: &Input,
    prev: Option<&Input>,
    share: Option<f64>,
    in_force: bool,
) -> (Run, f64) {
    let (run, budget, sleep) = match st.mode {
        Mode::Stopped | Mode::Backoff => (Run::Stop, 0.0, st.sleep_ms),
        Mode::Sprint => (Run::Merge, p.max_cpu, SPRINT_SLEEP_MS),
        Mode::Idle => (Run::Merge, IDLE_CPU.min(p.max_cpu), IDLE_SLEEP_MS),
    };
    if run == Run::Merge {
        // Aim a little under the budget: the cost of a page jumps when
        // merging starts (several times the checksum pass), and a step lasts
        // a second before it can be corrected.
        let aim = budget * AIM;
        let same_sleep = st.pages > 0 && st.sleep_ms == sleep && st.run == Some(Run::Merge);
        let pages = match (st.mode, prev) {
            (Mode::Idle, Some(pr)) if same_sleep => {
                batch_at_rest(st, input, pr, aim, budget, in_force)
            }
            _ => batch_for_budget(st, input, prev, (share, in_force), aim, sleep, same_sleep),
        };
        st.pages = pages;
        st.sleep_ms = sleep;
    }
    st.run = Some(run);
    (run, budget)
}

/// At rest: only steer by what ksmd did under these settings
/// ([`rest_pages`]); otherwise keep the batch.
fn batch_at_rest(
    st: &mut State,
    input: &Input,
    pr: &Input,
    aim: f64,
    budget: f64,
    in_force: bool,
) -> u64 {
    match in_force.then(|| rest_pages(st, input, pr, aim, budget)) {
        Some(Some(n)) => {
            st.set_at = input.now;
            n
        }
        _ => st.pages,
    }
}

/// The batch for a budget from the estimated cost of a page. Once ksmd has
/// run a step with the same sleep, steer by its measured share instead:
/// the budget is about what ksmd really uses, and the cost of a page
/// varies (merging costs more than checksumming). Not when the settings
/// are not in force, or ksmd had nothing to do: its share says nothing
/// then.
fn batch_for_budget(
    st: &State,
    input: &Input,
    prev: Option<&Input>,
    (share, in_force): (Option<f64>, bool),
    aim: f64,
    sleep: u64,
    same_sleep: bool,
) -> u64 {
    let cost = st.cost.unwrap_or(INITIAL_COST);
    let mut pages = batch_pages(aim, sleep, cost);
    if same_sleep {
        pages = st.pages;
        let worked = prev.is_some_and(|pr| did_work(pr, input));
        if let (Some(s), true, true) = (share, in_force, worked) {
            let factor = if s > 0.002 {
                (aim / s).clamp(0.25, 4.0)
            } else {
                4.0
            };
            pages = (st.pages as f64 * factor).clamp(16.0, MAX_BATCH_PAGES as f64) as u64;
        }
    }
    pages
}

/// The figures behind the decision, after its reason.
fn describe_step(
    reason: &mut String,
    p: &Params,
    st: &State,
    input: &Input,
    share: Option<f64>,
    budget: f64,
    pressure: bool,
) {
    let _ = write!(
        reason,
        ": {} tracked, last scan saved {}, ksmd {} of a core, budget {}{}",
        human::ubytes(input.tracked_pages * p.page_size),
        st.last_scan_gain
            .map(|g| human::ubytes(g * p.page_size))
            .unwrap_or_else(|| "-".into()),
        share.map(pct).unwrap_or_else(|| "-".into()),
        pct(budget),
        if pressure {
            ", under memory pressure"
        } else {
            ""
        }
    );
}
