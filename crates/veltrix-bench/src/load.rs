//! Closed-loop load generation with HDR histograms, and the figures reported.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// What one side of a comparison measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Figure {
    /// Operations (or deliveries) per second.
    pub throughput: f64,
    pub ops: u64,
    pub seconds: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    /// CPU the load generator (this process) used, in cores.
    pub generator_cores: f64,
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

impl Figure {
    pub fn from_histogram(h: &Histogram<u64>, seconds: f64, cpu: f64) -> Self {
        Self {
            throughput: h.len() as f64 / seconds.max(1e-9),
            ops: h.len(),
            seconds,
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            generator_cores: cpu,
        }
    }
}

/// CPU seconds this process has used (user + system).
pub fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat").map_or(0.0, |stat| stat_cpu_seconds(&stat))
}

/// User + system CPU seconds from a `/proc/PID/stat` line.
pub fn stat_cpu_seconds(stat: &str) -> f64 {
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// Measures the CPU share of the generator over a span.
pub struct CpuMeter {
    start_cpu: f64,
    start: Instant,
}

impl CpuMeter {
    pub fn start() -> Self {
        Self { start_cpu: cpu_seconds(), start: Instant::now() }
    }

    /// (wall seconds, cores used)
    pub fn stop(&self) -> (f64, f64) {
        let wall = self.start.elapsed().as_secs_f64();
        (wall, (cpu_seconds() - self.start_cpu) / wall.max(1e-9))
    }
}

/// Runs `concurrency` workers for `duration`, each calling `op` in a loop and
/// recording its latency. Any error fails the run.
pub async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, op: F) -> anyhow::Result<Figure>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let meter = CpuMeter::start();
    let deadline = Instant::now() + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let op = op.clone();
        workers.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                op(w, i).await?;
                h.record(t.elapsed().as_micros().max(1) as u64)?;
                i += 1;
            }
            anyhow::Ok(h)
        }));
    }
    let mut total = histogram();
    for w in workers {
        total.add(w.await??)?;
    }
    let (wall, cores) = meter.stop();
    Ok(Figure::from_histogram(&total, wall, cores))
}
