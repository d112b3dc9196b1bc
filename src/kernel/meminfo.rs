//! `/proc/meminfo`: the few fields the tuners use, in KiB.

use std::fs;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::root::Root;

/// The fields of `/proc/meminfo` the tuners need (KiB).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemInfo {
    pub mem_total: u64,
    pub mem_free: u64,
    /// Absent before Linux 3.14.
    pub mem_available: Option<u64>,
    pub buffers: u64,
    pub cached: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

impl MemInfo {
    /// Classic ksmtuned's "free": MemFree + Buffers + Cached.
    pub fn classic_free(&self) -> u64 {
        self.mem_free
            .saturating_add(self.buffers)
            .saturating_add(self.cached)
    }

    /// Parse the text of `/proc/meminfo`. MemTotal and MemFree are required.
    pub fn parse(text: &str) -> std::result::Result<MemInfo, String> {
        let mut m = MemInfo::default();
        let (mut total, mut free) = (false, false);
        for line in text.lines() {
            let Some((key, rest)) = line.split_once(':') else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let Some(num) = words.next() else { continue };
            let Ok(v) = num.parse::<u64>() else {
                return Err(format!("{key}: {num:?} is not a number"));
            };
            let kib = match words.next() {
                None => v,
                Some("kB") => v,
                Some(unit) => return Err(format!("{key}: unknown unit {unit:?}")),
            };
            match key {
                "MemTotal" => {
                    m.mem_total = kib;
                    total = true;
                }
                "MemFree" => {
                    m.mem_free = kib;
                    free = true;
                }
                "MemAvailable" => m.mem_available = Some(kib),
                "Buffers" => m.buffers = kib,
                "Cached" => m.cached = kib,
                "SwapTotal" => m.swap_total = kib,
                "SwapFree" => m.swap_free = kib,
                _ => {}
            }
        }
        if !total || !free {
            return Err("MemTotal or MemFree is missing".to_string());
        }
        if m.mem_total == 0 {
            return Err("MemTotal is 0".to_string());
        }
        Ok(m)
    }

    /// Read `/proc/meminfo` under the root.
    pub fn read(root: &Root) -> Result<MemInfo> {
        let path = root.join("/proc/meminfo");
        let text = fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        MemInfo::parse(&text).map_err(|why| Error::Parse {
            path,
            value: why,
            expected: "the /proc/meminfo format",
        })
    }
}

/// `some avg10` from the text of `/proc/pressure/memory`: the percentage
/// of the last 10 s in which some task stalled on memory.
pub fn parse_psi_some_avg10(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    let v = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("avg10="))?
        .parse::<f64>()
        .ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// Memory pressure (PSI, Linux 4.20+ with CONFIG_PSI); `None` where the
/// kernel does not have it.
pub fn psi_some_avg10(root: &Root) -> Option<f64> {
    let text = fs::read_to_string(root.join("/proc/pressure/memory")).ok()?;
    parse_psi_some_avg10(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "MemTotal:       24594036 kB\nMemFree:        23645712 kB\n\
MemAvailable:   23849268 kB\nBuffers:            5000 kB\nCached:           467052 kB\n\
SwapCached:            0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n\
HugePages_Total:       0\n";

    #[test]
    fn parses_fields() {
        let m = MemInfo::parse(SAMPLE).unwrap();
        assert_eq!(m.mem_total, 24594036);
        assert_eq!(m.mem_free, 23645712);
        assert_eq!(m.mem_available, Some(23849268));
        assert_eq!(m.classic_free(), 23645712 + 5000 + 467052);
    }

    #[test]
    fn old_kernel_without_memavailable() {
        let m = MemInfo::parse("MemTotal: 1000 kB\nMemFree: 10 kB\n").unwrap();
        assert_eq!(m.mem_available, None);
        assert_eq!(m.classic_free(), 10);
    }

    #[test]
    fn psi() {
        let t = "some avg10=1.25 avg60=0.50 avg300=0.00 total=12345\n\
                 full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_psi_some_avg10(t), Some(1.25));
        assert_eq!(parse_psi_some_avg10("full avg10=3.00\n"), None);
        assert_eq!(parse_psi_some_avg10("some avg10=x\n"), None);
        assert_eq!(parse_psi_some_avg10("some avg10=NaN\n"), None);
        assert_eq!(parse_psi_some_avg10(""), None);
    }

    #[test]
    fn rejects_garbage() {
        assert!(MemInfo::parse("").is_err());
        assert!(MemInfo::parse("MemTotal: x kB\nMemFree: 1 kB").is_err());
        assert!(MemInfo::parse("MemTotal: 0 kB\nMemFree: 1 kB").is_err());
        assert!(MemInfo::parse("MemTotal: 5 MB\nMemFree: 1 kB").is_err());
    }
}
