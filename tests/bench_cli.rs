//! `ksm-bench`'s command line: usage errors exit with status 2 before
//! anything touches KSM, and the hidden worker refuses a bench that is gone.

use std::process::Command;

fn bench(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ksm-bench"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn usage_errors_exit_2_with_the_reason() {
    for (args, want) in [
        (&["--dup", "0.95"][..], "cannot add up to more than 1"),
        (&["--tuners", "fastest"][..], "unknown tuner \"fastest\""),
        (
            &["--external", "classic=true"][..],
            "name of a built-in tuner",
        ),
        (&["--plot", "out.png"][..], "name the file *.svg"),
        (&["--zero=-1"][..], "expected a fraction"),
        (&["--time-limit", "0"][..], "positive number of seconds"),
        (&["--no-such-option"][..], "unexpected argument"),
    ] {
        let (code, err) = bench(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn help_lists_the_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_ksm-bench"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--quick",
        "--tuners",
        "--external",
        "--json",
        "--plot",
        "--force",
    ] {
        assert!(text.contains(opt), "{opt} missing from --help");
    }
    // The worker subcommand is internal.
    assert!(!text.contains("Commands:"), "{text}");
}

#[test]
fn worker_without_its_bench_exits() {
    let spec = r#"{"workers":1,"pages_per_worker":4,"dup":0.5,"zero":0.0,"volatile":0.0,"image_repeat":0.0,"seed":1}"#;
    let opts = r#"{"merge":"madvise","comm":"qemu-system-x86","churn_ms":1000,"thp":false}"#;
    // Pid 1 is never this test's pid: the worker sees its parent is not
    // the bench it was told about.
    let (code, err) = bench(&[
        "worker",
        "--index",
        "0",
        "--spec",
        spec,
        "--options",
        opts,
        "--parent",
        "1",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the benchmark (pid 1) is gone"), "{err}");
    let (code, err) = bench(&[
        "worker",
        "--index",
        "0",
        "--spec",
        "{",
        "--options",
        opts,
        "--parent",
        "1",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("bad --spec"), "{err}");
}
