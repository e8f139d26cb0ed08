//! Promote against real servers: staging into prod with and without
//! `delete_missing`, a dry run that appends nothing, a caller who may not
//! read the source, and the origin History shows.
#![allow(clippy::unwrap_used)] // tests may unwrap

use tonic::{Code, Request, metadata::MetadataValue};
use veltrix_proto::v1::{GetRequest, HistoryRequest, ListRequest, PromoteRequest, origin};
use veltrix_testsystem::*;

fn promote(prefix: &str) -> PromoteRequest {
    PromoteRequest {
        source_namespace: "pay/staging".into(),
        target_namespace: "pay/prod".into(),
        prefix: prefix.into(),
        ..Default::default()
    }
}

async fn listing(q: &mut Query, ns: &str, min: u64) -> Vec<(String, Vec<u8>)> {
    q.get(GetRequest { min_revision: Some(min), ..get(ns, "probe") }).await.ok();
    let request = ListRequest { namespace: ns.into(), min_revision: Some(min), page_size: 1000, ..Default::default() };
    q.list(request).await.unwrap().into_inner().kvs.into_iter().map(|kv| (kv.key, kv.value.to_vec())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_is_promoted_into_prod_with_and_without_deleting_what_it_lacks() {
    let env = TestSystem::start().await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    for (k, v) in [("db/url", "staging-db"), ("db/pool", "9"), ("feature/x", "on")] {
        cmd.put(put("pay/staging", k, v)).await.unwrap();
    }
    let staged = cmd.put(put("pay/staging", "db/timeout", "5s")).await.unwrap().into_inner().revision;
    cmd.put(put("pay/prod", "db/url", "prod-db")).await.unwrap();
    let prod = cmd.put(put("pay/prod", "db/legacy", "1")).await.unwrap().into_inner().revision;

    // A dry run: the changes, nothing appended.
    let dry = cmd.promote(PromoteRequest { dry_run: true, ..promote("db/") }).await.unwrap().into_inner();
    assert_eq!(dry.revision, prod);
    assert_eq!(dry.changes.len(), 3, "db/pool and db/timeout come, db/url changes; db/legacy stays");

    let done = cmd.promote(promote("db/")).await.unwrap().into_inner();
    let now = listing(&mut q, "pay/prod", done.revision).await;
    let expected: Vec<(String, Vec<u8>)> =
        [("db/legacy", "1"), ("db/pool", "9"), ("db/timeout", "5s"), ("db/url", "staging-db")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect();
    assert_eq!(now, expected, "feature/ is outside the prefix; db/legacy is kept");

    // With delete_missing, what staging lacks goes.
    let with_delete = PromoteRequest { delete_missing: true, ..promote("db/") };
    let pruned = cmd.promote(with_delete).await.unwrap().into_inner();
    let now = listing(&mut q, "pay/prod", pruned.revision).await;
    assert!(!now.iter().any(|(k, _)| k == "db/legacy"), "{now:?}");

    // History says where it came from.
    let history = q
        .history(HistoryRequest { namespace: "pay/prod".into(), page_size: 100, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .records;
    let origin = history.last().unwrap().origin.clone().unwrap();
    assert_eq!(
        (origin.kind(), origin.source_namespace.as_str(), origin.source_revision),
        (origin::Kind::Promotion, "pay/staging", staged)
    );
    // Nothing more to do: nothing appended.
    let again = cmd.promote(PromoteRequest { delete_missing: true, ..promote("db/") }).await.unwrap().into_inner();
    assert_eq!((again.revision, again.changes.len()), (pruned.revision, 0));
    let same = PromoteRequest { target_namespace: "pay/staging".into(), ..promote("") };
    assert_code(cmd.promote(same).await, Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoting_needs_read_on_the_source_and_write_on_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.yaml");
    let (admin, deployer) = ("admin-token-1234567890", "deploy-token-1234567890");
    std::fs::write(
        &auth,
        format!(
            "tokens:\n  - {{identity: admin, sha256: \"{}\"}}\n  - {{identity: deployer, sha256: \"{}\"}}\n\
             grants:\n  - {{identity: admin, namespaces: [\"**\"], roles: [read, write]}}\n\
             \x20 - {{identity: deployer, namespaces: [\"pay/prod\"], roles: [read, write]}}\n",
            veltrix_auth::token_digest(admin),
            veltrix_auth::token_digest(deployer)
        ),
    )
    .unwrap();
    let env = TestSystem::builder().auth(&auth).start().await;
    let mut cmd = env.cmd();
    let as_caller = |token: &str, message: PromoteRequest| {
        let mut r = Request::new(message);
        r.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {token}")).unwrap());
        r
    };
    let mut seed = Request::new(put("pay/staging", "db/url", "staging-db"));
    seed.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {admin}")).unwrap());
    cmd.put(seed).await.unwrap();
    // The deployer may write prod but not read staging.
    let refused = cmd.promote(as_caller(deployer, promote(""))).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("pay/staging"), "{}", refused.message());
    cmd.promote(as_caller(admin, promote(""))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_keys_promote_only_those_and_are_checked() {
    let env = TestSystem::start().await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    for (k, v) in [("db/url", "staging-db"), ("db/pool", "9"), ("feature/x", "on")] {
        cmd.put(put("pay/staging", k, v)).await.unwrap();
    }
    cmd.put(put("pay/prod", "db/legacy", "1")).await.unwrap();
    let named = |keys: &[&str]| PromoteRequest { keys: keys.iter().map(|k| (*k).to_owned()).collect(), ..promote("") };
    // Only the ticked keys, each once, whatever their order; a named key the
    // target has and the source lacks is deleted only with delete_missing.
    let done = cmd.promote(named(&["feature/x", "db/url", "db/url", "db/legacy"])).await.unwrap().into_inner();
    let keys: Vec<_> = done.changes.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["db/url", "feature/x"]);
    let now = listing(&mut q, "pay/prod", done.revision).await;
    let names: Vec<_> = now.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["db/legacy", "db/url", "feature/x"], "db/pool was not named");
    let pruned =
        cmd.promote(PromoteRequest { delete_missing: true, ..named(&["db/legacy"]) }).await.unwrap().into_inner();
    assert_eq!(pruned.changes.len(), 1);
    assert!(!listing(&mut q, "pay/prod", pruned.revision).await.iter().any(|(k, _)| k == "db/legacy"));

    // Refused with the field named, and nothing appended.
    let status = assert_code(cmd.promote(named(&["db/url", "bad key"])).await, Code::InvalidArgument);
    assert!(status.message().contains("keys[1]"), "{}", status.message());
    let outside = PromoteRequest { prefix: "db/".into(), ..named(&["feature/x"]) };
    let status = assert_code(cmd.promote(outside).await, Code::InvalidArgument);
    assert!(status.message().contains("keys[0]") && status.message().contains("prefix"), "{}", status.message());
    let many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let status = assert_code(cmd.promote(PromoteRequest { keys: many, ..promote("") }).await, Code::InvalidArgument);
    assert!(status.message().contains("at most 1000"), "{}", status.message());
    let history = q
        .history(HistoryRequest { namespace: "pay/prod".into(), page_size: 100, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(history.last().map(|r| r.revision), Some(pruned.revision));
}
