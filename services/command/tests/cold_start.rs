//! A big namespace after a restart: its state loads in the background, so
//! calls whose deadline is far shorter than the load still make it
//! writable (each waits for the same load instead of starting one that its
//! deadline cancels).
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::Duration;

use veltrix_testsystem::*;

const NS: &str = "big/history";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_longer_than_the_deadline_goes_on_and_the_namespace_becomes_writable() {
    let metrics = metrics_addr();
    let mut sys =
        TestSystem::builder().queries(0).command(move |c| c.serve.metrics_listen = Some(metrics)).start().await;
    // 20,000 change sets in one namespace, from 8 writers.
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let mut cmd = sys.cmd();
            tokio::spawn(async move {
                for i in 0..2_500 {
                    cmd.put(put(NS, &format!("k{w}/{i}"), "v")).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    sys.stop_command(0).await;
    sys.start_command(0).await;
    // The metrics outlive the in-process restart: count from here.
    let loads = || async { metric(&scrape(metrics).await, "veltrix_command_namespace_loads_total").unwrap() };
    let before = loads().await;
    let mut cmd = sys.cmd();
    let mut attempts = 0;
    let revision = loop {
        attempts += 1;
        // One request id for every attempt: an attempt whose deadline ran
        // out may still have been appended, and its retry must not append
        // again.
        let put = veltrix_proto::v1::PutRequest { request_id: "after-restart".into(), ..put(NS, "after-restart", "v") };
        let mut request = tonic::Request::new(put);
        request.set_timeout(Duration::from_millis(5));
        match cmd.put(request).await {
            Ok(r) => break r.into_inner().revision,
            Err(s) => {
                let code = s.code();
                // The server's UNAVAILABLE, or the client's own timeout first.
                assert!(
                    matches!(code, tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled),
                    "{s:?}"
                );
                assert!(attempts < 2_000, "never writable with short deadlines");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert!(attempts > 1, "the first call's deadline was shorter than the load");
    assert_eq!(revision, 20_001);
    assert_eq!(loads().await - before, 1.0, "one load, shared by every call that waited for it");
}
