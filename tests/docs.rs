//! Man pages and shell completions: the generated pages say what `--help`
//! says (every option, every help text, every command), man(1) renders
//! every page without a warning, the hand-written ksmtuned.conf(5)
//! documents every variable with its real default, and each completion
//! script loads in its shell and completes.

#[path = "../examples/gen-docs/docgen.rs"]
#[allow(dead_code)]
mod docgen;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap_complete::Shell;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn skipped(test: &str, tool: &str, package: &str) -> bool {
    if have(tool) {
        return false;
    }
    eprintln!(
        "SKIPPED: {test}: {tool} is not installed (Debian package {package}; scripts/test installs it)"
    );
    true
}

fn text(o: &Output) -> String {
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    s
}

/// Whitespace runs as one space, so that wrapped and unwrapped texts compare.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A page as plain text: no hyphenation, lines long enough never to wrap
/// a paragraph, no bold or underline.
fn render_plain(page: &Path) -> String {
    let o = Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou", "-rHY=0", "-rLL=5000n"])
        .arg(page)
        .output()
        .expect("running groff");
    assert!(o.status.success(), "groff {}: {}", page.display(), text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write_generated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    docgen::write_all(dir.path()).expect("generating pages and completions");
    dir
}

fn bin(program: &str) -> &'static str {
    match program {
        "ksmctl" => env!("CARGO_BIN_EXE_ksmctl"),
        "ksmtuned" => env!("CARGO_BIN_EXE_ksmtuned"),
        other => panic!("no binary {other}"),
    }
}

fn help_of(program: &str, sub: Option<&str>) -> String {
    let mut c = Command::new(bin(program));
    c.args(sub).arg("--help").env("COLUMNS", "5000");
    let o = c.output().unwrap();
    assert!(o.status.success(), "{program} {sub:?} --help: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The long options listed in a `--help` output's option lines.
fn long_options(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in help.lines() {
        let t = line.trim_start();
        if !t.starts_with('-') {
            continue;
        }
        let head = t.split("  ").next().unwrap_or(t);
        for word in head.split([' ', ',', '=', '[', '<']) {
            // "-v, --verbose..." (a counted flag)
            let word = word.trim_end_matches('.');
            if word.starts_with("--") && word.len() > 2 {
                out.insert(word.to_string());
            }
        }
    }
    out
}

/// The command names listed under "Commands:" in a `--help` output.
fn help_commands(help: &str) -> BTreeSet<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn pages_say_what_help_says() {
    if skipped("pages_say_what_help_says", "groff", "groff-base") {
        return;
    }
    let dir = write_generated();
    for program in docgen::PROGRAMS {
        let page = render_plain(&dir.path().join(docgen::man_file(program)));
        let flat = squash(&page);
        let mut cmd = docgen::command(program);
        cmd.build();

        // The commands of `--help` are the page's (less clap's `help`).
        let top_help = help_of(program, None);
        let mut listed = help_commands(&top_help);
        listed.remove("help");
        let documented: BTreeSet<String> = docgen::documented_subcommands(&cmd)
            .iter()
            .map(|s| s.get_name().to_string())
            .collect();
        assert_eq!(listed, documented, "{program}: commands of --help vs page");
        for name in &documented {
            assert!(
                page.lines().any(|l| l.trim() == name.as_str()),
                "{program}.8 has no subsection {name}"
            );
        }

        let about = cmd
            .get_about()
            .expect("every program has an about")
            .to_string();
        assert!(
            flat.contains(&squash(&about)),
            "{program}.8 lacks {about:?}"
        );

        let mut levels: Vec<(Option<String>, clap::Command)> = vec![(None, cmd.clone())];
        for s in docgen::documented_subcommands(&cmd) {
            levels.push((Some(s.get_name().to_string()), s.clone()));
        }
        let mut checked = 0;
        for (sub, c) in levels {
            let help = help_of(program, sub.as_deref());
            let help_flat = squash(&help);
            // Every long option --help lists is in the page...
            for opt in long_options(&help) {
                assert!(
                    flat.contains(&opt),
                    "{program} {sub:?}: --help lists {opt}, {program}.8 does not"
                );
                checked += 1;
            }
            // ...and every option's help text is in both, word for word.
            // clap's own --help says "(see more with '--help')" under -h
            // only, once a command has long help.
            for arg in c
                .get_arguments()
                .filter(|a| !a.is_hide_set() && a.get_id() != "help")
            {
                let Some(h) = arg.get_help() else { continue };
                let h = squash(&h.to_string());
                assert!(
                    help_flat.contains(&h),
                    "{program} {sub:?} --help lacks {h:?}"
                );
                assert!(flat.contains(&h), "{program}.8 lacks {h:?} ({sub:?})");
            }
            if let Some(name) = &sub {
                let about = c.get_about().map(|a| squash(&a.to_string()));
                if let Some(about) = about {
                    assert!(flat.contains(&about), "{program}.8 lacks {name}: {about:?}");
                }
            }
        }
        assert!(
            checked >= 3,
            "{program}: only {checked} options found in --help"
        );

        // The files the page names are the program's own constants.
        for path in [
            ksmtuned::daemon::pidfile::TUNER_PID_FILE,
            "/sys/kernel/mm/ksm/",
        ] {
            assert!(page.contains(path), "{program}.8 does not name {path}");
        }
        let version = format!("{program} {}", env!("CARGO_PKG_VERSION"));
        assert!(page.contains(&version), "{program}.8 lacks {version:?}");
    }
}

#[test]
fn generated_files_are_deterministic() {
    let a = write_generated();
    let b = write_generated();
    for program in docgen::PROGRAMS {
        let mut rels = vec![docgen::man_file(program)];
        rels.extend(
            docgen::SHELLS
                .iter()
                .map(|s| docgen::completion_file(program, *s)),
        );
        for rel in rels {
            let x = fs::read(a.path().join(&rel)).unwrap();
            let y = fs::read(b.path().join(&rel)).unwrap();
            assert!(!x.is_empty(), "{} is empty", rel.display());
            assert_eq!(x, y, "{} differs between two runs", rel.display());
        }
    }
}

#[test]
fn man_renders_every_page_without_warnings() {
    if skipped("man_renders_every_page_without_warnings", "man", "man-db") {
        return;
    }
    let dir = write_generated();
    let mut pages: Vec<PathBuf> = docgen::PROGRAMS
        .iter()
        .map(|p| dir.path().join(docgen::man_file(p)))
        .collect();
    pages.push(repo("man/ksmtuned.conf.5"));
    for page in pages {
        let o = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "man -l {}: {}",
            page.display(),
            text(&o)
        );
        let warnings = String::from_utf8_lossy(&o.stderr);
        assert!(
            warnings.trim().is_empty(),
            "man --warnings -l {}:\n{warnings}",
            page.display()
        );
        assert!(
            o.stdout.len() > 500,
            "{} rendered almost nothing",
            page.display()
        );
    }
    // The check itself: a broken page does warn.
    let bad = dir.path().join("bad.8");
    fs::write(&bad, ".TH BAD 8\n.SH NAME\nbad \\- x\n.BOGUSMACRO\n\\fQ\n").unwrap();
    let o = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&bad)
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stderr).trim().is_empty(),
        "man --warnings found nothing wrong in a broken page"
    );
}

/// The default of each variable as ksmtuned.conf(5) must state it.
fn default_text(name: &str) -> String {
    let values = ksmtuned::config::Config::default().values();
    let (_, v) = values
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| {
            panic!("ksmtuned.conf(5) documents {name}, which ksmtuned does not know")
        });
    // DEBUG is off when unset.
    if v == "off" {
        "unset".to_string()
    } else {
        v
    }
}

#[test]
fn conf_page_documents_every_variable_and_default() {
    if skipped(
        "conf_page_documents_every_variable_and_default",
        "groff",
        "groff-base",
    ) {
        return;
    }
    let page = render_plain(&repo("man/ksmtuned.conf.5"));
    // Each variable's entry: "NAME=unit" at the start of a line, then its
    // text up to the next entry.
    let entries: Vec<(String, String)> = {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut in_vars = false;
        for line in page.lines() {
            if line.starts_with("VARIABLES") {
                in_vars = true;
                continue;
            }
            if in_vars && !line.is_empty() && !line.starts_with(' ') {
                break;
            }
            if !in_vars {
                continue;
            }
            let t = line.trim();
            let is_head = line.starts_with("       ") && !line.starts_with("        ");
            if is_head
                && t.contains('=')
                && t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            {
                let name = t.split('=').next().unwrap().to_string();
                out.push((name, String::new()));
            } else if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(t);
            }
        }
        out
    };
    let documented: BTreeSet<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    let known: BTreeSet<&str> = ksmtuned::config::VARIABLES
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        documented, known,
        "ksmtuned.conf(5) VARIABLES vs config::VARIABLES"
    );
    for (name, body) in &entries {
        let want = format!("Default: {}", default_text(name));
        assert!(
            squash(body).contains(&want),
            "ksmtuned.conf(5): {name} does not say {want:?}: {body}"
        );
    }
}

fn run_shell(shell: &str, args: &[&str]) -> Output {
    Command::new(shell)
        .args(args)
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("running {shell}: {e}"))
}

/// The subcommands a shell should offer after "PROGRAM st".
/// What every shell's completion of `program` offers, `complete` being
/// that shell's answer for a command line: the options, and for ksmctl its
/// subcommands, KSM's file names for get and its settings for set.
fn completes_options_and_subcommands(program: &str, complete: &dyn Fn(&str) -> BTreeSet<String>) {
    let got = complete(&format!("{program} --"));
    assert!(
        got.contains("--root") && got.contains("--help"),
        "{program} --: {got:?}"
    );
    if program == "ksmctl" {
        let got = complete("ksmctl st");
        for want in st_commands(program) {
            assert!(got.contains(&want), "ksmctl st: {got:?} lacks {want}");
        }
        // KSM's file names for get, its settings as NAME= for set.
        let got = complete("ksmctl get pages_");
        for want in ["pages_to_scan", "pages_sharing", "pages_shared"] {
            assert!(
                got.contains(want),
                "ksmctl get pages_: {got:?} lacks {want}"
            );
        }
        let got = complete("ksmctl set s");
        assert!(
            got.contains("sleep_millisecs=") && got.contains("smart_scan="),
            "ksmctl set s: {got:?}"
        );
        assert!(
            !got.iter().any(|w| w.starts_with("stable_node_chains=")),
            "a counter offered to set: {got:?}"
        );
    }
}

fn st_commands(program: &str) -> Vec<String> {
    let cmd = docgen::command(program);
    docgen::documented_subcommands(&cmd)
        .iter()
        .map(|s| s.get_name().to_string())
        .filter(|n| n.starts_with("st"))
        .collect()
}

#[test]
fn bash_completions_load_and_complete() {
    if skipped("bash_completions_load_and_complete", "bash", "bash") {
        return;
    }
    let dir = write_generated();
    for program in docgen::PROGRAMS {
        let file = dir
            .path()
            .join(docgen::completion_file(program, Shell::Bash));
        let f = file.to_str().unwrap();
        let o = run_shell("bash", &["-n", f]);
        assert!(o.status.success(), "bash -n {f}: {}", text(&o));
        let o = run_shell(
            "bash",
            &["-c", &format!("source {f} && complete -p {program}")],
        );
        assert!(o.status.success(), "{f}: {}", text(&o));
        assert!(text(&o).contains(&format!(" {program}")), "{}", text(&o));
        // Complete "PROGRAM --" (and "ksmctl st") as bash would.
        let complete = |words: &str| -> BTreeSet<String> {
            let script = format!(
                "source {f}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); \
                 COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; \
                 fn=$(complete -p {program} | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p'); \
                 $fn {program} \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\""
            );
            let o = run_shell("bash", &["-c", &script]);
            assert!(o.status.success(), "{script}: {}", text(&o));
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        completes_options_and_subcommands(program, &complete);
    }
}

#[test]
fn zsh_completions_load() {
    if skipped("zsh_completions_load", "zsh", "zsh") {
        return;
    }
    let dir = write_generated();
    let comp_dir = dir.path().join("completions");
    for program in docgen::PROGRAMS {
        let file = dir
            .path()
            .join(docgen::completion_file(program, Shell::Zsh));
        let o = run_shell("zsh", &["-n", file.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "zsh -n {}: {}",
            file.display(),
            text(&o)
        );
        // As installed: a directory in $fpath, picked up by compinit, which
        // binds the #compdef function to the command; loading it defines
        // the function.
        let script = format!(
            "fpath=({} $fpath); autoload -Uz compinit && compinit -u -D && \
             print -r -- \"comp=${{_comps[{program}]}}\" && autoload +X _{program} && \
             whence -w _{program}",
            comp_dir.display()
        );
        let o = run_shell("zsh", &["-f", "-c", &script]);
        let out = text(&o);
        assert!(o.status.success(), "zsh: {script}: {out}");
        assert!(out.contains(&format!("comp=_{program}")), "{out}");
        assert!(out.contains(&format!("_{program}: function")), "{out}");
    }
}

#[test]
fn fish_completions_load_and_complete() {
    if skipped("fish_completions_load_and_complete", "fish", "fish") {
        return;
    }
    let dir = write_generated();
    for program in docgen::PROGRAMS {
        let file = dir
            .path()
            .join(docgen::completion_file(program, Shell::Fish));
        let f = file.to_str().unwrap();
        let o = run_shell("fish", &["--no-config", "-n", f]);
        assert!(o.status.success(), "fish -n {f}: {}", text(&o));
        let complete = |line: &str| -> BTreeSet<String> {
            let o = run_shell(
                "fish",
                &[
                    "--no-config",
                    "-c",
                    &format!("source {f}; complete -C '{line}'"),
                ],
            );
            assert!(
                o.status.success(),
                "fish complete -C {line:?}: {}",
                text(&o)
            );
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split('\t').next())
                .map(str::to_string)
                .collect()
        };
        completes_options_and_subcommands(program, &complete);
        if program != "ksmctl" {
            let got = complete("ksmtuned --check");
            assert!(got.contains("--check-config"), "ksmtuned --check: {got:?}");
        }
    }
}
