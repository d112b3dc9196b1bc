//! `ksmctl top`: a full-screen live view of KSM (ratatui).
//!
//! [`View`] keeps the history of samples and the user's choices; [`draw`]
//! is a function of the view alone, so the tests render fixture samples
//! into ratatui's `TestBackend`. [`run`] is the terminal loop around them.

use std::collections::VecDeque;
use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph, Row, Table};
use ratatui::Frame;

use crate::human;
use crate::kernel::ksm::Ksm;
use crate::report::Report;
use crate::root::Root;
use crate::sample::processes::{self, ProcessKsm, SortKey};
use crate::sample::{Parts, Processes, Sample, Sampler};

/// Refresh intervals `+` and `-` step through.
pub const INTERVALS: [Duration; 6] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
];

/// Points kept for the graphs.
const HISTORY: usize = 300;

/// The live view's state: the reports seen and the user's choices.
#[derive(Debug, Clone)]
pub struct View {
    pub sort: SortKey,
    pub interval: Duration,
    /// (seconds since start, saved bytes)
    saved: VecDeque<(f64, f64)>,
    /// (seconds since start, ksmd CPU percent of one CPU)
    cpu: VecDeque<(f64, f64)>,
    /// The last sample (for the next report's rates) and its report.
    last: Option<(Sample, Report)>,
}

impl View {
    /// An empty view refreshing every `interval`.
    pub fn new(interval: Duration) -> View {
        View {
            sort: SortKey::Merged,
            interval,
            saved: VecDeque::new(),
            cpu: VecDeque::new(),
            last: None,
        }
    }

    /// Add a sample taken `at` seconds after the start (the view's clock:
    /// the rates are per second of it).
    pub fn push(&mut self, at: f64, mut sample: Sample) {
        sample.elapsed = Duration::from_secs_f64(at.max(0.0));
        let report = Report::build(&sample, self.last.as_ref().map(|(s, _)| s), Vec::new());
        if report.ksm.is_some() {
            self.saved.push_back((at, report.saved_bytes as f64));
        }
        if let Some(c) = report.ksmd_cpu_ratio {
            self.cpu.push_back((at, c * 100.0));
        }
        while self.saved.len() > HISTORY {
            self.saved.pop_front();
        }
        while self.cpu.len() > HISTORY {
            self.cpu.pop_front();
        }
        self.last = Some((sample, report));
    }

    /// The last report.
    pub fn report(&self) -> Option<&Report> {
        self.last.as_ref().map(|(_, r)| r)
    }

    /// Refresh more often (`+`).
    pub fn faster(&mut self) {
        if let Some(i) = INTERVALS.iter().rposition(|&d| d < self.interval) {
            self.interval = INTERVALS[i];
        }
    }

    /// Refresh less often (`-`).
    pub fn slower(&mut self) {
        if let Some(d) = INTERVALS.iter().find(|&&d| d > self.interval) {
            self.interval = *d;
        }
    }

    /// ksmd's CPU use over the last interval, percent of one CPU.
    pub fn cpu_percent(&self) -> Option<f64> {
        self.cpu.back().map(|&(_, p)| p)
    }

    /// The processes of the last report in the chosen order.
    pub fn processes(&self) -> Vec<ProcessKsm> {
        let mut p = self
            .report()
            .map(|r| r.processes.clone())
            .unwrap_or_default();
        processes::sort(&mut p, self.sort);
        p
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

fn header_lines(view: &View) -> Vec<Line<'static>> {
    let Some(r) = view.report() else {
        return vec![Line::from("reading KSM...")];
    };
    let Some(k) = &r.ksm else {
        return vec![Line::from(
            "KSM not supported: no /sys/kernel/mm/ksm (kernel built without CONFIG_KSM)",
        )];
    };
    let ratio = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    let profit = k
        .general_profit
        .map(|p| human::bytes(p.into()))
        .unwrap_or_else(|| "-".into());
    let cpu = view
        .cpu_percent()
        .map(|c| format!("{c:.1}%"))
        .unwrap_or_else(|| "-".into());
    let line1 = format!(
        "KSM {}   saved {}   profit {profit}   ksmd CPU {cpu}",
        r.run.short(),
        human::ubytes(r.saved_bytes),
    );
    let scanner = match (k.pages_to_scan, k.sleep_millisecs) {
        (Some(p), Some(ms)) => format!("{} pages every {ms} ms", human::count(p)),
        _ => "-".into(),
    };
    let rate = r
        .scan_rate_pages_per_s
        .map(|r| format!("{} pages/s", human::count(r.round() as u64)))
        .unwrap_or_else(|| "-".into());
    // The advisor's target and CPU cap while it chooses pages_to_scan
    // (all its settings: ksmctl status, ksmctl doctor).
    let advisor = k
        .advisor_mode
        .map(|m| {
            let n = |v: Option<u64>| v.map_or("-".to_string(), human::count);
            if k.advisor_active() {
                format!(
                    "   advisor {m} ({} s, {}% cpu)",
                    n(k.advisor_target_scan_time),
                    n(k.advisor_max_cpu)
                )
            } else {
                format!("   advisor {m}")
            }
        })
        .unwrap_or_default();
    let line2 = format!("scanner {scanner}   now {rate}{advisor}");
    let n = |v: Option<u64>| v.map(human::count).unwrap_or_else(|| "-".into());
    let zero = k
        .ksm_zero_pages
        .map(|z| format!("   zero pages {z}"))
        .unwrap_or_default();
    let line3 = format!(
        "sharing ratio {}   unshared ratio {}   full scans {}{zero}",
        ratio(r.sharing_ratio),
        ratio(r.unshared_ratio),
        n(k.full_scans),
    );
    // ksmtuned's last cross-domain audit, in a few words.
    let domains = r
        .recent_audit(std::time::SystemTime::now())
        .map(|a| {
            let held = if a.refusal.is_some() {
                ", KSM held (refuse)"
            } else {
                ""
            };
            match a.audit.pairs.len() {
                0 => format!("   domains: none share{held}"),
                n => format!(
                    "   domains: {n} pair{} share {}{held}",
                    if n == 1 { "" } else { "s" },
                    human::ubytes(a.audit.cross_domain_bytes)
                ),
            }
        })
        .unwrap_or_default();
    let line4 = format!(
        "shared {}  sharing {}  unshared {}  volatile {}{domains}",
        n(k.pages_shared),
        n(k.pages_sharing),
        n(k.pages_unshared),
        n(k.pages_volatile),
    );
    vec![
        Line::styled(line1, Style::new().add_modifier(Modifier::BOLD)),
        Line::from(line2),
        Line::from(line3),
        Line::from(line4),
    ]
}

fn graph<'a>(
    title: String,
    points: &'a [(f64, f64)],
    now: f64,
    label: fn(f64) -> String,
    color: Color,
) -> Chart<'a> {
    let start = points.first().map(|p| p.0).unwrap_or(now).min(now - 1.0);
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    Chart::new(vec![Dataset::default()
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(Style::new().fg(color))
        .data(points)])
    .block(Block::bordered().title(title))
    .x_axis(
        Axis::default()
            .bounds([start, now])
            .labels([format!("-{:.0}s", now - start), "now".to_string()]),
    )
    .y_axis(
        Axis::default()
            .bounds([0.0, top])
            .labels(["0".to_string(), label(top)]),
    )
}

fn process_table(view: &View) -> Table<'static> {
    let procs = view.processes();
    let mark = |pid| {
        view.report()
            .map(|r| r.domain_mark(pid))
            .filter(|m| !m.is_empty())
            .map(|m| format!(" [{m}]"))
            .unwrap_or_default()
    };
    let page = view.report().map_or(4096, |r| r.page_size);
    let total = view.report().map_or(0, |r| r.totals.merged_bytes);
    let rows: Vec<Row> = procs
        .iter()
        .map(|p| {
            Row::new(vec![
                format!("{:>7}", p.pid),
                p.comm.clone(),
                match (p.guest_label(), &p.not_mergeable) {
                    (g, Some(why)) => format!("{} [no KSM: {why}]", g.as_deref().unwrap_or("-")),
                    (Some(g), None) => g,
                    (None, None) => "-".into(),
                } + &mark(p.pid),
                format!("{:>9}", human::count(p.merging_pages)),
                format!(
                    "{:>9}",
                    human::ubytes(p.merged_pages().saturating_mul(page))
                ),
                format!(
                    "{:>9}",
                    p.profit_bytes
                        .map(|v| human::bytes(v.into()))
                        .unwrap_or_else(|| "-".into())
                ),
                format!("{:>8}", human::count(p.rmap_items)),
            ])
        })
        .collect();
    let header = Row::new(vec![
        "    PID",
        "COMM",
        "GUEST",
        "  MERGING",
        "   MERGED",
        "   PROFIT",
        "    RMAP",
    ])
    .style(Style::new().add_modifier(Modifier::REVERSED));
    let title = format!(
        " {} process{}, {} merged, sorted by {} ",
        procs.len(),
        if procs.len() == 1 { "" } else { "es" },
        human::ubytes(total),
        view.sort.name()
    );
    Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(15),
            Constraint::Min(6),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(8),
        ],
    )
    .header(header)
    .block(Block::bordered().title(title))
}

/// Draw the whole screen (fits 80x24).
pub fn draw(frame: &mut Frame, view: &View) {
    let [head, graphs, table, foot] = Layout::vertical([
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(
        Paragraph::new(header_lines(view)).block(Block::bordered().title(" ksmctl top ")),
        head,
    );
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(graphs);
    let now = view
        .last
        .as_ref()
        .map_or(0.0, |(s, _)| s.elapsed.as_secs_f64());
    let saved: Vec<(f64, f64)> = view.saved.iter().copied().collect();
    let cpu: Vec<(f64, f64)> = view.cpu.iter().copied().collect();
    let saved_now = saved.last().map(|p| human::ubytes(p.1 as u64));
    frame.render_widget(
        graph(
            format!(" Saved {} ", saved_now.unwrap_or_else(|| "-".into())),
            &saved,
            now,
            |v| human::ubytes(v as u64),
            Color::Green,
        ),
        left,
    );
    let cpu_now = view
        .cpu_percent()
        .map(|c| format!("{c:.1}%"))
        .unwrap_or_else(|| "-".into());
    frame.render_widget(
        graph(
            format!(" ksmd CPU {cpu_now} "),
            &cpu,
            now,
            |v| format!("{v:.1}%"),
            Color::Yellow,
        ),
        right,
    );
    frame.render_widget(process_table(view), table);
    frame.render_widget(
        Paragraph::new(format!(
            " q quit   s sort: {}   +/- refresh: {}",
            view.sort.name(),
            secs(view.interval)
        ))
        .style(Style::new().add_modifier(Modifier::REVERSED)),
        foot,
    );
}

fn area_ok(a: Rect) -> bool {
    a.width >= 60 && a.height >= 20
}

/// `--interval`: seconds from 0.1 to 3600 (anything else is a usage
/// error, exit 2).
pub fn parse_interval(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.1..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: expected seconds from 0.1 to 3600")),
    }
}

/// `ksmctl top [--interval SECONDS]`.
pub fn command(root: &Root, interval: f64) -> anyhow::Result<i32> {
    run(root, Duration::from_secs_f64(interval))
}

/// `ksmctl top`: run the live view until `q`. Exits 1 with a message when
/// standard output is not a terminal.
pub fn run(root: &Root, interval: Duration) -> anyhow::Result<i32> {
    if !io::stdout().is_terminal() {
        eprintln!(
            "ksmctl top: standard output is not a terminal; the live view needs one \
             (for scripts use `ksmctl status`, `ksmctl ps` or `ksmctl metrics`)"
        );
        return Ok(1);
    }
    Ksm::new(root).require()?;
    let mut terminal = ratatui::try_init()?;
    let res = event_loop(&mut terminal, root, interval);
    ratatui::restore();
    res
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    root: &Root,
    interval: Duration,
) -> anyhow::Result<i32> {
    let start = Instant::now();
    let mut sampler = Sampler::new(
        root,
        Parts {
            ksmd: true,
            processes: Processes::Merged,
            last_audit: true,
            ..Parts::default()
        },
    );
    let mut view = View::new(interval);
    let mut last_sample: Option<Instant> = None;
    loop {
        let due = last_sample.map(|t| t + view.interval);
        if due.is_none_or(|d| Instant::now() >= d) {
            let sample = sampler.take()?;
            view.push(start.elapsed().as_secs_f64(), sample);
            last_sample = Some(Instant::now());
        }
        terminal.draw(|f| {
            if area_ok(f.area()) {
                draw(f, &view);
            } else {
                f.render_widget(
                    Paragraph::new("ksmctl top needs a terminal of at least 60x20; q quits"),
                    f.area(),
                );
            }
        })?;
        let next = last_sample
            .map(|t| t + view.interval)
            .unwrap_or_else(Instant::now);
        let wait = next.saturating_duration_since(Instant::now());
        if !event::poll(wait)? {
            continue;
        }
        if let Event::Key(k) = event::read()? {
            if k.kind != KeyEventKind::Press {
                continue;
            }
            match k.code {
                KeyCode::Char('q') | KeyCode::Esc => return Ok(0),
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => return Ok(0),
                KeyCode::Char('s') => view.sort = view.sort.next(),
                KeyCode::Char('+') | KeyCode::Char('=') => view.faster(),
                KeyCode::Char('-') => view.slower(),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::fixture;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn screen(view: &View, w: u16, h: u16) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, view)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..h)
            .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect())
            .collect()
    }

    fn two_samples() -> View {
        let mut v = View::new(Duration::from_secs(2));
        let first = fixture();
        let mut second = fixture();
        second.ksmd_cpu = Some(crate::kernel::ksmd::CpuTime {
            ns: 12_840_000_000,
            resolution_ns: 1,
        });
        if let Some(k) = second.ksm.as_mut() {
            k.pages_scanned = Some(123456789 + 20000);
        }
        v.push(10.0, first);
        v.push(12.0, second);
        v
    }

    #[test]
    fn header_graphs_and_table_fit_80x24() {
        let v = two_samples();
        let s = screen(&v, 80, 24);
        let text = s.join("\n");
        assert!(s[1].contains("KSM running"), "{text}");
        // (1990 sharing + 5 zero) * 4096 = 7.79 MiB; profit -64 KiB.
        assert!(s[1].contains("saved 7.79 MiB"), "{text}");
        assert!(s[1].contains("profit -64.0 KiB"), "{text}");
        assert!(s[1].contains("ksmd CPU 25.0%"), "{text}");
        assert!(s[2].contains("scanner 100 pages every 20 ms"), "{text}");
        assert!(s[2].contains("now 10,000 pages/s") && s[2].contains("advisor none"));
        // With the advisor on, its target and CPU cap.
        let mut a = fixture();
        if let Some(k) = a.ksm.as_mut() {
            k.advisor_mode = Some(crate::kernel::ksm::AdvisorMode::ScanTime);
            k.advisor_target_scan_time = Some(200);
            k.advisor_max_cpu = Some(70);
        }
        let mut av = View::new(Duration::from_secs(2));
        av.push(10.0, a);
        let s2 = screen(&av, 100, 24);
        assert!(
            s2[2].contains("advisor scan-time (200 s, 70% cpu)"),
            "{}",
            s2.join("\n")
        );
        assert!(s[3].contains("sharing ratio 199.00") && s[3].contains("unshared ratio 0.15"));
        assert!(
            s[3].contains("full scans 17") && s[3].contains("zero pages 5"),
            "{text}"
        );
        assert!(s[4].contains("shared 10  sharing 1,990  unshared 300  volatile 7"));
        assert!(text.contains("Saved 7.79 MiB") && text.contains("ksmd CPU 25.0%"));
        // Table rows (the fixture's four processes), by saving.
        let rows: Vec<&String> = s
            .iter()
            .filter(|l| l.contains("   4242 ") || l.contains("    200 ") || l.contains("    100 "))
            .collect();
        assert_eq!(rows.len(), 3, "{text}");
        assert!(rows[0].contains("qemu-system-x86") && rows[0].contains("rhel9"));
        assert!(
            rows[0].contains("1,500") && rows[0].contains("5.86 MiB"),
            "{}",
            rows[0]
        );
        assert!(rows[1].contains("    200 ") && rows[2].contains("    100 "));
        assert!(
            s[23].contains("q quit")
                && s[23].contains("sort: merged")
                && s[23].contains("refresh: 2 s")
        );
        // Nothing is cut off at the right edge of the header.
        for line in &s[1..5] {
            assert!(line.ends_with(" │"), "cut off: {line}");
        }
    }

    #[test]
    fn sort_and_refresh_keys_change_the_view() {
        let mut v = two_samples();
        v.sort = v.sort.next(); // profit
        let s = screen(&v, 80, 24);
        let pos = |pid: &str| s.iter().position(|l| l.contains(pid)).unwrap();
        assert!(pos("   4242 ") < pos("    200 "));
        assert!(pos("    200 ") < pos("    100 ") && pos("    100 ") < pos("    300 "));
        assert!(s[23].contains("sort: profit"));
        v.faster();
        assert_eq!(v.interval, Duration::from_secs(1));
        v.faster();
        v.faster();
        assert_eq!(v.interval, Duration::from_millis(500));
        v.slower();
        v.slower();
        v.slower();
        assert_eq!(v.interval, Duration::from_secs(5));
        let s = screen(&v, 80, 24);
        assert!(s[23].contains("refresh: 5 s"));
    }

    #[test]
    fn first_frame_and_no_ksm() {
        let v = View::new(Duration::from_secs(2));
        let s = screen(&v, 80, 24).join("\n");
        assert!(s.contains("reading KSM"));
        let mut v = View::new(Duration::from_secs(2));
        let mut sample = fixture();
        sample.ksm = None;
        v.push(0.0, sample);
        let s = screen(&v, 80, 24).join("\n");
        assert!(s.contains("KSM not supported"), "{s}");
    }
}
