//! Rollback against real servers: a namespace and a prefix across sets,
//! deletes and re-creates come back exactly as a point-in-time List showed
//! them; beyond the read model's retained history too; a stale expected
//! revision is ABORTED; a retry appends once; a dry run appends nothing;
//! History names the origin.
#![allow(clippy::unwrap_used)] // tests may unwrap

use tonic::Code;
use veltrix_proto::v1::{
    ApplyRequest, Change, DeleteKey, DeleteRequest, GetRequest, HistoryRequest, KeyValue, ListRequest, RollbackRequest,
    SetValue, change, diff_entry, origin,
};
use veltrix_testsystem::*;

fn rollback(ns: &str, to: u64) -> RollbackRequest {
    RollbackRequest { namespace: ns.into(), to_revision: to, ..Default::default() }
}

fn set(key: &str, value: &str, content_type: &str) -> Change {
    let op = change::Op::Set(SetValue { value: value.as_bytes().to_vec(), content_type: content_type.into() });
    Change { key: key.into(), expected_revision: None, op: Some(op) }
}

fn delete(key: &str) -> Change {
    Change { key: key.into(), expected_revision: None, op: Some(change::Op::Delete(DeleteKey {})) }
}

/// (key, value, content type) of every key, as of `at` (or now, once the
/// read model has applied `min`).
async fn keys(q: &mut Query, ns: &str, at: Option<u64>, min: u64) -> Vec<(String, Vec<u8>, String)> {
    if at.is_none() {
        q.get(GetRequest { min_revision: Some(min), ..get(ns, "probe") }).await.ok();
    }
    let request = ListRequest {
        namespace: ns.into(),
        at_revision: at,
        min_revision: Some(min),
        page_size: 1000,
        ..Default::default()
    };
    let kvs: Vec<KeyValue> = q.list(request).await.unwrap().into_inner().kvs;
    kvs.into_iter().map(|kv| (kv.key, kv.value.to_vec(), kv.content_type)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_and_a_prefix_come_back_exactly_as_they_were() {
    // Two change sets of history kept: rollbacks reach further, from the stream.
    let env = TestSystem::builder().history_keep(2).start().await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    let apply = |changes: Vec<Change>| ApplyRequest { namespace: "rb/app".into(), changes, ..Default::default() };
    let r1 = cmd
        .apply(apply(vec![
            set("db/url", "postgres://a", ""),
            set("db/pool", "{\"size\": 5}", "application/json"),
            set("ui/theme", "light", ""),
        ]))
        .await
        .unwrap()
        .into_inner()
        .revision;
    let before = keys(&mut q, "rb/app", None, r1).await;
    cmd.apply(apply(vec![set("db/url", "postgres://b", ""), set("db/new", "x", ""), delete("db/pool")])).await.unwrap();
    cmd.apply(apply(vec![set("db/pool", "7", "text/plain"), set("ui/theme", "dark", "")])).await.unwrap();
    let del = DeleteRequest { namespace: "rb/app".into(), key: "db/new".into(), ..Default::default() };
    cmd.delete(del).await.unwrap();
    let last = cmd.put(put("rb/app", "db/new", "again")).await.unwrap().into_inner().revision;

    // A prefix: db/ comes back as at r1; ui/ keeps its later value.
    let mut request = rollback("rb/app", r1);
    request.prefix = "db/".into();
    let rolled = cmd.rollback(request).await.unwrap().into_inner();
    assert!(rolled.revision > last);
    let kinds: Vec<_> = rolled.changes.iter().map(|c| (c.key.as_str(), c.kind())).collect();
    assert_eq!(
        kinds,
        [
            ("db/new", diff_entry::Kind::Removed),
            ("db/pool", diff_entry::Kind::Changed),
            ("db/url", diff_entry::Kind::Changed)
        ]
    );
    let now = keys(&mut q, "rb/app", None, rolled.revision).await;
    let db = |k: &[(String, Vec<u8>, String)]| {
        k.iter().filter(|(key, ..)| key.starts_with("db/")).cloned().collect::<Vec<_>>()
    };
    assert_eq!(db(&now), db(&before), "values and content types as at r1");
    assert!(now.contains(&("ui/theme".into(), b"dark".to_vec(), "text/plain".into())), "{now:?}");

    // The whole namespace, to r1: exactly the point-in-time listing of r1
    // (which the read model can no longer answer: it keeps two).
    let whole = cmd.rollback(rollback("rb/app", r1)).await.unwrap().into_inner();
    assert_eq!(keys(&mut q, "rb/app", None, whole.revision).await, before);
    let old = ListRequest { namespace: "rb/app".into(), at_revision: Some(r1), ..Default::default() };
    assert_code(q.list(old).await, Code::OutOfRange);

    // History says where each change set came from.
    let history = q
        .history(HistoryRequest { namespace: "rb/app".into(), page_size: 100, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .records;
    let latest = history.last().unwrap();
    let origin = latest.origin.clone().unwrap();
    assert_eq!(
        (origin.kind(), origin.source_namespace.as_str(), origin.source_revision),
        (origin::Kind::Rollback, "rb/app", r1)
    );
    assert!(history.iter().rev().skip(2).all(|r| r.origin.as_ref().unwrap().kind() == origin::Kind::Write));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_expected_revision_is_aborted_a_retry_appends_once_and_a_dry_run_nothing() {
    let env = TestSystem::builder().queries(0).start().await;
    let mut cmd = env.cmd();
    let mut reader = StreamReader::new(&env.nats_url()).await;
    let r1 = cmd.put(put("rb/ops", "k", "1")).await.unwrap().into_inner().revision;
    let r2 = cmd.put(put("rb/ops", "k", "2")).await.unwrap().into_inner().revision;
    let count = reader.count().await;

    // A dry run computes and appends nothing.
    let dry = cmd.rollback(RollbackRequest { dry_run: true, ..rollback("rb/ops", r1) }).await.unwrap().into_inner();
    assert_eq!(dry.revision, r2, "the current revision");
    assert_eq!(dry.changes.len(), 1);
    let change = &dry.changes[0];
    assert_eq!(
        (change.before.as_ref().unwrap().value.as_ref(), change.after.as_ref().unwrap().value.as_ref()),
        (&b"2"[..], &b"1"[..])
    );
    assert_eq!(reader.count().await, count);

    // The namespace is not at the expected revision: ABORTED, nothing appended.
    let stale = RollbackRequest { expected_revision: Some(r1), ..rollback("rb/ops", r1) };
    assert_code(cmd.rollback(stale).await, Code::Aborted);
    assert_eq!(reader.count().await, count);

    // Retried with its request id: appended once.
    let once = RollbackRequest { request_id: "rb-1".into(), expected_revision: Some(r2), ..rollback("rb/ops", r1) };
    let first = cmd.rollback(once.clone()).await.unwrap().into_inner().revision;
    let again = cmd.rollback(RollbackRequest { expected_revision: None, ..once }).await.unwrap().into_inner();
    assert_eq!((again.revision, again.changes.len()), (first, 0), "nothing more to do, nothing appended");
    assert_eq!(reader.count().await, count + 1);
    let (_, _, event) = reader.event(first).await;
    assert_eq!(event.origin.unwrap().source_revision, r1);

    // Bad input: INVALID_ARGUMENT naming the field.
    let zero = assert_code(cmd.rollback(rollback("rb/ops", 0)).await, Code::InvalidArgument);
    assert!(zero.message().starts_with("to_revision: "), "{}", zero.message());
    let bad = RollbackRequest { prefix: "a b".into(), ..rollback("rb/ops", r1) };
    assert!(assert_code(cmd.rollback(bad).await, Code::InvalidArgument).message().starts_with("prefix: "));
}
