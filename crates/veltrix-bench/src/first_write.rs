//! The first write after a restart to a namespace with a long history: a
//! freshly started command service loads the namespace's state before it
//! can decide, from its latest snapshot and the events after it (ours), or
//! by folding the whole history (`--snapshot-every 0`, the baseline).

use std::time::{Duration, Instant};

use tonic::transport::Channel;
use veltrix_proto::v1::PutRequest;

use crate::{
    clients::{self, Command, serving},
    load::Figure,
    procs::{Env, Proc},
    rebuild,
};

const NAMESPACE: &str = "fw/n0";

/// One put with a long deadline, timed.
async fn first_write(command: &Proc) -> anyhow::Result<Figure> {
    serving(command).await?;
    let mut client = Command::new(Channel::from_shared(command.url("http"))?.connect().await?);
    let mut request = tonic::Request::new(PutRequest {
        namespace: NAMESPACE.into(),
        key: "after-restart".into(),
        value: b"v".to_vec(),
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(600));
    let started = Instant::now();
    client.put(request).await?;
    let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    Ok(Figure {
        throughput: 1e6 / us.max(1) as f64,
        ops: 1,
        seconds: us as f64 / 1e6,
        p50_us: us,
        p99_us: us,
        p999_us: us,
        ..Default::default()
    })
}

/// Both figures for a history of `events` change sets (over 100 keys):
/// (from the snapshot, folding everything).
pub async fn measure(env: &Env, events: u64) -> anyhow::Result<(Figure, Figure)> {
    let nats = env.nats(&format!("nats-first-write-{events}"), "nats-server", false)?;
    let setup = env.command(&format!("veltrix-command-first-write-{events}"), &nats)?;
    serving(&setup).await?;
    rebuild::fill_keys(&nats.url("nats"), "fw/n", events, 1, 100).await?;
    drop(setup);
    // The baseline: never snapshots, so it folds everything.
    let never = vec!["--snapshot-every".to_owned(), "0".to_owned()];
    let without = env.command_with(&format!("veltrix-command-no-snapshots-{events}"), &nats, &never)?;
    let folding = first_write(&without).await?;
    drop(without);
    // Ours: a first start folds the history and writes the snapshot ...
    let metrics = veltrix_testkit::free_fixed_port();
    let flags = vec!["--metrics-listen".to_owned(), format!("127.0.0.1:{metrics}")];
    let warm = env.command_with(&format!("veltrix-command-snapshotting-{events}"), &nats, &flags)?;
    first_write(&warm).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while clients::metric(metrics, "veltrix_command_snapshots_written_total").await?.unwrap_or(0.0) < 1.0 {
        anyhow::ensure!(Instant::now() < deadline, "no snapshot was written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(warm);
    // ... and the restarted one loads it and the one write after it.
    let restarted = env.command(&format!("veltrix-command-restarted-{events}"), &nats)?;
    let ours = first_write(&restarted).await?;
    Ok((ours, folding))
}
