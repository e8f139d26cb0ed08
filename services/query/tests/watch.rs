//! Watch streams against real servers: exactly once and in order across
//! disconnects, snapshots, consistency with reads, progress, retention,
//! stalled and many watchers, and a restart of the query service.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{collections::BTreeMap, sync::atomic::Ordering, time::Duration};

use tonic::{Code, Streaming};
use veltrix_proto::v1::{
    ApplyRequest, Change, ChangeRecord, DeleteRequest, GetRequest, HistoryRequest, ListRequest, SetValue, WatchRequest,
    WatchResponse, change, key_change::Op, watch_response::Event,
};
use veltrix_testsystem::*;

fn watch_from(ns: &str, start: Option<u64>) -> WatchRequest {
    WatchRequest { namespace: ns.into(), start_revision: start, ..Default::default() }
}

async fn next_change(stream: &mut Streaming<WatchResponse>) -> ChangeRecord {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), stream.message()).await.expect("a message in time");
        match msg.expect("stream ok").expect("stream open").event {
            Some(Event::Change(c)) => return c,
            Some(Event::Progress(_)) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Every change set of a namespace as History shows it.
async fn committed(q: &mut Query, ns: &str) -> Vec<ChangeRecord> {
    let (mut out, mut token) = (Vec::new(), String::new());
    loop {
        let page = q
            .history(HistoryRequest { namespace: ns.into(), page_size: 1000, page_token: token, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        out.extend(page.records);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

/// Writes `count` change sets to `ns` with 16 writers (some are Apply with
/// two keys, some deletes); answers the last revision.
async fn write_many(cmd: &Command, ns: &str, count: usize) -> u64 {
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (mut cmd, ns) = (cmd.clone(), ns.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for i in (w..count).step_by(16) {
                let set = |k: String| Change {
                    key: k,
                    expected_revision: None,
                    op: Some(change::Op::Set(SetValue {
                        value: i.to_string().into_bytes(),
                        content_type: String::new(),
                    })),
                };
                let r = if i % 10 == 3 {
                    let apply = ApplyRequest {
                        namespace: ns.clone(),
                        changes: vec![set(format!("a{}", i % 13)), set(format!("b{}", i % 7))],
                        ..Default::default()
                    };
                    cmd.apply(apply).await.unwrap().into_inner().revision
                } else {
                    cmd.put(put(&ns, &format!("k{}", i % 50), &i.to_string())).await.unwrap().into_inner().revision
                };
                last = last.max(r);
            }
            last
        }));
    }
    let mut last = 0;
    for t in tasks {
        last = last.max(t.await.unwrap());
    }
    last
}

#[tokio::test]
async fn ten_thousand_change_sets_across_random_disconnects_arrive_exactly_once_in_order() {
    let env = TestSystem::start().await;
    let writer = {
        let cmd = env.cmd();
        tokio::spawn(async move { write_many(&cmd, "w", 10_000).await })
    };
    let mut received: Vec<ChangeRecord> = Vec::new();
    let mut next = 1;
    let mut writer = Some(writer);
    let mut last_committed: Option<u64> = None;
    while last_committed.is_none_or(|l| next <= l) {
        if writer.as_ref().is_some_and(|w| w.is_finished()) {
            last_committed = Some(writer.take().unwrap().await.unwrap());
        }
        let mut stream = env.q().watch(watch_from("w", Some(next))).await.unwrap().into_inner();
        // Read a random number of change sets, then drop the stream.
        for _ in 0..fastrand::usize(1..800) {
            let Ok(msg) = tokio::time::timeout(Duration::from_secs(1), stream.message()).await else { break };
            match msg.unwrap().unwrap().event {
                Some(Event::Change(c)) => {
                    assert!(c.revision >= next);
                    next = c.revision + 1;
                    received.push(c);
                }
                Some(Event::Progress(_)) => {}
                other => panic!("{other:?}"),
            }
        }
    }
    let last = last_committed.unwrap();
    let all = committed(&mut env.q(), "w").await;
    assert_eq!(all.len(), 10_000);
    assert_eq!(all.last().unwrap().revision, last);
    assert_eq!(received.len(), all.len(), "no gap, no duplicate");
    assert!(received == all, "exactly the committed sequence, each change set whole");
}

#[tokio::test]
async fn a_snapshot_then_live_changes_rebuild_the_read_model() {
    let mut env = TestSystem::builder().queries(2).start().await;
    for i in 0..120 {
        env.cmd().put(put("snap", &format!("cfg/{i:03}"), "0")).await.unwrap();
    }
    env.cmd().put(put("snap", "other", "x")).await.unwrap();
    // Replica 1 starts now, with small snapshot chunks.
    env.stop_query(1).await;
    env.query_config(1).watch.watch_snapshot_chunk = 50;
    env.start_query(1).await;
    let mut q2 = env.q_at(1);
    let mut stream = q2
        .watch(WatchRequest {
            namespace: "snap".into(),
            prefix: "cfg/".into(),
            include_snapshot: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let writer = {
        let mut cmd = env.cmd();
        tokio::spawn(async move {
            let mut last = 0;
            for i in 0..200 {
                let key = format!("cfg/{:03}", (i * 7) % 150);
                last = if i % 5 == 4 {
                    match cmd.delete(DeleteRequest { namespace: "snap".into(), key, ..Default::default() }).await {
                        Ok(r) => r.into_inner().revision,
                        Err(s) if s.code() == Code::NotFound => last,
                        Err(s) => panic!("{s:?}"),
                    }
                } else {
                    cmd.put(put("snap", &key, &i.to_string())).await.unwrap().into_inner().revision
                };
            }
            last
        })
    };
    let mut local: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut chunks = 0;
    let mut snapshot_revision;
    loop {
        match stream.message().await.unwrap().unwrap().event {
            Some(Event::Snapshot(s)) => {
                chunks += 1;
                snapshot_revision = s.revision;
                local.extend(s.kvs.into_iter().map(|kv| (kv.key, kv.value.to_vec())));
                if s.last {
                    break;
                }
            }
            other => panic!("snapshot first, got {other:?}"),
        }
    }
    assert_eq!(chunks, 3, "120 keys in chunks of 50");
    assert!(local.keys().all(|k| k.starts_with("cfg/")));
    let last = writer.await.unwrap();
    let mut seen = snapshot_revision;
    while seen < last {
        let c = next_change(&mut stream).await;
        assert!(c.revision > seen, "changes after the snapshot, in order");
        seen = c.revision;
        for k in c.changes {
            match Op::try_from(k.op).unwrap() {
                Op::Set => local.insert(k.key, k.value.to_vec()),
                _ => local.remove(&k.key),
            };
        }
    }
    let list = env
        .q()
        .list(ListRequest {
            namespace: "snap".into(),
            prefix: "cfg/".into(),
            page_size: 1000,
            min_revision: Some(last),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let model: BTreeMap<String, Vec<u8>> = list.kvs.into_iter().map(|kv| (kv.key, kv.value.to_vec())).collect();
    assert_eq!(local, model, "the client's copy equals the read model");
}

#[tokio::test]
async fn a_watcher_that_receives_r_sees_r_via_get_at_once() {
    let metrics_addr = metrics_addr();
    let env = TestSystem::builder().query(move |c| c.serve.metrics_listen = Some(metrics_addr)).start().await;
    let mut stream = env.q().watch(watch_from("cons", None)).await.unwrap().into_inner();
    let writer = {
        let cmd = env.cmd();
        tokio::spawn(async move { write_many(&cmd, "cons", 300).await })
    };
    let mut seen = 0;
    while seen < 300 {
        let c = next_change(&mut stream).await;
        seen += 1;
        for k in &c.changes {
            // No min_revision: the same replica has applied it already.
            let kv = env.q().get(get("cons", &k.key)).await.unwrap().into_inner();
            assert!(kv.revision >= c.revision && kv.kv.unwrap().mod_revision >= c.revision);
        }
    }
    writer.await.unwrap();
    let text = scrape(metrics_addr).await;
    assert_eq!(metric(&text, "veltrix_watch_watchers"), Some(1.0), "{text}");
    assert!(metric(&text, "veltrix_watch_events_delivered_total").is_some_and(|v| v >= 300.0), "{text}");
    assert!(text.contains("veltrix_watch_delivery_latency_seconds"), "{text}");
}

#[tokio::test]
async fn progress_when_idle_and_out_of_range_for_a_compacted_start() {
    let env = TestSystem::builder()
        .history_keep(5)
        .query(|c| c.watch.watch_progress_interval = Duration::from_millis(200))
        .start()
        .await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    let mut last = 0;
    for i in 0..10 {
        last = cmd.put(put("idle", "k", &i.to_string())).await.unwrap().into_inner().revision;
    }
    let other = cmd.put(put("elsewhere", "k", "x")).await.unwrap().into_inner().revision;
    q.get(GetRequest { min_revision: Some(other), ..get("elsewhere", "k") }).await.unwrap();
    let mut stream = q.watch(watch_from("idle", Some(last))).await.unwrap().into_inner();
    assert_eq!(next_change(&mut stream).await.revision, last);
    let progress = tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(
        progress.event,
        Some(Event::Progress(veltrix_proto::v1::Progress { revision: other })),
        "idle: progress up to everything applied"
    );

    let status = q.watch(watch_from("idle", Some(2))).await.expect_err("too old");
    assert_eq!(status.code(), Code::OutOfRange);
    assert!(status.message().contains(&format!("oldest available revision is {}", last - 4)), "{}", status.message());
    let bad = q.watch(watch_from("idle", Some(0))).await.expect_err("zero");
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_stalled_watcher_does_not_slow_100_others() {
    let env = TestSystem::builder()
        .query(|c| {
            c.watch.watch_stall_timeout = Duration::from_secs(2);
            c.watch.watch_queue = 8;
        })
        .start()
        .await;
    let (cmd, q, query) = (env.cmd(), env.q(), env.query());
    // Never read: its small HTTP/2 windows and the server queue fill up.
    let small = small_window_client(&env).await;
    let _stalled = small.clone().watch(watch_from("fan", Some(1))).await.unwrap().into_inner();
    let mut watchers = Vec::new();
    for i in 0..100 {
        let mut q = if i % 2 == 0 { q.clone() } else { fresh_client(&env).await };
        watchers.push(tokio::spawn(async move {
            let mut s = q.watch(watch_from("fan", Some(1))).await.unwrap().into_inner();
            let mut revisions = Vec::with_capacity(10_000);
            while revisions.len() < 10_000 {
                revisions.push(next_change(&mut s).await.revision);
            }
            revisions
        }));
    }
    let last = write_many(&cmd, "fan", 10_000).await;
    let mut first: Option<Vec<u64>> = None;
    for w in watchers {
        let got = w.await.unwrap();
        assert_eq!(got.last(), Some(&last));
        assert!(got.windows(2).all(|p| p[0] < p[1]));
        match &first {
            None => first = Some(got),
            Some(f) => assert!(&got == f, "every watcher got every change set"),
        }
    }
    // The stalled watcher holds nothing on the server any more: it was ended
    // (by the stall timeout, or earlier when its own HTTP/2 library gave up
    // on a reader that buffers too much).
    eventually(Duration::from_secs(10), "no watcher left on the server", || async {
        (query.state.stats.watchers.load(Ordering::Relaxed) == 0).then_some(())
    })
    .await;
}

async fn small_window_client(env: &TestSystem) -> Query {
    let small = tonic::transport::Channel::from_shared(format!("http://{}", env.query_addr()))
        .unwrap()
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(16 * 1024)
        .connect()
        .await
        .unwrap();
    veltrix_proto::v1::config_query_client::ConfigQueryClient::new(small)
}

#[tokio::test]
async fn a_client_that_stops_reading_is_ended_with_resource_exhausted_naming_where_to_resume() {
    let env = TestSystem::builder()
        .query(|c| {
            c.watch.watch_stall_timeout = Duration::from_secs(1);
            c.watch.watch_queue = 4;
        })
        .start()
        .await;
    let (mut cmd, query) = (env.cmd(), env.query());
    let mut client = small_window_client(&env).await;
    let mut stalled = client.watch(watch_from("slow", Some(1))).await.unwrap().into_inner();
    let mut last = 0;
    for i in 0..400 {
        last = cmd.put(put("slow", "k", &format!("{i:0200}"))).await.unwrap().into_inner().revision;
    }
    eventually(Duration::from_secs(10), "the stalled watcher is ended", || async {
        (query.state.stats.stalled_watchers.load(Ordering::Relaxed) == 1).then_some(())
    })
    .await;
    assert_eq!(query.state.stats.watchers.load(Ordering::Relaxed), 0);
    // Reading again: what was queued, then the status naming where to resume.
    let mut got = Vec::new();
    let status = loop {
        match stalled.message().await {
            Ok(Some(WatchResponse { event: Some(Event::Change(c)) })) => got.push(c.revision),
            Ok(other) => panic!("{other:?}"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let resume: u64 = status.message().rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(resume, got.last().map_or(1, |r| r + 1), "{}", status.message());
    // Resuming there delivers the rest, exactly.
    let mut rest = client.watch(watch_from("slow", Some(resume))).await.unwrap().into_inner();
    while got.last() != Some(&last) {
        got.push(next_change(&mut rest).await.revision);
    }
    assert_eq!(got, (1..=last).collect::<Vec<_>>());
}

/// A client on its own connection.
async fn fresh_client(env: &TestSystem) -> Query {
    Query::new(channel(env.query_addr()).await)
}

#[tokio::test]
async fn a_thousand_watchers_on_one_namespace_all_receive_every_change() {
    let env = TestSystem::start().await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(fresh_client(&env).await);
    }
    let mut watchers = Vec::new();
    for i in 0..1000 {
        let mut q = clients[i % 4].clone();
        watchers.push(tokio::spawn(async move {
            let mut s = q.watch(watch_from("many", Some(1))).await.unwrap().into_inner();
            let mut count = 0;
            let mut last = 0;
            while count < 100 {
                let c = next_change(&mut s).await;
                assert!(c.revision > last);
                last = c.revision;
                count += 1;
            }
            last
        }));
    }
    let mut cmd = env.cmd();
    let mut last = 0;
    for i in 0..100 {
        last = cmd.put(put("many", &format!("k{}", i % 10), &i.to_string())).await.unwrap().into_inner().revision;
    }
    for w in watchers {
        assert_eq!(w.await.unwrap(), last);
    }
}

#[tokio::test]
async fn a_query_service_restart_ends_watchers_with_unavailable_and_they_miss_nothing() {
    let mut env = TestSystem::start().await;
    let (cmd, q, addr) = (env.cmd(), env.q(), env.query_addr());
    let writer = {
        let cmd = cmd.clone();
        tokio::spawn(async move { write_many(&cmd, "rs", 2000).await })
    };
    let mut watchers = Vec::new();
    for _ in 0..10 {
        let mut q = q.clone();
        watchers.push(tokio::spawn(async move {
            let mut got: Vec<u64> = Vec::new();
            let mut s = q.watch(watch_from("rs", Some(1))).await.unwrap().into_inner();
            let mut saw_unavailable = false;
            loop {
                match tokio::time::timeout(Duration::from_secs(2), s.message()).await {
                    Ok(Ok(Some(WatchResponse { event: Some(Event::Change(c)) }))) => got.push(c.revision),
                    Ok(Ok(Some(_))) => {}
                    Ok(Err(status)) => {
                        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                        saw_unavailable = true;
                        let next = got.last().map_or(1, |r| r + 1);
                        let stream = eventually(Duration::from_secs(30), "reconnect", || async {
                            let ch = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                                .ok()?
                                .connect()
                                .await
                                .ok()?;
                            let mut q = veltrix_proto::v1::config_query_client::ConfigQueryClient::new(ch);
                            q.watch(watch_from("rs", Some(next))).await.ok()
                        })
                        .await;
                        s = stream.into_inner();
                    }
                    Ok(Ok(None)) => panic!("a stream must not end without a status"),
                    Err(_) => return (got, saw_unavailable),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    env.stop_query(0).await;
    env.start_query(0).await;
    let mut q2 = env.q();
    let last = writer.await.unwrap();
    q2.get(GetRequest { min_revision: Some(last), ..get("rs", "k1") }).await.unwrap();
    let all: Vec<u64> = committed(&mut q2, "rs").await.into_iter().map(|r| r.revision).collect();
    assert_eq!(all.last(), Some(&last));
    for w in watchers {
        let (got, saw_unavailable) = w.await.unwrap();
        assert!(saw_unavailable, "shutdown ends streams with UNAVAILABLE");
        assert_eq!(got, all, "nothing missed, nothing repeated");
    }
}
