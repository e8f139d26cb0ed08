//! The fleet ledger against real servers, with in-process Sync clients:
//! 1,000 clients with scripted ACK/NACK give exact counts in ListClients and
//! GetRevisionStatus; a client that stops acknowledging turns PENDING then
//! STALE; a dropped stream is DISCONNECTED; a LiveConfig with a validator
//! NACKs what it refuses and keeps its copy; restarting the query service
//! keeps the ledger; a NACK is said again on the next stream. The metrics
//! (`veltrix_clients` per namespace and state, `veltrix_sync_reports_total`
//! per kind) follow the ledger.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use veltrix_client::{
    Client, ClientFilter, ClientState, LiveConfig, LiveOptions, SyncHandle, SyncOptions, SyncStep, WatchEvent,
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

async fn system() -> TestSystem {
    TestSystem::builder()
        .query(|c| {
            c.fleet.client_stale_after = Duration::from_secs(2);
            c.fleet.client_heartbeat = Duration::from_secs(1);
            c.fleet.ledger_flush_interval = Duration::from_millis(50);
        })
        .start()
        .await
}

/// The next revision-carrying event (a snapshot or a change).
async fn next_revision(handle: &mut SyncHandle) -> u64 {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), handle.next()).await.unwrap().unwrap().unwrap() {
            WatchEvent::Snapshot { revision, .. } => return revision,
            WatchEvent::Changes(set) => return set.revision,
            WatchEvent::Progress(_) => {}
        }
    }
}

async fn counts(c: &Client, ns: &str) -> std::collections::BTreeMap<&'static str, usize> {
    let mut out = std::collections::BTreeMap::new();
    for info in c.clients(ns, &ClientFilter::default()).await.unwrap() {
        *out.entry(info.state.as_str()).or_default() += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sync_clients_give_exact_counts() {
    let metrics = veltrix_testsystem::metrics_addr();
    let sys = TestSystem::builder()
        .query(move |c| {
            c.fleet.client_stale_after = Duration::from_secs(2);
            c.fleet.client_heartbeat = Duration::from_secs(1);
            c.fleet.ledger_flush_interval = Duration::from_millis(50);
            c.fleet.clients_gauge_interval = Duration::from_millis(200);
            c.serve.metrics_listen = Some(metrics);
        })
        .start()
        .await;
    let c = client(&sys);
    let ns = "fleet/big";
    let first = c.put(ns, "port", "80").await.unwrap();
    // Every snapshot below is at or after the write.
    eventually(Duration::from_secs(10), "the write is readable", || async {
        (c.revision(ns).await.unwrap() >= first).then_some(())
    })
    .await;
    let mut handles = Vec::new();
    for i in 0..1000 {
        let mut o = SyncOptions::new(format!("web-{i:04}"));
        o.labels.insert("zone".into(), if i % 2 == 0 { "a" } else { "b" }.into());
        o.keepalive = Duration::from_millis(500);
        handles.push(c.sync(ns, o));
    }
    for h in &mut handles {
        let r = next_revision(h).await;
        h.ack(r, "");
    }
    eventually(Duration::from_secs(30), "all 1,000 clients synced", || async {
        (counts(&c, ns).await.get("SYNCED") == Some(&1000)).then_some(())
    })
    .await;

    let base = c.revision(ns).await.unwrap();
    let target = c.put(ns, "port", "81").await.unwrap();
    // 700 apply it, 200 reject it (two ways), 100 say nothing.
    for (i, h) in handles.iter_mut().enumerate() {
        assert_eq!(next_revision(h).await, target);
        match i {
            0..700 => h.ack(target, "sha256:x"),
            700..850 => h.nack(target, base, SyncStep::Check, "invalid port"),
            850..900 => h.nack(target, base, SyncStep::Health, "unhealthy"),
            _ => {}
        }
    }
    let status = eventually(Duration::from_secs(30), "the revision status adds up", || async {
        let s = c.revision_status(ns, Some(target)).await.unwrap();
        (s.applied == 700 && s.rejected == 200 && s.pending + s.stale == 100).then_some(s)
    })
    .await;
    assert_eq!(status.disconnected, 0);
    assert_eq!(status.rejections.len(), 2);
    assert_eq!((status.rejections[0].step.as_str(), status.rejections[0].error.as_str()), ("check", "invalid port"));
    assert_eq!(status.rejections[0].count, 150);
    assert_eq!(status.rejections[0].client_ids.len(), 10);
    assert_eq!(status.rejections[1].count, 50);
    assert_eq!(c.revision_status(ns, None).await.unwrap().revision, target, "absent: the latest");

    // The silent ones turn STALE after --client-stale-after.
    let by_state = eventually(Duration::from_secs(30), "pending turns stale", || async {
        let m = counts(&c, ns).await;
        (m.get("STALE") == Some(&100)).then_some(m)
    })
    .await;
    assert_eq!((by_state.get("SYNCED"), by_state.get("REJECTED")), (Some(&700), Some(&200)));
    let rejected =
        c.clients(ns, &ClientFilter { state: Some(ClientState::Rejected), selector: "zone=a".into() }).await.unwrap();
    assert_eq!(rejected.len(), 100, "state filter and label selector");
    let e = rejected[0].last_error.as_ref().unwrap();
    assert_eq!((e.revision, e.step.as_str()), (target, "check"));
    assert_eq!(rejected[0].applied_revision, base);
    assert_eq!(rejected[0].agent, format!("veltrix-client/{}", env!("CARGO_PKG_VERSION")));
    let gauge = |text: &str, state: &str| {
        veltrix_testsystem::labelled(
            text,
            "veltrix_clients",
            &[r#"namespace="fleet/big""#, &format!("state=\"{state}\"")],
        )
    };
    let text = eventually(Duration::from_secs(10), "the clients gauge follows the ledger", || async {
        let text = veltrix_testsystem::scrape(metrics).await;
        (gauge(&text, "stale") == 100.0).then_some(text)
    })
    .await;
    assert_eq!((gauge(&text, "synced"), gauge(&text, "rejected"), gauge(&text, "pending")), (700.0, 200.0, 0.0));
    let reports =
        |kind: &str| veltrix_testsystem::labelled(&text, "veltrix_sync_reports_total", &[&format!("kind=\"{kind}\"")]);
    assert_eq!(reports("subscribe"), 1000.0);
    assert!(reports("ack") >= 1700.0, "{} acks", reports("ack"));
    assert!(reports("nack") >= 200.0, "{} nacks", reports("nack"));

    // Dropping streams: DISCONNECTED.
    handles.truncate(900);
    eventually(Duration::from_secs(30), "dropped streams are disconnected", || async {
        (counts(&c, ns).await.get("DISCONNECTED") == Some(&100)).then_some(())
    })
    .await;
    let s = c.revision_status(ns, Some(target)).await.unwrap();
    assert_eq!((s.applied, s.rejected, s.disconnected, s.pending + s.stale), (700, 200, 100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_config_acks_what_it_takes_nacks_what_it_refuses_and_the_ledger_survives_a_restart() {
    let mut sys = system().await;
    let c = client(&sys);
    let ns = "fleet/live";
    let first = c.put(ns, "port", "80").await.unwrap();
    let validate: veltrix_client::Validator = Arc::new(|s: &veltrix_client::Snapshot| match s.entries.get("port") {
        Some(e) if e.value.as_ref() == b"bad" => Err("port must be a number".to_owned()),
        _ => Ok(()),
    });
    let mut sync = SyncOptions::new("live-1");
    sync.keepalive = Duration::from_millis(300);
    let live =
        LiveConfig::start(&c, ns, LiveOptions { sync: Some(sync), validate: Some(validate), ..Default::default() })
            .await
            .unwrap();
    live.wait_synced(Duration::from_secs(10)).await.unwrap();
    // The snapshot may predate the write's projection; the change follows.
    eventually(Duration::from_secs(10), "the live copy has the write", || async {
        (live.revision() >= first).then_some(())
    })
    .await;
    let state = |c: Client| async move {
        let all = c.clients(ns, &ClientFilter::default()).await.unwrap();
        all.into_iter().next().map(|i| (i.state, i.applied_revision))
    };
    eventually(Duration::from_secs(10), "synced", || async {
        (state(c.clone()).await == Some((ClientState::Synced, first))).then_some(())
    })
    .await;

    let bad = c.put(ns, "port", "bad").await.unwrap();
    eventually(Duration::from_secs(10), "rejected", || async {
        (state(c.clone()).await == Some((ClientState::Rejected, first))).then_some(())
    })
    .await;
    assert_eq!(live.get("port").unwrap().value.as_ref(), b"80", "the refused copy is not taken");
    let s = c.revision_status(ns, Some(bad)).await.unwrap();
    assert_eq!((s.rejected, s.rejections[0].error.as_str()), (1, "port must be a number"));

    let fixed = c.put(ns, "port", "81").await.unwrap();
    eventually(Duration::from_secs(10), "synced again", || async {
        (state(c.clone()).await == Some((ClientState::Synced, fixed))).then_some(())
    })
    .await;

    // Restart the query service: the ledger is in Redis, the client
    // resubscribes on its own.
    sys.stop_query(0).await;
    sys.start_query(0).await;
    let c = client(&sys);
    eventually(Duration::from_secs(20), "still synced after the restart", || async {
        (state(c.clone()).await == Some((ClientState::Synced, fixed))).then_some(())
    })
    .await;
    assert_eq!(live.get("port").unwrap().value.as_ref(), b"81");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nack_is_sent_again_after_a_reconnect() {
    let mut sys = system().await;
    let c = client(&sys);
    let ns = "fleet/again";
    let first = c.put(ns, "port", "80").await.unwrap();
    eventually(Duration::from_secs(10), "the write is readable", || async {
        (c.revision(ns).await.unwrap() >= first).then_some(())
    })
    .await;
    let mut o = SyncOptions::new("web-1");
    o.keepalive = Duration::from_millis(300);
    let mut h = c.sync(ns, o);
    let base = next_revision(&mut h).await;
    h.ack(base, "");
    let bad = c.put(ns, "port", "x").await.unwrap();
    assert_eq!(next_revision(&mut h).await, bad);
    h.nack(bad, base, SyncStep::Check, "invalid port");
    let rejected = |c: Client| async move {
        let all = c.clients(ns, &ClientFilter::default()).await.unwrap();
        let i = all.into_iter().next()?;
        let e = i.last_error?;
        (i.state == ClientState::Rejected
            && i.applied_revision == base
            && e.revision == bad
            && e.error == "invalid port")
            .then_some(())
    };
    eventually(Duration::from_secs(10), "rejected", || rejected(c.clone())).await;

    // The report is lost (as if it had died with a broken stream) and the
    // stream breaks: the client says it again on its next stream.
    sys.stop_query(0).await;
    let out = std::process::Command::new("redis-cli")
        .args(["-u", &sys.redis_url(), "HDEL", &format!("veltrix:ledger:{{{ns}}}"), "web-1"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "the entry was there and is gone");
    sys.start_query(0).await;
    let c = client(&sys);
    eventually(Duration::from_secs(20), "rejected again after the reconnect", || rejected(c.clone())).await;
}
