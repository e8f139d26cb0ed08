//! Load and a read of everything: a burst of writes, and every namespace
//! with its keys and history as a client sees them.

use veltrix_proto::v1::{ChangeRecord, HistoryRequest, KeyValue, ListNamespacesRequest, ListRequest, PutRequest};

use crate::{Command, Query, put};

/// Writes `count` change sets over `namespaces` namespaces with `concurrency`
/// writers; answers the highest revision.
pub async fn burst(cmd: &Command, count: usize, namespaces: usize, concurrency: usize) -> u64 {
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let mut c = cmd.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for i in (w..count).step_by(concurrency) {
                let ns = format!("burst/n{}", i % namespaces);
                let req =
                    PutRequest { request_id: format!("b{i}"), ..put(&ns, &format!("k{}", i % 7), &i.to_string()) };
                last = last.max(c.put(req).await.expect("burst put").into_inner().revision);
            }
            last
        }));
    }
    let mut last = 0;
    for t in tasks {
        last = last.max(t.await.expect("writer"));
    }
    last
}

/// Everything a client can read: every namespace with its keys and history.
pub type Dump = Vec<(String, u64, Vec<KeyValue>, Vec<ChangeRecord>)>;

pub async fn dump(q: &mut Query, min_revision: u64) -> Dump {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = q
            .list_namespaces(ListNamespacesRequest { page_size: 1000, page_token: token, ..Default::default() })
            .await
            .expect("namespaces")
            .into_inner();
        for ns in page.namespaces {
            let (mut kvs, mut records) = (Vec::new(), Vec::new());
            let mut t = String::new();
            loop {
                let r = ListRequest {
                    namespace: ns.name.clone(),
                    page_size: 1000,
                    page_token: t,
                    min_revision: Some(min_revision),
                    ..Default::default()
                };
                let p = q.list(r).await.expect("list").into_inner();
                kvs.extend(p.kvs);
                if p.next_page_token.is_empty() {
                    break;
                }
                t = p.next_page_token;
            }
            let mut t = String::new();
            loop {
                let r =
                    HistoryRequest { namespace: ns.name.clone(), page_size: 1000, page_token: t, ..Default::default() };
                let p = q.history(r).await.expect("history").into_inner();
                records.extend(p.records);
                if p.next_page_token.is_empty() {
                    break;
                }
                t = p.next_page_token;
            }
            out.push((ns.name, ns.revision, kvs, records));
        }
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}
