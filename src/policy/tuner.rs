//! The tuner in force: which policy runs, its parameters (computed once
//! from the configuration and MemTotal, and again on a reload), and its
//! memory between cycles. The daemon runs the loop around it; everything
//! about what a policy needs lives here.

use std::time::Duration;

use crate::config::{Config, Flavour, PolicyKind};
use crate::error::{Error, Result};
use crate::kernel::sys;
use crate::policy::adaptive::{self, Trigger};
use crate::policy::plan::Style;
use crate::policy::{classic, Decision};
use crate::sample::{Follow, Sample};

/// What a tuner is doing, for people and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TunerState {
    /// Before the first decision.
    #[default]
    Starting,
    /// Classic: ksmd runs.
    Running,
    /// Classic: ksmd stopped.
    Stopped,
    /// The adaptive policy's mode.
    Adaptive(adaptive::Mode),
}

impl TunerState {
    /// The name in logs and the metrics (`ksm_tuner_state{state=...}`).
    pub fn as_str(self) -> &'static str {
        match self {
            TunerState::Starting => "starting",
            TunerState::Running => "running",
            TunerState::Stopped => "stopped",
            TunerState::Adaptive(m) => m.as_str(),
        }
    }
}

/// The running policy and its memory between cycles.
enum Policy {
    Classic(classic::State),
    Adaptive {
        state: Box<adaptive::State>,
        /// A trigger not yet handed to the policy.
        pending: Option<Trigger>,
    },
}

impl Policy {
    fn new(kind: PolicyKind) -> Policy {
        match kind {
            PolicyKind::Classic => Policy::Classic(classic::State::default()),
            PolicyKind::Adaptive => Policy::Adaptive {
                state: Box::default(),
                pending: Some(Trigger::Start),
            },
        }
    }
}

/// A tuning policy with its configuration and parameters.
pub struct Tuner {
    config: Config,
    /// KSM_FLAVOUR resolved on this host, and why.
    flavour: (Flavour, String),
    classic: classic::Params,
    adaptive: adaptive::Params,
    policy: Policy,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// `NAME old -> new` for every variable and parameter that changed.
    pub changes: Vec<String>,
    /// The policy changed: the state starts anew, and the processes it
    /// follows change.
    pub policy_changed: bool,
}

impl Tuner {
    /// The tuner of `config` on a host with `mem_total_kib` of memory,
    /// whose flavour resolved to `flavour` (see
    /// [`crate::config::flavour::resolve`]).
    pub fn new(config: Config, flavour: (Flavour, String), mem_total_kib: u64) -> Tuner {
        let classic = classic::Params::new(&config, flavour.0, mem_total_kib);
        Tuner {
            adaptive: adaptive_params(&config, &classic),
            policy: Policy::new(config.policy),
            classic,
            flavour,
            config,
        }
    }

    /// Take a new configuration (and MemTotal, which the original never
    /// read again), keeping the policy's state unless the policy changed.
    pub fn reload(
        &mut self,
        config: Config,
        flavour: (Flavour, String),
        mem_total_kib: u64,
    ) -> Reloaded {
        let classic = classic::Params::new(&config, flavour.0, mem_total_kib);
        let mut changes = config_changes(&self.config, &config);
        if flavour.0 != self.flavour.0 {
            changes.push(format!(
                "flavour {} -> {} ({})",
                self.flavour.0, flavour.0, flavour.1
            ));
        }
        for (name, a, b) in [
            ("total", self.classic.total, classic.total),
            ("sleep", self.classic.sleep, classic.sleep),
            ("thres", self.classic.thres, classic.thres),
        ] {
            if a != b {
                changes.push(format!("{name} {a} -> {b}"));
            }
        }
        let policy_changed = config.policy != self.config.policy;
        if policy_changed {
            self.policy = Policy::new(config.policy);
        }
        self.adaptive = adaptive_params(&config, &classic);
        self.classic = classic;
        self.flavour = flavour;
        self.config = config;
        Reloaded {
            changes,
            policy_changed,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The policy that runs.
    pub fn kind(&self) -> PolicyKind {
        self.config.policy
    }

    /// KSM_FLAVOUR resolved on this host, and why.
    pub fn flavour(&self) -> &(Flavour, String) {
        &self.flavour
    }

    /// Classic's parameters (sleep, threshold, MemTotal), which the
    /// original logged at start.
    pub fn classic_params(&self) -> &classic::Params {
        &self.classic
    }

    /// The adaptive policy's ksmd CPU budget, a fraction of one core
    /// (`None` for classic, which has none).
    pub fn max_cpu_ratio(&self) -> Option<f64> {
        (self.kind() == PolicyKind::Adaptive).then_some(self.adaptive.max_cpu)
    }

    /// Which processes the policy follows from one sample to the next.
    pub fn follows(&self) -> Follow {
        match self.kind() {
            PolicyKind::Classic => Follow::Guests,
            PolicyKind::Adaptive => Follow::OptedIn,
        }
    }

    /// Time between cycles: KSM_MONITOR_INTERVAL (or `over`, the
    /// command line's) for classic; the adaptive policy samples every
    /// second at most (cheaply) so that it notices new guests and keeps
    /// ksmd within its CPU budget.
    pub fn interval(&self, over: Option<Duration>) -> Duration {
        let configured = over.unwrap_or(Duration::from_secs(self.config.monitor_interval));
        match self.policy {
            Policy::Classic(..) => configured,
            Policy::Adaptive { .. } => configured.min(Duration::from_secs(1)),
        }
    }

    /// A retune was asked for: the adaptive policy sprints again.
    pub fn retune(&mut self) {
        if let Policy::Adaptive { pending, .. } = &mut self.policy {
            *pending = Some(Trigger::Retune);
        }
    }

    /// How the policy's decisions are written.
    pub fn style(&self) -> Style {
        match self.policy {
            Policy::Classic(..) => Style::Classic,
            Policy::Adaptive { .. } => Style::Adaptive,
        }
    }

    /// The adaptive policy's mode (`None` for classic).
    pub fn mode(&self) -> Option<adaptive::Mode> {
        match &self.policy {
            Policy::Adaptive { state, .. } => Some(state.mode),
            Policy::Classic(..) => None,
        }
    }

    /// What the tuner is doing after `decision`.
    pub fn state(&self, decision: &Decision) -> TunerState {
        match self.mode() {
            Some(mode) => TunerState::Adaptive(mode),
            None if decision.run == crate::kernel::ksm::Run::Merge => TunerState::Running,
            None => TunerState::Stopped,
        }
    }

    /// Decide from one sample.
    pub fn decide(&mut self, sample: &Sample) -> Result<Decision> {
        Ok(match &mut self.policy {
            Policy::Classic(state) => {
                let i = classic::Input::try_from(sample)?;
                classic::adjust(&self.classic, state, i.committed, i.free)
            }
            Policy::Adaptive { state, pending } => {
                let input = adaptive::Input::from_sample(sample)
                    .ok_or_else(|| Error::Other("the sample has no KSM files".to_string()))?;
                let trigger = pending.take().or(Trigger::from_sample(sample));
                adaptive::decide(&self.adaptive, state, &input, trigger)
            }
        })
    }
}

/// The adaptive policy's parameters: KSM_MAX_CPU as a fraction, and
/// classic's free-memory threshold.
fn adaptive_params(config: &Config, classic: &classic::Params) -> adaptive::Params {
    adaptive::Params {
        max_cpu: config.max_cpu as f64 / 100.0,
        thres_kib: classic.thres,
        page_size: sys::page_size(),
    }
}

/// The variables that differ between two configurations, as `NAME a -> b`.
fn config_changes(a: &Config, b: &Config) -> Vec<String> {
    a.values()
        .into_iter()
        .zip(b.values())
        .filter(|((_, x), (_, y))| x != y)
        .map(|((name, x), (_, y))| format!("{name} {x} -> {y}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuner(config: Config) -> Tuner {
        Tuner::new(config, (Flavour::Rhel, "test".into()), 16 << 20)
    }

    #[test]
    fn changes_are_listed() {
        let a = Config::default();
        let b = Config {
            npages_boost: 500,
            debug: true,
            ..Config::default()
        };
        assert_eq!(
            config_changes(&a, &b),
            vec!["KSM_NPAGES_BOOST 300 -> 500", "DEBUG off -> on"]
        );
        assert!(config_changes(&a, &a).is_empty());
    }

    #[test]
    fn a_reload_recomputes_the_parameters_and_keeps_the_policy() {
        let mut t = tuner(Config::default());
        assert_eq!(t.classic_params().thres, (16 << 20) * 20 / 100);
        let r = t.reload(
            Config {
                thres_coef: 10,
                ..Config::default()
            },
            (Flavour::Rhel, "test".into()),
            8 << 20,
        );
        assert!(!r.policy_changed);
        assert_eq!(
            r.changes,
            vec![
                "KSM_THRES_COEF 20 -> 10",
                "total 16777216 -> 8388608",
                "sleep 10 -> 20",
                &format!(
                    "thres {} -> {}",
                    (16 << 20) * 20 / 100,
                    (8 << 20) * 10 / 100
                ),
            ]
        );
        assert_eq!(t.max_cpu_ratio(), None);
        let r = t.reload(
            Config {
                policy: PolicyKind::Adaptive,
                max_cpu: 30,
                ..Config::default()
            },
            (Flavour::Rhel, "test".into()),
            8 << 20,
        );
        assert!(r.policy_changed);
        assert_eq!(t.max_cpu_ratio(), Some(0.3));
        assert_eq!(t.mode(), Some(adaptive::Mode::Stopped));
        assert_eq!(t.follows(), Follow::OptedIn);
        assert_eq!(
            t.interval(Some(Duration::from_secs(60))),
            Duration::from_secs(1)
        );
    }
}
