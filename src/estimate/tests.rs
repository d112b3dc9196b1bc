//! Unit tests of the estimate's steps.
use super::*;

#[test]
fn kernel_threads() {
    let kthread = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2";
    assert!(is_kernel_thread(kthread));
    let user = "100 (bash (x)) S 1 100 100 34816 100 4194304 0 0";
    assert!(!is_kernel_thread(user));
}

#[test]
fn without_ksm_the_defaults() {
    let p = params(None, &Thp::default(), 4096, 0);
    assert_eq!(
        (p.max_page_sharing, p.use_zero_pages, p.sample),
        (256, false, 1)
    );
    let st = KsmState {
        max_page_sharing: Some(10),
        use_zero_pages: Some(1),
        ..KsmState::default()
    };
    let p = params(Some(&st), &Thp::default(), 4096, 16);
    assert_eq!(
        (p.max_page_sharing, p.use_zero_pages, p.sample),
        (10, true, 16)
    );
}

#[test]
fn cost_figures() {
    assert_eq!(cost_per_page(Some(1000), Some(5)).1, "default");
    let (ns, src) = cost_per_page(Some(200_000), Some(100_000_000));
    assert_eq!((ns, src), (500.0, "measured"));
    let c = cost(1_000_000, 500.0, "measured", 50);
    assert!((c.cpu_seconds - 1.0).abs() < 1e-9);
    assert!((c.seconds_at_max_cpu - 2.0).abs() < 1e-9);
}

#[test]
fn sample_zero_keeps_everything_on_a_small_host() {
    assert_eq!(auto_sample(0), 1);
    assert_eq!(auto_sample(AUTO_FULL_BELOW), 1);
    assert_eq!(auto_sample(AUTO_FULL_BELOW + 4096), AUTO_SAMPLE);
}
