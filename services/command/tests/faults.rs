//! Faults of a real NATS: killed during writes, down at start-up, an
//! incompatible stream; and retries after the deduplication window.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::{Duration, Instant};

use tonic::Code;
use veltrix_proto::v1::PutRequest;
use veltrix_testkit::NatsServer;
use veltrix_testsystem::*;

#[tokio::test]
async fn a_retry_after_the_duplicate_window_appends_nothing() {
    let builder = TestSystem::builder().queries(0);
    let mut sys = builder.command(|c| c.duplicate_window = Duration::from_millis(500)).start().await;
    let mut c = sys.cmd();
    let req = PutRequest { request_id: "once".into(), expected_revision: Some(0), ..put("ns", "k", "v") };
    let r1 = c.put(req.clone()).await.expect("first").into_inner().revision;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(c.put(req.clone()).await.expect("retry").into_inner().revision, r1);

    // A fresh service (no cache: state rebuilt from the stream) knows it too.
    sys.stop_command(0).await;
    sys.start_command(0).await;
    assert_eq!(c.put(req).await.expect("retry on a fresh service").into_inner().revision, r1);
    assert_eq!(StreamReader::new(&sys.nats_url()).await.count().await, 1);
}

#[tokio::test]
async fn nats_killed_during_writes_is_unavailable_then_writes_resume_and_nothing_acknowledged_is_lost() {
    let mut sys = TestSystem::builder().queries(0).start().await;
    let c = sys.cmd();

    // Writers keep writing (each with its own request id) while NATS dies and
    // comes back; they record what was acknowledged.
    let stop = veltrix_server::CancellationToken::new();
    let mut writers = Vec::new();
    for w in 0..8 {
        let mut c = c.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let (mut acked, mut unavailable, mut n) = (Vec::new(), 0, 0);
            while !stop.is_cancelled() {
                n += 1;
                let req = PutRequest {
                    request_id: format!("w{w}-{n}"),
                    ..put(&format!("ns{}", w % 3), &format!("k{w}"), &n.to_string())
                };
                let mut request = tonic::Request::new(req);
                request.set_timeout(Duration::from_secs(2));
                let started = Instant::now();
                match c.put(request).await {
                    Ok(r) => acked.push((format!("w{w}-{n}"), r.into_inner().revision)),
                    Err(s) => {
                        assert_eq!(s.code(), Code::Unavailable, "NATS down is UNAVAILABLE: {s:?}");
                        assert!(started.elapsed() < Duration::from_secs(3), "answered within the deadline");
                        unavailable += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (acked, unavailable)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    sys.nats().kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    sys.nats().restart();
    // Writes resume without restarting the service.
    let mut probe = c.clone();
    eventually(Duration::from_secs(20), "writes succeed again after NATS restarts", || {
        let mut probe = probe.clone();
        async move { probe.put(put("probe", "k", "v")).await.ok() }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();

    let (mut acked, mut unavailable) = (Vec::new(), 0);
    for w in writers {
        let (a, u) = w.await.expect("writer");
        acked.extend(a);
        unavailable += u;
    }
    assert!(unavailable > 0, "some writes saw NATS down");
    assert!(!acked.is_empty());
    let stored = StreamReader::new(&sys.nats_url()).await.all().await;
    for (request_id, revision) in &acked {
        let found = stored.iter().find(|(seq, _)| seq == revision);
        assert!(
            found.is_some_and(|(_, e)| &e.request_id == request_id),
            "acknowledged write {request_id} at revision {revision} is in the stream"
        );
    }
    probe.put(put("probe", "k2", "v")).await.expect("still writing");
}

#[tokio::test]
async fn starts_before_nats_and_serves_once_it_is_up() {
    let mut nats = NatsServer::start();
    nats.kill();
    let mut sys = TestSystem::builder().nats(nats).queries(0).no_wait().start().await;
    let mut c = sys.cmd();
    let status = assert_code(c.put(put("ns", "k", "v")).await, Code::Unavailable);
    assert!(status.message().contains("not ready"), "{}", status.message());
    sys.nats().restart();
    sys.command_ready(0).await;
    c.put(put("ns", "k", "v")).await.expect("serving");
}

#[tokio::test]
async fn refuses_to_run_on_an_incompatible_stream() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    async_nats::jetstream::new(client)
        .create_stream(async_nats::jetstream::stream::Config {
            name: "VELTRIX_EVENTS".into(),
            subjects: vec!["veltrix.events.>".into()],
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .expect("create");
    let mut sys = TestSystem::builder().nats(nats).queries(0).no_wait().start().await;
    let svc = sys.take_command(0);
    let err = tokio::time::timeout(Duration::from_secs(20), svc.wait()).await.expect("stops").expect_err("refuses");
    assert!(err.to_string().contains("incompatible") && err.to_string().contains("file storage"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_refuses_writes_in_our_words() {
    let sys = TestSystem::builder().queries(0).command(|c| c.stream_max_bytes = 4096).start().await;
    let mut client = sys.cmd();
    let mut committed = 0;
    let refused = loop {
        match client.put(put("full/app", &format!("k{committed}"), &"x".repeat(200))).await {
            Ok(_) => committed += 1,
            Err(status) => break status,
        }
        assert!(committed < 100, "a 4 KiB stream fills up");
    };
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("event stream is full"), "{}", refused.message());
    assert!(!refused.message().to_lowercase().contains("maximum bytes"), "no NATS text: {}", refused.message());
    assert!(committed > 0, "writes went in until the stream was full");
}
