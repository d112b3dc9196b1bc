//! From a [`Decision`] and KSM as it is now to the settings to write: a
//! pure function, tested with numbers. The daemon only executes a plan
//! (or, in a dry run, logs it) and reports what it applied.

use crate::error::Result;
use crate::kernel::ksm::{Knob, KsmState, Run, Setting};

use super::Decision;

/// How a policy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Every value every time, as the original ksmtuned did; with the
    /// kernel's advisor choosing pages_to_scan, `run` only.
    Classic,
    /// Only what differs from the kernel's current value; with the advisor
    /// on, `run` and `sleep_millisecs`.
    Adaptive,
}

/// What a plan puts in force: `None` = left to the kernel (or as it was).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub run: Run,
    pub pages_to_scan: Option<u64>,
    pub sleep_millisecs: Option<u64>,
}

/// The writes of one decision, in the order they are to be made:
/// `pages_to_scan`, `sleep_millisecs`, then `run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub writes: Vec<Setting>,
    pub applied: Applied,
    /// The kernel's scan-time advisor chooses pages_to_scan.
    pub advisor: bool,
}

impl Plan {
    /// Plan the writes of `d` given KSM's current values `now`. A value
    /// the kernel's limits refuse is an error (no policy produces one: the
    /// property tests check that).
    pub fn new(d: &Decision, now: &KsmState, style: Style) -> Result<Plan> {
        let advisor = now.advisor_active();
        let sleep_allowed = !advisor || style == Style::Adaptive;
        let applied = Applied {
            run: d.run,
            pages_to_scan: d.pages_to_scan.filter(|_| !advisor),
            sleep_millisecs: d.sleep_millisecs.filter(|_| sleep_allowed),
        };
        let mut wanted = Vec::new();
        if d.run == Run::Merge {
            if let Some(n) = applied.pages_to_scan {
                wanted.push((Knob::PagesToScan, n, now.pages_to_scan));
            }
            if let Some(ms) = applied.sleep_millisecs {
                wanted.push((Knob::SleepMillisecs, ms, now.sleep_millisecs));
            }
        }
        let run = u64::from(d.run.as_u8());
        wanted.push((Knob::Run, run, now.run.map(|r| u64::from(r.as_u8()))));
        let mut writes = Vec::new();
        for (knob, value, current) in wanted {
            if style == Style::Adaptive && current == Some(value) {
                continue;
            }
            writes.push(match knob {
                Knob::Run => Setting::run(d.run),
                _ => Setting::number(knob, value)?,
            });
        }
        Ok(Plan {
            writes,
            applied,
            advisor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::ksm::AdvisorMode;

    fn decision(run: Run, pages: Option<u64>, sleep: Option<u64>) -> Decision {
        Decision {
            run,
            pages_to_scan: pages,
            sleep_millisecs: sleep,
            debug_lines: Vec::new(),
            reason: String::new(),
        }
    }

    fn now(run: u8, pages: u64, sleep: u64, advisor: Option<AdvisorMode>) -> KsmState {
        KsmState {
            run: Some([Run::Stop, Run::Merge, Run::Unmerge][usize::from(run)]),
            pages_to_scan: Some(pages),
            sleep_millisecs: Some(sleep),
            advisor_mode: advisor,
            ..KsmState::default()
        }
    }

    fn names(p: &Plan) -> Vec<String> {
        p.writes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn classic_writes_everything_every_time_in_order() {
        let d = decision(Run::Merge, Some(300), Some(10));
        let p = Plan::new(&d, &now(1, 300, 10, None), Style::Classic).unwrap();
        assert_eq!(
            names(&p),
            ["pages_to_scan=300", "sleep_millisecs=10", "run=1"]
        );
        let d = decision(Run::Stop, None, None);
        let p = Plan::new(&d, &now(0, 300, 10, None), Style::Classic).unwrap();
        assert_eq!(names(&p), ["run=0"]);
    }

    #[test]
    fn adaptive_writes_only_what_differs() {
        let d = decision(Run::Merge, Some(500), Some(20));
        let p = Plan::new(&d, &now(1, 100, 20, None), Style::Adaptive).unwrap();
        assert_eq!(names(&p), ["pages_to_scan=500"]);
        let p = Plan::new(&d, &now(1, 500, 20, None), Style::Adaptive).unwrap();
        assert!(p.writes.is_empty());
        assert_eq!(p.applied.pages_to_scan, Some(500));
    }

    #[test]
    fn the_advisor_keeps_pages_to_scan() {
        let st = now(0, 100, 20, Some(AdvisorMode::ScanTime));
        let d = decision(Run::Merge, Some(500), Some(50));
        let p = Plan::new(&d, &st, Style::Classic).unwrap();
        assert_eq!(names(&p), ["run=1"]);
        assert_eq!(p.applied.pages_to_scan, None);
        assert_eq!(p.applied.sleep_millisecs, None);
        assert!(p.advisor);
        let p = Plan::new(&d, &st, Style::Adaptive).unwrap();
        assert_eq!(names(&p), ["sleep_millisecs=50", "run=1"]);
        assert_eq!(p.applied.sleep_millisecs, Some(50));
    }

    #[test]
    fn out_of_range_is_an_error() {
        let d = decision(Run::Merge, Some(u64::MAX), Some(10));
        assert!(Plan::new(&d, &now(1, 1, 1, None), Style::Classic).is_err());
    }
}
