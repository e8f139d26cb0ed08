//! JSON Schemas against real servers: a violating Put, Apply, Promote and
//! Rollback are each refused naming the key and the JSON pointer, and
//! append nothing; a schema that current values break is refused naming
//! them; a whole-namespace Rollback past a SetSchema removes it; schema
//! changes show in History and Watch, never as keys; SetSchema needs admin.
#![allow(clippy::unwrap_used)] // tests may unwrap

use tonic::{Code, Request, Status, metadata::MetadataValue};
use tonic_types::StatusExt;
use veltrix_proto::v1::{
    ApplyRequest, Change, DeleteSchemaRequest, HistoryRequest, ListRequest, ListSchemasRequest, PromoteRequest,
    PutRequest, RollbackRequest, SetSchemaRequest, SetValue, WatchRequest, change, origin, schema_change,
    watch_response::Event,
};
use veltrix_testsystem::*;

const LIMITS: &str = r#"{"type":"object","properties":{"rps":{"type":"integer","maximum":100}},"required":["rps"]}"#;

fn set_schema(ns: &str, pattern: &str, schema: &str) -> SetSchemaRequest {
    SetSchemaRequest { namespace: ns.into(), key_pattern: pattern.into(), schema: schema.into(), ..Default::default() }
}

fn json(ns: &str, key: &str, value: &str) -> PutRequest {
    PutRequest { content_type: "application/json".into(), ..put(ns, key, value) }
}

/// The (field, description) of each BadRequest violation.
fn violations(status: &Status) -> Vec<(String, String)> {
    let details = status.get_error_details();
    let violations = details.bad_request().map(|b| b.field_violations.clone()).unwrap_or_default();
    violations.into_iter().map(|v| (v.field, v.description)).collect()
}

fn assert_violation(status: &Status, field: &str) {
    let found = violations(status);
    assert!(found.iter().any(|(f, d)| f == field && !d.is_empty()), "{field} in {found:?} ({})", status.message());
    assert!(status.message().contains(field.split('#').next().unwrap()), "{}", status.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_path_refuses_values_that_break_a_schema_and_appends_nothing() {
    let env = TestSystem::start().await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    let mut reader = StreamReader::new(&env.nats_url()).await;
    let ns = "sc/prod";
    let early = cmd.put(json(ns, "limits/api", r#"{"rps": 500}"#)).await.unwrap().into_inner().revision;
    cmd.put(json(ns, "limits/api", r#"{"rps": 50}"#)).await.unwrap();
    cmd.put(json("sc/staging", "limits/api", r#"{"rps": "fast"}"#)).await.unwrap();
    let set = cmd.set_schema(set_schema(ns, "limits/*", LIMITS)).await.unwrap().into_inner().revision;
    let count = reader.count().await;

    // Put: the failing part is named by its JSON pointer.
    let status = assert_code(cmd.put(json(ns, "limits/api", r#"{"rps": 101}"#)).await, Code::InvalidArgument);
    assert_violation(&status, "limits/api#/rps");
    // Not JSON at all, for a key a schema governs.
    let status = assert_code(cmd.put(put(ns, "limits/web", "rps=5")).await, Code::InvalidArgument);
    assert_violation(&status, "limits/web#");
    // Apply: all or nothing, every broken key named.
    let set_json = |key: &str, value: &str| Change {
        key: key.into(),
        expected_revision: None,
        op: Some(change::Op::Set(SetValue { value: value.into(), content_type: "application/json".into() })),
    };
    let apply = ApplyRequest {
        namespace: ns.into(),
        changes: vec![set_json("other", "1"), set_json("limits/a", "{}"), set_json("limits/b", r#"{"rps": -1.5}"#)],
        ..Default::default()
    };
    let status = assert_code(cmd.apply(apply).await, Code::InvalidArgument);
    assert_violation(&status, "limits/a#");
    assert_violation(&status, "limits/b#/rps");
    // Promote: the source's value breaks the target's schema.
    let promote =
        PromoteRequest { source_namespace: "sc/staging".into(), target_namespace: ns.into(), ..Default::default() };
    assert_violation(&assert_code(cmd.promote(promote.clone()).await, Code::InvalidArgument), "limits/api#/rps");
    // A dry run says so too, and appends nothing either way.
    let dry = PromoteRequest { dry_run: true, ..promote };
    assert_code(cmd.promote(dry).await, Code::InvalidArgument);
    // A prefix rollback keeps the current schemas: the old value breaks them.
    let back =
        RollbackRequest { namespace: ns.into(), to_revision: early, prefix: "limits/".into(), ..Default::default() };
    assert_violation(&assert_code(cmd.rollback(back).await, Code::InvalidArgument), "limits/api#/rps");
    assert_eq!(reader.count().await, count, "nothing appended");

    // Valid values pass; keys no pattern matches are not checked.
    cmd.put(json(ns, "limits/api", r#"{"rps": 100}"#)).await.unwrap();
    let ok = cmd.put(put(ns, "readme", "anything")).await.unwrap().into_inner().revision;
    // Schemas are not keys (read after both writes: the listing waits for the last).
    let list = ListRequest { namespace: ns.into(), min_revision: Some(ok), ..Default::default() };
    let keys: Vec<_> = q.list(list).await.unwrap().into_inner().kvs.into_iter().map(|kv| kv.key).collect();
    assert_eq!(keys, ["limits/api", "readme"]);
    let schemas = q.list_schemas(ListSchemasRequest { namespace: ns.into(), ..Default::default() }).await.unwrap();
    let schemas = schemas.into_inner().schemas;
    assert_eq!(
        schemas.iter().map(|s| (s.key_pattern.as_str(), s.schema.as_str(), s.revision)).collect::<Vec<_>>(),
        [("limits/*", LIMITS, set)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_that_current_values_break_is_refused_naming_them() {
    let env = TestSystem::builder().queries(0).start().await;
    let mut cmd = env.cmd();
    let mut reader = StreamReader::new(&env.nats_url()).await;
    let ns = "sc/check";
    for i in 0..25 {
        cmd.put(json(ns, &format!("svc/s{i:02}/limits"), r#"{"rps": 1000}"#)).await.unwrap();
    }
    cmd.put(json(ns, "svc/ok/limits", r#"{"rps": 1}"#)).await.unwrap();
    let count = reader.count().await;
    let status = assert_code(cmd.set_schema(set_schema(ns, "svc/*/limits", LIMITS)).await, Code::FailedPrecondition);
    let failure = status.get_error_details().precondition_failure().cloned().unwrap();
    let subjects: Vec<_> = failure.violations.iter().map(|v| v.subject.as_str()).collect();
    assert_eq!(subjects.len(), 20, "the first 20");
    assert_eq!(subjects[0], "svc/s00/limits");
    assert!(!subjects.contains(&"svc/ok/limits"));
    assert!(status.message().contains("25 current value(s)"), "{}", status.message());
    // A dry run is refused the same way; a schema nobody breaks passes it.
    let dry = SetSchemaRequest { dry_run: true, ..set_schema(ns, "svc/*/limits", LIMITS) };
    assert_code(cmd.set_schema(dry).await, Code::FailedPrecondition);
    let fine = SetSchemaRequest { dry_run: true, ..set_schema(ns, "svc/ok/*", LIMITS) };
    assert_eq!(cmd.set_schema(fine).await.unwrap().into_inner().revision, count);
    assert_eq!(reader.count().await, count, "nothing appended");

    // Bad input names its field.
    let bad = assert_code(cmd.set_schema(set_schema(ns, "a//b", LIMITS)).await, Code::InvalidArgument);
    assert!(bad.message().starts_with("key_pattern: "), "{}", bad.message());
    let bad = assert_code(cmd.set_schema(set_schema(ns, "a", r#"{"type": 3}"#)).await, Code::InvalidArgument);
    assert!(bad.message().starts_with("schema: "), "{}", bad.message());
    let remote = r#"{"$ref": "https://example.com/schema.json"}"#;
    assert_code(cmd.set_schema(set_schema(ns, "a", remote)).await, Code::InvalidArgument);
    let missing = DeleteSchemaRequest { namespace: ns.into(), key_pattern: "none/*".into(), ..Default::default() };
    assert_code(cmd.delete_schema(missing).await, Code::NotFound);
    // A stale expected revision is ABORTED.
    let stale = SetSchemaRequest { expected_revision: Some(1), ..set_schema(ns, "svc/ok/*", LIMITS) };
    assert_code(cmd.set_schema(stale).await, Code::Aborted);
    assert_eq!(reader.count().await, count);

    // Setting it again with the same request id appends once.
    let once = SetSchemaRequest { request_id: "schema-1".into(), ..set_schema(ns, "svc/ok/*", LIMITS) };
    let first = cmd.set_schema(once.clone()).await.unwrap().into_inner().revision;
    assert_eq!(cmd.set_schema(once).await.unwrap().into_inner().revision, first);
    assert_eq!(reader.count().await, count + 1);
    let (_, event_type, event) = reader.event(first).await;
    assert_eq!(event.schema_changes.len(), 1);
    assert_eq!(event.origin.unwrap().kind(), origin::Kind::Schema);
    // A version that cannot apply schemas refuses the event, not skips it.
    assert_eq!(event_type.as_deref(), Some("ChangeSetCommitted/2"));
    let (_, plain, _) = reader.event(1).await;
    assert_eq!(plain.as_deref(), Some("ChangeSetCommitted/1"), "writes keep the first version");

    // A retry is answered from the request id before anything is planned:
    // the same revision, even with an expected revision now stale, and for
    // a DeleteSchema whose schema is gone since its first attempt.
    let pinned = SetSchemaRequest {
        request_id: "schema-2".into(),
        expected_revision: Some(first),
        ..set_schema(ns, "svc/ok/*", "{}")
    };
    let second = cmd.set_schema(pinned.clone()).await.unwrap().into_inner().revision;
    assert_eq!(cmd.set_schema(pinned).await.unwrap().into_inner().revision, second);
    let delete = DeleteSchemaRequest {
        namespace: ns.into(),
        key_pattern: "svc/ok/*".into(),
        request_id: "del-1".into(),
        ..Default::default()
    };
    let deleted = cmd.delete_schema(delete.clone()).await.unwrap().into_inner().revision;
    assert_eq!(cmd.delete_schema(delete.clone()).await.unwrap().into_inner().revision, deleted);
    let reused = DeleteSchemaRequest { key_pattern: "svc/*/limits".into(), ..delete };
    assert_code(cmd.delete_schema(reused).await, Code::AlreadyExists);
    assert_eq!(reader.count().await, count + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_namespace_rollback_brings_back_the_schemas_in_force_and_history_and_watch_show_them() {
    let env = TestSystem::start().await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    let ns = "sc/hist";
    let before = cmd.put(json(ns, "limits/api", r#"{"rps": 5}"#)).await.unwrap().into_inner().revision;
    let watch = WatchRequest { namespace: ns.into(), start_revision: Some(before + 1), ..Default::default() };
    let mut stream = q.watch(watch.clone()).await.unwrap().into_inner();
    let elsewhere = WatchRequest { prefix: "other/".into(), ..watch };
    let mut elsewhere = q.watch(elsewhere).await.unwrap().into_inner();
    let set = cmd.set_schema(set_schema(ns, "limits/*", LIMITS)).await.unwrap().into_inner().revision;
    let changed = cmd.put(json(ns, "limits/api", r#"{"rps": 7}"#)).await.unwrap().into_inner().revision;

    let rolled = cmd.rollback(RollbackRequest { namespace: ns.into(), to_revision: before, ..Default::default() });
    let rolled = rolled.await.unwrap().into_inner();
    assert_eq!(rolled.changes.len(), 1);
    let removed: Vec<_> = rolled.schema_changes.iter().map(|c| (c.key_pattern.as_str(), c.op())).collect();
    assert_eq!(removed, [("limits/*", schema_change::Op::Delete)]);
    // The schema is gone: a value it refused now passes.
    cmd.put(put(ns, "limits/api", "not json")).await.unwrap();
    let now = ListSchemasRequest { namespace: ns.into(), at_revision: None };
    let schemas = q.list_schemas(ListSchemasRequest { at_revision: Some(rolled.revision), ..now.clone() });
    assert!(schemas.await.unwrap().into_inner().schemas.is_empty());
    // As of a revision, it was there.
    let then = q.list_schemas(ListSchemasRequest { at_revision: Some(changed), ..now }).await.unwrap().into_inner();
    assert_eq!(then.schemas.iter().map(|s| s.revision).collect::<Vec<_>>(), [set]);
    assert_eq!(then.revision, changed);

    // History: the schema change set, with its change and no keys.
    let history = HistoryRequest { namespace: ns.into(), ..Default::default() };
    let records = q.history(history).await.unwrap().into_inner().records;
    let schema = records.iter().find(|r| r.revision == set).unwrap();
    assert_eq!(schema.origin.as_ref().unwrap().kind(), origin::Kind::Schema);
    assert!(schema.changes.is_empty());
    assert_eq!(
        schema.schema_changes.iter().map(|c| (c.key_pattern.as_str(), c.op(), c.schema.as_str())).collect::<Vec<_>>(),
        [("limits/*", schema_change::Op::Set, LIMITS)]
    );
    let rollback = records.iter().find(|r| r.revision == rolled.revision).unwrap();
    assert_eq!(rollback.schema_changes.len(), 1);
    // Watch: the same change sets, in order.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        if let Some(Event::Change(c)) = stream.message().await.unwrap().unwrap().event {
            seen.push((c.revision, c.schema_changes.len(), c.changes.len()));
        }
    }
    assert_eq!(seen, [(set, 1, 0), (changed, 0, 1), (rolled.revision, 1, 1)]);
    // A watch of another prefix receives the schema changes, without keys.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        if let Some(Event::Change(c)) = elsewhere.message().await.unwrap().unwrap().event {
            seen.push((c.revision, c.schema_changes.len(), c.changes.len()));
        }
    }
    assert_eq!(seen, [(set, 1, 0), (rolled.revision, 1, 0)]);
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {token}")).unwrap());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_need_the_admin_role() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.yaml");
    let digest = veltrix_auth::token_digest;
    std::fs::write(
        &auth,
        format!(
            "tokens:\n  - {{identity: writer, sha256: \"{}\"}}\n  - {{identity: admin, sha256: \"{}\"}}\n\
             grants:\n  - {{identity: writer, namespaces: [\"sc/**\"], roles: [read, write]}}\n\
             \x20 - {{identity: admin, namespaces: [\"sc/**\"], roles: [admin]}}\n",
            digest("writer-token-123456"),
            digest("admin-token-1234567")
        ),
    )
    .unwrap();
    let env = TestSystem::builder().auth(&auth).start().await;
    let mut cmd = env.cmd();
    let mut reader = StreamReader::new(&env.nats_url()).await;
    let first = cmd.put(with_token(put("sc/auth", "first", "1"), "writer-token-123456")).await.unwrap();
    let first = first.into_inner().revision;
    let request = set_schema("sc/auth", "limits/*", LIMITS);
    let denied = cmd.set_schema(with_token(request.clone(), "writer-token-123456")).await;
    assert_code(denied, Code::PermissionDenied);
    let delete =
        DeleteSchemaRequest { namespace: "sc/auth".into(), key_pattern: "limits/*".into(), ..Default::default() };
    assert_code(cmd.delete_schema(with_token(delete.clone(), "writer-token-123456")).await, Code::PermissionDenied);
    assert_eq!(reader.count().await, 1);
    let set = cmd.set_schema(with_token(request, "admin-token-1234567")).await.unwrap().into_inner().revision;
    let (_, _, event) = reader.event(set).await;
    assert_eq!(event.actor, "admin");
    // Reading the schemas needs read.
    let mut q = env.q();
    let list = ListSchemasRequest { namespace: "sc/auth".into(), at_revision: Some(set) };
    assert_code(q.list_schemas(with_token(list.clone(), "admin-token-1234567")).await, Code::PermissionDenied);
    let schemas = q.list_schemas(with_token(list, "writer-token-123456")).await.unwrap().into_inner().schemas;
    assert_eq!(schemas.len(), 1);
    // A writer's whole-namespace rollback may not remove the schema; by
    // prefix it keeps the schemas and may.
    let before = cmd.put(with_token(json("sc/auth", "limits/api", r#"{"rps": 1}"#), "writer-token-123456")).await;
    let before = before.unwrap().into_inner().revision;
    let back = RollbackRequest { namespace: "sc/auth".into(), to_revision: first, ..Default::default() };
    let count = reader.count().await;
    let refused =
        assert_code(cmd.rollback(with_token(back.clone(), "writer-token-123456")).await, Code::PermissionDenied);
    assert!(refused.message().contains("admin"), "{}", refused.message());
    assert_eq!(reader.count().await, count);
    let by_prefix = RollbackRequest { prefix: "limits/".into(), ..back };
    let rolled = cmd.rollback(with_token(by_prefix, "writer-token-123456")).await.unwrap().into_inner();
    assert!(rolled.revision > before && rolled.schema_changes.is_empty());
    cmd.delete_schema(with_token(delete, "admin-token-1234567")).await.unwrap();
    // DeleteNamespace needs admin too; Blame needs read.
    cmd.put(with_token(put("sc/auth", "k", "v"), "writer-token-123456")).await.unwrap();
    let delete = veltrix_proto::v1::DeleteNamespaceRequest { namespace: "sc/auth".into(), ..Default::default() };
    let count = reader.count().await;
    assert_code(cmd.delete_namespace(with_token(delete.clone(), "writer-token-123456")).await, Code::PermissionDenied);
    assert_eq!(reader.count().await, count);
    let gone = cmd.delete_namespace(with_token(delete, "admin-token-1234567")).await.unwrap().into_inner();
    assert_eq!(gone.changes.len(), 2, "first and k");
    let blame = veltrix_proto::v1::BlameRequest { namespace: "sc/auth".into(), ..Default::default() };
    assert_code(q.blame(with_token(blame.clone(), "admin-token-1234567")).await, Code::PermissionDenied);
    q.blame(with_token(blame, "writer-token-123456")).await.unwrap();
}
