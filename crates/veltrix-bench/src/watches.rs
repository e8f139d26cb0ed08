//! Watch workloads: commit-to-delivery latency against raw NATS and etcd,
//! and fan-out to many streams.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use hdrhistogram::Histogram;
use tonic::transport::Channel;
use veltrix_proto::v1::{PutRequest, WatchRequest, watch_response::Event};

use crate::{
    clients::{Command, etcd},
    load::{CpuMeter, Figure, histogram},
};

/// Deliveries one watcher saw: (revision or sequence, when).
type Seen = Vec<(u64, Instant)>;
pub type Watchers = Vec<tokio::task::JoinHandle<Seen>>;

/// Tells the watchers the last id to wait for, gives them `grace` to get
/// it, then stops them and gathers what they saw.
async fn gather(
    stop: tokio::sync::watch::Sender<Option<u64>>,
    last: u64,
    grace: Duration,
    tasks: Watchers,
) -> anyhow::Result<Seen> {
    let _ = stop.send(Some(last));
    let deadline = tokio::time::Instant::now() + grace;
    while tasks.iter().any(|t| !t.is_finished()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(Some(0));
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    Ok(all)
}

/// Waits for the watchers to get the last commit, then answers the figure
/// (deliveries per second, commit → delivery latency) and the deliveries
/// missing.
pub async fn finish(
    commits: HashMap<u64, Instant>,
    stop: tokio::sync::watch::Sender<Option<u64>>,
    tasks: Watchers,
    meter: CpuMeter,
    watchers: usize,
) -> anyhow::Result<(Figure, usize)> {
    let last = commits.keys().max().copied().unwrap_or(0);
    let seen = gather(stop, last, Duration::from_secs(120), tasks).await?;
    let (wall, cores) = meter.stop();
    let mut fig = Figure::from_histogram(&latencies(&commits, &seen)?, wall, cores);
    fig.throughput = seen.len() as f64 / wall;
    Ok((fig, (commits.len() * watchers).saturating_sub(seen.len())))
}

/// Whether a watcher that has seen `last_seen` is done.
pub fn done(stop: &tokio::sync::watch::Receiver<Option<u64>>, last_seen: u64) -> bool {
    matches!(*stop.borrow(), Some(target) if target == 0 || last_seen >= target)
}

/// Latency from each commit to each delivery of it; deliveries that arrive
/// before the writer saw its commit count as 0.
fn latencies(commits: &HashMap<u64, Instant>, seen: &[(u64, Instant)]) -> anyhow::Result<Histogram<u64>> {
    let mut h = histogram();
    for (id, at) in seen {
        if let Some(c) = commits.get(id) {
            h.record(at.saturating_duration_since(*c).as_micros().max(1) as u64)?;
        }
    }
    Ok(h)
}

/// Writes at `rate`/s for `d` (open loop: a write starts on every tick
/// whether or not earlier ones have answered, so every system gets the same
/// offered load) and returns when each id committed.
pub async fn paced<F, Fut>(rate: u32, d: Duration, mut commit: F) -> anyhow::Result<HashMap<u64, Instant>>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let mut writes = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + d;
    let mut i = 0;
    while Instant::now() < end {
        tick.tick().await;
        let write = commit(i);
        writes.spawn(async move { write.await.map(|id| (id, Instant::now())) });
        i += 1;
    }
    // A write the system refuses under this load (etcd: "too many
    // requests") is a result, not a harness error: it is not delivered.
    let mut commits = HashMap::new();
    while let Some(done) = writes.join_next().await {
        if let Ok((id, at)) = done? {
            commits.insert(id, at);
        }
    }
    Ok(commits)
}

/// Opens `watchers` Watch streams on `namespace` over `channels`; each records
/// what it receives until `stop`. Answers once every stream is open.
pub async fn our_watchers(
    channels: &[Channel],
    namespace: &str,
    watchers: usize,
    stop: &tokio::sync::watch::Sender<Option<u64>>,
) -> anyhow::Result<Watchers> {
    let mut tasks = Vec::with_capacity(watchers);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(watchers);
    for i in 0..watchers {
        let mut q =
            veltrix_proto::v1::config_query_client::ConfigQueryClient::new(channels[i % channels.len()].clone());
        let (ns, ready, mut stop) = (namespace.to_owned(), ready_tx.clone(), stop.subscribe());
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::new();
            let Ok(stream) = q.watch(WatchRequest { namespace: ns, ..Default::default() }).await else { return local };
            let _ = ready.send(()).await;
            let mut stream = stream.into_inner();
            let mut last_seen = 0;
            loop {
                if done(&stop, last_seen) {
                    return local;
                }
                tokio::select! {
                    _ = stop.changed() => {}
                    msg = stream.message() => match msg {
                        Ok(Some(m)) => {
                            if let Some(Event::Change(c)) = m.event {
                                last_seen = c.revision;
                                local.push((c.revision, Instant::now()));
                            }
                        }
                        _ => return local,
                    },
                }
            }
        }));
    }
    drop(ready_tx);
    for _ in 0..watchers {
        ready_rx.recv().await.ok_or_else(|| anyhow::anyhow!("a watch stream failed to open"))?;
    }
    // Let the server register the last streams.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(tasks)
}

/// Ours: Puts at `rate`/s, latency from each Put's response to each watcher.
/// `opened` runs once every stream is open, before the first write.
pub async fn ours(
    cmd: Command,
    channels: &[Channel],
    watchers: usize,
    rate: u32,
    d: Duration,
    opened: impl FnOnce(),
) -> anyhow::Result<(Figure, usize)> {
    let ns = format!("prop/w{watchers}");
    let (stop, _) = tokio::sync::watch::channel(None);
    let tasks = our_watchers(channels, &ns, watchers, &stop).await?;
    opened();
    let meter = CpuMeter::start();
    let commits = paced_puts(&cmd, &ns, rate, d).await?;
    finish(commits, stop, tasks, meter, watchers).await
}

/// Puts of 64 bytes to ten keys of `ns` at `rate`/s for `d`, as [`paced`].
pub async fn paced_puts(cmd: &Command, ns: &str, rate: u32, d: Duration) -> anyhow::Result<HashMap<u64, Instant>> {
    paced(rate, d, |i| {
        let mut cmd = cmd.clone();
        let req = PutRequest {
            namespace: ns.to_owned(),
            key: format!("k{}", i % 10),
            value: vec![b'v'; 64],
            ..Default::default()
        };
        async move { Ok(cmd.put(req).await?.into_inner().revision) }
    })
    .await
}

/// Raw: JetStream publishes (acked) to one subject, `watchers` core NATS
/// subscribers on it.
pub async fn raw_nats(url: &str, watchers: usize, rate: u32, d: Duration) -> anyhow::Result<(Figure, usize)> {
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client.clone());
    let _ = js.delete_stream("PROP").await;
    js.create_stream(stream::Config { name: "PROP".into(), subjects: vec!["prop.>".into()], ..Default::default() })
        .await?;
    let (stop, _) = tokio::sync::watch::channel(None);
    let mut tasks: Watchers = Vec::new();
    for _ in 0..watchers {
        let mut sub = client.subscribe("prop.x").await?;
        let mut stop = stop.subscribe();
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::new();
            let mut last_seen = 0;
            loop {
                if done(&stop, last_seen) {
                    return local;
                }
                tokio::select! {
                    _ = stop.changed() => {}
                    m = sub.next() => match m {
                        Some(m) => {
                            let id = std::str::from_utf8(&m.payload).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
                            last_seen = id;
                            local.push((id, Instant::now()));
                        }
                        None => return local,
                    },
                }
            }
        }));
    }
    client.flush().await?;
    let meter = CpuMeter::start();
    let commits = paced(rate, d, |i| {
        let js = js.clone();
        async move {
            js.publish("prop.x", i.to_string().into()).await?.await?;
            Ok(i)
        }
    })
    .await?;
    finish(commits, stop, tasks, meter, watchers).await
}

/// etcd: puts to one key range, `watchers` etcd watches on it.
pub async fn etcd(
    channels: &[Channel],
    writer: Channel,
    watchers: usize,
    rate: u32,
    d: Duration,
) -> anyhow::Result<(Figure, usize)> {
    let (stop, _) = tokio::sync::watch::channel(None);
    let mut tasks: Watchers = Vec::new();
    for i in 0..watchers {
        let mut w = etcd::watch_client::WatchClient::new(channels[i % channels.len()].clone());
        let (req_tx, req_rx) = tokio::sync::mpsc::channel(1);
        req_tx
            .send(etcd::WatchRequest {
                request_union: Some(etcd::watch_request::RequestUnion::CreateRequest(etcd::WatchCreateRequest {
                    key: b"/prop/".to_vec(),
                    range_end: b"/prop0".to_vec(),
                    start_revision: 0,
                })),
            })
            .await?;
        let mut stream = w.watch(stream_from(req_rx)).await?.into_inner();
        let mut stop = stop.subscribe();
        tasks.push(tokio::spawn(async move {
            let _keep = req_tx;
            let mut local: Seen = Vec::new();
            loop {
                if done(&stop, local.last().map_or(0, |l| l.0)) {
                    return local;
                }
                tokio::select! {
                    _ = stop.changed() => {}
                    r = stream.message() => match r {
                        Ok(Some(r)) => {
                            let now = Instant::now();
                            local.extend(r.events.into_iter().map(|e| (e.kv.map_or(0, |kv| kv.mod_revision as u64), now)));
                        }
                        _ => return local,
                    },
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Its own connection: a watcher connection that falls behind must not
    // take the writes down with it.
    let kv = etcd::kv_client::KvClient::new(writer);
    let meter = CpuMeter::start();
    let commits = paced(rate, d, |i| {
        let mut kv = kv.clone();
        async move {
            let r = kv
                .put(etcd::PutRequest { key: format!("/prop/k{}", i % 10).into_bytes(), value: vec![b'v'; 64] })
                .await?;
            Ok(r.into_inner().header.map_or(0, |h| h.revision as u64))
        }
    })
    .await?;
    finish(commits, stop, tasks, meter, watchers).await
}

pub fn stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
