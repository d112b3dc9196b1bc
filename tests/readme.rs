//! Every command output shown in README.md and docs/*.md is what the
//! programs print today.
//!
//! The convention (README.md and docs/ follow it):
//!
//! - A ```` ```console ```` block is a transcript: lines starting with `$ `
//!   are commands (run with `sh -c`, standard error merged into standard
//!   output, the built `ksmctl`/`ksmtuned`/`ksm-bench` first on PATH), the
//!   lines up to the next command are what it must print, exactly (trailing
//!   blanks aside).
//! - Every console block is preceded by `<!-- check: OPTIONS -->`, where
//!   OPTIONS are `root=DIR` (run with `KSM_ROOT=DIR`: a fixture tree, so the
//!   output is the same on every machine) and `cwd=DIR` (both relative to
//!   the repository), or by `<!-- not checked: REASON -->`, which must say
//!   why (and should be rare).
//! - `<!-- check: top root=DIR -->` before a ```` ```text ```` block: the
//!   block is `ksmctl top`'s first screen over DIR, drawn at 80x24.
//!
//! No number is normalised: fixture trees make every output reproducible.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug)]
struct Block {
    file: String,
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    /// The `check:` options, `None` when not checked.
    check: Option<Vec<(String, String)>>,
    not_checked: bool,
    body: Vec<String>,
}

fn blocks(path: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(path).unwrap();
    let file = path
        .strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string();
    let mut out = Vec::new();
    let mut pending: Option<Vec<(String, String)>> = None;
    let mut pending_skip = false;
    let mut lines = text.lines().enumerate();
    while let Some((i, l)) = lines.next() {
        let t = l.trim();
        if let Some(rest) = t
            .strip_prefix("<!-- check:")
            .and_then(|r| r.strip_suffix("-->"))
        {
            pending = Some(
                rest.split_whitespace()
                    .map(|w| match w.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (w.to_string(), String::new()),
                    })
                    .collect(),
            );
            continue;
        }
        if t.starts_with("<!-- not checked:") {
            pending_skip = true;
            continue;
        }
        if let Some(lang) = t.strip_prefix("```") {
            let mut body = Vec::new();
            for (_, b) in lines.by_ref() {
                if b.trim_start().starts_with("```") {
                    break;
                }
                body.push(b.to_string());
            }
            out.push(Block {
                file: file.clone(),
                line: i + 1,
                lang: lang.trim().to_string(),
                check: pending.take(),
                not_checked: std::mem::take(&mut pending_skip),
                body,
            });
            continue;
        }
        if !t.is_empty() {
            // A marker applies to the block right after it.
            pending = None;
            pending_skip = false;
        }
    }
    out
}

fn documents() -> Vec<PathBuf> {
    let mut docs = vec![repo().join("README.md")];
    if let Ok(entries) = std::fs::read_dir(repo().join("docs")) {
        let mut md: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        md.sort();
        docs.extend(md);
    }
    docs
}

fn opt<'a>(opts: &'a [(String, String)], key: &str) -> Option<&'a str> {
    opts.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn trimmed(lines: &[String]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().map(|l| l.trim_end().to_string()).collect();
    while v.last().is_some_and(String::is_empty) {
        v.pop();
    }
    v
}

/// Run one transcript; the differences, if any.
fn run_console(b: &Block, opts: &[(String, String)]) -> Result<usize, String> {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_ksmctl")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cwd = repo().join(opt(opts, "cwd").unwrap_or("."));
    let mut commands: Vec<(String, Vec<String>)> = Vec::new();
    for l in &b.body {
        if let Some(cmd) = l.strip_prefix("$ ") {
            commands.push((cmd.to_string(), Vec::new()));
        } else if let Some((_, out)) = commands.last_mut() {
            out.push(l.clone());
        } else {
            return Err(format!(
                "{}:{}: output before the first `$ ` command: {l:?}",
                b.file, b.line
            ));
        }
    }
    if commands.is_empty() {
        return Err(format!(
            "{}:{}: a console block without a `$ ` command",
            b.file, b.line
        ));
    }
    for (cmd, expected) in &commands {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("exec 2>&1\n{cmd}"))
            .current_dir(&cwd)
            .env("PATH", &path)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("KSM_ROOT")
            .env_remove("KSM_MAX_KERNEL_PAGES");
        if let Some(root) = opt(opts, "root") {
            c.env("KSM_ROOT", repo().join(root));
        }
        let out = c.output().unwrap();
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let (got, want) = (trimmed(&got), trimmed(expected));
        if got != want {
            return Err(format!(
                "{}:{}: `{cmd}` printed (exit {:?}):\n{}\n--- but the document shows:\n{}",
                b.file,
                b.line,
                out.status.code(),
                got.join("\n"),
                want.join("\n")
            ));
        }
    }
    Ok(commands.len())
}

/// `ksmctl top`'s first screen over a fixture root, 80x24.
fn top_screen(root: &Path) -> Vec<String> {
    use ksmtuned::cli::top::{draw, View};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    let root = ksmtuned::Root::new(root);
    // Two refreshes, 2 s apart (the default), of the same fixture, read as
    // `ksmctl top` reads it.
    use ksmtuned::sample::{Parts, Processes, Sampler};
    let mut sampler = Sampler::new(
        &root,
        Parts {
            ksmd: true,
            processes: Processes::Merged,
            ..Parts::default()
        },
    );
    let mut view = View::new(Duration::from_secs(2));
    for at in [0.0, 2.0] {
        view.push(at, sampler.take().unwrap());
    }
    let (w, h) = (80u16, 24u16);
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(f, &view)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect())
        .collect()
}

#[test]
fn every_output_shown_is_real() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        for b in blocks(&doc) {
            match (&b.check, b.lang.as_str()) {
                (Some(opts), "console") => match run_console(&b, opts) {
                    Ok(n) => checked += n,
                    Err(e) => failures.push(e),
                },
                (Some(opts), "text") if opt(opts, "top").is_some() => {
                    let root = repo().join(opt(opts, "root").expect("top needs root="));
                    let got = trimmed(&top_screen(&root));
                    let want = trimmed(&b.body);
                    if got != want {
                        failures.push(format!(
                            "{}:{}: ksmctl top draws:\n{}\n--- but the document shows:\n{}",
                            b.file,
                            b.line,
                            got.join("\n"),
                            want.join("\n")
                        ));
                    } else {
                        checked += 1;
                    }
                }
                (Some(_), lang) => failures.push(format!(
                    "{}:{}: a check marker before a {lang:?} block (console, or text with top)",
                    b.file, b.line
                )),
                (None, "console") if !b.not_checked => failures.push(format!(
                    "{}:{}: a console block without <!-- check: ... --> (or <!-- not checked: why -->)",
                    b.file, b.line
                )),
                _ => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked >= 8, "only {checked} outputs checked");
}

#[test]
fn readme_is_short_and_starts_with_the_set_up_commands() {
    let text = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let lines = text.lines().count();
    assert!(lines <= 320, "README.md has {lines} lines");
    let first = blocks(&repo().join("README.md")).remove(0);
    assert_eq!(first.lang, "sh");
    assert!(first.body[0].contains("ksmctl status"), "{:?}", first.body);
    assert!(first.body[1].contains("scripts/test"), "{:?}", first.body);
    // The test command says on its own line that it unmerges this host.
    assert!(first.body[1].contains("unmerge"), "{:?}", first.body);
    // The rust-version the README states is Cargo.toml's.
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let rv = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        text.contains(&format!("rustc {rv} or")),
        "README does not state rust-version {rv}"
    );
    // Relative links point at files that exist (the docs other issues
    // write are listed here until they are merged).
    let pending = [
        "docs/estimate.md",
        "docs/troubleshooting.md",
        "docs/migration.md",
        "docs/fleet.md",
        "docs/monitoring.md",
    ];
    for doc in documents() {
        let t = std::fs::read_to_string(&doc).unwrap();
        for part in t.split("](").skip(1) {
            let target = part.split(')').next().unwrap();
            if target.starts_with("http") || target.starts_with('#') {
                continue;
            }
            let p = doc
                .parent()
                .unwrap()
                .join(target.split('#').next().unwrap());
            let rel = p
                .strip_prefix(repo())
                .map(|r| r.display().to_string())
                .unwrap_or_default();
            let rel = rel.replace("docs/../", "");
            assert!(
                p.exists() || pending.contains(&rel.as_str()),
                "{}: link to {target} ({}) which does not exist",
                doc.display(),
                p.display()
            );
        }
    }
}
