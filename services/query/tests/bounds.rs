//! What bounds one call: a page stops at its byte budget and continues on
//! the next; no call holds the server past its time limit, whatever it
//! waits on (here a Redis that hangs).
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::Duration;

use tonic::Code;
use veltrix_proto::v1::{GetRequest, HistoryRequest, ListNamespacesRequest, ListRequest};
use veltrix_testsystem::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_stop_at_their_byte_budget_and_continue() {
    let env = TestSystem::builder().query(|c| c.max_response_bytes = 10 * 1024).start().await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    let value = "x".repeat(3 * 1024);
    let mut last = 0;
    for i in 0..10 {
        last = cmd.put(put("big", &format!("k{i}"), &value)).await.unwrap().into_inner().revision;
    }
    q.get(GetRequest { min_revision: Some(last), ..get("big", "k9") }).await.unwrap();

    let (mut keys, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let request = ListRequest { namespace: "big".into(), page_size: 100, page_token: token, ..Default::default() };
        let page = q.list(request).await.unwrap().into_inner();
        pages += 1;
        let bytes: usize = page.kvs.iter().map(|kv| kv.value.len()).sum();
        assert!(bytes <= 10 * 1024, "page {pages} carries {bytes} bytes");
        keys.extend(page.kvs.into_iter().map(|kv| kv.key));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(keys, (0..10).map(|i| format!("k{i}")).collect::<Vec<_>>(), "every key once, in order");
    assert!(pages >= 4, "10 values of 3 KiB take at least 4 pages of 10 KiB, not {pages}");

    let (mut revisions, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let request =
            HistoryRequest { namespace: "big".into(), page_size: 100, page_token: token, ..Default::default() };
        let page = q.history(request).await.unwrap().into_inner();
        pages += 1;
        revisions.extend(page.records.iter().map(|r| r.revision));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(revisions.len(), 10, "every change set once");
    assert!(revisions.windows(2).all(|w| w[0] < w[1]));
    assert!(pages >= 4, "history pages are bounded too, not {pages}");
}

/// A request with a deadline far beyond the server's limit.
fn long<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_secs(30));
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_call_holds_the_server_past_its_time_limit() {
    let env = TestSystem::builder().query(|c| c.serve.max_call_time = Duration::from_secs(1)).start().await;
    let (mut cmd, q) = (env.cmd(), env.q());
    let r = cmd.put(put("slow", "k", "v")).await.unwrap().into_inner().revision;
    q.clone().get(GetRequest { min_revision: Some(r), ..get("slow", "k") }).await.unwrap();

    // Redis hangs (its client gives up only after 2 s); each call that needs
    // it asks for a generous deadline, and the server's limit of 1 s answers
    // first.
    env.redis_pause();
    // The key just read is in the replica's read cache: answered all the same.
    let cached = q.clone().get(long(get("slow", "k"))).await.unwrap().into_inner();
    assert_eq!((cached.revision, cached.kv.map(|kv| kv.value.to_vec())), (r, Some(b"v".to_vec())));
    let (mut a, mut b, mut c, mut d) = (q.clone(), q.clone(), q.clone(), q.clone());
    let (get, list, history, names) = tokio::join!(
        a.get(long(get("slow", "never-read"))),
        b.list(long(ListRequest { namespace: "slow".into(), at_revision: Some(r), ..Default::default() })),
        c.history(long(HistoryRequest { namespace: "slow".into(), ..Default::default() })),
        d.list_namespaces(long(ListNamespacesRequest::default())),
    );
    env.redis_resume();
    for (rpc, code) in [
        ("Get", get.map(drop).unwrap_err().code()),
        ("List at a revision", list.map(drop).unwrap_err().code()),
        ("History", history.map(drop).unwrap_err().code()),
        ("ListNamespaces", names.map(drop).unwrap_err().code()),
    ] {
        assert_eq!(code, Code::DeadlineExceeded, "{rpc}");
    }
}
