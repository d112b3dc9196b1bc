//! Property: whatever configuration the parser accepts, whatever MemTotal,
//! whatever the samples and whatever `npages` the policy starts from (a
//! reload keeps it while MIN/MAX change), the classic policy asks only for
//! values inside the documented bounds, the kernel writer accepts them,
//! and nothing panics.

use std::path::Path;

use proptest::prelude::*;

use ksmtuned::config::shellvars;
use ksmtuned::config::{self, Config};
use ksmtuned::kernel::ksm::{Knob, Run, Setting};
use ksmtuned::policy::classic;

const NAMES: [&str; 8] = [
    "KSM_SLEEP_MSEC",
    "KSM_NPAGES_BOOST",
    "KSM_NPAGES_DECAY",
    "KSM_NPAGES_MIN",
    "KSM_NPAGES_MAX",
    "KSM_THRES_COEF",
    "KSM_THRES_CONST",
    "KSM_MONITOR_INTERVAL",
];

/// A value as a person might write it: numbers of every size and sign
/// (plain, quoted, padded), empty, or words.
fn value() -> impl Strategy<Value = String> {
    let u32max = i64::from(u32::MAX);
    prop_oneof![
        (-2000i64..5000).prop_map(|n| n.to_string()),
        (-u32max - 10..=u32max + 10).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(u32max),
            Just(-u32max),
            Just(u32max + 1)
        ]
        .prop_map(|n| n.to_string()),
        (0i64..5000).prop_map(|n| format!("\"{n}\"")),
        (0i64..5000).prop_map(|n| format!("' {n} '")),
        Just(String::new()),
        "[a-z0-9.+-]{1,6}",
    ]
}

fn config_text() -> impl Strategy<Value = String> {
    proptest::collection::vec((0..NAMES.len(), value()), 0..12).prop_map(|assignments| {
        assignments
            .into_iter()
            .map(|(i, v)| format!("{}={v}\n", NAMES[i]))
            .collect()
    })
}

/// A MemTotal in KiB: tiny to absurd, weighted to real sizes.
fn total() -> impl Strategy<Value = u64> {
    prop_oneof![
        1u64..=4096,
        (1u64 << 19)..(1u64 << 32),
        any::<u64>(),
        Just(u64::MAX),
    ]
}

/// A sample (committed, free) in KiB relative to MemTotal, or anything.
fn samples(total: u64) -> impl Strategy<Value = Vec<(u64, u64)>> {
    let near = prop_oneof![0..=total, Just(total), any::<u64>(), Just(0u64)];
    proptest::collection::vec((near.clone(), near), 1..64)
}

fn check(c: &Config, total: u64, npages0: i64, samples: &[(u64, u64)]) {
    for flavour in [
        ksmtuned::config::Flavour::Rhel,
        ksmtuned::config::Flavour::Proxmox,
    ] {
        check_flavour(c, flavour, total, npages0, samples);
    }
}

fn check_flavour(
    c: &Config,
    flavour: ksmtuned::config::Flavour,
    total: u64,
    npages0: i64,
    samples: &[(u64, u64)],
) {
    let p = classic::Params::new(c, flavour, total);
    assert!(
        (10..=u64::from(u32::MAX)).contains(&p.sleep),
        "sleep {} for {c:?}, total {total}",
        p.sleep
    );
    let mut state = classic::State { npages: npages0 };
    for &(committed, free) in samples {
        let d = classic::adjust(&p, &mut state, committed, free);
        assert!(matches!(d.run, Run::Stop | Run::Merge), "{d:?}");
        assert!(d.run.as_u8() <= 1);
        let run = Setting::number(Knob::Run, u64::from(d.run.as_u8()));
        assert!(run.is_ok(), "run {d:?}");
        match d.run {
            Run::Merge => {
                let n = d.pages_to_scan.expect("a start sets pages_to_scan");
                assert!(
                    n >= c.npages_min as u64 && n <= c.npages_max as u64,
                    "pages_to_scan {n} outside [{}, {}]",
                    c.npages_min,
                    c.npages_max
                );
                assert!(n <= u64::from(u32::MAX));
                assert_eq!(state.npages, n as i64, "npages is what was written");
                let s = d.sleep_millisecs.expect("a start sets sleep_millisecs");
                assert_eq!(s, p.sleep);
                assert!(Setting::number(Knob::PagesToScan, n).is_ok());
                assert!(Setting::number(Knob::SleepMillisecs, s).is_ok());
            }
            _ => {
                assert_eq!((d.pages_to_scan, d.sleep_millisecs), (None, None));
            }
        }
        assert!(!d.debug_lines.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn accepted_configs_keep_writes_in_bounds(
        text in config_text(),
        (total, samples) in total().prop_flat_map(|t| (Just(t), samples(t))),
        npages0 in prop_oneof![Just(0i64), -5000i64..5000, any::<i64>()],
    ) {
        let loaded = config::from_parsed(shellvars::parse(Path::new("ksmtuned.conf"), &text));
        if loaded.is_ok() {
            let c = &loaded.config;
            prop_assert!(c.npages_min >= 0 && c.npages_min <= c.npages_max);
            prop_assert!(c.npages_max <= i64::from(u32::MAX));
            prop_assert!(c.monitor_interval >= 1);
            check(c, total, npages0, &samples);
        } else {
            // Refused: every error names the file and line.
            for e in &loaded.errors {
                prop_assert!(e.to_string().starts_with("ksmtuned.conf:"), "{}", e);
            }
        }
    }

    /// Not every random file is accepted: the bounds also hold for the
    /// extremes the parser does accept, tested directly.
    #[test]
    fn extreme_accepted_values_keep_writes_in_bounds(
        min in prop_oneof![Just(0i64), Just(i64::from(u32::MAX)), 0i64..=i64::from(u32::MAX)],
        span in prop_oneof![Just(0i64), 0i64..=i64::from(u32::MAX)],
        boost in prop_oneof![Just(i64::from(u32::MAX)), 0i64..=i64::from(u32::MAX)],
        decay in prop_oneof![Just(-i64::from(u32::MAX)), -i64::from(u32::MAX)..=i64::from(u32::MAX)],
        sleep_msec in prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()],
        coef in any::<u32>(),
        konst in any::<u32>(),
        (total, samples) in total().prop_flat_map(|t| (Just(t), samples(t))),
        npages0 in any::<i64>(),
    ) {
        let max = (min + span).min(i64::from(u32::MAX));
        let text = format!(
            "KSM_NPAGES_MIN={min}\nKSM_NPAGES_MAX={max}\nKSM_NPAGES_BOOST={boost}\n\
             KSM_NPAGES_DECAY={decay}\nKSM_SLEEP_MSEC={sleep_msec}\nKSM_THRES_COEF={coef}\n\
             KSM_THRES_CONST={konst}\n"
        );
        let loaded = config::from_parsed(shellvars::parse(Path::new("ksmtuned.conf"), &text));
        prop_assert!(loaded.is_ok(), "{text}: {:?}", loaded.errors);
        check(&loaded.config, total, npages0, &samples);
    }
}
