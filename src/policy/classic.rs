//! The original ksmtuned's policy, decision for decision.
//!
//! All arithmetic is 64-bit integer arithmetic truncating toward zero, as
//! in bash; sums that bash could overflow are done in 128 bits, so hosts
//! with many TiB decide correctly (the original's awk failed above 2 TiB).
//!
//! The flavour ([`Flavour`]) decides what `committed` is and the default of
//! KSM_SLEEP_MSEC; the decisions and debug lines are the same for both
//! (Proxmox VE's script prints the same texts). Proxmox's script reacts to
//! a retune (SIGUSR1) only at the end of the current interval, because it
//! sleeps in the foreground; that is a defect we do not reproduce: a
//! retune adjusts at once in every flavour (see ksmtuned.conf(5)).

use crate::config::{Config, Flavour};
use crate::error::{Error, Result};
use crate::kernel::ksm::Run;
use crate::sample::trackers::ProcScan;
use crate::sample::Sample;

use super::Decision;

/// Values computed once from MemTotal (and again on reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// MemTotal, KiB.
    pub total: u64,
    /// The sleep_millisecs to set.
    pub sleep: u64,
    /// The free-memory threshold, KiB.
    pub thres: u64,
    pub boost: i64,
    pub decay: i64,
    pub min: i64,
    pub max: i64,
    /// Whose ksmtuned these decisions reproduce.
    pub flavour: Flavour,
}

impl Params {
    /// `sleep = KSM_SLEEP_MSEC * 16 GiB / total`, at least 10;
    /// `thres = total * KSM_THRES_COEF / 100`, at least KSM_THRES_CONST.
    /// KSM_SLEEP_MSEC defaults to the flavour's (10, or 100 on Proxmox).
    pub fn new(config: &Config, flavour: Flavour, total_kib: u64) -> Params {
        let total = total_kib.max(1);
        let sleep_msec = config.sleep_msec(flavour);
        let sleep = u128::from(sleep_msec) * 16 * 1024 * 1024 / u128::from(total);
        let sleep = if sleep <= 10 {
            10
        } else {
            sleep.min(u128::from(u32::MAX)) as u64
        };
        let thres = (u128::from(total) * u128::from(config.thres_coef) / 100) as u64;
        let thres = if config.thres_const > thres {
            config.thres_const
        } else {
            thres
        };
        Params {
            total: total_kib,
            sleep,
            thres,
            boost: config.npages_boost,
            decay: config.npages_decay,
            min: config.npages_min,
            max: config.npages_max,
            flavour,
        }
    }

    /// The original's start-up debug lines.
    pub fn debug_lines(&self) -> [String; 3] {
        [
            format!("total {}", self.total),
            format!("sleep {}", self.sleep),
            format!("thres {}", self.thres),
        ]
    }
}

/// The policy's memory between adjustments: `npages`, 0 at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State {
    pub npages: i64,
}

/// Proxmox's `committed`: the processes' PSS (KiB) summed as awk sums
/// them (in double precision, in order) and printed with `%.0f` (rounded
/// to the nearest integer, no exponent). Exact below 2^53 KiB.
pub fn awk_sum_kib(values: impl IntoIterator<Item = u64>) -> u64 {
    let sum: f64 = values.into_iter().fold(0.0, |acc, v| acc + v as f64);
    // `as` saturates; a sum of u64 values cannot be negative or NaN.
    sum.round_ties_even() as u64
}

/// Classic ksmtuned's "committed" memory (KiB) in the flavour the guests
/// were counted for: the RSS sum of the QEMU processes, or on Proxmox VE
/// the PSS of the `kvm` processes summed as its awk does ([`awk_sum_kib`]).
pub fn committed_kib(guests: &ProcScan) -> u64 {
    match guests.flavour {
        Flavour::Rhel => guests.qemu_rss_kib,
        Flavour::Proxmox => awk_sum_kib(guests.guest_pss_kib.iter().copied()),
    }
}

/// What the policy looks at, KiB: `committed` is the flavour's measure of
/// the guests' memory (the RSS of the QEMU processes; on Proxmox the PSS
/// of the `kvm` processes, see [`awk_sum_kib`]), `free` is MemFree +
/// Buffers + Cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Input {
    pub committed: u64,
    pub free: u64,
}

impl TryFrom<&Sample> for Input {
    type Error = Error;

    /// From a sample that followed the guests and read meminfo.
    fn try_from(s: &Sample) -> Result<Input> {
        let (Some(mem), Some(guests)) = (&s.mem, &s.guests) else {
            return Err(Error::Other(
                "the classic policy needs meminfo and the QEMU guests in its sample".into(),
            ));
        };
        Ok(Input {
            committed: committed_kib(guests),
            free: mem.classic_free(),
        })
    }
}

/// One adjustment. `committed` is the flavour's measure of the guests'
/// memory ([`Input`]), `free` is MemFree + Buffers + Cached, both KiB.
pub fn adjust(p: &Params, state: &mut State, committed: u64, free: u64) -> Decision {
    let mut lines = vec![format!("committed {committed} free {free}")];
    let sum = u128::from(committed) + u128::from(p.thres);
    if sum < u128::from(p.total) && free > p.thres {
        lines.push(format!(
            "{sum} < {} and free > {}, stop ksm",
            p.total, p.thres
        ));
        return Decision {
            run: Run::Stop,
            pages_to_scan: None,
            sleep_millisecs: None,
            debug_lines: lines,
            reason: format!(
                "enough free memory: committed {committed} + threshold {} < total {} KiB, free {free} > threshold",
                p.thres, p.total
            ),
        };
    }
    lines.push(format!("{sum} > {}, start ksm", p.total));
    let (delta, why) = if free < p.thres {
        lines.push(format!("{free} < {}, boost", p.thres));
        (p.boost, "boost")
    } else {
        lines.push(format!("{free} > {}, decay", p.thres));
        (p.decay, "decay")
    };
    let mut npages = state.npages.saturating_add(delta);
    if npages < p.min {
        npages = p.min;
    } else if npages > p.max {
        npages = p.max;
    }
    state.npages = npages;
    // MIN >= 0 is enforced by the configuration, so npages >= 0 here.
    let npages_u = npages.max(0) as u64;
    lines.push(format!("KSMCTL start {npages} {}", p.sleep));
    Decision {
        run: Run::Merge,
        pages_to_scan: Some(npages_u),
        sleep_millisecs: Some(p.sleep),
        debug_lines: lines,
        reason: format!(
            "{why}: free {free} KiB {} threshold {} KiB",
            if free < p.thres { "<" } else { ">=" },
            p.thres
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awk_sums_like_printf_percent_dot_zero() {
        assert_eq!(awk_sum_kib([]), 0);
        assert_eq!(awk_sum_kib([1, 2, 3]), 6);
        // Hosts with many TiB: exact (no exponent form, no 2^31 limit).
        let tib = 1024 * 1024 * 1024u64;
        assert_eq!(awk_sum_kib([3 * tib, 5 * tib]), 8 * tib);
        // Beyond 2^53 the double rounds, as awk's does: 2^53 + 1 is not
        // representable and the sum stays 2^53.
        assert_eq!(awk_sum_kib([1 << 53, 1]), 1 << 53);
    }

    const GIB: u64 = 1024 * 1024; // KiB

    fn params(total: u64) -> Params {
        Params::new(&Config::default(), Flavour::Rhel, total)
    }

    #[test]
    fn sleep_and_thres_scale_with_memory() {
        // (MemTotal KiB, sleep, thres)
        let table = [
            (4 * GIB, 40, 4 * GIB / 5),
            (8 * GIB, 20, 8 * GIB * 20 / 100),
            (16 * GIB, 10, 16 * GIB * 20 / 100),
            (24594036, 10, 24594036 * 20 / 100),
            (512 * 1024, 320, 104857),
            (8000, 20971, 2048), // tiny host: the threshold floor applies
            (4 * 1024 * GIB, 10, 4 * 1024 * GIB / 5),
        ];
        for (total, sleep, thres) in table {
            let p = params(total);
            assert_eq!((p.sleep, p.thres), (sleep, thres), "total {total}");
        }
        // 3 GiB: 10 * 16 / 3 = 53.33 -> 53 (truncation).
        assert_eq!(params(3 * GIB).sleep, 53);
    }

    #[test]
    fn decisions_table() {
        let total = 16 * GIB;
        let p = params(total); // thres = 3355443
        let t = p.thres;
        // (npages before, committed, free, run, npages after, last line)
        let table: &[(i64, u64, u64, Run, i64, &str)] = &[
            // Plenty free, little committed: stop, npages kept.
            (0, 0, total, Run::Stop, 0, "stop ksm"),
            (500, GIB, t + 1, Run::Stop, 500, "stop ksm"),
            // committed + thres == total: not "<": start; free > thres: decay.
            (0, total - t, t + 1, Run::Merge, 64, "KSMCTL start 64 10"),
            // Free below threshold: boost from 0 (first start) -> 300.
            (0, 0, t - 1, Run::Merge, 300, "KSMCTL start 300 10"),
            // free == thres: decay (and not a stop, since free > thres fails).
            (300, 0, t, Run::Merge, 250, "KSMCTL start 250 10"),
            // Clamp at MAX.
            (1200, 0, 0, Run::Merge, 1250, "KSMCTL start 1250 10"),
            (1250, 0, 0, Run::Merge, 1250, "KSMCTL start 1250 10"),
            // Clamp at MIN.
            (100, total, total, Run::Merge, 64, "KSMCTL start 64 10"),
            (64, total, total, Run::Merge, 64, "KSMCTL start 64 10"),
        ];
        for &(before, committed, free, run, after, last) in table {
            let mut s = State { npages: before };
            let d = adjust(&p, &mut s, committed, free);
            assert_eq!(d.run, run, "{before} {committed} {free}");
            assert_eq!(s.npages, after, "{before} {committed} {free}");
            assert!(
                d.debug_lines.last().unwrap().ends_with(last),
                "{:?}",
                d.debug_lines
            );
            if run == Run::Stop {
                assert_eq!((d.pages_to_scan, d.sleep_millisecs), (None, None));
            } else {
                assert_eq!(d.pages_to_scan, Some(after as u64));
                assert_eq!(d.sleep_millisecs, Some(10));
            }
        }
    }

    #[test]
    fn debug_lines_are_the_originals() {
        let p = params(16 * GIB);
        let mut s = State::default();
        let d = adjust(&p, &mut s, 1000, 2000);
        assert_eq!(
            d.debug_lines,
            vec![
                "committed 1000 free 2000".to_string(),
                format!("{} > {}, start ksm", 1000 + p.thres, p.total),
                format!("2000 < {}, boost", p.thres),
                "KSMCTL start 300 10".to_string(),
            ]
        );
        let d = adjust(&p, &mut s, 0, 16 * GIB);
        assert_eq!(
            d.debug_lines,
            vec![
                format!("committed 0 free {}", 16 * GIB),
                format!("{} < {} and free > {}, stop ksm", p.thres, p.total, p.thres),
            ]
        );
        assert_eq!(
            p.debug_lines(),
            [
                format!("total {}", 16 * GIB),
                "sleep 10".to_string(),
                format!("thres {}", p.thres)
            ]
        );
    }

    #[test]
    fn huge_hosts_decide_correctly() {
        // 2 TiB and 4 TiB hosts: sums beyond 2^31 KiB.
        for tib in [2u64, 4, 64] {
            let total = tib * 1024 * GIB;
            let p = params(total);
            assert_eq!(p.thres, total / 5);
            let mut s = State::default();
            // A host full of guests: committed 90%, free 5%.
            let d = adjust(&p, &mut s, total / 10 * 9, total / 20);
            assert_eq!(d.run, Run::Merge);
            assert_eq!(s.npages, 300);
            // An idle host: stop.
            let d = adjust(&p, &mut s, total / 10, total / 10 * 9);
            assert_eq!(d.run, Run::Stop);
        }
        // The extreme: committed near u64::MAX does not overflow.
        let p = params(u64::MAX / 2);
        let mut s = State::default();
        let d = adjust(&p, &mut s, u64::MAX, 0);
        assert_eq!(d.run, Run::Merge);
    }

    #[test]
    fn sleep_msec_scaling_cannot_overflow() {
        let c = Config {
            sleep_msec: Some(u64::from(u32::MAX)),
            ..Config::default()
        };
        let p = Params::new(&c, Flavour::Rhel, 1);
        assert_eq!(p.sleep, u64::from(u32::MAX));
    }

    #[test]
    fn proxmox_sleeps_ten_times_longer_by_default() {
        // (MemTotal KiB, sleep): 100 * 16 GiB / total, at least 10.
        for (total, sleep) in [
            (4 * GIB, 400),
            (8 * GIB, 200),
            (16 * GIB, 100),
            (24594036, 68),
            (160 * GIB, 10),
            (512 * GIB, 10),
        ] {
            let p = Params::new(&Config::default(), Flavour::Proxmox, total);
            assert_eq!(p.sleep, sleep, "{total}");
            assert_eq!(p.thres, params(total).thres, "the threshold is the same");
        }
        // An explicit value is the same in both flavours.
        let c = Config {
            sleep_msec: Some(10),
            ..Config::default()
        };
        assert_eq!(Params::new(&c, Flavour::Proxmox, 4 * GIB).sleep, 40);
    }
}
