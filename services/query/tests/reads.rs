//! Reads against real servers: read-your-writes, listing and paging,
//! history, point-in-time reads, namespaces, and bad input.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::Duration;

use tonic::Code;
use veltrix_proto::v1::{
    ApplyRequest, Change, DeleteRequest, GetRequest, HistoryRequest, ListNamespacesRequest, ListRequest, PutRequest,
    SetValue, change, key_change::Op,
};
use veltrix_testsystem::*;

#[tokio::test]
async fn read_your_writes_under_32_concurrent_writers() {
    let env = TestSystem::start().await;
    let mut tasks = Vec::new();
    for w in 0..32 {
        let (mut cmd, mut q) = (env.cmd(), env.q());
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let value = format!("w{w}-{i}");
                let revision = cmd.put(put("ryw", &format!("key{w}"), &value)).await.unwrap().into_inner().revision;
                let got = q
                    .get(GetRequest { min_revision: Some(revision), ..get("ryw", &format!("key{w}")) })
                    .await
                    .unwrap()
                    .into_inner();
                assert!(got.revision >= revision);
                let kv = got.kv.unwrap();
                assert_eq!((kv.value.to_vec(), kv.mod_revision), (value.into_bytes(), revision), "sees its own write");
                let list = q
                    .list(ListRequest { namespace: "ryw".into(), min_revision: Some(revision), ..Default::default() })
                    .await
                    .unwrap()
                    .into_inner();
                assert!(list.revision >= revision && list.kvs.iter().any(|kv| kv.mod_revision == revision));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn key_values_carry_revisions_versions_and_authorship() {
    let env = TestSystem::start().await;
    let mut req = tonic::Request::new(PutRequest {
        content_type: "application/json".into(),
        ..put("app/prod", "db/pool", "{\"max\":1}")
    });
    req.metadata_mut().insert("x-veltrix-actor", "alice".parse().unwrap());
    let r1 = env.cmd().put(req).await.unwrap().into_inner().revision;
    let r2 = env.cmd().put(put("app/prod", "db/pool", "{}")).await.unwrap().into_inner().revision;
    let kv = env
        .q()
        .get(GetRequest { min_revision: Some(r2), ..get("app/prod", "db/pool") })
        .await
        .unwrap()
        .into_inner()
        .kv
        .unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (r1, r2, 2));
    assert_eq!((kv.content_type.as_str(), kv.updated_by.as_str()), ("text/plain", "anonymous"));
    assert!(kv.updated_at.is_some());
    let del = DeleteRequest { namespace: "app/prod".into(), key: "db/pool".into(), ..Default::default() };
    let r3 = env.cmd().delete(del).await.unwrap().into_inner().revision;
    let status = assert_code(
        env.q().get(GetRequest { min_revision: Some(r3), ..get("app/prod", "db/pool") }).await,
        Code::NotFound,
    );
    assert!(status.message().contains("db/pool"), "{}", status.message());
    let r4 = env.cmd().put(put("app/prod", "db/pool", "again")).await.unwrap().into_inner().revision;
    let kv = env
        .q()
        .get(GetRequest { min_revision: Some(r4), ..get("app/prod", "db/pool") })
        .await
        .unwrap()
        .into_inner()
        .kv
        .unwrap();
    assert_eq!((kv.create_revision, kv.version), (r4, 1), "a re-created key starts over");
}

#[tokio::test]
async fn list_pages_are_consistent_with_the_first_page() {
    let env = TestSystem::start().await;
    let mut last = 0;
    for i in 0..25 {
        last = env.cmd().put(put("pages", &format!("cfg/{i:02}"), &i.to_string())).await.unwrap().into_inner().revision;
    }
    env.cmd().put(put("pages", "other/x", "not in the prefix")).await.unwrap();
    let first = env
        .q()
        .list(ListRequest {
            namespace: "pages".into(),
            prefix: "cfg/".into(),
            page_size: 10,
            min_revision: Some(last),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.kvs.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
        (0..10).map(|i| format!("cfg/{i:02}")).collect::<Vec<_>>()
    );
    let r = first.revision;
    // Between pages: a new key in the middle of the next page, a deleted key and a changed one.
    env.cmd().put(put("pages", "cfg/10a", "new")).await.unwrap();
    env.cmd()
        .delete(DeleteRequest { namespace: "pages".into(), key: "cfg/12".into(), ..Default::default() })
        .await
        .unwrap();
    let w = env.cmd().put(put("pages", "cfg/15", "changed")).await.unwrap().into_inner().revision;
    env.q().get(GetRequest { min_revision: Some(w), ..get("pages", "cfg/15") }).await.unwrap();
    let mut keys: Vec<String> = first.kvs.iter().map(|k| k.key.clone()).collect();
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let page = env
            .q()
            .list(ListRequest {
                namespace: "pages".into(),
                prefix: "cfg/".into(),
                page_size: 10,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.revision, r, "every page answers as of the first");
        for kv in &page.kvs {
            if kv.key == "cfg/15" {
                assert_eq!(&kv.value[..], b"15", "as of the first page's revision");
            }
        }
        keys.extend(page.kvs.into_iter().map(|k| k.key));
        token = page.next_page_token;
    }
    assert_eq!(keys, (0..25).map(|i| format!("cfg/{i:02}")).collect::<Vec<_>>());

    // Tokens are tamper-proof and bound to their request.
    let page = env
        .q()
        .list(ListRequest { namespace: "pages".into(), page_size: 5, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut forged = page.next_page_token.clone();
    forged.replace_range(3..4, if &forged[3..4] == "A" { "B" } else { "A" });
    for token in [forged, "garbage".into()] {
        let status = assert_code(
            env.q()
                .list(ListRequest { namespace: "pages".into(), page_size: 5, page_token: token, ..Default::default() })
                .await,
            Code::InvalidArgument,
        );
        assert!(status.message().starts_with("page_token:"), "{}", status.message());
    }
    // Any other parameter that shapes the answer refuses the token.
    let issued =
        ListRequest { namespace: "pages".into(), page_size: 5, page_token: page.next_page_token, ..Default::default() };
    for other in [
        ListRequest { namespace: "other".into(), ..issued.clone() },
        ListRequest { prefix: "cfg/".into(), ..issued.clone() },
        ListRequest { at_revision: Some(w), ..issued.clone() },
        ListRequest { page_size: 6, ..issued.clone() },
    ] {
        assert_code(env.q().list(other).await, Code::InvalidArgument);
    }
    env.q().list(issued).await.expect("the same request takes its token");
    let history = HistoryRequest { namespace: "pages".into(), page_size: 2, ..Default::default() };
    let token = env.q().history(history.clone()).await.unwrap().into_inner().next_page_token;
    let issued = HistoryRequest { page_token: token, ..history };
    for other in [
        HistoryRequest { key: "cfg/01".into(), ..issued.clone() },
        HistoryRequest { from_revision: 2, ..issued.clone() },
        HistoryRequest { to_revision: w, ..issued.clone() },
        HistoryRequest { page_size: 3, ..issued.clone() },
    ] {
        assert_code(env.q().history(other).await, Code::InvalidArgument);
    }
    env.q().history(issued).await.expect("the same request takes its token");
}

#[tokio::test]
async fn history_of_a_key_and_of_a_namespace() {
    let env = TestSystem::start().await;
    let mut req =
        tonic::Request::new(PutRequest { reason: "create".into(), request_id: "r-1".into(), ..put("hist", "a", "1") });
    req.metadata_mut().insert("x-veltrix-actor", "alice".parse().unwrap());
    let r1 = env.cmd().put(req).await.unwrap().into_inner().revision;
    let apply = ApplyRequest {
        namespace: "hist".into(),
        reason: "both".into(),
        request_id: "r-2".into(),
        changes: vec![
            Change {
                key: "a".into(),
                expected_revision: Some(r1),
                op: Some(change::Op::Set(SetValue { value: b"2".to_vec(), content_type: String::new() })),
            },
            Change {
                key: "b".into(),
                expected_revision: None,
                op: Some(change::Op::Set(SetValue { value: b"x".to_vec(), content_type: String::new() })),
            },
        ],
    };
    let r2 = env.cmd().apply(apply).await.unwrap().into_inner().revision;
    let r3 = env
        .cmd()
        .delete(DeleteRequest {
            namespace: "hist".into(),
            key: "a".into(),
            reason: "gone".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .revision;
    env.q().get(GetRequest { min_revision: Some(r3), ..get("hist", "b") }).await.unwrap();

    let ns =
        env.q().history(HistoryRequest { namespace: "hist".into(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(ns.records.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![r1, r2, r3]);
    let first = &ns.records[0];
    assert_eq!(
        (first.actor.as_str(), first.reason.as_str(), first.request_id.as_str(), first.namespace.as_str()),
        ("alice", "create", "r-1", "hist")
    );
    assert!(first.time.is_some());
    assert_eq!(ns.records[1].changes.len(), 2, "a namespace record has every change");

    let key = env
        .q()
        .history(HistoryRequest { namespace: "hist".into(), key: "a".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(key.records.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![r1, r2, r3]);
    let second = &key.records[1];
    assert_eq!(second.changes.len(), 1, "only that key's change");
    assert_eq!(
        (second.changes[0].key.as_str(), second.changes[0].op, second.changes[0].previous_mod_revision),
        ("a", Op::Set as i32, r1)
    );
    assert_eq!((second.reason.as_str(), second.request_id.as_str()), ("both", "r-2"));
    let third = &key.records[2].changes[0];
    assert_eq!((third.op, third.previous_mod_revision), (Op::Delete as i32, r2));

    // Paging and ranges.
    let page = env
        .q()
        .history(HistoryRequest { namespace: "hist".into(), page_size: 2, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.records.len(), 2);
    let rest = env
        .q()
        .history(HistoryRequest {
            namespace: "hist".into(),
            page_size: 2,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.records.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![r3]);
    assert!(rest.next_page_token.is_empty());
    let range = env
        .q()
        .history(HistoryRequest { namespace: "hist".into(), from_revision: r2, to_revision: r2, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(range.records.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![r2]);
}

#[tokio::test]
async fn point_in_time_reads_of_a_key_and_a_listing() {
    let env = TestSystem::start().await;
    let r1 = env.cmd().put(put("pit", "a", "1")).await.unwrap().into_inner().revision;
    let r2 = env.cmd().put(put("pit", "b", "1")).await.unwrap().into_inner().revision;
    let r3 = env.cmd().put(put("pit", "a", "2")).await.unwrap().into_inner().revision;
    let r4 = env
        .cmd()
        .delete(DeleteRequest { namespace: "pit".into(), key: "b".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .revision;

    let at = |r: u64, key: &str| GetRequest { at_revision: Some(r), ..get("pit", key) };
    let kv = env.q().get(at(r2, "a")).await.unwrap().into_inner();
    assert_eq!((kv.kv.unwrap().value.to_vec(), kv.revision), (b"1".to_vec(), r2));
    assert_eq!(&env.q().get(at(r3, "a")).await.unwrap().into_inner().kv.unwrap().value[..], b"2");
    assert_code(env.q().get(at(r1, "b")).await, Code::NotFound);
    assert_eq!(env.q().get(at(r3, "b")).await.unwrap().into_inner().kv.unwrap().mod_revision, r2);
    assert_code(env.q().get(at(r4, "b")).await, Code::NotFound);

    let listing = |r: u64| ListRequest { namespace: "pit".into(), at_revision: Some(r), ..Default::default() };
    let keys = |l: veltrix_proto::v1::ListResponse| {
        l.kvs.into_iter().map(|kv| (kv.key, kv.value.to_vec())).collect::<Vec<_>>()
    };
    assert_eq!(keys(env.q().list(listing(r1)).await.unwrap().into_inner()), vec![("a".into(), b"1".to_vec())]);
    assert_eq!(
        keys(env.q().list(listing(r3)).await.unwrap().into_inner()),
        vec![("a".into(), b"2".to_vec()), ("b".into(), b"1".to_vec())]
    );
    assert_eq!(keys(env.q().list(listing(r4)).await.unwrap().into_inner()), vec![("a".into(), b"2".to_vec())]);

    // Both together: wait for the larger, answer as of at_revision.
    let both = GetRequest { min_revision: Some(r4), at_revision: Some(r2), ..get("pit", "a") };
    assert_eq!(env.q().get(both).await.unwrap().into_inner().kv.unwrap().mod_revision, r1);

    // A revision not reached yet waits, then DEADLINE_EXCEEDED.
    let mut req = tonic::Request::new(at(r4 + 100, "a"));
    req.set_timeout(Duration::from_millis(500));
    let status = assert_code(env.q().get(req).await, Code::DeadlineExceeded);
    assert!(status.message().contains("not reached"), "{}", status.message());
}

#[tokio::test]
async fn history_beyond_the_retained_window_is_out_of_range() {
    let env = TestSystem::builder().history_keep(3).start().await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    let mut revisions = Vec::new();
    for i in 0..6 {
        revisions.push(cmd.put(put("keep", "k", &i.to_string())).await.unwrap().into_inner().revision);
    }
    let last = *revisions.last().unwrap();
    q.get(GetRequest { min_revision: Some(last), ..get("keep", "k") }).await.unwrap();
    let oldest = revisions[3];
    for status in [
        assert_code(q.get(GetRequest { at_revision: Some(revisions[1]), ..get("keep", "k") }).await, Code::OutOfRange),
        assert_code(
            q.history(HistoryRequest { namespace: "keep".into(), from_revision: revisions[0], ..Default::default() })
                .await,
            Code::OutOfRange,
        ),
        assert_code(
            q.list(ListRequest { namespace: "keep".into(), at_revision: Some(revisions[2]), ..Default::default() })
                .await,
            Code::OutOfRange,
        ),
    ] {
        assert!(status.message().contains(&format!("oldest available revision is {oldest}")), "{}", status.message());
    }
    let h = q.history(HistoryRequest { namespace: "keep".into(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(
        h.records.iter().map(|r| r.revision).collect::<Vec<_>>(),
        revisions[3..].to_vec(),
        "from 0 means the oldest retained"
    );
    assert_eq!(
        q.get(GetRequest { at_revision: Some(oldest), ..get("keep", "k") })
            .await
            .unwrap()
            .into_inner()
            .kv
            .unwrap()
            .value,
        &b"3"[..]
    );
}

#[tokio::test]
async fn namespaces_are_listed_with_revision_and_key_count() {
    let env = TestSystem::start().await;
    env.cmd().put(put("team/a", "x", "1")).await.unwrap();
    env.cmd().put(put("team/a", "y", "1")).await.unwrap();
    let rb = env.cmd().put(put("team/b", "x", "1")).await.unwrap().into_inner().revision;
    let rc = env.cmd().put(put("zeta", "x", "1")).await.unwrap().into_inner().revision;
    env.q().get(GetRequest { min_revision: Some(rc), ..get("zeta", "x") }).await.unwrap();
    let all = env.q().list_namespaces(ListNamespacesRequest::default()).await.unwrap().into_inner();
    let rows: Vec<_> = all.namespaces.iter().map(|n| (n.name.as_str(), n.key_count)).collect();
    assert_eq!(rows, vec![("team/a", 2), ("team/b", 1), ("zeta", 1)]);
    assert_eq!(all.namespaces[1].revision, rb);
    let page = env
        .q()
        .list_namespaces(ListNamespacesRequest { page_size: 1, prefix: "team/".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.namespaces[0].name, "team/a");
    let next = env
        .q()
        .list_namespaces(ListNamespacesRequest {
            page_size: 1,
            prefix: "team/".into(),
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.namespaces.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), vec!["team/b"]);
    assert!(next.next_page_token.is_empty());
}

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_the_field() {
    let env = TestSystem::start().await;
    let cases: Vec<(GetRequest, &str)> = vec![
        (get("Bad", "k"), "namespace"),
        (get("ns", "a b"), "key"),
        (GetRequest { min_revision: Some(0), ..get("ns", "k") }, "min_revision"),
        (GetRequest { at_revision: Some(0), ..get("ns", "k") }, "at_revision"),
    ];
    for (req, field) in cases {
        let status = assert_code(env.q().get(req).await, Code::InvalidArgument);
        assert!(status.message().starts_with(&format!("{field}: ")), "{}", status.message());
    }
    let big = ListRequest { namespace: "ns".into(), page_size: 1001, ..Default::default() };
    assert!(
        assert_code(env.q().list(big).await, Code::InvalidArgument)
            .message()
            .starts_with("page_size: must be at most 1000")
    );
    let prefix = ListRequest { namespace: "ns".into(), prefix: "a b".into(), ..Default::default() };
    assert!(assert_code(env.q().list(prefix).await, Code::InvalidArgument).message().starts_with("prefix: "));
    let range = HistoryRequest { namespace: "ns".into(), from_revision: 5, to_revision: 2, ..Default::default() };
    assert!(assert_code(env.q().history(range).await, Code::InvalidArgument).message().starts_with("from_revision: "));
    let hist_token = HistoryRequest { namespace: "ns".into(), page_token: "x".into(), ..Default::default() };
    assert_code(env.q().history(hist_token).await, Code::InvalidArgument);
    let ns_token = ListNamespacesRequest { page_token: "x".into(), ..Default::default() };
    assert_code(env.q().list_namespaces(ns_token).await, Code::InvalidArgument);
    assert_code(env.q().get(get("ns", "missing")).await, Code::NotFound);
}
