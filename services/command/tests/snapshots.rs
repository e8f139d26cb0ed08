//! Command-side snapshots: a restarted command service loads a namespace's
//! latest snapshot and folds only the events after it; a snapshot that does
//! not match the stream is ignored (with a warning and a metric) and the
//! history folded instead; a namespace with a million change sets, or a
//! hundred thousand live keys, is writable within the default deadline
//! after a restart, in bounded memory.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::Duration;

use async_nats::jetstream;
use tonic::Code;
use veltrix_proto::v1::PutRequest;
use veltrix_testsystem::*;

fn put_as(ns: &str, key: &str, value: &str, request_id: &str, expected: Option<u64>) -> PutRequest {
    PutRequest { request_id: request_id.into(), expected_revision: expected, ..put(ns, key, value) }
}

async fn counter(metrics: std::net::SocketAddr, name: &str) -> f64 {
    metric(&scrape(metrics).await, name).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_folds_only_the_events_after_the_latest_snapshot() {
    let metrics = metrics_addr();
    let mut sys = TestSystem::builder()
        .queries(0)
        .command(move |c| {
            c.serve.metrics_listen = Some(metrics);
            c.snapshot_every = 100;
        })
        .start()
        .await;
    let mut cmd = sys.cmd();
    let mut last = 0;
    for i in 0..250 {
        let r = cmd.put(put_as("snap/a", &format!("k{}", i % 10), &format!("v{i}"), &format!("r{i}"), None)).await;
        last = r.unwrap().into_inner().revision;
    }
    eventually(Duration::from_secs(10), "two snapshots written", || async {
        (counter(metrics, "veltrix_command_snapshots_written_total").await >= 2.0).then_some(())
    })
    .await;
    sys.stop_command(0).await;
    sys.start_command(0).await;
    let before = counter(metrics, "veltrix_command_namespace_load_events_total").await;
    let mut cmd = sys.cmd();
    // The state is exact: compare-and-set against k9's last write holds,
    // a stale one is a conflict, and a retry of a request from before the
    // restart answers its first revision.
    let r = cmd.put(put_as("snap/a", "k9", "after", "after-1", Some(last))).await.unwrap().into_inner().revision;
    assert_eq!(r, last + 1);
    let stale = cmd.put(put_as("snap/a", "k8", "x", "after-2", Some(last))).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    let again = cmd.put(put_as("snap/a", "k5", "v245", "r245", None)).await.unwrap().into_inner().revision;
    assert_eq!(again, last - 4, "a retry answers the original revision");
    let folded = counter(metrics, "veltrix_command_namespace_load_events_total").await - before;
    assert!(folded <= 100.0, "the load folded {folded} events: only those after the latest snapshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_does_not_match_the_stream_is_ignored_with_a_warning() {
    let metrics = metrics_addr();
    let mut sys = TestSystem::builder()
        .queries(0)
        .command(move |c| {
            c.serve.metrics_listen = Some(metrics);
            c.snapshot_every = 10;
        })
        .start()
        .await;
    let mut cmd = sys.cmd();
    let mut last = 0;
    for i in 0..20 {
        last = cmd.put(put("snap/b", &format!("k{}", i % 3), &format!("v{i}"))).await.unwrap().into_inner().revision;
    }
    eventually(Duration::from_secs(10), "a snapshot written", || async {
        (counter(metrics, "veltrix_command_snapshots_written_total").await >= 1.0).then_some(())
    })
    .await;
    sys.stop_command(0).await;
    // The snapshot as another history would have left it: the same
    // revision, another event (as after the stream was recreated).
    let js = jetstream::new(async_nats::connect(sys.nats_url()).await.unwrap());
    let snapshots = js.get_stream("VELTRIX_EVENTS_SNAPSHOTS").await.unwrap();
    let subject = "veltrix.events-snapshots.0.snap.b";
    let stored = snapshots.get_last_raw_message_by_subject(subject).await.unwrap();
    let mut headers = stored.headers.clone();
    headers.insert("Veltrix-Snapshot-Event-Sha256", "00".repeat(32).as_str());
    js.publish_with_headers(subject, headers, stored.payload.clone()).await.unwrap().await.unwrap();
    sys.start_command(0).await;
    let ignored = || async {
        let text = scrape(metrics).await;
        labelled(&text, "veltrix_command_snapshots_ignored_total", &["reason=\"stream_mismatch\""])
    };
    let (ignored_before, folded_before) =
        (ignored().await, counter(metrics, "veltrix_command_namespace_load_events_total").await);
    let r = cmd.put(PutRequest { expected_revision: Some(last), ..put("snap/b", "k1", "x") }).await.unwrap();
    assert_eq!(r.into_inner().revision, last + 1);
    assert_eq!(ignored().await - ignored_before, 1.0, "the snapshot was not trusted");
    let folded = counter(metrics, "veltrix_command_namespace_load_events_total").await - folded_before;
    assert_eq!(folded, 20.0, "the whole history was folded instead");
}

/// The peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// What the command binary may hold at its peak while it loads a million
/// change sets or a hundred thousand keys (its own baseline is about 20 MiB).
const MEMORY_BOUND: u64 = 256 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_change_sets_and_a_hundred_thousand_keys_are_writable_within_the_default_deadline_after_a_restart() {
    let sys = TestSystem::builder().servers_only().start().await;
    let (port, metrics) = (free_port(), metrics_addr());
    let mut args = sys.command_binary_args();
    args.extend(["--metrics-listen".into(), metrics.to_string()]);
    let program = binary("veltrix-command");
    let spawn = || spawn_service(&program, &args, &[], port, "veltrix.config.v1.ConfigCommand");
    let mut first = spawn().await;
    let history = fill_history(&sys.nats_url(), "big/history", 1_000_000, 1, 10).await;
    let keys = fill_history(&sys.nats_url(), "big/keys", 1_000, 100, 100_000).await;
    assert_eq!(keys, 1_001_000);
    let mut cmd = Command::new(channel(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await);
    // Without a snapshot, the first writes wait for the whole history,
    // folded in the background (retried while it takes longer than a
    // call's deadline), and leave a snapshot behind.
    for ns in ["big/history", "big/keys"] {
        eventually(Duration::from_secs(300), "writable after the first load", || {
            let mut cmd = cmd.clone();
            async move { cmd.put(put_as(ns, "first", "v", &format!("first-{ns}"), None)).await.ok() }
        })
        .await;
    }
    eventually(Duration::from_secs(30), "both snapshots written", || async {
        (counter(metrics, "veltrix_command_snapshots_written_total").await >= 2.0).then_some(())
    })
    .await;
    let folding_everything = peak_rss(first.id().unwrap());
    first.kill().await.unwrap();
    // After a restart each first write, with the default deadline, succeeds
    // at once: the snapshot and the one event after it.
    let second = spawn().await;
    for (ns, last) in [("big/history", history), ("big/keys", keys)] {
        let r = cmd.put(put_as(ns, "second", "v", &format!("second-{ns}"), None)).await.unwrap().into_inner();
        assert!(r.revision > last, "{ns}");
    }
    let folded = counter(metrics, "veltrix_command_namespace_load_events_total").await;
    assert!(folded <= 2.0, "each load folded only what came after its snapshot ({folded} events)");
    let from_snapshot = peak_rss(second.id().unwrap());
    assert!(
        folding_everything < MEMORY_BOUND && from_snapshot < MEMORY_BOUND,
        "peak memory {folding_everything} B folding the histories, {from_snapshot} B from the snapshots: over {MEMORY_BOUND} B"
    );
    println!(
        "peak memory: {folding_everything} B folding 1M events and 100k keys, {from_snapshot} B from the snapshots"
    );
}
