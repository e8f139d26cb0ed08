//! DeleteNamespace and Blame against real servers: a deleted namespace
//! leaves ListNamespaces (unless include_deleted), keeps its history, and a
//! write re-creates it; Blame names the actor, reason, time, request id and
//! origin of each live key's last change, now and as of a revision; History
//! shows the origin of every kind of change.
#![allow(clippy::unwrap_used)] // tests may unwrap

use tonic::Code;
use veltrix_proto::v1::{
    ApplyRequest, BlameRequest, Change, DeleteNamespaceRequest, GetRequest, HistoryRequest, ListNamespacesRequest,
    ListRequest, PromoteRequest, PutRequest, RollbackRequest, SetSchemaRequest, SetValue, change, origin,
};
use veltrix_testsystem::*;

fn delete_namespace(ns: &str) -> DeleteNamespaceRequest {
    DeleteNamespaceRequest { namespace: ns.into(), reason: "decommissioned".into(), ..Default::default() }
}

async fn names(q: &mut Query, include_deleted: bool) -> Vec<(String, bool)> {
    let request = ListNamespacesRequest { prefix: "life/".into(), include_deleted, ..Default::default() };
    let page = q.list_namespaces(request).await.unwrap().into_inner();
    page.namespaces.into_iter().map(|n| (n.name, n.deleted)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_leaves_the_listing_keeps_its_history_and_comes_back_when_written() {
    let env = TestSystem::start().await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    let mut reader = StreamReader::new(&env.nats_url()).await;
    cmd.put(put("life/keep", "k", "v")).await.unwrap();
    cmd.put(put("life/old", "a", "1")).await.unwrap();
    let schema = SetSchemaRequest {
        namespace: "life/old".into(),
        key_pattern: "j/*".into(),
        schema: r#"{"type":"integer"}"#.into(),
        ..Default::default()
    };
    cmd.set_schema(schema).await.unwrap();
    let last = cmd.put(put("life/old", "b", "2")).await.unwrap().into_inner().revision;
    let count = reader.count().await;

    // A dry run lists what would go and appends nothing.
    let dry = cmd.delete_namespace(DeleteNamespaceRequest { dry_run: true, ..delete_namespace("life/old") });
    let dry = dry.await.unwrap().into_inner();
    assert_eq!((dry.revision, dry.changes.len(), dry.schema_changes.len()), (last, 2, 1));
    assert_eq!(reader.count().await, count);

    let deleted = cmd.delete_namespace(delete_namespace("life/old")).await.unwrap().into_inner();
    assert_eq!(deleted.changes.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    let (_, _, event) = reader.event(deleted.revision).await;
    assert_eq!(event.origin.unwrap().kind(), origin::Kind::NamespaceDelete);
    assert_eq!(event.changes.len(), 2);
    // Deleting it again changes nothing; a namespace that never was is NOT_FOUND.
    let again = cmd.delete_namespace(delete_namespace("life/old")).await.unwrap().into_inner();
    assert_eq!((again.revision, again.changes.len()), (deleted.revision, 0));
    assert_code(cmd.delete_namespace(delete_namespace("life/never")).await, Code::NotFound);
    assert_eq!(reader.count().await, count + 1);

    q.get(GetRequest { min_revision: Some(deleted.revision), ..get("life/old", "a") }).await.ok();
    assert_eq!(names(&mut q, false).await, [("life/keep".to_owned(), false)]);
    assert_eq!(names(&mut q, true).await, [("life/keep".to_owned(), false), ("life/old".to_owned(), true)]);
    assert_code(q.get(get("life/old", "a")).await, Code::NotFound);
    // Its history stays readable, up to the deletion.
    let history = HistoryRequest { namespace: "life/old".into(), ..Default::default() };
    let records = q.history(history.clone()).await.unwrap().into_inner().records;
    assert_eq!(records.len(), 4);
    let last_record = records.last().unwrap();
    assert_eq!((last_record.reason.as_str(), last_record.schema_changes.len()), ("decommissioned", 1));
    let old = ListRequest { namespace: "life/old".into(), at_revision: Some(last), ..Default::default() };
    assert_eq!(q.list(old).await.unwrap().into_inner().kvs.len(), 2, "as it was, at a revision");

    // A write re-creates it, without the old keys or schemas.
    let back = cmd.put(put("life/old", "j/x", "not an integer")).await.unwrap().into_inner().revision;
    q.get(GetRequest { min_revision: Some(back), ..get("life/old", "j/x") }).await.unwrap();
    assert_eq!(names(&mut q, false).await, [("life/keep".to_owned(), false), ("life/old".to_owned(), false)]);
    let list = ListRequest { namespace: "life/old".into(), ..Default::default() };
    assert_eq!(q.list(list).await.unwrap().into_inner().kvs.len(), 1);

    // More keys than one write may change still go in one change set.
    for part in 0..2 {
        let changes = (0..750)
            .map(|i| Change {
                key: format!("k{part}-{i:03}"),
                expected_revision: None,
                op: Some(change::Op::Set(SetValue { value: b"v".to_vec(), content_type: String::new() })),
            })
            .collect();
        cmd.apply(ApplyRequest { namespace: "life/big".into(), changes, ..Default::default() }).await.unwrap();
    }
    let big = cmd.delete_namespace(delete_namespace("life/big")).await.unwrap().into_inner();
    assert_eq!(big.changes.len(), 1500);
    let (_, _, event) = reader.event(big.revision).await;
    assert_eq!(event.changes.len(), 1500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blame_names_who_last_set_each_key_and_history_the_origin_of_every_kind_of_change() {
    let env = TestSystem::start().await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    let ns = "life/blame";
    let said = |key: &str, value: &str, reason: &str, id: &str| PutRequest {
        reason: reason.into(),
        request_id: id.into(),
        ..put(ns, key, value)
    };
    let r1 = cmd.put(with_actor(said("db/url", "a", "first database", "req-1"), "alice")).await.unwrap();
    let r1 = r1.into_inner().revision;
    cmd.put(with_actor(said("db/pool", "5", "more connections", "req-2"), "bob")).await.unwrap();
    let r3 = cmd.put(with_actor(said("db/url", "b", "move database", "req-3"), "carol")).await.unwrap();
    let r3 = r3.into_inner().revision;
    cmd.put(put("life/staging", "feature", "on")).await.unwrap();

    let blame = |at: Option<u64>, page_size: u32, page_token: String| BlameRequest {
        namespace: ns.into(),
        at_revision: at,
        page_size,
        page_token,
        ..Default::default()
    };
    q.get(GetRequest { min_revision: Some(r3), ..get(ns, "db/url") }).await.unwrap();
    let now = q.blame(blame(None, 0, String::new())).await.unwrap().into_inner();
    let rows: Vec<_> = now
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.actor.as_str(), e.reason.as_str(), e.request_id.as_str(), e.mod_revision))
        .collect();
    assert_eq!(
        rows,
        [("db/pool", "bob", "more connections", "req-2", r1 + 1), ("db/url", "carol", "move database", "req-3", r3)]
    );
    assert!(now.entries.iter().all(|e| e.time.is_some() && e.origin.as_ref().unwrap().kind() == origin::Kind::Write));
    // As of a revision, and page by page (each page as of the first's revision).
    let then = q.blame(blame(Some(r1), 0, String::new())).await.unwrap().into_inner();
    assert_eq!(then.entries.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(), ["alice"]);
    let first = q.blame(blame(None, 1, String::new())).await.unwrap().into_inner();
    cmd.put(with_actor(put(ns, "db/url", "c"), "dave")).await.unwrap();
    let second = q.blame(blame(None, 1, first.next_page_token)).await.unwrap().into_inner();
    assert_eq!((second.entries[0].actor.as_str(), second.revision), ("carol", first.revision));

    // Every kind of change, then History names each one's origin.
    let rolled = cmd.rollback(RollbackRequest { namespace: ns.into(), to_revision: r3, ..Default::default() });
    let rolled = rolled.await.unwrap().into_inner().revision;
    let promote =
        PromoteRequest { source_namespace: "life/staging".into(), target_namespace: ns.into(), ..Default::default() };
    let promoted = cmd.promote(with_actor(promote, "erin")).await.unwrap().into_inner().revision;
    let schema = SetSchemaRequest {
        namespace: ns.into(),
        key_pattern: "x/**".into(),
        schema: "{}".into(),
        ..Default::default()
    };
    cmd.set_schema(schema).await.unwrap();
    let deleted = cmd.delete_namespace(DeleteNamespaceRequest { namespace: ns.into(), ..Default::default() });
    let deleted = deleted.await.unwrap().into_inner().revision;
    q.get(GetRequest { min_revision: Some(deleted), ..get(ns, "x") }).await.ok();

    // Blame before the deletion: the rollback and the promotion are named.
    let before = q.blame(blame(Some(promoted), 0, String::new())).await.unwrap().into_inner().entries;
    let origins: Vec<_> = before.iter().map(|e| (e.key.as_str(), e.origin.as_ref().unwrap().kind())).collect();
    assert_eq!(
        origins,
        [("db/pool", origin::Kind::Write), ("db/url", origin::Kind::Rollback), ("feature", origin::Kind::Promotion)]
    );
    let url = before.iter().find(|e| e.key == "db/url").unwrap();
    assert_eq!((url.mod_revision, url.origin.as_ref().unwrap().source_revision), (rolled, r3));
    assert!(q.blame(blame(None, 0, String::new())).await.unwrap().into_inner().entries.is_empty());

    let history = HistoryRequest { namespace: ns.into(), page_size: 100, ..Default::default() };
    let records = q.history(history).await.unwrap().into_inner().records;
    let kinds: Vec<_> = records.iter().map(|r| r.origin.as_ref().unwrap().kind()).collect();
    use origin::Kind::*;
    assert_eq!(kinds, [Write, Write, Write, Write, Rollback, Promotion, Schema, NamespaceDelete]);
    let promotion = records[5].origin.as_ref().unwrap();
    assert_eq!(promotion.source_namespace, "life/staging");
    assert_eq!(records[5].actor, "erin");
}
