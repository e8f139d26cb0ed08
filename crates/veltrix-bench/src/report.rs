//! docs/BENCHMARKS.md and target/bench/results.json.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::load::Figure;

/// One comparison: our figure against a baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub workload: String,
    pub ours: Figure,
    pub baseline_name: String,
    pub baseline: Option<Figure>,
    /// ours / baseline throughput (or baseline / ours p99 for latency rows).
    pub ratio: Option<f64>,
    pub goal: String,
    pub note: String,
}

impl Row {
    pub fn throughput(
        workload: &str,
        ours: Figure,
        baseline_name: &str,
        baseline: Figure,
        goal: &str,
        note: &str,
    ) -> Self {
        let ratio = ours.throughput / baseline.throughput.max(1e-9);
        Self::compared(workload, ours, baseline_name, baseline, ratio, goal, note)
    }

    /// For latency workloads: the ratio is baseline p99 / our p99 (above 1: we are faster).
    pub fn latency(
        workload: &str,
        ours: Figure,
        baseline_name: &str,
        baseline: Figure,
        goal: &str,
        note: &str,
    ) -> Self {
        let ratio = baseline.p99_us as f64 / (ours.p99_us.max(1)) as f64;
        Self::compared(workload, ours, baseline_name, baseline, ratio, goal, note)
    }

    fn compared(
        workload: &str,
        ours: Figure,
        baseline_name: &str,
        baseline: Figure,
        ratio: f64,
        goal: &str,
        note: &str,
    ) -> Self {
        Self {
            workload: workload.into(),
            ours,
            baseline_name: baseline_name.into(),
            baseline: Some(baseline),
            ratio: Some(ratio),
            goal: goal.into(),
            note: note.into(),
        }
    }

    pub fn alone(workload: &str, ours: Figure, goal: &str, note: &str) -> Self {
        Self {
            workload: workload.into(),
            ours,
            baseline_name: "-".into(),
            baseline: None,
            ratio: None,
            goal: goal.into(),
            note: note.into(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub date: String,
    pub quick: bool,
    pub machine: String,
    pub versions: Vec<(String, String)>,
    pub rows: Vec<Row>,
    pub footprint: Vec<(String, u64)>,
}

fn lat(f: &Figure) -> String {
    if f.p50_us == 0 && f.p99_us == 0 {
        return "-".into();
    }
    format!("{:.2} / {:.2} / {:.2}", f.p50_us as f64 / 1000.0, f.p99_us as f64 / 1000.0, f.p999_us as f64 / 1000.0)
}

impl Report {
    pub fn markdown(&self, preamble: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Benchmarks\n");
        let _ = writeln!(s, "{preamble}\n");
        let _ = writeln!(s, "## Latest run\n");
        let _ = writeln!(
            s,
            "- Date: {}{}",
            self.date,
            if self.quick { " (quick mode: a few seconds per workload)" } else { "" }
        );
        let _ = writeln!(s, "- Machine: {}", self.machine);
        for (name, v) in &self.versions {
            let _ = writeln!(s, "- {name}: {v}");
        }
        let _ = writeln!(
            s,
            "\nThroughput in operations per second (deliveries per second for watch workloads); latencies p50 / p99 / p999 in milliseconds; ratio = ours / baseline throughput, or baseline p99 / our p99 for latency workloads (above 1 means we are faster). \"gen\" is the CPU the load generator itself used, in cores.\n"
        );
        let _ = writeln!(
            s,
            "| workload | ours | ours p50/p99/p999 ms | baseline | baseline figure | baseline p50/p99/p999 ms | ratio | goal | gen (ours/base) | note |"
        );
        let _ = writeln!(s, "| --- | ---: | --- | --- | ---: | --- | ---: | --- | --- | --- |");
        for r in &self.rows {
            let (bf, bl, bg) = match &r.baseline {
                Some(b) => (format!("{:.0}", b.throughput), lat(b), format!("{:.2}", b.generator_cores)),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let ratio = r.ratio.map_or("-".into(), |x| format!("{x:.2}"));
            let _ = writeln!(
                s,
                "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {:.2}/{} | {} |",
                r.workload,
                r.ours.throughput,
                lat(&r.ours),
                r.baseline_name,
                bf,
                bl,
                ratio,
                r.goal,
                r.ours.generator_cores,
                bg,
                r.note
            );
        }
        let _ = writeln!(s, "\n### Footprint (resident memory)\n");
        let _ = writeln!(s, "| process and state | RSS |");
        let _ = writeln!(s, "| --- | ---: |");
        for (what, kib) in &self.footprint {
            let _ = writeln!(s, "| {what} | {:.1} MiB |", *kib as f64 / 1024.0);
        }
        s
    }
}
