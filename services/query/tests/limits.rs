//! What strangers cannot make the query service hold: watches on made-up
//! namespaces leave nothing behind once they end.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::Duration;

use veltrix_proto::v1::WatchRequest;
use veltrix_testkit::{eventually, free_port};
use veltrix_testsystem::*;

/// Resident memory of a process, in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Opens a watch on each namespace, then closes them all, `batch` at a time.
async fn watch_and_leave(q: &Query, names: impl Iterator<Item = String>, batch: usize) {
    let names: Vec<String> = names.collect();
    for chunk in names.chunks(batch) {
        let mut open = Vec::with_capacity(chunk.len());
        for ns in chunk {
            let mut q = q.clone();
            open.push(q.watch(WatchRequest { namespace: ns.clone(), ..Default::default() }).await.unwrap());
        }
        drop(open);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_on_made_up_namespaces_leave_nothing_behind() {
    let servers = TestSystem::builder().servers_only().start().await;
    let (command_bin, query_bin) = (binary("veltrix-command"), binary("veltrix-query"));
    let (cport, qport, metrics) = (free_port(), free_port(), metrics_addr());
    let command_args = servers.command_binary_args();
    let _command = spawn_service(&command_bin, &command_args, &[], cport, "veltrix.config.v1.ConfigCommand").await;
    let mut args = servers.query_binary_args();
    args.extend(["--metrics-listen".into(), metrics.to_string()]);
    let query = spawn_service(&query_bin, &args, &[], qport, "veltrix.config.v1.ConfigQuery").await;
    let pid = query.id().unwrap();
    let q = Query::new(channel(([127, 0, 0, 1], qport).into()).await);
    let all_ended = || async {
        eventually(Duration::from_secs(30), "every watch has ended on the server", || async {
            (metric(&scrape(metrics).await, "veltrix_watch_watchers") == Some(0.0)).then_some(())
        })
        .await
    };

    // Warm up (allocator arenas, connection buffers), then measure.
    watch_and_leave(&q, (0..500).map(|i| format!("warm/n{i}")), 100).await;
    all_ended().await;
    let before = rss_kib(pid);
    watch_and_leave(&q, (0..5000).map(|i| format!("made/up/n{i}")), 100).await;
    all_ended().await;
    let after = rss_kib(pid);
    let grown = after.saturating_sub(before);
    assert!(grown < 5 * 1024, "5,000 ended watches left {grown} KiB behind ({before} -> {after} KiB)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_watched_at_once_are_bounded() {
    let env = TestSystem::builder().query(|c| c.watch.watch_max_namespaces = 3).start().await;
    let watch = |ns: &str| {
        let mut q = env.q();
        let request = WatchRequest { namespace: ns.into(), ..Default::default() };
        async move { q.watch(request).await }
    };
    let mut open = Vec::new();
    for ns in ["b/one", "b/two", "b/three"] {
        open.push(watch(ns).await.unwrap());
    }
    let refused = watch("b/four").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("at most 3 namespaces"), "{}", refused.message());
    open.push(watch("b/one").await.unwrap());
    // Once a namespace's last watcher has gone, there is room again.
    open.remove(1);
    eventually(Duration::from_secs(20), "a place is free after a watcher left", || async {
        watch("b/four").await.ok()
    })
    .await;
}
