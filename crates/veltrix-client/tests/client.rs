//! The client against real servers: every call, the error variants, retries
//! that keep their request id, watch streams that resume, and a live copy
//! that survives restarts of the services.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::Duration;

use futures::StreamExt;
use veltrix_client::{
    Change, Client, DiffKind, Error, HistoryOptions, LiveConfig, LiveOptions, ReadOptions, RollbackOptions, Source,
    WatchEvent, WatchStart, WriteOptions,
};
use veltrix_testsystem::{TestSystem, eventually};

fn client(sys: &TestSystem) -> Client {
    Client::builder()
        .command_url(sys.command_url())
        .query_url(sys.query_url())
        .actor("tester")
        .backoff(Duration::from_millis(50))
        .build()
        .unwrap()
}

async fn next_event(stream: &mut veltrix_client::WatchStream) -> WatchEvent {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.next()).await.unwrap().unwrap().unwrap();
        if !matches!(event, WatchEvent::Progress(_)) {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_and_its_errors() {
    let sys = TestSystem::builder().history_keep(0).start().await;
    let c = client(&sys);
    let ns = "client/app";

    let r1 = c.put(ns, "db.url", "postgres://a").await.unwrap();
    let read = ReadOptions { min_revision: Some(r1), ..Default::default() };
    let e = c.get_with(ns, "db.url", read).await.unwrap();
    assert_eq!(
        (e.value.as_ref(), e.mod_revision, e.version, e.updated_by.as_str()),
        (&b"postgres://a"[..], r1, 1, "tester")
    );

    // Compare-and-set conflict: the current revision comes back.
    let stale = WriteOptions { expected_revision: Some(r1 + 50), ..Default::default() };
    match c.put_with(ns, "db.url", "x", &stale).await {
        Err(Error::Conflict { current, key, .. }) => {
            assert_eq!(current, Some(r1));
            assert_eq!(key.as_deref(), Some("db.url"));
        }
        other => panic!("{other:?}"),
    }
    // Invalid input names the field.
    match c.put(ns, "", "x").await {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "key"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(c.get(ns, "missing").await, Err(Error::NotFound { .. })));

    let r2 = c
        .apply(
            ns,
            vec![Change::set("a", "1"), Change::set("b", "2"), Change::delete("db.url").expecting(r1)],
            &WriteOptions { reason: "split".into(), ..Default::default() },
        )
        .await
        .unwrap();
    let listing = c.list_with(ns, "", ReadOptions { min_revision: Some(r2), ..Default::default() }).await.unwrap();
    let keys: Vec<_> = listing.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(listing.revision, r2);
    let r3 = c.delete(ns, "a").await.unwrap();
    let history = c.history(ns, None, HistoryOptions::default()).await.unwrap();
    let revisions: Vec<_> = history.iter().map(|h| h.revision).collect();
    eventually(Duration::from_secs(10), "history catches up", || async {
        let h = c.history(ns, None, HistoryOptions::default()).await.ok()?;
        (h.last()?.revision == r3).then_some(())
    })
    .await;
    assert!(revisions.starts_with(&[r1, r2]));
    assert_eq!(history[1].reason, "split");
    assert_eq!(history[1].actor, "tester");
    let limited = c.history(ns, None, HistoryOptions { limit: Some(1), ..Default::default() }).await.unwrap();
    assert_eq!(limited.len(), 1);
    let namespaces = c.namespaces("client/").await.unwrap();
    assert_eq!(namespaces.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["client/app"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_is_retried_with_the_same_request_id() {
    // Both services down at first (their ports known).
    let mut sys = TestSystem::builder().history_keep(0).start().await;
    sys.stop_command(0).await;
    sys.stop_query(0).await;
    let c = Client::builder()
        .command_url(sys.command_url())
        .query_url(sys.query_url())
        .retries(8)
        .backoff(Duration::from_millis(100))
        .build()
        .unwrap();
    // The command service comes up while the client is retrying.
    let starter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sys.start_command(0).await;
        sys
    });
    let options = WriteOptions { request_id: Some("retry-1".into()), ..Default::default() };
    let revision = c.put_with("retry/app", "k", "v", &options).await.unwrap();
    let mut sys = starter.await.unwrap();
    // The same request again answers the same revision: nothing new appended.
    assert_eq!(c.put_with("retry/app", "k", "v", &options).await.unwrap(), revision);
    sys.start_query(0).await;
    c.get_with("retry/app", "k", ReadOptions { min_revision: Some(revision), ..Default::default() }).await.unwrap();
    let history = c.history("retry/app", None, HistoryOptions::default()).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].request_id, "retry-1");
    // Errors that retrying cannot fix are not retried.
    assert!(matches!(c.get("retry/app", "nope").await, Err(Error::NotFound { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_across_a_restart_and_falls_back_to_a_snapshot() {
    let mut sys = TestSystem::builder().history_keep(2).start().await;
    let c = client(&sys);
    let ns = "watch/app";

    let mut stream = c.watch(ns, "", WatchStart::Now);
    // Give the stream time to open before the first write (it starts after
    // the namespace's current revision either way).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r1 = c.put(ns, "k", "1").await.unwrap();
    let WatchEvent::Changes(first) = next_event(&mut stream).await else { panic!("a change") };
    assert_eq!(first.revision, r1);

    // The query service restarts; writes go on meanwhile.
    sys.stop_query(0).await;
    let r2 = c.put(ns, "k", "2").await.unwrap();
    sys.start_query(0).await;
    let r3 = c.put(ns, "k", "3").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        if let WatchEvent::Changes(set) = next_event(&mut stream).await {
            got.push(set.revision);
        }
    }
    assert_eq!(got, [r2, r3], "nothing missed, nothing repeated");

    // History before the retained window: the stream starts from a snapshot.
    for v in 4..=8 {
        c.put(ns, "k", v.to_string()).await.unwrap();
    }
    let last = c.put(ns, "other", "x").await.unwrap();
    c.get_with(ns, "other", ReadOptions { min_revision: Some(last), ..Default::default() }).await.unwrap();
    let mut old = c.watch(ns, "", WatchStart::From(1));
    match next_event(&mut old).await {
        WatchEvent::Snapshot { entries, revision } => {
            assert!(revision >= last);
            let k = entries.iter().find(|e| e.key == "k").unwrap();
            assert_eq!(k.value.as_ref(), b"8");
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_config_stays_current_and_starts_from_its_cache_when_servers_are_down() {
    let mut sys = TestSystem::builder().history_keep(0).start().await;
    let c = client(&sys);
    let ns = "live/app";
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("live.json");
    let r0 = c.put(ns, "flag", "off").await.unwrap();
    // A snapshot is taken at what the read model has applied: read the write
    // back first, so that the first copy holds it.
    c.get_with(ns, "flag", ReadOptions { min_revision: Some(r0), ..Default::default() }).await.unwrap();

    let options = LiveOptions { cache_file: Some(cache.clone()), ..Default::default() };
    let live = LiveConfig::start(&c, ns, options.clone()).await.unwrap();
    live.wait_synced(Duration::from_secs(20)).await.unwrap();
    assert_eq!(live.get("flag").unwrap().value.as_ref(), b"off");
    let changes = live.subscribe();
    let r = c.put(ns, "flag", "on").await.unwrap();
    eventually(Duration::from_secs(20), "the change reaches the live copy", || async {
        (live.revision() >= r).then_some(())
    })
    .await;
    assert!(changes.has_changed().unwrap(), "subscribers are told");
    assert_eq!(live.get("flag").unwrap().value.as_ref(), b"on");
    assert_eq!(live.get("flag").unwrap().mod_revision, r);

    // The query service restarts under the running copy: it resumes.
    sys.stop_query(0).await;
    let r2 = c.put(ns, "limit", "10").await.unwrap();
    sys.start_query(0).await;
    eventually(Duration::from_secs(20), "the copy resumes after the restart", || async {
        (live.revision() >= r2).then_some(())
    })
    .await;
    assert_eq!(live.get("limit").unwrap().value.as_ref(), b"10");
    eventually(Duration::from_secs(5), "the cache file is written", || async {
        std::fs::read_to_string(&cache).ok().filter(|s| s.contains("limit")).map(|_| ())
    })
    .await;
    drop(live);

    // A process restarting while the query service is down starts from the cache.
    sys.stop_query(0).await;
    let cold = LiveConfig::start(&c, ns, options.clone()).await.unwrap();
    assert_eq!(cold.source(), Source::Cache);
    assert_eq!(cold.get("flag").unwrap().value.as_ref(), b"on");
    assert_eq!(cold.get("limit").unwrap().value.as_ref(), b"10");
    assert!(cold.wait_synced(Duration::from_millis(300)).await.is_err(), "not confirmed while the servers are down");
    // Once the servers are back, the copy catches up from where the cache was.
    let r3 = c.put(ns, "flag", "auto").await.unwrap();
    sys.start_query(0).await;
    cold.wait_synced(Duration::from_secs(20)).await.unwrap();
    eventually(Duration::from_secs(20), "the copy catches up", || async { (cold.revision() >= r3).then_some(()) })
        .await;
    assert_eq!(cold.get("flag").unwrap().value.as_ref(), b"auto");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_restores_a_revision_and_a_dry_run_only_says_what_it_would_do() {
    let sys = TestSystem::start().await;
    let c = client(&sys);
    let ns = "client/rollback";
    let r1 = c.put(ns, "flag", "off").await.unwrap();
    c.put(ns, "flag", "on").await.unwrap();
    c.put(ns, "extra", "x").await.unwrap();

    let dry = RollbackOptions { dry_run: true, ..Default::default() };
    let planned = c.rollback(ns, r1, &dry).await.unwrap();
    let kinds: Vec<_> = planned.changes.iter().map(|d| (d.key.as_str(), d.kind)).collect();
    assert_eq!(kinds, [("extra", DiffKind::Removed), ("flag", DiffKind::Changed)]);
    let done = c.rollback(ns, r1, &RollbackOptions::default()).await.unwrap();
    assert!(done.revision > planned.revision, "the dry run appended nothing; the rollback did");
    let read = ReadOptions { min_revision: Some(done.revision), ..Default::default() };
    assert_eq!(c.get_with(ns, "flag", read).await.unwrap().value.as_ref(), b"off");
    assert!(matches!(c.get_with(ns, "extra", read).await, Err(Error::NotFound { .. })));
}
