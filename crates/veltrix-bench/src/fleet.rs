//! The fleet ledger under load: many Sync clients on one query process, each
//! acknowledging every change it receives, while changes are committed at a
//! steady rate. Measured: how long a report waits before the ledger holds it
//! (the service's `veltrix_ledger_report_lag_seconds`), what a report costs
//! the query process and Redis in CPU, commit → Sync delivery, and how long
//! after the last change the ledger says every client runs it.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use tonic::transport::Channel;
use veltrix_proto::v1::{
    AgentInfo, GetRevisionStatusRequest, PutRequest, SyncAck, SyncRequest, SyncSubscribe, sync_request::Request,
    sync_response::Event,
};

use crate::{
    clients::{self, Command, Query},
    load::{CpuMeter, Figure, histogram},
    procs::Proc,
    watches,
};

/// What one run measured.
pub struct Outcome {
    /// Commit → delivery on the Sync streams.
    pub delivery: Figure,
    /// Report → ledger, from the service's histogram (bucket bounds, so
    /// p50/p99 are interpolated within a bucket as Prometheus does).
    pub lag: Figure,
    pub reports: f64,
    pub ledger_writes: f64,
    /// CPU microseconds per report: the query process, and Redis.
    pub query_us_per_report: f64,
    pub redis_us_per_report: f64,
    /// From the last commit until GetRevisionStatus counts every client
    /// as having applied it.
    pub converged: Duration,
    pub missing: usize,
}

/// The offered load: `clients` Sync streams, changes at `rate`/s for `d`.
pub struct Load {
    pub clients: usize,
    pub rate: u32,
    pub d: Duration,
}

/// The Sync streams over `channels` acknowledge every change; `query` (with
/// its `/metrics` on `metrics_port`) and `redis` are measured.
pub async fn run(
    cmd: Command,
    (query, redis, metrics_port): (&Proc, &Proc, u16),
    channels: &[Channel],
    Load { clients, rate, d }: Load,
) -> anyhow::Result<Outcome> {
    let ns = format!("fleet/c{clients}");
    let first = PutRequest { namespace: ns.clone(), key: "k0".into(), value: vec![b'v'; 64], ..Default::default() };
    let first = cmd.clone().put(first).await?.into_inner().revision;
    let (stop, _) = tokio::sync::watch::channel(None);
    let tasks = open(channels, &ns, clients, &stop).await?;
    let mut q = Query::new(channels[0].clone());
    wait_applied(&mut q, &ns, first, clients, Duration::from_secs(120)).await?;
    let (query_cpu, redis_cpu) = (query.cpu_seconds(), redis.cpu_seconds());
    let before = clients::scrape(metrics_port).await?;
    let meter = CpuMeter::start();
    let commits = watches::paced_puts(&cmd, &ns, rate, d).await?;
    let last = commits.keys().max().copied().unwrap_or(0);
    let last_commit = commits.values().max().copied().unwrap_or_else(Instant::now);
    wait_applied(&mut q, &ns, last, clients, Duration::from_secs(120)).await?;
    let converged = last_commit.elapsed();
    let (delivery, missing) = watches::finish(commits, stop, tasks, meter, clients).await?;
    // The writer flushes what came in last on its next pass.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = clients::scrape(metrics_port).await?;
    let counter = |name: &str, label: &str| sum(&after, name, label) - sum(&before, name, label);
    let reports = counter("veltrix_sync_reports_total", "kind=\"ack\"");
    let per = |cpu: f64| cpu * 1e6 / reports.max(1.0);
    Ok(Outcome {
        delivery,
        lag: lag_figure(&before, &after, d.as_secs_f64()),
        reports,
        ledger_writes: counter("veltrix_ledger_writes_total", ""),
        query_us_per_report: per(query.cpu_seconds() - query_cpu),
        redis_us_per_report: per(redis.cpu_seconds() - redis_cpu),
        converged,
        missing,
    })
}

/// Opens the Sync streams; each acknowledges every change and records when
/// it arrived. Answers once every stream is open.
async fn open(
    channels: &[Channel],
    ns: &str,
    clients: usize,
    stop: &tokio::sync::watch::Sender<Option<u64>>,
) -> anyhow::Result<watches::Watchers> {
    let mut tasks = Vec::with_capacity(clients);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(clients);
    for i in 0..clients {
        let mut q = Query::new(channels[i % channels.len()].clone());
        let (ready, mut stop) = (ready_tx.clone(), stop.subscribe());
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let subscribe = SyncSubscribe {
            client_id: format!("bench-{i:05}"),
            namespace: ns.to_owned(),
            include_snapshot: true,
            agent: Some(AgentInfo { name: "veltrix-bench".into(), version: env!("CARGO_PKG_VERSION").into() }),
            ..Default::default()
        };
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            if tx.send(SyncRequest { request: Some(Request::Subscribe(subscribe)) }).await.is_err() {
                return seen;
            }
            let Ok(stream) = q.sync(watches::stream_from(rx)).await else { return seen };
            let mut stream = stream.into_inner();
            let mut last_seen = 0;
            loop {
                if watches::done(&stop, last_seen) {
                    return seen;
                }
                tokio::select! {
                    _ = stop.changed() => {}
                    msg = stream.message() => match msg.map(|m| m.and_then(|m| m.event)) {
                        Ok(Some(Event::Change(c))) => {
                            last_seen = c.revision;
                            seen.push((c.revision, Instant::now()));
                            let _ = tx.send(ack(c.revision)).await;
                        }
                        Ok(Some(Event::Snapshot(s))) => {
                            let _ = tx.send(ack(s.revision)).await;
                            let _ = ready.send(()).await;
                        }
                        Ok(Some(Event::Progress(_))) => {}
                        Ok(None) | Err(_) => return seen,
                    },
                }
            }
        }));
    }
    drop(ready_tx);
    for _ in 0..clients {
        ready_rx.recv().await.ok_or_else(|| anyhow::anyhow!("a Sync stream failed to open"))?;
    }
    Ok(tasks)
}

fn ack(revision: u64) -> SyncRequest {
    SyncRequest { request: Some(Request::Ack(SyncAck { revision, digest: String::new() })) }
}

/// Waits until the ledger counts `clients` clients as having applied
/// `revision`.
async fn wait_applied(q: &mut Query, ns: &str, revision: u64, clients: usize, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let req = GetRevisionStatusRequest { namespace: ns.to_owned(), revision: Some(revision) };
        if let Ok(s) = q.get_revision_status(req).await
            && s.into_inner().applied as usize >= clients
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the ledger did not count {clients} clients on revision {revision}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sum of a metric's lines that contain `label` (empty: all).
fn sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(['{', ' '])))
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The cumulative bucket counts of the lag histogram: upper bound → count.
fn buckets(text: &str) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("veltrix_ledger_report_lag_seconds_bucket{"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((bound, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The lag's quantiles over what was recorded between the two scrapes.
fn lag_figure(before: &str, after: &str, seconds: f64) -> Figure {
    let earlier: HashMap<u64, f64> = buckets(before).into_iter().map(|(b, c)| (b.to_bits(), c)).collect();
    let delta: Vec<(f64, f64)> =
        buckets(after).into_iter().map(|(b, c)| (b, c - earlier.get(&b.to_bits()).copied().unwrap_or(0.0))).collect();
    let total = delta.last().map_or(0.0, |d| d.1);
    let quantile = |q: f64| -> u64 {
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(bound, count) in &delta {
            if count >= rank {
                let upper = if bound.is_finite() { bound } else { lower.0 };
                let share = if count > lower.1 { (rank - lower.1) / (count - lower.1) } else { 1.0 };
                return ((lower.0 + (upper - lower.0) * share) * 1e6) as u64;
            }
            lower = (bound, count);
        }
        (lower.0 * 1e6) as u64
    };
    let mut fig = Figure::from_histogram(&histogram(), seconds, 0.0);
    fig.ops = total as u64;
    fig.throughput = total / seconds.max(1e-9);
    (fig.p50_us, fig.p99_us, fig.p999_us) = (quantile(0.5), quantile(0.99), quantile(0.999));
    fig
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_the_bucket_of_this_run() {
        let before = "veltrix_ledger_report_lag_seconds_bucket{le=\"0.1\"} 10\n\
                      veltrix_ledger_report_lag_seconds_bucket{le=\"0.25\"} 10\n\
                      veltrix_ledger_report_lag_seconds_bucket{le=\"+Inf\"} 10\n";
        let after = "veltrix_ledger_report_lag_seconds_bucket{le=\"0.1\"} 60\n\
                     veltrix_ledger_report_lag_seconds_bucket{le=\"0.25\"} 110\n\
                     veltrix_ledger_report_lag_seconds_bucket{le=\"+Inf\"} 110\n";
        let fig = lag_figure(before, after, 10.0);
        assert_eq!(fig.ops, 100);
        // Half of this run's 100 are ≤ 0.1 s: the median is the bound.
        assert_eq!(fig.p50_us, 100_000);
        // The 99th is 49 of the 50 in (0.1, 0.25].
        assert_eq!(fig.p99_us, 247_000);
    }
}
