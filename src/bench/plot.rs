//! The SVG plot: saved MiB over time (one line per tuner) above ksmd's
//! CPU share.

use std::path::Path;

use anyhow::{anyhow, Context};
use plotters::prelude::*;

use super::report::{Report, RunStatus};
use super::sampler::Point;

/// ksmd CPU % of one core, over a sliding window of about one second
/// (smooth enough to read; on kernels without schedstat the CPU time comes
/// in clock ticks, and a 100 ms difference would be too coarse to plot).
pub fn cpu_percent_series(samples: &[Point], window_ms: u64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(samples.len());
    let mut j = 0;
    for (i, s) in samples.iter().enumerate() {
        while j < i && s.t_ms - samples[j].t_ms > window_ms {
            j += 1;
        }
        let a = &samples[j];
        if s.t_ms > a.t_ms {
            let pct = (s.ksmd_cpu_ms - a.ksmd_cpu_ms) as f64 / (s.t_ms - a.t_ms) as f64 * 100.0;
            out.push((s.t_ms as f64 / 1000.0, pct));
        }
    }
    out
}

/// Line colours, told apart easily (Tableau 10).
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

type Panel<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One of the plot's two panels: seconds since the tuner started from 0 to
/// `x_max`, `y_desc` from 0 to `y_max`, with its grid drawn.
fn panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: Option<String>,
    (x_max, y_max): (f64, f64),
    y_desc: &str,
) -> Result<Panel<'a, 'b>, DrawingAreaErrorKind<std::io::Error>> {
    let mut builder = ChartBuilder::on(area);
    if let Some(c) = caption {
        builder.caption(c, ("sans-serif", 20));
    }
    let mut chart = builder
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the tuner started")
        .y_desc(y_desc)
        .draw()?;
    Ok(chart)
}

/// Draw the plot of a report into an SVG file.
pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    let ps = report.host.page_size_bytes as f64;
    let runs: Vec<_> = report
        .tuners
        .iter()
        .filter(|r| r.status == RunStatus::Ran && !r.samples.is_empty())
        .collect();
    let t_max = runs
        .iter()
        .filter_map(|r| r.samples.last())
        .map(|s| s.t_ms as f64 / 1000.0)
        .fold(1.0, f64::max);
    let att = report.workload.attainable;
    let att_mib = att.without_zero_pages.max(att.with_zero_pages) as f64 * ps / 1048576.0;
    let saved_max = runs
        .iter()
        .flat_map(|r| r.samples.iter())
        .map(|s| s.saved_pages as f64 * ps / 1048576.0)
        .fold(att_mib, f64::max)
        * 1.05;
    let cpu: Vec<Vec<(f64, f64)>> = runs
        .iter()
        .map(|r| cpu_percent_series(&r.samples, 1000))
        .collect();
    let cpu_max = cpu
        .iter()
        .flatten()
        .map(|p| p.1)
        .fold(10.0, f64::max)
        .min(400.0)
        * 1.05;

    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (1000, 750)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(470);

    let title = format!(
        "ksm-bench: {} workers x {} MiB, attainable {:.0} MiB",
        report.workload.spec.workers,
        (report.workload.spec.pages_per_worker as f64 * ps / 1048576.0).round(),
        att_mib
    );
    let mut chart =
        panel(&top, Some(title), (t_max, saved_max), "saved MiB").map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, att_mib), (t_max, att_mib)],
            BLACK.mix(0.4).stroke_width(1),
        ))
        .map_err(|e| err(&e))?
        .label("attainable")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.4)));
    for (i, r) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                r.samples.iter().map(|s| {
                    (
                        s.t_ms as f64 / 1000.0,
                        s.saved_pages as f64 * ps / 1048576.0,
                    )
                }),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(r.spec.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    let mut chart =
        panel(&bottom, None, (t_max, cpu_max), "ksmd CPU % (1 s window)").map_err(|e| err(&e))?;
    for (i, series) in cpu.into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(series, color.stroke_width(2)))
            .map_err(|e| err(&e))?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_window() {
        let samples: Vec<Point> = (0..=20)
            .map(|i| Point {
                t_ms: i * 100,
                // 50 ms of ksmd per 100 ms = 50%.
                ksmd_cpu_ms: i * 50,
                ..Default::default()
            })
            .collect();
        let series = cpu_percent_series(&samples, 1000);
        assert_eq!(series.len(), 20);
        assert!(series.iter().all(|(_, p)| (p - 50.0).abs() < 1e-9));
        assert_eq!(series.last().unwrap().0, 2.0);
    }
}
