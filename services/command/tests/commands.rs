//! Put, Delete and Apply against a real nats-server: the events they append,
//! compare-and-set, idempotency, not-found and all-or-nothing.
#![allow(clippy::unwrap_used)] // tests may unwrap

use tonic::Code;
use veltrix_proto::v1::{
    ApplyRequest, Change, DeleteKey, DeleteRequest, PutRequest, SetValue, change, event_key_change,
};
use veltrix_testsystem::*;

#[tokio::test]
async fn put_delete_and_apply_append_the_right_events() {
    let sys = TestSystem::builder().queries(0).start().await;
    let (mut client, mut reader) = (sys.cmd(), StreamReader::new(&sys.nats_url()).await);

    let mut req = with_actor(
        PutRequest {
            content_type: "application/json".into(),
            reason: "raise pool".into(),
            request_id: "req-1".into(),
            ..put("payments/prod", "db/pool", r#"{"max": 20}"#)
        },
        "alice",
    );
    req.metadata_mut()
        .insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().unwrap());
    let r1 = client.put(req).await.expect("put").into_inner().revision;
    assert_eq!(r1, 1);

    let (subject, event_type, e) = reader.event(r1).await;
    assert_eq!(subject, "veltrix.events.payments.prod");
    assert_eq!(event_type.as_deref(), Some("ChangeSetCommitted/1"));
    assert_eq!(e.namespace, "payments/prod");
    assert_eq!((e.actor.as_str(), e.reason.as_str(), e.request_id.as_str()), ("alice", "raise pool", "req-1"));
    assert!(e.time.is_some_and(|t| t.seconds > 1_700_000_000), "commit time recorded");
    assert!(e.traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"), "trace context: {}", e.traceparent);
    assert_eq!(e.request_digest.len(), 32);
    assert_eq!(e.changes.len(), 1);
    assert_eq!(e.changes[0].key, "db/pool");
    assert_eq!(e.changes[0].previous_mod_revision, 0);
    let Some(event_key_change::Op::Set(set)) = &e.changes[0].op else { panic!("a set") };
    assert_eq!((set.value.as_slice(), set.content_type.as_str()), (br#"{"max": 20}"#.as_slice(), "application/json"));

    // Default actor and content type; a second key.
    let r2 = client.put(put("payments/prod", "db/url", "postgres://db")).await.unwrap().into_inner().revision;
    let (_, _, e) = reader.event(r2).await;
    assert_eq!(e.actor, "anonymous");
    let Some(event_key_change::Op::Set(set)) = &e.changes[0].op else { panic!("a set") };
    assert_eq!(set.content_type, "text/plain");
    assert!(e.traceparent.starts_with("00-"), "a trace context even without an incoming one");

    let apply = ApplyRequest {
        namespace: "payments/prod".into(),
        changes: vec![
            Change {
                key: "db/pool".into(),
                expected_revision: Some(r1),
                op: Some(change::Op::Set(SetValue { value: b"{}".to_vec(), content_type: "application/json".into() })),
            },
            Change { key: "db/url".into(), expected_revision: None, op: Some(change::Op::Delete(DeleteKey {})) },
            Change {
                key: "new".into(),
                expected_revision: Some(0),
                op: Some(change::Op::Set(SetValue { value: b"x".to_vec(), content_type: String::new() })),
            },
        ],
        reason: "promote".into(),
        ..Default::default()
    };
    let r3 = client.apply(apply).await.expect("apply").into_inner().revision;
    assert_eq!(r3, 3);
    let (_, _, e) = reader.event(r3).await;
    assert_eq!(e.changes.len(), 3, "one event for the whole change set");
    assert_eq!(e.changes.iter().map(|c| c.previous_mod_revision).collect::<Vec<_>>(), vec![r1, r2, 0]);
    assert_eq!(e.changes.iter().map(|c| c.expected_revision).collect::<Vec<_>>(), vec![Some(r1), None, Some(0)]);
    assert!(matches!(e.changes[1].op, Some(event_key_change::Op::Delete(_))));

    let r4 = client
        .delete(DeleteRequest {
            namespace: "payments/prod".into(),
            key: "new".into(),
            expected_revision: Some(r3),
            reason: "cleanup".into(),
            ..Default::default()
        })
        .await
        .expect("delete")
        .into_inner()
        .revision;
    let (_, _, e) = reader.event(r4).await;
    assert!(matches!(e.changes[0].op, Some(event_key_change::Op::Delete(_))));
    assert_eq!((e.changes[0].previous_mod_revision, e.reason.as_str()), (r3, "cleanup"));
    assert_eq!(reader.count().await, 4);
}

#[tokio::test]
async fn compare_and_set_and_not_found() {
    let sys = TestSystem::builder().queries(0).start().await;
    let (mut client, mut reader) = (sys.cmd(), StreamReader::new(&sys.nats_url()).await);
    let create = PutRequest { expected_revision: Some(0), ..put("a", "k", "1") };
    let r1 = client.put(create.clone()).await.expect("create").into_inner().revision;

    let status = assert_code(client.put(create).await, Code::Aborted);
    assert!(
        status.message().contains("'k'") && status.message().contains("current mod_revision is 1"),
        "{}",
        status.message()
    );
    let status = assert_code(
        client.put(PutRequest { expected_revision: Some(r1 + 5), ..put("a", "k", "2") }).await,
        Code::Aborted,
    );
    assert!(status.message().contains("expected_revision 6"), "{}", status.message());
    let r2 = client
        .put(PutRequest { expected_revision: Some(r1), ..put("a", "k", "2") })
        .await
        .expect("cas")
        .into_inner()
        .revision;
    assert!(r2 > r1);

    let missing = DeleteRequest { namespace: "a".into(), key: "nope".into(), ..Default::default() };
    let status = assert_code(client.delete(missing).await, Code::NotFound);
    assert!(status.message().contains("'nope'"), "{}", status.message());
    let stale_delete =
        DeleteRequest { namespace: "a".into(), key: "k".into(), expected_revision: Some(r1), ..Default::default() };
    assert_code(client.delete(stale_delete).await, Code::Aborted);
    assert_eq!(reader.count().await, 2, "rejections append nothing");
}

#[tokio::test]
async fn apply_is_all_or_nothing() {
    let sys = TestSystem::builder().queries(0).start().await;
    let (mut client, mut reader) = (sys.cmd(), StreamReader::new(&sys.nats_url()).await);
    client.put(put("ns", "a", "1")).await.unwrap();
    let set = |k: &str, expected: Option<u64>| Change {
        key: k.into(),
        expected_revision: expected,
        op: Some(change::Op::Set(SetValue { value: b"v".to_vec(), content_type: String::new() })),
    };
    let failing = ApplyRequest {
        namespace: "ns".into(),
        changes: vec![set("b", None), set("c", Some(0)), set("a", Some(0))],
        ..Default::default()
    };
    let status = assert_code(client.apply(failing).await, Code::Aborted);
    assert!(status.message().contains("'a'"), "{}", status.message());
    let missing = ApplyRequest {
        namespace: "ns".into(),
        changes: vec![
            set("b", None),
            Change { key: "zzz".into(), expected_revision: None, op: Some(change::Op::Delete(DeleteKey {})) },
        ],
        ..Default::default()
    };
    assert_code(client.apply(missing).await, Code::NotFound);
    assert_eq!(reader.count().await, 1, "a failing precondition appends nothing");
}

#[tokio::test]
async fn retries_with_the_same_request_id_append_once() {
    let sys = TestSystem::builder().queries(0).start().await;
    let (mut client, mut reader) = (sys.cmd(), StreamReader::new(&sys.nats_url()).await);
    let req = PutRequest { request_id: "deploy-42".into(), expected_revision: Some(0), ..put("ns", "k", "v") };
    let r1 = client.put(req.clone()).await.expect("first").into_inner().revision;
    // The retry carries a now-stale expected_revision (0) and still succeeds.
    let r2 = client.put(req.clone()).await.expect("retry").into_inner().revision;
    assert_eq!(r1, r2);
    assert_eq!(reader.count().await, 1);

    let other = PutRequest { value: b"different".to_vec(), ..req };
    let status = assert_code(client.put(other).await, Code::AlreadyExists);
    assert!(status.message().contains("deploy-42") && status.message().contains("revision 1"), "{}", status.message());
    assert_eq!(reader.count().await, 1);
}
