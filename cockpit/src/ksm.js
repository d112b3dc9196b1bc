// The KSM page of Cockpit: state and policy, the last hour, guests,
// the estimate with its who-shares-with-whom heat map, and doctor's
// findings. Everything it shows comes from `ksmctl ... --json` (read in
// model.js), run through Cockpit's bridge with cockpit.spawn; changes run
// with Cockpit's superuser bridge (administrative access) after a
// confirmation. No server of its own.
/* global cockpit */
import * as model from "./model.js";
import { chart } from "./chart.js";
import setPolicyScript from "./set-policy.sh";

const SAMPLE_MS = 5000;
const HOUR_MS = 3600 * 1000;
// A test-only setting (docs/cockpit.md): another ksmctl/ksmtuned and a root
// directory, for the browser test against fixture trees. The page says so
// in a banner whenever it is in use.
const SETTINGS = ".config/ksmtuned-cockpit.json";
// Where the packages install them: by full path, since an ordinary user's
// PATH has no /usr/sbin on Debian.
const KSMCTL = "/usr/sbin/ksmctl";
const KSMTUNED = "/usr/sbin/ksmtuned";

const page = {
    settings: { ksmctl: KSMCTL, ksmtuned: KSMTUNED, root: null, file: null },
    admin: false,
    status: null, error: null, processes: [], psError: null, policy: null, policyError: null,
    doctor: null, doctorError: null, samples: [], lastCpu: null,
    estimate: null, estimateRun: null, notice: null,
};

// DOM helper: h("div", { class: "x" }, child, ...).
function h(tag, attrs, ...children) {
    const ns = ["svg", "polyline", "line", "text", "rect", "path"].includes(tag) ? "http://www.w3.org/2000/svg" : null;
    const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === null || v === undefined || v === false) continue;
        if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
        // Through the CSSOM: Cockpit's Content-Security-Policy refuses
        // style attributes.
        else if (k === "style") Object.assign(el.style, v);
        else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
        if (c === null || c === undefined || c === false) continue;
        el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
}

export function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = Math.abs(n), i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
    const s = i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : 1);
    return (n < 0 ? "-" : "") + s + " " + units[i];
}
const count = n => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));

// Run a command through the bridge: resolves with { out, code } for any
// exit status (ksmctl status exits 3 when stopped, doctor 4 on a finding),
// rejects when it could not run at all.
function spawn(argv, { admin = false, pty = false, stream = null } = {}) {
    const environ = ["LC_ALL=C.UTF-8"];
    if (page.settings.root) environ.push("KSM_ROOT=" + page.settings.root);
    const opts = { environ, err: pty ? undefined : "message", pty };
    if (admin) opts.superuser = "require";
    else if (page.admin) opts.superuser = "try";
    const proc = cockpit.spawn(argv, opts);
    if (stream) proc.stream(stream);
    const done = new Promise((resolve, reject) => {
        proc.done(out => resolve({ out, code: 0 }))
            .fail((ex, out) => {
                // A problem (not-found, access-denied, ...) means it did
                // not run; an exit status, that it ran and said no.
                if (ex && !ex.problem && typeof ex.exit_status === "number" && ex.exit_status >= 0)
                    resolve({ out: out || "", code: ex.exit_status, message: ex.message });
                else reject(ex);
            });
    });
    done.proc = proc;
    return done;
}

const ksmctl = (args, opts) => spawn([page.settings.ksmctl, ...args], opts);

async function ksmctlJson(args, okCodes) {
    const r = await ksmctl(args);
    if (!okCodes.includes(r.code) || !r.out.trim())
        throw new Error(`ksmctl ${args.join(" ")} exited ${r.code}: ${r.message || r.out}`);
    return JSON.parse(r.out);
}

async function readSettings() {
    const user = await cockpit.user();
    const file = `${user.home}/${SETTINGS}`;
    const handle = cockpit.file(file, { syntax: JSON });
    try {
        const s = await handle.read();
        if (s) {
            page.settings = {
                ksmctl: s.ksmctl || KSMCTL, ksmtuned: s.ksmtuned || KSMTUNED,
                root: s.root || null, file,
            };
        }
    } catch (e) {
        page.notice = { kind: "danger", text: `${file}: ${e.message}` };
    } finally {
        handle.close();
    }
}

// One sample: status (and the guest table) and ksmd's CPU time. Samples
// run one after the other: one asked for after a change starts after the
// one under way, so it sees the change.
let sampling = Promise.resolve();
let pending = 0;
function sample() {
    pending++;
    sampling = sampling
        .then(() => takeSample().catch(e => { page.error = e.message || String(e); render() }))
        .finally(() => pending--);
    return sampling;
}

async function takeSample() {
    try {
        page.status = model.status(await ksmctlJson(["status", "--json"], [0, 1, 3]));
        page.error = null;
    } catch (e) {
        page.error = e.problem === "not-found"
            ? `${page.settings.ksmctl} is not installed (the ksmtuned package provides it)`
            : e.message;
        page.status = null;
    }
    if (page.status && page.status.supported) {
        try {
            page.processes = model.processes(await ksmctlJson(["ps", "--json"], [0]));
            page.psError = null;
        } catch (e) { page.psError = e.message }
        let cpu = null;
        try { cpu = model.ksmdCpuSeconds((await ksmctl(["metrics"])).out) } catch (e) { /* charted as a gap */ }
        const now = Date.now();
        let cpuPercent = null;
        if (cpu !== null && page.lastCpu && now > page.lastCpu.t)
            cpuPercent = Math.max(0, (cpu - page.lastCpu.cpu) * 1000 * 100 / (now - page.lastCpu.t));
        page.lastCpu = cpu === null ? null : { t: now, cpu };
        page.samples.push({ t: now, saved: page.status.savedBytes, cpu: cpuPercent });
        page.samples = page.samples.filter(s => s.t >= now - HOUR_MS);
    }
    render();
}

async function readPolicy() {
    try {
        const r = await spawn([page.settings.ksmtuned, "--check-config"]);
        page.policy = model.policy(r.out);
        page.policyError = page.policy ? null : (r.message || r.out || "no policy line").trim();
    } catch (e) {
        page.policy = null;
        page.policyError = e.problem === "not-found" ? "ksmtuned is not installed" : e.message;
    }
    render();
}

async function runDoctor() {
    page.doctor = null;
    page.doctorError = null;
    render();
    try {
        page.doctor = model.doctor(await ksmctlJson(["doctor", "--json"], [0, 4]));
    } catch (e) { page.doctorError = e.message }
    render();
}

// ---- changes (administrative access, after a confirmation) ----

function confirmDialog(title, body, action) {
    return new Promise(resolve => {
        const close = ok => { backdrop.remove(); resolve(ok) };
        const backdrop = h("div", { class: "pf-c-backdrop" },
            h("div", { class: "pf-l-bullseye" },
                h("div", { class: "pf-c-modal-box pf-m-sm", role: "dialog", "aria-modal": "true", id: "confirm" },
                    h("header", { class: "pf-c-modal-box__header" }, h("h1", { class: "pf-c-modal-box__title" }, title)),
                    h("div", { class: "pf-c-modal-box__body" }, body),
                    h("footer", { class: "pf-c-modal-box__footer" },
                        h("button", { class: "pf-c-button pf-m-primary", id: "confirm-yes", onclick: () => close(true) }, action),
                        h("button", { class: "pf-c-button pf-m-link", id: "confirm-no", onclick: () => close(false) }, "Cancel")))));
        document.body.append(backdrop);
    });
}

async function startStop(what) {
    const tuner = page.status.tuners.length > 0;
    const body = what === "start"
        ? "ksmd starts scanning the memory processes opted in to KSM (ksmctl start)."
        : "ksmd stops scanning; merged pages stay merged (ksmctl stop).";
    const note = tuner ? " ksmtuned is running and decides again at its next adjustment." : "";
    if (!await confirmDialog(what === "start" ? "Start KSM?" : "Stop KSM?", body + note, what === "start" ? "Start" : "Stop"))
        return;
    const r = await ksmctl([what], { admin: true }).catch(e => ({ code: -1, message: e.message }));
    page.notice = r.code === 0
        ? { kind: "success", text: `ksmctl ${what}: done` }
        : { kind: "danger", text: `ksmctl ${what} failed: ${r.message || r.out}` };
    await sample();
    runDoctor();
}

async function changePolicy(policy) {
    if (!await confirmDialog("Change ksmtuned's policy?",
        `Sets KSM_POLICY=${policy} in ${page.settings.root || ""}/etc/ksmtuned.conf.d/policy.conf after checking the new configuration with ksmtuned --check-config, then reloads ksmtuned.`,
        "Change policy"))
        return;
    const r = await spawn(["sh", "-c", setPolicyScript, "set-policy", page.settings.ksmtuned, page.settings.root || "/", policy],
        { admin: true }).catch(e => ({ code: -1, message: e.message }));
    page.notice = r.code === 0
        ? { kind: "success", text: r.out.trim() }
        : { kind: "danger", text: (r.out || "").trim() || r.message };
    await readPolicy();
    runDoctor();
}

async function runEstimate(cpuLimit, guests) {
    const args = ["estimate", "--json", "--matrix", "--cpu-limit", String(cpuLimit)];
    if (guests) args.push("--guests");
    let text = "";
    page.estimate = null;
    page.estimateRun = { progress: null, cpuLimit, error: null };
    render();
    const run = ksmctl(args, {
        admin: true, pty: true,
        stream: data => {
            text += data;
            const p = model.estimateProgress(text);
            if (p && page.estimateRun) { page.estimateRun.progress = p; renderEstimateProgress() }
        },
    });
    page.estimateRun.proc = run.proc;
    try {
        const r = await run;
        if (r.code !== 0) throw new Error(`ksmctl estimate exited ${r.code}: ${text.replace(/\r/g, "").trim() || r.message}`);
        page.estimate = model.estimate(model.estimateJson(text));
        page.estimateRun = null;
    } catch (e) {
        page.estimateRun = { error: e.problem === "cancelled" ? "cancelled" : e.message };
    }
    render();
}

// ---- rendering ----

function alert(kind, title, text, id) {
    return h("div", { class: `pf-c-alert pf-m-inline pf-m-${kind}`, id, "aria-label": title },
        h("p", { class: "pf-c-alert__title" }, title),
        text ? h("div", { class: "pf-c-alert__description" }, text) : null);
}

function card(id, title, ...body) {
    return h("article", { class: "pf-c-card ksm-card", id },
        h("div", { class: "pf-c-card__title" }, h("h2", { class: "pf-c-title pf-m-lg" }, title)),
        h("div", { class: "pf-c-card__body" }, body));
}

// A figure with its raw value for the test (data-value) and its text.
function term(label, key, value, text) {
    return h("div", { class: "pf-c-description-list__group" },
        h("dt", { class: "pf-c-description-list__term" }, h("span", { class: "pf-c-description-list__text" }, label)),
        h("dd", { class: "pf-c-description-list__description" },
            h("div", { class: "pf-c-description-list__text", "data-key": key, "data-value": value === null ? "null" : String(value) }, text)));
}

function stateLabel(s) {
    const color = { running: "green", stopped: "orange", unsupported: "red" }[s.state] || "grey";
    const text = s.run === 2 ? "stopped, unmerged" : s.state;
    return h("span", { class: `pf-c-label pf-m-${color}`, id: "state", "data-value": s.state },
        h("span", { class: "pf-c-label__content" }, text));
}

function alerts() {
    const out = [];
    const s = page.status;
    if (page.settings.file)
        out.push(alert("info", "Test setting in use", `${page.settings.file}: ksmctl ${page.settings.ksmctl}, ksmtuned ${page.settings.ksmtuned}` +
            (page.settings.root ? `, KSM read under ${page.settings.root}` : ""), "test-setting"));
    if (page.notice) out.push(alert(page.notice.kind, page.notice.kind === "danger" ? "Failed" : "Done", page.notice.text, "notice"));
    if (page.error) out.push(alert("danger", "Cannot read KSM's state", page.error, "bad-ksmctl"));
    if (!page.admin)
        out.push(alert("info", "Read-only view",
            "Starting and stopping KSM, changing the policy and running an estimate need administrative access (Cockpit's \"Limited access\" button at the top turns it on).",
            "read-only"));
    if (s && !s.supported)
        out.push(alert("danger", "This kernel has no KSM",
            "There is no /sys/kernel/mm/ksm: the kernel was built without CONFIG_KSM. Nothing can be merged on this host.", "bad-no-ksm"));
    if (s && s.supported && s.state === "stopped")
        out.push(alert("warning", "ksmd is stopped",
            s.run === 2 ? "run = 2: every merged page was unmerged and nothing is merged until KSM starts." : "run = 0: nothing new is merged; pages merged before stay merged.", "bad-stopped"));
    if (s && s.domains && s.domains.held) {
        const hd = s.domains.held, p = hd.pairs[0];
        const who = p ? `${p.a} and ${p.b} shared pages` : "Trust domains shared pages";
        const done = hd.unmerged
            ? `ksmtuned stopped ksmd and unmerged every page, giving up ${bytes(hd.givenUpBytes)} saved.`
            : "ksmtuned stopped ksmd; the pages stay merged (the host has no room to unmerge them).";
        out.push(alert("danger", "KSM held stopped: trust domains shared pages",
            `${who} (KSM_CROSS_DOMAIN=refuse). ${done} KSM stays stopped until ksmtuned's configuration is reloaded (systemctl reload ksmtuned).`,
            "bad-held"));
    }
    if (s && s.supported && s.tuners.length === 0)
        out.push(alert("warning", "ksmtuned is not running",
            "Nothing tunes ksmd: it keeps its current settings until someone changes them (systemctl enable --now ksmtuned).", "bad-no-daemon"));
    return out;
}

function overview() {
    const s = page.status;
    if (!s) return card("overview", "KSM", page.error ? "No state to show." : "Reading…");
    const tuner = s.tuners.length
        ? s.tuners.map(t => `${t.comm} (pid ${t.pid}${t.dryRun ? ", dry run" : ""})`).join(", ")
        : "not running";
    const pol = page.policy ? `${page.policy.name}` : (page.policyError ? "unknown" : "…");
    const list = h("dl", { class: "pf-c-description-list pf-m-horizontal pf-m-2-col-on-lg", id: "figures" },
        h("div", { class: "pf-c-description-list__group" },
            h("dt", { class: "pf-c-description-list__term" }, h("span", { class: "pf-c-description-list__text" }, "State")),
            h("dd", { class: "pf-c-description-list__description" }, h("div", { class: "pf-c-description-list__text" }, stateLabel(s)))),
        term("Tuner", "tuner", s.tuners.length, tuner),
        term("Policy", "policy", page.policy ? page.policy.name : null, pol),
        s.supported && [term("Saved", "savedBytes", s.savedBytes, bytes(s.savedBytes)),
        term("Profit", "profitBytes", s.profitBytes, bytes(s.profitBytes)),
        term("Pages sharing", "sharingPages", s.sharingPages, count(s.sharingPages)),
        term("Pages shared", "sharedPages", s.sharedPages, count(s.sharedPages)),
        term("Pages unshared", "unsharedPages", s.unsharedPages, count(s.unsharedPages)),
        term("Zero pages", "zeroPages", s.zeroPages, count(s.zeroPages)),
        term("Full scans", "fullScans", s.fullScans, count(s.fullScans)),
        term("Pages per batch", "pagesToScan", s.pagesToScan, count(s.pagesToScan)),
        term("Sleep", "sleepMs", s.sleepMs, s.sleepMs === null ? "–" : `${s.sleepMs} ms`),
        term("Scan rate", "scanRateBytes", s.scanRateBytes, s.scanRateBytes === null ? "–" : `${bytes(s.scanRateBytes)}/s`),
        s.domains && term("Trust domains", "crossDomainBytes", s.domains.crossDomainBytes, domainsText(s.domains))]);
    const policySource = page.policy
        ? h("p", { class: "ksm-help", id: "policy-source" }, `Policy set by ${page.policy.source || "the default"}.`)
        : (page.policyError ? h("p", { class: "ksm-help", id: "policy-error" }, `ksmtuned --check-config: ${page.policyError}`) : null);
    let actions = null;
    if (page.admin && s.supported) {
        const select = h("select", { class: "pf-c-form-control ksm-select", id: "policy-select", "aria-label": "Policy" },
            model.POLICIES.map(p => h("option", { value: p, selected: page.policy && page.policy.name === p }, p)));
        actions = h("div", { class: "ksm-actions" },
            s.state === "running"
                ? h("button", { class: "pf-c-button pf-m-secondary", id: "stop", onclick: () => startStop("stop") }, "Stop KSM")
                : h("button", { class: "pf-c-button pf-m-primary", id: "start", onclick: () => startStop("start") }, "Start KSM"),
            h("span", { class: "ksm-spacer" }),
            h("label", { for: "policy-select", class: "ksm-inline-label" }, "Policy"), select,
            h("button", { class: "pf-c-button pf-m-secondary", id: "policy-apply", onclick: () => changePolicy(select.value) }, "Change policy"));
    }
    return card("overview", "KSM", list, policySource, actions);
}

// The audit's pairs in a few words: "a and b share 2.0 MiB".
function domainsText(d) {
    if (!d.pairs.length) return `by ${d.trustDomains}: none share pages`;
    const shown = d.pairs.slice(0, 3).map(p => `${p.a} and ${p.b} share ${bytes(p.sharedBytes)}`).join("; ");
    const more = d.pairs.length - 3;
    return `by ${d.trustDomains}: ${shown}${more > 0 ? ` (and ${more} more)` : ""}`;
}

function history() {
    const pts = page.samples;
    const span = { from: Date.now() - HOUR_MS, to: Date.now() };
    return card("history", "The last hour",
        h("div", { class: "ksm-charts" },
            chart("Memory saved", pts.map(p => [p.t, p.saved]), span, bytes, "chart-saved"),
            chart("ksmd CPU (% of one CPU)", pts.map(p => [p.t, p.cpu]), span, v => `${v.toFixed(v < 10 ? 2 : 1)} %`, "chart-cpu")),
        h("p", { class: "ksm-help" }, `Sampled by this page every ${SAMPLE_MS / 1000} s while it is open (${pts.length} sample${pts.length === 1 ? "" : "s"}).`));
}

function guests() {
    const rows = page.processes;
    // ksmctl ps reads /proc/PID/ksm_stat, which only root may read of
    // other users' processes.
    const partial = page.admin ? null
        : h("p", { class: "ksm-help", id: "guests-partial" },
            "Without administrative access only your own processes can be read: other users' processes and the guests are missing here.");
    if (page.psError) return card("guests", "Guests and processes", alert("warning", "ksmctl ps failed", page.psError));
    if (!rows.length)
        return card("guests", "Guests and processes",
            h("div", { class: "pf-c-empty-state pf-m-sm" }, h("div", { class: "pf-c-empty-state__content" },
                h("h3", { class: "pf-c-title pf-m-md" }, "KSM merges no process's pages now"),
                h("div", { class: "pf-c-empty-state__body" },
                    "QEMU guests are listed whenever they run, merging or not; other processes once KSM merges their pages."))),
            partial);
    return card("guests", "Guests and processes",
        h("table", { class: "pf-c-table pf-m-compact pf-m-grid-md", role: "grid", id: "guest-table" },
            h("thead", {}, h("tr", {}, ["Name", "VMID", "PID", "Saved", "Profit", "Note"].map(c => h("th", { scope: "col" }, c)))),
            h("tbody", {}, rows.map(r => h("tr", { "data-pid": r.pid },
                h("td", { "data-label": "Name" }, r.guest || r.comm),
                h("td", { "data-label": "VMID" }, r.vmid === null ? "–" : String(r.vmid)),
                h("td", { "data-label": "PID" }, String(r.pid)),
                h("td", { "data-label": "Saved", "data-value": r.savedBytes }, bytes(r.savedBytes)),
                h("td", { "data-label": "Profit", "data-value": r.profitBytes }, bytes(r.profitBytes)),
                h("td", { "data-label": "Note" }, [r.notMergeable,
                    r.sharesWith.length ? `shares across domains: ${r.sharesWith.join(", ")}` : null]
                    .filter(Boolean).join("; ")))))),
        partial);
}

function renderEstimateProgress() {
    const el = document.getElementById("estimate-progress");
    const p = page.estimateRun && page.estimateRun.progress;
    if (!el) return;
    el.querySelector(".pf-c-progress__indicator").style.width = `${p ? p.percent : 0}%`;
    el.querySelector(".pf-c-progress__measure").textContent = p ? `${p.percent}%` : "starting";
    el.querySelector(".ksm-progress-detail").textContent = p ? `${p.done} of ${p.total} read (pid ${p.pid})` : "listing processes…";
    el.setAttribute("data-percent", p ? p.percent : 0);
}

function heatmap(m) {
    if (!m || !m.groups.length) return h("p", { class: "ksm-help", id: "matrix-empty" }, "No process to compare: nothing has memory opted in.");
    const max = Math.max(1, ...m.bytes.flat());
    return h("div", { class: "ksm-heat-wrap" },
        h("table", { class: "ksm-heat", id: "matrix" },
            h("thead", {}, h("tr", {}, h("th", {}), m.groups.map(g => h("th", { scope: "col", title: g }, g)))),
            h("tbody", {}, m.groups.map((g, i) => h("tr", {},
                h("th", { scope: "row", title: g }, g),
                m.bytes[i].map((b, k) => h("td", {
                    "data-value": b, title: `${g} and ${m.groups[k]}: ${bytes(b)} of contents in common`,
                    style: {
                        backgroundColor: `rgba(0, 102, 204, ${(0.08 + 0.92 * b / max).toFixed(3)})`,
                        color: b / max > 0.5 ? "#fff" : "#151515",
                    },
                }, bytes(b))))))),
        h("p", { class: "ksm-help" }, "Each cell: the memory two groups have in common, which KSM would merge between them (the diagonal: within one)."));
}

function estimateCard() {
    if (!page.admin)
        return card("estimate", "Estimate", h("p", { class: "ksm-help" }, "The estimate reads other processes' memory and needs administrative access."));
    if (page.status && !page.status.supported)
        return card("estimate", "Estimate", h("p", { class: "ksm-help" }, "ksmctl estimate works without KSM too; run it to see what KSM would save on a kernel that has it."),
            estimateForm());
    const body = [estimateForm()];
    const run = page.estimateRun;
    if (run && run.error) body.push(alert("danger", "Estimate failed", run.error, "estimate-error"));
    else if (run) {
        body.push(h("div", { class: "pf-c-progress", id: "estimate-progress" },
            h("div", { class: "pf-c-progress__description" }, `Reading memory, held to ${run.cpuLimit}% of one CPU`),
            h("div", { class: "pf-c-progress__status" }, h("span", { class: "pf-c-progress__measure" }, "starting")),
            h("div", { class: "pf-c-progress__bar", role: "progressbar" }, h("div", { class: "pf-c-progress__indicator", style: { width: "0%" } })),
            h("div", { class: "pf-c-progress__helper-text ksm-progress-detail" }, "")));
        body.push(h("button", { class: "pf-c-button pf-m-link", id: "estimate-cancel", onclick: () => run.proc && run.proc.close("cancelled") }, "Cancel"));
    }
    const e = page.estimate;
    if (e) {
        body.push(h("dl", { class: "pf-c-description-list pf-m-horizontal pf-m-2-col-on-lg", id: "estimate-result" },
            term("Would save", "estSavedBytes", e.savedBytes, bytes(e.savedBytes) + (e.savedErrorBytes ? ` ± ${bytes(e.savedErrorBytes)}` : "")),
            term("Still to gain", "estToGainBytes", e.toGainBytes, bytes(e.toGainBytes)),
            term("Profit", "estProfitBytes", e.profitBytes, bytes(e.profitBytes)),
            term("Scanned", "estScannedBytes", e.scannedBytes, `${bytes(e.scannedBytes)} in ${count(e.processesScanned)} processes`),
            term("ksmd CPU for two scans", "estCpuSeconds", e.cpuSeconds,
                e.cpuSeconds === null ? "–" : `${e.cpuSeconds.toFixed(1)} s (${e.secondsAtMaxCpu.toFixed(1)} s at ${e.maxCpuPercent}% of a CPU)`)),
        h("h3", { class: "pf-c-title pf-m-md ksm-subtitle" }, "Who shares with whom"),
        heatmap(e.matrix),
        e.notes.length ? h("ul", { class: "ksm-help" }, e.notes.map(n => h("li", {}, n))) : null);
    }
    return card("estimate", "Estimate", body);
}

function estimateForm() {
    const cpu = h("input", { class: "pf-c-form-control ksm-number", type: "number", min: 1, max: 100, value: 25, id: "estimate-cpu", "aria-label": "CPU limit" });
    const guestsOnly = h("input", { class: "pf-c-check__input", type: "checkbox", id: "estimate-guests" });
    const running = page.estimateRun && !page.estimateRun.error;
    return h("div", { class: "ksm-actions" },
        h("label", { for: "estimate-cpu", class: "ksm-inline-label" }, "Hold the scan to"), cpu,
        h("span", { class: "ksm-inline-label" }, "% of one CPU"),
        h("div", { class: "pf-c-check ksm-check" }, guestsOnly, h("label", { class: "pf-c-check__label", for: "estimate-guests" }, "QEMU guests only")),
        h("button", {
            class: "pf-c-button pf-m-primary", id: "estimate-run", disabled: running,
            onclick: () => {
                const v = Number(cpu.value);
                if (!(v >= 1 && v <= 100)) { page.estimateRun = { error: `CPU limit ${cpu.value}: a percent from 1 to 100` }; render(); return }
                runEstimate(v, guestsOnly.checked);
            },
        }, "Run estimate"));
}

function doctorCard() {
    const d = page.doctor;
    const again = h("button", { class: "pf-c-button pf-m-link ksm-again", id: "doctor-run", onclick: runDoctor }, "Check again");
    if (page.doctorError) return card("doctor", "Doctor", alert("danger", "ksmctl doctor failed", page.doctorError), again);
    if (!d) return card("doctor", "Doctor", h("p", { class: "ksm-help", id: "doctor-checking" }, "Checking…"));
    if (!d.findings.length) return card("doctor", "Doctor", h("p", {}, "No findings."), again);
    return card("doctor", "Doctor",
        h("ul", { class: "ksm-findings", id: "findings" }, d.findings.map(f => h("li", { class: "ksm-finding", "data-id": f.id },
            h("div", { class: "ksm-finding-head" },
                h("span", { class: `pf-c-label ${f.severity === "warning" ? "pf-m-orange" : "pf-m-blue"}` },
                    h("span", { class: "pf-c-label__content" }, f.severity)),
                h("strong", {}, f.seen)),
            h("p", {}, h("span", { class: "ksm-why" }, "Why: "), f.why),
            h("p", {}, h("span", { class: "ksm-why" }, "What to do: "), h("span", { class: "ksm-fix" }, f.whatToDo))))),
        again);
}

let rendering = false;
function render() {
    if (rendering) return;
    rendering = true;
    // Keep what the user typed in the estimate form across refreshes.
    const keep = ["estimate-cpu", "estimate-guests", "policy-select"].map(id => {
        const el = document.getElementById(id);
        return el && [id, el.type === "checkbox" ? el.checked : el.value];
    }).filter(Boolean);
    // ... and the focus, so that a refresh does not take it from someone typing.
    const focused = document.activeElement && document.activeElement.id;
    const app = document.getElementById("app");
    app.replaceChildren(h("main", { class: "ksm-page" },
        h("section", { class: "ksm-main", "data-sampled": page.samples.length },
            h("div", { class: "ksm-alerts" }, alerts()),
            h("div", { class: "ksm-grid" }, overview(),
                // Without KSM there is nothing to chart or list; without a
                // ksmctl that runs, nothing else to show.
                page.status && page.status.supported && [history(), guests()],
                page.status && [estimateCard(), doctorCard()]))));
    for (const [id, v] of keep) {
        const el = document.getElementById(id);
        if (el) el[el.type === "checkbox" ? "checked" : "value"] = v;
    }
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
    renderEstimateProgress();
    rendering = false;
}

async function main() {
    await readSettings();
    const perm = cockpit.permission({ admin: true });
    const onPerm = () => { page.admin = perm.allowed === true; render() };
    perm.addEventListener("changed", onPerm);
    onPerm();
    await sample();
    readPolicy();
    runDoctor();
    setInterval(() => { if (pending === 0) sample() }, SAMPLE_MS);
    document.body.setAttribute("data-ready", "1");
}

// Cockpit's light or dark style, as its own pages follow it: the shell's
// choice (localStorage "shell:style": light, dark or auto, and the
// "cockpit-style" event when it changes), else the browser's preference.
// PatternFly 4's base style sheet carries the dark variables.
function applyStyle(style) {
    const chosen = style || localStorage.getItem("shell:style") || "auto";
    const dark = chosen === "dark" ||
        (chosen === "auto" && window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
    document.documentElement.classList.toggle("pf-theme-dark", dark);
}
applyStyle();
window.addEventListener("storage", e => { if (e.key === "shell:style") applyStyle() });
window.addEventListener("cockpit-style", e => applyStyle(e.detail && e.detail.style));
if (window.matchMedia)
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => applyStyle());

document.addEventListener("DOMContentLoaded", () => {
    main().catch(e => {
        page.error = e.message || String(e);
        render();
    });
});
