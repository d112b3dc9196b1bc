//! The cross-domain audit's metrics (KSM_TRUST_DOMAINS) and the hold of
//! KSM_CROSS_DOMAIN=refuse.

use super::{Families, Result};
use crate::estimate::audit::{self, DomainAudit};
use crate::sample::last_audit::Refusal;

/// The last cross-domain audit: the [`audit::TOP_PAIRS`] pairs sharing
/// most, the rest summed in one series (`a="other pairs"`), and when and
/// how long it ran.
pub(super) fn render(fam: &Families, a: &DomainAudit, refusal: Option<&Refusal>) -> Result<()> {
    let (top, rest) = a.top_pairs(audit::TOP_PAIRS);
    let mut series: Vec<(Vec<String>, f64)> = top
        .iter()
        .map(|p| (vec![p.a.clone(), p.b.clone()], p.shared_bytes as f64))
        .collect();
    if a.pairs.len() > top.len() {
        series.push((
            vec!["other pairs".to_string(), "other pairs".to_string()],
            rest as f64,
        ));
    }
    fam.labelled(
        "ksm_cross_domain_shared_bytes",
        "Bytes of KSM pages that processes of both trust domains a and b map, at the last audit \
         (KSM_TRUST_DOMAINS); the pairs sharing most, the rest summed in a=\"other pairs\".",
        &["a", "b"],
        &series,
    )?;
    fam.gauge(
        "ksm_cross_domain_audit_timestamp_seconds",
        "When the last cross-domain audit started (Unix time).",
        a.timestamp_seconds,
    )?;
    fam.gauge(
        "ksm_cross_domain_audit_duration_seconds",
        "How long the last cross-domain audit took (wall time, CPU-capped).",
        a.duration_seconds,
    )?;
    fam.gauge(
        "ksm_cross_domain_audit_cpu_seconds",
        "CPU time the last cross-domain audit used.",
        a.cpu_seconds,
    )?;
    fam.gauge(
        "ksm_cross_domain_refused",
        "1 while ksmtuned holds KSM stopped and unmerged because trust domains shared pages \
         (KSM_CROSS_DOMAIN=refuse), until a reload; else 0.",
        if refusal.is_some() { 1.0 } else { 0.0 },
    )?;
    fam.gauge(
        "ksm_cross_domain_refused_saved_bytes",
        "What KSM saved when ksmtuned stopped it for cross-domain sharing: the memory the hold \
         gives up (0 without a hold).",
        refusal.and_then(|r| r.saved_bytes_given_up).unwrap_or(0) as f64,
    )
}
