// Builds dist/ (committed; what the packages install to /usr/share/cockpit/ksm)
// from src/: the page's JavaScript bundled into one file, and the few
// PatternFly 4 component style sheets it uses (PatternFly 4, as Cockpit 287
// on Debian 12 and the Cockpit 2xx releases of RHEL 8/9 use) concatenated
// and minified. The fonts are Cockpit's own (../../static/fonts), so none
// are bundled. `node build.mjs --check` builds into a temporary directory
// and fails when dist/ differs (the browser test runs it).
import * as esbuild from "esbuild";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
const pf = path.join(here, "node_modules/@patternfly/patternfly");
const check = process.argv.includes("--check");
const out = check ? fs.mkdtempSync(path.join(os.tmpdir(), "ksm-cockpit-")) : path.join(here, "dist");

// The PatternFly components the page uses.
const components = [
    "Card/card.css", "DescriptionList/description-list.css", "Button/button.css",
    "Label/label.css", "Alert/alert.css", "Table/table.css", "ModalBox/modal-box.css",
    "Backdrop/backdrop.css", "Progress/progress.css", "FormControl/form-control.css",
    "Check/check.css", "Title/title.css", "EmptyState/empty-state.css",
];

// patternfly-base.css without its @font-face rules (Cockpit serves the
// fonts) and its icon-font classes (the page draws no icons from fonts).
const base = fs.readFileSync(path.join(pf, "patternfly-base.css"), "utf8")
    .replace(/@font-face\s*\{[^}]*\}/g, "")
    .replace(/(?:\.(?:fa|pf-icon)-[\w-]+:before,?\s*)+\{[^}]*\}/g, "");
const fonts = [["RedHatText", "Regular", 400], ["RedHatText", "Medium", 500], ["RedHatText", "Bold", 700],
    ["RedHatDisplay", "Regular", 400], ["RedHatDisplay", "Medium", 500], ["RedHatDisplay", "Bold", 700],
    ["RedHatMono", "Regular", 400]]
    .flatMap(([family, style, weight]) => [family, family + "Updated"].map(name =>
        `@font-face{font-family:"${name}";src:url("../../static/fonts/${family}-${style}.woff2") format("woff2");` +
        `font-style:normal;font-weight:${weight};font-display:fallback}`))
    .join("\n");
const css = [fonts, base,
    ...components.map(c => fs.readFileSync(path.join(pf, "components", c), "utf8")),
    fs.readFileSync(path.join(here, "src/ksm.css"), "utf8")].join("\n");
const minified = await esbuild.transform(css, { loader: "css", minify: true, legalComments: "none" });
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, "ksm.css"), minified.code);

await esbuild.build({
    entryPoints: [path.join(here, "src/ksm.js")],
    bundle: true, minify: true, format: "iife", target: ["es2020"], legalComments: "none",
    loader: { ".sh": "text" }, outfile: path.join(out, "ksm.js"), logLevel: "warning",
});
for (const f of ["index.html", "manifest.json"])
    fs.copyFileSync(path.join(here, "src", f), path.join(out, f));

if (check) {
    const stale = ["index.html", "manifest.json", "ksm.css", "ksm.js"].filter(f => {
        const committed = path.join(here, "dist", f);
        return !fs.existsSync(committed) ||
            !fs.readFileSync(committed).equals(fs.readFileSync(path.join(out, f)));
    });
    fs.rmSync(out, { recursive: true });
    if (stale.length) {
        console.error(`cockpit/dist is stale (${stale.join(", ")} differ from a build of cockpit/src): run npm run build in cockpit/ and commit dist/`);
        process.exit(1);
    }
    console.error("cockpit/dist matches a fresh build of cockpit/src");
} else {
    for (const f of fs.readdirSync(out))
        console.error(`${path.join("dist", f)}: ${fs.statSync(path.join(out, f)).size} bytes`);
}
