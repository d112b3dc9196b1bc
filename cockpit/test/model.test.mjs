// cockpit/src/model.js (the page's one reader of ksmctl's JSON) against
// what the ksmctl under test prints today over the fixture trees: a key
// renamed in ksmctl without model.js following fails here, browser or
// not. Run by tests/cockpit.rs (node --test) with KSMT_KSMCTL,
// KSMT_KSMTUNED and KSMT_FIXTURES set.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import fs from "node:fs";
import os from "node:os";
import * as model from "../src/model.js";

const KSMCTL = process.env.KSMT_KSMCTL, KSMTUNED = process.env.KSMT_KSMTUNED;
const FIXTURES = process.env.KSMT_FIXTURES;

function run(bin, args, root) {
    try {
        return execFileSync(bin, args, { env: { ...process.env, KSM_ROOT: root }, encoding: "utf8" });
    } catch (e) {
        if (e.stdout) return e.stdout; // status 3 (stopped) / 1 (no KSM), doctor 4
        throw e;
    }
}
const json = (args, root) => JSON.parse(run(KSMCTL, [...args, "--json"], root));

// Every value model.js returns that must be there on this fixture.
function noUndefined(obj, where) {
    for (const [k, v] of Object.entries(obj))
        assert.notEqual(v, undefined, `${where}.${k} is undefined`);
}

test("status: every figure read from its key", () => {
    const root = path.join(FIXTURES, "pve-6.18");
    const raw = json(["status"], root);
    const s = model.status(raw);
    noUndefined(s, "status");
    assert.equal(s.supported, true);
    assert.equal(s.state, "running");
    assert.equal(s.savedBytes, 1025228800);
    assert.equal(s.profitBytes, 998244352);
    assert.equal(s.sharingPages, 250000);
    assert.equal(s.sharedPages, 12000);
    assert.equal(s.pagesToScan, 1250);
    assert.equal(s.sleepMs, 10);
    assert.equal(s.scanRateBytes, raw.scan_rate_bytes_per_s);
    assert.deepEqual(s.tuners, []);
    const withTuner = model.status(json(["status"], path.join(FIXTURES, "linux-6.18")));
    assert.equal(withTuner.tuners.length, 1);
    assert.equal(withTuner.tuners[0].comm, "ksmtuned");
    assert.equal(typeof withTuner.tuners[0].pid, "number");
});

test("status without KSM and stopped", () => {
    // A directory without sys/kernel/mm/ksm: a kernel without KSM.
    const none = model.status(json(["status"], path.join(FIXTURES, "docs")));
    assert.equal(none.supported, false);
    assert.equal(none.state, "unsupported");
    const stopped = model.status(json(["status"], path.join(FIXTURES, "linux-5.15")));
    assert.equal(stopped.state, "stopped");
    assert.equal(stopped.run, 0);
});

test("ps: guests with names, VMIDs, saved and profit", () => {
    const rows = model.processes(json(["ps"], path.join(FIXTURES, "pve-6.18")));
    assert.equal(rows.length, 3);
    for (const r of rows) noUndefined(r, "processes[]");
    assert.deepEqual(rows.map(r => [r.guest, r.vmid]), [["web", 101], ["db", 102], ["idle", 103]]);
    assert.equal(rows[0].savedBytes, 614449152);
    assert.equal(rows[0].profitBytes, 601600000);
    assert.equal(rows[1].notMergeable, "mem-merge=off");
});

test("doctor: findings with what to do", () => {
    const d = model.doctor(json(["doctor"], path.join(FIXTURES, "pve-6.18")));
    assert.ok(d.findings.length > 0);
    for (const f of d.findings) {
        noUndefined(f, "findings[]");
        for (const k of ["id", "severity", "seen", "why", "whatToDo"]) assert.ok(f[k], `finding ${f.id}: ${k} empty`);
    }
});

test("ksmd CPU from the metrics", () => {
    assert.equal(model.ksmdCpuSeconds("# TYPE x counter\nksm_ksmd_cpu_seconds_total 12.5\n"), 12.5);
    assert.equal(model.ksmdCpuSeconds("ksm_run 1\n"), null);
    // Whatever this host's ksmd has used: a number when the file is there.
    const real = model.ksmdCpuSeconds(run(KSMCTL, ["metrics"], "/"));
    assert.ok(real === null || real >= 0);
});

test("policy from ksmtuned --check-config", () => {
    const p = model.policy(run(KSMTUNED, ["--check-config"], path.join(FIXTURES, "pve-6.18")));
    assert.equal(p.name, "classic");
    assert.match(p.source, /KSM_POLICY is not set/);
});

test("estimate: progress lines and the JSON after them, as a terminal shows them", () => {
    const text = "\r[#########                     ]  30%  60.0 MiB of 200 MiB  (pid 812)   " +
        "\r[##################            ]  61%  122 MiB of 200 MiB  (pid 913)   \r" + " ".repeat(78) + "\r" +
        JSON.stringify({ ksm_supported: true, saved_bytes: 4096, to_gain_bytes: 4096, cost: { cpu_seconds: 0.5, max_cpu_percent: 50, seconds_at_max_cpu: 1 }, matrix: { groups: ["a", "b"], bytes: [[1, 2], [2, 1]] } }, null, 2).replace(/\n/g, "\r\n");
    assert.deepEqual(model.estimateProgress(text), { percent: 61, done: "122 MiB", total: "200 MiB", pid: 913 });
    const e = model.estimate(model.estimateJson(text));
    assert.equal(e.savedBytes, 4096);
    assert.deepEqual(e.matrix.groups, ["a", "b"]);
    assert.equal(e.maxCpuPercent, 50);
    assert.equal(model.estimateProgress("nothing yet"), null);
    assert.throws(() => model.estimateJson("estimate needs root"), /no JSON/);
});

test("status and ps with ksmtuned's cross-domain audit holding KSM", () => {
    // A copy of a fixture tree with a recent /run/ksmtuned/domains.json
    // (as ksmtuned writes it with KSM_TRUST_DOMAINS and
    // KSM_CROSS_DOMAIN=refuse) naming its process 4242.
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "ksm-cockpit-model-"));
    try {
        fs.cpSync(path.join(FIXTURES, "linux-6.18"), root, { recursive: true });
        fs.writeFileSync(path.join(root, "proc/4242/ksm_stat"),
            "ksm_rmap_items 600\nksm_zero_pages 0\nksm_merging_pages 512\nksm_process_profit 1900000\n");
        const pair = { a: "/tenant-a", b: "/tenant-b", shared_bytes: 2097152 };
        const now = Math.floor(Date.now() / 1000);
        fs.mkdirSync(path.join(root, "run/ksmtuned"), { recursive: true });
        fs.writeFileSync(path.join(root, "run/ksmtuned/domains.json"), JSON.stringify({
            policy: "refuse", interval_seconds: 300,
            audit: {
                trust_domains: "cgroup:1", pairs: [pair], cross_domain_bytes: 2097152,
                ksm_bytes: 10485760, domains: { "/tenant-a": ["vm1"] },
                process_domains: { "4242": "/tenant-a" }, processes_scanned: 2,
                pages_examined: 5000, timestamp_seconds: now - 30, duration_seconds: 0.2,
                cpu_seconds: 0.02,
            },
            refusal: {
                since_unix_seconds: now - 30, pairs: [pair], cross_domain_bytes: 2097152,
                saved_bytes_given_up: 8388608, unmerged: true,
            },
        }));
        const d = model.status(json(["status"], root)).domains;
        assert.equal(d.policy, "refuse");
        assert.equal(d.trustDomains, "cgroup:1");
        assert.deepEqual(d.pairs, [{ a: "/tenant-a", b: "/tenant-b", sharedBytes: 2097152 }]);
        assert.equal(d.crossDomainBytes, 2097152);
        assert.deepEqual(d.held.givenUpBytes, 8388608);
        assert.equal(d.held.unmerged, true);
        const p = model.processes(json(["ps"], root)).find(r => r.pid === 4242);
        assert.equal(p.domain, "/tenant-a");
        assert.deepEqual(p.sharesWith, ["/tenant-b"]);
        // Without an audit: null and none.
        assert.equal(model.status(json(["status"], path.join(FIXTURES, "linux-6.18"))).domains, null);
    } finally {
        fs.rmSync(root, { recursive: true, force: true });
    }
});
