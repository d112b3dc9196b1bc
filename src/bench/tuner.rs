//! The tuners the bench compares, how each is started from the same clean
//! state, and how tuner processes are stopped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::kernel::ksm::{AdvisorMode, Knob, Ksm, KsmState, Run, Setting, SettingValue};
use crate::kernel::sys;

/// The kernel's defaults the clean state starts from.
pub const DEFAULT_PAGES_TO_SCAN: u64 = 100;
pub const DEFAULT_SLEEP_MILLISECS: u64 = 20;

/// `pages_to_scan` of `max-rate`: the largest value the kernel accepts.
/// A batch ends at the end of a full scan anyway, so with
/// `sleep_millisecs=0` ksmd scans without pause.
pub const MAX_RATE_PAGES_TO_SCAN: u64 = u32::MAX as u64;

/// What a tuner is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum TunerKind {
    /// ksmd flat out: the machine's limit.
    MaxRate,
    /// The kernel's defaults, nothing tuning.
    KernelDefault,
    /// The kernel's scan-time advisor with its defaults.
    KernelAdvisor,
    /// Our ksmtuned with a policy.
    Daemon { policy: String },
    /// Any command, run with `sh -c`.
    External { command: String },
}

/// A named tuner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunerSpec {
    pub name: String,
    #[serde(flatten)]
    pub kind: TunerKind,
}

impl TunerSpec {
    /// A built-in tuner by name.
    pub fn builtin(name: &str) -> Option<TunerSpec> {
        let kind = match name {
            "max-rate" => TunerKind::MaxRate,
            "kernel-default" => TunerKind::KernelDefault,
            "kernel-advisor" => TunerKind::KernelAdvisor,
            "classic" | "adaptive" => TunerKind::Daemon {
                policy: name.to_string(),
            },
            _ => return None,
        };
        Some(TunerSpec {
            name: name.to_string(),
            kind,
        })
    }

    /// `NAME=COMMAND` of `--external`.
    pub fn external(arg: &str) -> Result<TunerSpec, String> {
        let (name, command) = arg
            .split_once('=')
            .ok_or_else(|| format!("--external {arg:?}: expected NAME='COMMAND'"))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "--external {arg:?}: the name must be letters, digits, '-', '_' or '.'"
            ));
        }
        if TunerSpec::builtin(name).is_some() {
            return Err(format!(
                "--external {arg:?}: {name} is the name of a built-in tuner"
            ));
        }
        if command.trim().is_empty() {
            return Err(format!("--external {arg:?}: the command is empty"));
        }
        Ok(TunerSpec {
            name: name.to_string(),
            kind: TunerKind::External {
                command: command.to_string(),
            },
        })
    }

    /// Whether this tuner is a process the bench starts.
    pub fn is_process(&self) -> bool {
        matches!(
            self.kind,
            TunerKind::Daemon { .. } | TunerKind::External { .. }
        )
    }
}

/// The names of the built-in tuners, in the order they run.
pub const BUILTIN: [&str; 5] = [
    "max-rate",
    "kernel-default",
    "kernel-advisor",
    "classic",
    "adaptive",
];

/// Where the bench looks for ksmtuned: beside its own executable.
pub fn ksmtuned_path(bench_exe: &Path) -> PathBuf {
    bench_exe
        .parent()
        .unwrap_or(Path::new("."))
        .join("ksmtuned")
}

/// Whether a ksmtuned binary offers the adaptive policy: it accepts
/// `--policy adaptive` when checking an empty configuration (a private
/// file: ksmtuned refuses configuration files others can write).
pub fn supports_adaptive(ksmtuned: &Path) -> bool {
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    let conf = dir.path().join("ksmtuned.conf");
    if std::fs::write(&conf, "").is_err() {
        return false;
    }
    Command::new(ksmtuned)
        .arg("--config")
        .arg(&conf)
        .args(["--check-config", "--policy", "adaptive"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The ksmtuned.conf handed to classic and adaptive. `KSM_THRES_COEF=100`
/// makes the threshold all of MemTotal, so `free < thres` holds and
/// `committed + thres < total` cannot: the host counts as under memory
/// pressure for the whole run (classic boosts every cycle and never stops
/// ksmd). Every other variable keeps its default, so classic is measured
/// as shipped.
pub const DAEMON_CONFIG: &str = "\
# Written by ksm-bench for the tuners that read a ksmtuned.conf.
# KSM_THRES_COEF=100 makes thres = MemTotal: free memory is always below it,
# so the host is \"under memory pressure\" in classic ksmtuned's sense for
# the whole run. Every other variable is left at its default.
KSM_THRES_COEF=100
";

fn put(ksm: &Ksm, knob: Knob, value: u64) -> anyhow::Result<()> {
    let setting = Setting::number(knob, value)?;
    ksm.write(setting)
        .with_context(|| format!("setting {setting}"))
}

/// Bring KSM to the clean state every tuner starts from: everything
/// unmerged (run=2), the advisor off, `pages_to_scan` and
/// `sleep_millisecs` at the kernel's defaults, every other knob as it was
/// before the bench. Returns how long the unmerge took.
pub fn clean_state(ksm: &Ksm, before: &KsmState) -> anyhow::Result<Duration> {
    let t = Instant::now();
    ksm.set_run(Run::Unmerge)
        .context("unmerging every page (run=2)")?;
    let unmerge = t.elapsed();
    let now = ksm.read()?;
    if now.advisor_mode.is_some() && now.advisor_mode != Some(AdvisorMode::None) {
        ksm.write(Setting {
            knob: Knob::AdvisorMode,
            value: SettingValue::Mode(AdvisorMode::None),
        })
        .context("turning the advisor off")?;
    }
    put(ksm, Knob::PagesToScan, DEFAULT_PAGES_TO_SCAN)?;
    put(ksm, Knob::SleepMillisecs, DEFAULT_SLEEP_MILLISECS)?;
    let now = ksm.read()?;
    for knob in Knob::ALL {
        if matches!(
            knob,
            Knob::Run
                | Knob::PagesToScan
                | Knob::SleepMillisecs
                | Knob::AdvisorMode
                | Knob::MaxKernelPages
        ) {
            continue;
        }
        if let Some(want) = knob.current(before) {
            if knob.current(&now).as_deref() != Some(want.as_str()) {
                ksm.write(knob.parse(&want)?)
                    .with_context(|| format!("putting {knob} back to {want}"))?;
            }
        }
    }
    let after = ksm.read()?;
    if after.pages_shared.unwrap_or(0) > 0 || after.pages_sharing.unwrap_or(0) > 0 {
        bail!(
            "pages are still merged after run=2 (pages_shared {}, pages_sharing {})",
            after.pages_shared.unwrap_or(0),
            after.pages_sharing.unwrap_or(0)
        );
    }
    Ok(unmerge)
}

/// Apply a kernel-only tuner's settings and start ksmd (run=1). Process
/// tuners get run=1 with the defaults, as the `ksm` service gives them at
/// boot, and then take over.
pub fn start_kernel(ksm: &Ksm, kind: &TunerKind) -> anyhow::Result<()> {
    match kind {
        TunerKind::MaxRate => {
            put(ksm, Knob::SleepMillisecs, 0)?;
            put(ksm, Knob::PagesToScan, MAX_RATE_PAGES_TO_SCAN)?;
        }
        TunerKind::KernelAdvisor => {
            if !ksm.path(Knob::AdvisorMode.name()).exists() {
                bail!("this kernel has no scan-time advisor (advisor_mode needs Linux 6.8+)");
            }
            ksm.write(Setting {
                knob: Knob::AdvisorMode,
                value: SettingValue::Mode(AdvisorMode::ScanTime),
            })
            .context("turning the scan-time advisor on")?;
        }
        TunerKind::KernelDefault | TunerKind::Daemon { .. } | TunerKind::External { .. } => {}
    }
    ksm.set_run(Run::Merge).context("starting ksmd (run=1)")?;
    Ok(())
}

/// What a kernel-only tuner's settings must read during its run:
/// `(run, pages_to_scan, sleep_millisecs, advisor on)`; `None` where the
/// tuner (or the advisor) may change it. Anything else means another
/// program changed KSM's settings during the run.
pub fn expected_settings(kind: &TunerKind) -> Option<(u8, Option<u64>, Option<u64>, bool)> {
    match kind {
        TunerKind::MaxRate => Some((1, Some(MAX_RATE_PAGES_TO_SCAN), Some(0), false)),
        TunerKind::KernelDefault => Some((
            1,
            Some(DEFAULT_PAGES_TO_SCAN),
            Some(DEFAULT_SLEEP_MILLISECS),
            false,
        )),
        TunerKind::KernelAdvisor => Some((1, None, Some(DEFAULT_SLEEP_MILLISECS), true)),
        TunerKind::Daemon { .. } | TunerKind::External { .. } => None,
    }
}

/// A note when a sample of a kernel-only tuner's run shows settings it
/// did not make.
pub fn interference(kind: &TunerKind, s: &super::sampler::Point) -> Option<String> {
    let (run, pages, sleep, advisor) = expected_settings(kind)?;
    let mut bad = Vec::new();
    if s.run != Some(run) {
        bad.push(format!(
            "run={}",
            s.run.map_or("?".into(), |r| r.to_string())
        ));
    }
    if let (Some(want), Some(got)) = (pages, s.pages_to_scan) {
        if want != got && !advisor {
            bad.push(format!("pages_to_scan={got}"));
        }
    }
    if let (Some(want), Some(got)) = (sleep, s.sleep_millisecs) {
        if want != got {
            bad.push(format!("sleep_millisecs={got}"));
        }
    }
    if s.advisor_on != Some(advisor) && s.advisor_on.is_some() {
        bad.push(format!(
            "advisor_mode={}",
            if advisor { "none" } else { "scan-time" }
        ));
    }
    (!bad.is_empty()).then(|| {
        format!(
            "another program changed KSM's settings {:.1} s into the run ({}): these figures are not trustworthy",
            s.t_ms as f64 / 1000.0,
            bad.join(", ")
        )
    })
}

/// A tuner process in its own process group; dropping it stops the group.
pub struct TunerProcess {
    child: Child,
    log: PathBuf,
    exited: Option<std::process::ExitStatus>,
}

impl TunerProcess {
    /// Start a process tuner. Its output goes to `log`.
    pub fn start(
        spec: &TunerSpec,
        ksmtuned: &Path,
        config: &Path,
        tmp: &Path,
    ) -> anyhow::Result<TunerProcess> {
        use std::os::unix::process::CommandExt;
        let log = tmp.join(format!("{}.log", spec.name));
        let out = fs::File::create(&log)
            .with_context(|| format!("creating the tuner log {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = match &spec.kind {
            TunerKind::Daemon { policy } => {
                if !ksmtuned.is_file() {
                    bail!("ksmtuned binary not found at {}", ksmtuned.display());
                }
                let mut c = Command::new(ksmtuned);
                c.arg("--config")
                    .arg(config)
                    .arg("--policy")
                    .arg(policy)
                    .arg("--pid-file")
                    .arg(tmp.join("ksmtuned.pid"));
                c
            }
            TunerKind::External { command } => {
                let mut c = Command::new("/bin/sh");
                c.arg("-c").arg(command);
                c
            }
            _ => bail!("{} is not a process tuner", spec.name),
        };
        cmd.env("KSM_BENCH_CONFIG", config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // SAFETY: between fork and exec only the async-signal-safe prctl
        // runs: the tuner gets SIGTERM if the bench dies (even by SIGKILL).
        unsafe {
            cmd.pre_exec(|| sys::set_parent_death_signal(libc::SIGTERM));
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting tuner {}", spec.name))?;
        Ok(TunerProcess {
            child,
            log,
            exited: None,
        })
    }

    /// The pid (and process group) of the tuner.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the tuner has exited by itself.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// The last lines of its output, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// SIGTERM to the group, up to `grace` to exit, then SIGKILL; the
    /// leader is reaped. Returns a note when it had to be killed.
    pub fn stop(&mut self, grace: Duration) -> Option<String> {
        let pgid = self.child.id();
        // Members of the group may outlive the leader; signal the group
        // while the (unreaped) leader keeps its id reserved.
        if self.exited().is_none() {
            let _ = sys::kill_group(pgid, libc::SIGTERM);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline && self.exited().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let note = if self.exited().is_none() {
            let _ = sys::kill_group(pgid, libc::SIGKILL);
            Some(format!(
                "did not exit within {:.0} s of SIGTERM: killed",
                grace.as_secs_f64()
            ))
        } else {
            None
        };
        // Leftover members (the leader exited first): end them too.
        let _ = sys::kill_group(pgid, libc::SIGKILL);
        let _ = self.child.wait();
        self.exited = self.exited.or(Some(std::process::ExitStatus::default()));
        note
    }
}

impl Drop for TunerProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop(Duration::from_secs(3));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_externals() {
        for n in BUILTIN {
            assert_eq!(TunerSpec::builtin(n).unwrap().name, n);
        }
        assert!(TunerSpec::builtin("fast").is_none());
        let e = TunerSpec::external("other=/usr/sbin/ksmtuned -f").unwrap();
        assert_eq!(e.name, "other");
        assert_eq!(
            e.kind,
            TunerKind::External {
                command: "/usr/sbin/ksmtuned -f".into()
            }
        );
        assert!(e.is_process());
        assert!(TunerSpec::external("nocommand").is_err());
        assert!(TunerSpec::external("x=").is_err());
        assert!(TunerSpec::external("bad name=true").is_err());
        assert!(TunerSpec::external("classic=true").is_err());
    }

    #[test]
    fn foreign_settings_are_noticed() {
        use super::super::sampler::Point;
        let ok = Point {
            t_ms: 1500,
            run: Some(1),
            pages_to_scan: Some(100),
            sleep_millisecs: Some(20),
            advisor_on: Some(false),
            ..Default::default()
        };
        assert_eq!(interference(&TunerKind::KernelDefault, &ok), None);
        let mut bad = ok.clone();
        bad.run = Some(0);
        bad.pages_to_scan = Some(1250);
        let n = interference(&TunerKind::KernelDefault, &bad).unwrap();
        assert!(
            n.contains("1.5 s") && n.contains("run=0, pages_to_scan=1250"),
            "{n}"
        );
        // The advisor owns pages_to_scan; the daemons own everything.
        let mut adv = ok.clone();
        adv.advisor_on = Some(true);
        adv.pages_to_scan = Some(80);
        assert_eq!(interference(&TunerKind::KernelAdvisor, &adv), None);
        assert!(interference(&TunerKind::KernelAdvisor, &ok).is_some());
        let daemon = TunerKind::Daemon {
            policy: "classic".into(),
        };
        assert_eq!(interference(&daemon, &bad), None);
    }

    #[test]
    fn ksmtuned_beside_the_bench() {
        assert_eq!(
            ksmtuned_path(Path::new("/opt/x/bin/ksm-bench")),
            PathBuf::from("/opt/x/bin/ksmtuned")
        );
    }

    #[test]
    fn config_puts_the_host_under_pressure() {
        let parsed = crate::config::shellvars::parse(Path::new("ksmtuned.conf"), DAEMON_CONFIG);
        assert!(parsed.errors.is_empty());
        let vars: Vec<(&str, &str)> = parsed
            .assignments
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(vars, vec![("KSM_THRES_COEF", "100")]);
    }

    #[test]
    fn external_process_group_is_stopped() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = TunerSpec::external("sleeper=sleep 30 & sleep 30; wait").unwrap();
        let cfg = tmp.path().join("c.conf");
        let mut p =
            TunerProcess::start(&spec, Path::new("/nonexistent"), &cfg, tmp.path()).unwrap();
        let pgid = p.pid();
        std::thread::sleep(Duration::from_millis(200));
        assert!(p.exited().is_none());
        assert_eq!(p.stop(Duration::from_secs(3)), None);
        // Nothing of the group is left running (orphans are reparented to
        // init, which may leave them as zombies for a while: those are gone).
        std::thread::sleep(Duration::from_millis(100));
        let root = crate::Root::default();
        let live: Vec<u32> = crate::kernel::proc::pids(&root)
            .unwrap()
            .into_iter()
            .filter(|&p| {
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .ok()
                    .and_then(|s| {
                        let after = s[s.rfind(')')? + 1..].to_string();
                        let f: Vec<&str> = after.split_whitespace().collect();
                        Some(f[0] != "Z" && f[2] == pgid.to_string())
                    })
                    .unwrap_or(false)
            })
            .collect();
        assert!(live.is_empty(), "left running: {live:?}");
    }

    #[test]
    fn missing_ksmtuned_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = TunerSpec::builtin("classic").unwrap();
        let e = TunerProcess::start(
            &spec,
            Path::new("/nonexistent/ksmtuned"),
            &tmp.path().join("c"),
            tmp.path(),
        )
        .err()
        .unwrap()
        .to_string();
        assert_eq!(e, "ksmtuned binary not found at /nonexistent/ksmtuned");
    }
}
