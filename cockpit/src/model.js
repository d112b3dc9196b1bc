// The one place that knows ksmctl's JSON keys (and ksmtuned's and the
// metrics' text lines). Everything else on the page uses what these
// functions return. When a key is renamed (issue 29: kernel names with unit
// suffixes, the old keys kept one release), change it here only, and in the
// key list of docs/cockpit.md.

// A key that may be absent (older ksmctl, a kernel without the file):
// the first of `names` present, else null.
function pick(obj, ...names) {
    for (const n of names)
        if (obj && obj[n] !== undefined) return obj[n];
    return null;
}

// `ksmctl status --json`
export function status(j) {
    return {
        supported: pick(j, "supported") === true,
        state: pick(j, "state"), // "running", "stopped", "unmerged" (run=2), "unsupported"
        run: pick(j, "run"),
        tuners: (pick(j, "tuners") || []).map(t => ({
            pid: pick(t, "pid"), comm: pick(t, "comm"), dryRun: pick(t, "dry_run") === true,
        })),
        pageSize: pick(j, "page_size_bytes"),
        savedBytes: pick(j, "saved_bytes"),
        profitBytes: pick(j, "general_profit_bytes"),
        sharedPages: pick(j, "shared_pages"),
        sharingPages: pick(j, "sharing_pages"),
        unsharedPages: pick(j, "unshared_pages"),
        volatilePages: pick(j, "volatile_pages"),
        zeroPages: pick(j, "zero_pages"),
        fullScans: pick(j, "full_scans"),
        pagesToScan: pick(j, "pages_to_scan"),
        sleepMs: pick(j, "sleep_ms"),
        scanRateBytes: pick(j, "scan_rate_bytes_per_s"),
        advisorMode: pick(j, "advisor_mode"),
        domains: domainAudit(pick(j, "domain_audit")),
    };
}

// ksmtuned's last cross-domain audit (KSM_TRUST_DOMAINS), in status --json
// while it is recent: null without one.
function domainAudit(d) {
    if (!d) return null;
    const a = pick(d, "audit") || {};
    const pair = p => ({ a: pick(p, "a"), b: pick(p, "b"), sharedBytes: pick(p, "shared_bytes") });
    const r = pick(d, "refusal");
    return {
        policy: pick(d, "policy"),
        trustDomains: pick(a, "trust_domains"),
        timestamp: pick(a, "timestamp_seconds"),
        pairs: (pick(a, "pairs") || []).map(pair),
        crossDomainBytes: pick(a, "cross_domain_bytes"),
        held: r ? {
            pairs: (pick(r, "pairs") || []).map(pair),
            givenUpBytes: pick(r, "saved_bytes_given_up"),
            unmerged: pick(r, "unmerged") === true,
        } : null,
    };
}

// `ksmctl ps --json`: one row per process KSM merges pages of, or guest.
export function processes(j) {
    return (pick(j, "processes") || []).map(p => ({
        pid: pick(p, "pid"),
        comm: pick(p, "comm"),
        guest: pick(p, "guest"),
        vmid: pick(p, "vmid"),
        qemu: pick(p, "qemu") === true,
        notMergeable: pick(p, "not_mergeable"),
        mergingPages: pick(p, "merging_pages"),
        savedBytes: pick(p, "merged_bytes"),
        profitBytes: pick(p, "profit_bytes"),
        // From ksmtuned's recent cross-domain audit; null / [] without one.
        domain: pick(p, "domain"),
        sharesWith: pick(p, "shares_with") || [],
    }));
}

// `ksmctl doctor --json`
export function doctor(j) {
    return {
        attention: pick(j, "attention") === true,
        findings: (pick(j, "findings") || []).map(f => ({
            id: pick(f, "id"), severity: pick(f, "severity"),
            seen: pick(f, "seen"), why: pick(f, "why"), whatToDo: pick(f, "what_to_do"),
        })),
    };
}

// `ksmctl estimate --json --matrix`
export function estimate(j) {
    const matrix = pick(j, "matrix");
    const cost = pick(j, "cost") || {};
    return {
        supported: pick(j, "ksm_supported") === true,
        processesScanned: pick(j, "processes_scanned"),
        scannedBytes: pick(j, "scanned_bytes"),
        savedBytes: pick(j, "saved_bytes"),
        savedErrorBytes: pick(j, "saved_error_bytes"),
        profitBytes: pick(j, "general_profit_bytes"),
        toGainBytes: pick(j, "to_gain_bytes"),
        cpuSeconds: pick(cost, "cpu_seconds"),
        maxCpuPercent: pick(cost, "max_cpu_percent"),
        secondsAtMaxCpu: pick(cost, "seconds_at_max_cpu"),
        elapsedSeconds: pick(j, "elapsed_seconds"),
        notes: pick(j, "notes") || [],
        matrix: matrix ? { groups: pick(matrix, "groups") || [], bytes: pick(matrix, "bytes") || [] } : null,
    };
}

// The progress line `ksmctl estimate` draws on a terminal (the page runs
// it in a pseudo-terminal to get it): "[####   ]  42%  1.2 GiB of 3 GiB  (pid 123)".
// Returns the last one in `text`, or null.
export function estimateProgress(text) {
    const re = /\]\s+(\d+)%\s+(.+?) of (.+?)\s+\(pid (\d+)\)/g;
    let m, last = null;
    while ((m = re.exec(text)) !== null)
        last = { percent: Number(m[1]), done: m[2], total: m[3], pid: Number(m[4]) };
    return last;
}

// The JSON document after the progress lines in the terminal's output.
export function estimateJson(text) {
    const start = text.search(/^\{/m);
    if (start < 0) throw new Error("no JSON in ksmctl estimate's output: " + text.slice(-300));
    return JSON.parse(text.slice(start));
}

// `ksmctl metrics` (Prometheus text): ksmd's CPU time, the one figure the
// page charts that no --json output carries yet.
export function ksmdCpuSeconds(text) {
    const m = /^ksm_ksmd_cpu_seconds_total ([0-9.eE+-]+)$/m.exec(text);
    return m ? Number(m[1]) : null;
}

// `ksmtuned --check-config`: "policy: adaptive (KSM_POLICY in FILE:LINE)".
export function policy(text) {
    const m = /^policy: (\S+)(?: \((.*)\))?$/m.exec(text);
    return m ? { name: m[1], source: m[2] || "" } : null;
}

export const POLICIES = ["classic", "adaptive"];
