//! How cost grows, drawn: PNG line charts of a workload's figures against
//! the size it grows with (throughput and p99, side by side), written next
//! to the report. Text needs a font file: Debian's DejaVu Sans
//! (`fonts-dejavu-core`, which `just bench` installs).

use std::{path::Path, sync::OnceLock};

use anyhow::{Context, anyhow};
use plotters::prelude::*;

use crate::load::Figure;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const COLOURS: [RGBColor; 4] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), BLACK];

/// What a panel draws of a figure.
type Measure = fn(&Figure) -> f64;

/// One line: its label and (x, figure) points, x ascending.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, Figure)>,
}

fn font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT)
                .map_err(|e| format!("{FONT}: {e} (install Debian's fonts-dejavu-core; `just bench` does)"))?;
            // Registered once per process and kept for its life.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{FONT} is not a font plotters reads"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Throughput (left) and p99 latency (right) of each series against x on a
/// logarithmic axis.
pub fn growth(path: &Path, title: &str, x_desc: &str, series: &[Series]) -> anyhow::Result<()> {
    font()?;
    let xs = series.iter().flat_map(|s| s.points.iter().map(|(x, _)| *x));
    let (lo, hi) = xs.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
    anyhow::ensure!(lo > 0.0 && hi >= lo, "{title}: no points to draw");
    let x_range = (lo / 1.5)..(hi * 1.5);
    let max = |f: &dyn Fn(&Figure) -> f64| {
        series.iter().flat_map(|s| s.points.iter().map(|(_, p)| f(p))).fold(0.0f64, f64::max) * 1.15
    };
    let root = BitMapBackend::new(path, (1100, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(draw)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(draw)?;
    let (left, right) = root.split_horizontally(550);
    let panels: [(_, &str, f64, Measure); 2] = [
        (&left, "operations per second", max(&|p| p.throughput).max(1.0), |p| p.throughput),
        (&right, "p99 latency (ms)", max(&|p| p.p99_us as f64 / 1000.0).max(0.1), |p| p.p99_us as f64 / 1000.0),
    ];
    for (area, y_desc, y_max, value) in panels {
        let mut chart = ChartBuilder::on(area)
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x_range.clone().log_scale(), 0.0..y_max)
            .map_err(draw)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|x| si(*x))
            .y_label_formatter(&|y| si(*y))
            .draw()
            .map_err(draw)?;
        for (s, colour) in series.iter().zip(COLOURS.iter().cycle()) {
            let points: Vec<(f64, f64)> = s.points.iter().map(|(x, p)| (*x, value(p))).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .map_err(draw)?
                .label(s.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, colour.filled()))).map_err(draw)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(draw)?;
    }
    root.present().map_err(draw).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// 1500 → "1.5k", 1000000 → "1M", 0.5 → "0.5".
fn si(v: f64) -> String {
    let (value, unit) = match v.abs() {
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = format!("{value:.1}");
    format!("{}{unit}", text.strip_suffix(".0").unwrap_or(&text))
}

fn draw<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a plot: {e}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap

    use super::*;

    fn figure(throughput: f64, p99_us: u64) -> Figure {
        Figure { throughput, p99_us, ..Figure::default() }
    }

    #[test]
    fn axis_labels_are_short() {
        let labels: Vec<String> = [0.5, 3.0, 1500.0, 10_000.0, 1e6, 2.5e6].into_iter().map(si).collect();
        assert_eq!(labels, ["0.5", "3", "1.5k", "10k", "1M", "2.5M"]);
    }

    #[test]
    fn a_growth_plot_is_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.png");
        let series = [
            Series { label: "a".into(), points: vec![(1e3, figure(100.0, 900)), (1e6, figure(50.0, 2000))] },
            Series { label: "b".into(), points: vec![(1e3, figure(80.0, 1200)), (1e6, figure(70.0, 1500))] },
        ];
        growth(&path, "title", "keys", &series).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG file");
        assert!(growth(&path, "empty", "keys", &[]).is_err(), "nothing to draw is an error");
    }
}
