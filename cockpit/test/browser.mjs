// The KSM page in a real browser: Debian's Chromium, driven by
// playwright-core over the DevTools protocol, logged in to the real
// cockpit-ws. Run by tests/cockpit.rs (which creates the users, starts
// cockpit-ws, holds the ksmd lock, starts the probes and restores KSM);
// every setting comes from the environment it sets:
//   KSMT_URL        cockpit-ws, e.g. http://127.0.0.1:9391
//   KSMT_ADMIN, KSMT_READER, KSMT_PASSWORD   the two test users (the admin may sudo)
//   KSMT_KSMCTL, KSMT_KSMTUNED   the binaries under test
//   KSMT_FIXTURES   tests/fixtures;  KSMT_WORK  a scratch directory readable by the users
//   KSMT_SHOTS      where the screenshots go
//   KSMT_PROBES     the probes' names, comma-separated (the estimate's matrix must show them)
// Exits 1 on the first failed check, naming it.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const env = name => {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set (tests/cockpit.rs sets it)`);
    return v;
};
const URL = env("KSMT_URL"), PASSWORD = env("KSMT_PASSWORD"), KSMCTL = env("KSMT_KSMCTL");
const KSMTUNED = env("KSMT_KSMTUNED"), FIXTURES = env("KSMT_FIXTURES"), WORK = env("KSMT_WORK"), SHOTS = env("KSMT_SHOTS");
const users = { admin: env("KSMT_ADMIN"), reader: env("KSMT_READER") };
const probes = env("KSMT_PROBES").split(",");
const FRAME = 'iframe[name="cockpit1:localhost/ksm"]';

function check(ok, what) {
    if (!ok) throw new Error(`FAILED: ${what}`);
    console.error(`ok: ${what}`);
}

// `ksmctl ARGS --json`, as root or as `user` (runuser).
function ksmctlJson(args, root, user = null) {
    const e = { ...process.env };
    delete e.KSM_ROOT;
    if (root) e.KSM_ROOT = root;
    const argv = user ? ["runuser", ["-u", user, "--", "env", ...(root ? [`KSM_ROOT=${root}`] : []), KSMCTL, ...args, "--json"]]
        : [KSMCTL, [...args, "--json"]];
    try {
        return JSON.parse(execFileSync(argv[0], argv[1], { env: e, encoding: "utf8" }));
    } catch (err) {
        if (err.stdout) return JSON.parse(err.stdout); // status exits 3 when stopped, 1 without KSM
        throw err;
    }
}

// The page's test-only setting (docs/cockpit.md) in the user's home.
function settings(user, root, ksmctl = KSMCTL) {
    const home = execFileSync("getent", ["passwd", user], { encoding: "utf8" }).split(":")[5];
    const dir = path.join(home, ".config");
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, "ksmtuned-cockpit.json");
    fs.writeFileSync(file, JSON.stringify({ ksmctl, ksmtuned: KSMTUNED, ...(root ? { root } : {}) }));
    execFileSync("chown", ["-R", `${user}:`, dir]);
}

let browser;
async function open(user, { admin = false, root = null, ksmctl = KSMCTL } = {}) {
    settings(user, root, ksmctl);
    const context = await browser.newContext({ viewport: { width: 1440, height: 2000 } });
    const page = await context.newPage();
    page.on("pageerror", e => console.error(`page error (${user}): ${e.message}`));
    await page.goto(URL + "/");
    await page.fill("#login-user-input", user);
    await page.fill("#login-password-input", PASSWORD);
    await page.click("#login-button");
    // The shell's access button ("Limited access" / "Administrative access").
    const access = page.locator(".super-user-indicator button").first();
    await access.waitFor({ timeout: 30000 });
    await page.goto(URL + "/ksm");
    if (admin) {
        // Cockpit starts in "Limited access"; administrative access is
        // sudo with the user's password, as a person would turn it on.
        await access.waitFor({ timeout: 20000 });
        if ((await access.textContent()).includes("Limited")) {
            await access.click();
            await page.fill("#switch-to-admin-access-password", PASSWORD);
            await page.click("div[role=dialog] button.pf-m-primary");
            await page.locator(".super-user-indicator button", { hasText: "Administrative access" }).first().waitFor({ timeout: 30000 });
        }
    }
    const frame = page.frameLocator(FRAME);
    await frame.locator("body[data-ready]").waitFor({ timeout: 30000 });
    if (admin) await frame.locator("#read-only").waitFor({ state: "detached", timeout: 20000 });
    return { context, page, frame };
}

async function shot(page, name) {
    const file = path.join(SHOTS, `${name}.png`);
    await page.screenshot({ path: file });
    console.log(`screenshot: ${file}`);
}

// Every figure on the page with a data-key, and its raw value.
async function figures(frame) {
    return frame.locator("#figures [data-key]").evaluateAll(els =>
        Object.fromEntries(els.map(e => [e.dataset.key, { value: e.dataset.value, text: e.textContent }])));
}

// The page's figures against `ksmctl status --json` run as the page's user
// (`user`; root for an administrator's page) at the same moment: between
// two readings of the page with no refresh of the page in between. Another
// process can change KSM or start a ksmtuned at any time on a shared
// machine, so a moment that straddles a change is tried again at the
// page's next refresh (5 s), four times at most.
async function assertFiguresMatch(frame, root, what, user = null) {
    const keys = {
        savedBytes: "saved_bytes", profitBytes: "general_profit_bytes", sharingPages: "sharing_pages",
        sharedPages: "shared_pages", unsharedPages: "unshared_pages", zeroPages: "zero_pages",
        fullScans: "full_scans", pagesToScan: "pages_to_scan", sleepMs: "sleep_ms", scanRateBytes: "scan_rate_bytes_per_s",
    };
    const sampled = () => frame.locator(".ksm-main").getAttribute("data-sampled");
    let results = [];
    for (let attempt = 0, reads = 0; attempt < 4 && reads < 12; attempt++, reads++) {
        const before = await sampled();
        const shown = await figures(frame);
        const state = await frame.locator("#state").getAttribute("data-value");
        const s = ksmctlJson(["status"], root, user);
        if (await sampled() !== before) { attempt--; continue } // the page refreshed meanwhile
        results = [];
        for (const [key, json] of Object.entries(keys)) {
            const want = s[json] === null ? "null" : String(s[json]);
            results.push([shown[key] && shown[key].value === want,
                `${what}: ${key} shown ${shown[key] && shown[key].value} (${shown[key] && shown[key].text}) = ksmctl status ${json} ${want}`]);
            if (/Pages$|fullScans|pagesToScan/.test(key) && s[json] !== null)
                results.push([shown[key].text === Number(s[json]).toLocaleString("en-US"), `${what}: ${key} reads ${shown[key].text}`]);
        }
        results.push([state === s.state, `${what}: state shown ${state} = ksmctl status state ${s.state}`]);
        results.push([shown.tuner.value === String(s.tuners.length), `${what}: tuners shown ${shown.tuner.value} = ${s.tuners.length}`]);
        if (results.every(([ok]) => ok)) break;
        console.error(`${what}: the page and ksmctl disagree (${results.filter(([ok]) => !ok).map(([, m]) => m).join("; ")}); again after the next refresh`);
        await frame.locator(`.ksm-main:not([data-sampled="${before}"])`).waitFor({ timeout: 15000 });
    }
    check(results.length > 0, `${what}: the page held still long enough to compare it with ksmctl`);
    for (const [ok, message] of results) check(ok, message);
}

// Doctor's findings on the page are ksmctl doctor's, each with its fix.
async function assertDoctor(frame, page, root, what) {
    let shownIds = [], doctorIds = [];
    for (let i = 0; i < 10; i++) {
        await frame.locator("#doctor-checking").waitFor({ state: "detached", timeout: 30000 });
        shownIds = await frame.locator("#findings .ksm-finding").evaluateAll(lis => lis.map(li => li.dataset.id));
        doctorIds = ksmctlJson(["doctor"], root).findings.map(f => f.id);
        if (shownIds.join() === doctorIds.join()) break;
        await frame.locator("#doctor-run").click();
        await page.waitForTimeout(500);
    }
    const fixes = await frame.locator("#findings .ksm-fix").allTextContents();
    check(shownIds.length > 0 && shownIds.join() === doctorIds.join() && fixes.length === shownIds.length && fixes.every(f => f.length > 0),
        `${what}: doctor's findings shown [${shownIds}] = ksmctl doctor --json [${doctorIds}], each with a fix`);
}

const readRun = () => fs.readFileSync("/sys/kernel/mm/ksm/run", "utf8").trim();

async function confirm(frame, button) {
    await frame.locator(button).click();
    await frame.locator("#confirm-yes").click();
}

async function admin() {
    const { context, page, frame } = await open(users.admin, { admin: true });
    check(readRun() === "0", "ksmd is stopped before the test starts it");
    await frame.locator("#state[data-value=stopped]").waitFor();
    await assertFiguresMatch(frame, null, "admin, real KSM stopped");
    await frame.locator("#bad-stopped").waitFor();
    await shot(page, "admin-stopped");

    // Start from the page, and see ksmd run.
    const before = ksmctlJson(["status"]).scanned_pages;
    await confirm(frame, "#start");
    await frame.locator("#state[data-value=running]").waitFor({ timeout: 15000 });
    check(readRun() === "1", "/sys/kernel/mm/ksm/run is 1 after Start KSM on the page");
    let after = before;
    for (let i = 0; i < 50 && after <= before; i++) {
        await page.waitForTimeout(200);
        after = ksmctlJson(["status"]).scanned_pages;
    }
    check(after > before, `ksmd scans: pages_scanned ${before} -> ${after}`);
    await frame.locator("#notice").waitFor();
    await frame.locator("#chart-saved svg[data-points='2'], #chart-saved svg[data-points='3']").first().waitFor({ timeout: 15000 });
    await shot(page, "admin-running");

    // The estimate, with progress and the CPU limit, and its matrix.
    await frame.locator("#estimate-cpu").fill("50");
    await frame.locator("#estimate-run").click();
    await frame.locator("#estimate-progress").waitFor({ timeout: 10000 });
    const described = await frame.locator("#estimate-progress .pf-c-progress__description").textContent();
    check(described.includes("50% of one CPU"), `the progress says the CPU limit: "${described}"`);
    let seen = 0;
    for (let i = 0; i < 600; i++) {
        const p = await frame.locator("#estimate-progress").getAttribute("data-percent", { timeout: 1000 }).catch(() => null);
        if (p === null) break;
        seen = Math.max(seen, Number(p));
        if (seen > 0 && seen < 100 && !fs.existsSync(path.join(SHOTS, "admin-estimate-progress.png")))
            await shot(page, "admin-estimate-progress");
        await page.waitForTimeout(100);
    }
    const error = await frame.locator("#estimate-error").textContent({ timeout: 500 }).catch(() => null);
    check(error === null, `the estimate ran (${error})`);
    check(seen > 0, `the estimate's progress was shown (up to ${seen}%)`);
    await frame.locator("#matrix").waitFor({ timeout: 60000 });
    const groups = await frame.locator("#matrix thead th").allTextContents();
    for (const p of probes)
        check(groups.some(g => g.startsWith(p)), `the matrix has a row and column for probe ${p} (${groups.join(", ")})`);
    const cells = await frame.locator("#matrix td").evaluateAll(tds => tds.map(td => Number(td.dataset.value)));
    check(cells.length === (groups.length - 1) ** 2 && cells.some(v => v > 0), `the matrix has ${cells.length} cells, some shared`);
    await frame.locator("#estimate").scrollIntoViewIfNeeded();
    await shot(page, "admin-estimate");

    // Doctor's findings (the page checks again after a start or stop).
    await assertDoctor(frame, page, null, "admin, real KSM running");
    await frame.locator("#doctor").scrollIntoViewIfNeeded();
    await shot(page, "admin-doctor");

    // Stop again from the page.
    await confirm(frame, "#stop");
    await frame.locator("#state[data-value=stopped]").waitFor({ timeout: 15000 });
    check(readRun() === "0", "/sys/kernel/mm/ksm/run is 0 after Stop KSM on the page");
    await context.close();
}

async function reader() {
    const { context, page, frame } = await open(users.reader);
    await frame.locator("#read-only").waitFor();
    await assertFiguresMatch(frame, null, "non-administrator", users.reader);
    for (const id of ["#start", "#stop", "#policy-apply", "#estimate-run"])
        check(await frame.locator(id).count() === 0, `the read-only view has no ${id}`);
    check(await frame.locator("#guests-partial").count() === 1, "the read-only view says the guest table lacks other users' processes");
    await shot(page, "reader");
    // Cockpit's dark style (Session > Style > Dark stores it so).
    await page.evaluate(() => localStorage.setItem("shell:style", "dark"));
    await page.reload();
    await frame.locator("body[data-ready]").waitFor({ timeout: 30000 });
    check(await frame.locator("html.pf-theme-dark").count() === 1, "the page follows Cockpit's dark style");
    await shot(page, "reader-dark");
    await context.close();
}

function tree(name, from) {
    const root = path.join(WORK, name);
    fs.rmSync(root, { recursive: true, force: true });
    fs.mkdirSync(root, { recursive: true });
    if (from) fs.cpSync(path.join(FIXTURES, from), root, { recursive: true });
    execFileSync("chmod", ["-R", "a+rX", root]);
    return root;
}

async function fixtures() {
    // ksmctl missing (the ksmtuned package removed, the page left).
    let missing = await open(users.reader, { ksmctl: path.join(WORK, "no-such-ksmctl") });
    const said = await missing.frame.locator("#bad-ksmctl").textContent({ timeout: 20000 });
    check(said.includes("is not installed"), `a missing ksmctl is said plainly: ${said}`);
    check(await missing.frame.locator("#history, #guests, #estimate, #doctor").count() === 0, "and nothing else is shown");
    await shot(missing.page, "fixture-no-ksmctl");
    await missing.context.close();

    // No KSM in the kernel: a root without /sys/kernel/mm/ksm.
    let root = tree("no-ksm", null);
    let s = await open(users.admin, { root });
    await s.frame.locator("#bad-no-ksm").waitFor();
    check(await s.frame.locator("#start").count() === 0, "no Start button without KSM");
    check(await s.frame.locator("#history, #guests").count() === 0, "no charts or guest table without KSM");
    check(await s.frame.locator("#state[data-value=unsupported]").count() === 1, "the state says unsupported");
    await shot(s.page, "fixture-no-ksm");
    await s.context.close();

    // ksmd stopped (run = 0), no tuner.
    root = tree("stopped", "linux-5.15");
    s = await open(users.reader, { root });
    await s.frame.locator("#bad-stopped").waitFor();
    await s.frame.locator("#bad-no-daemon").waitFor();
    await assertFiguresMatch(s.frame, root, "fixture linux-5.15 (stopped)", users.reader);
    await shot(s.page, "fixture-stopped");
    await s.context.close();

    // The daemon absent, on a Proxmox VE host with guests: the guest table.
    root = tree("pve", "pve-6.18");
    s = await open(users.admin, { admin: true, root });
    await s.frame.locator("#bad-no-daemon").waitFor();
    check(await s.frame.locator("#bad-stopped").count() === 0, "no stopped warning while ksmd runs");
    await assertFiguresMatch(s.frame, root, "fixture pve-6.18");
    const ps = ksmctlJson(["ps"], root).processes;
    const rows = await s.frame.locator("#guest-table tbody tr").evaluateAll(trs => trs.map(tr =>
        [...tr.querySelectorAll("td")].map(td => td.dataset.value ?? td.textContent)));
    check(rows.length === ps.length, `guest table: ${rows.length} rows, ksmctl ps ${ps.length}`);
    for (const [i, p] of ps.entries())
        check(rows[i][0] === (p.guest || p.comm) && rows[i][1] === (p.vmid === null ? "–" : String(p.vmid)) &&
            rows[i][3] === String(p.merged_bytes) && rows[i][4] === String(p.profit_bytes),
            `guest row ${i}: ${rows[i].join(" | ")} = ${p.guest} ${p.vmid} ${p.merged_bytes} ${p.profit_bytes}`);
    await assertDoctor(s.frame, s.page, root, "fixture pve-6.18");
    await shot(s.page, "fixture-pve-no-daemon");

    // The policy: refused while ksmtuned.conf itself sets KSM_POLICY (it
    // wins over the drop-in), written once it does not.
    const conf = path.join(root, "etc/ksmtuned.conf");
    const dropin = path.join(root, "etc/ksmtuned.conf.d/policy.conf");
    fs.mkdirSync(path.dirname(dropin), { recursive: true });
    fs.writeFileSync(conf, "KSM_POLICY=classic\n");
    await s.page.reload();
    await s.frame.locator("body[data-ready]").waitFor({ timeout: 30000 });
    await s.frame.locator("#policy-source").waitFor();
    await s.frame.locator("#policy-select").selectOption("adaptive");
    await confirm(s.frame, "#policy-apply");
    const refused = await s.frame.locator("#notice").textContent({ timeout: 15000 });
    check(refused.includes("not changed") && !fs.existsSync(dropin), `policy change refused while ksmtuned.conf sets KSM_POLICY: ${refused}`);
    await shot(s.page, "fixture-policy-refused");
    fs.writeFileSync(conf, "# KSM_POLICY=classic\n");
    await s.frame.locator("#policy-select").selectOption("adaptive");
    await confirm(s.frame, "#policy-apply");
    await s.frame.locator("#notice", { hasText: "wrote" }).waitFor({ timeout: 15000 });
    check(fs.readFileSync(dropin, "utf8").includes("KSM_POLICY=adaptive"), `${dropin} sets KSM_POLICY=adaptive`);
    await s.frame.locator("[data-key=policy][data-value=adaptive]").waitFor({ timeout: 15000 });
    const out = execFileSync(KSMTUNED, ["--check-config"], { env: { ...process.env, KSM_ROOT: root }, encoding: "utf8" });
    check(/^policy: adaptive /m.test(out), `ksmtuned --check-config agrees: ${out.trim().split("\n").join(" / ")}`);
    await shot(s.page, "fixture-policy-changed");
    await s.context.close();
}

const scenarios = { admin, reader, fixtures };
const wanted = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(scenarios);
fs.rmSync(SHOTS, { recursive: true, force: true });
fs.mkdirSync(SHOTS, { recursive: true });
browser = await chromium.launch({
    executablePath: "/usr/bin/chromium", headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"],
});
let failed = false;
try {
    for (const name of wanted) {
        console.error(`== ${name}`);
        await scenarios[name]();
    }
} catch (e) {
    console.error(e.stack || String(e));
    failed = true;
} finally {
    await browser.close();
}
process.exit(failed ? 1 : 0);
