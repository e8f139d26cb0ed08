//! Authentication, authorization and TLS across both services: every RPC
//! with no token, an unknown token, a token without the role, a token
//! outside its grants, and a good one; nothing appended or leaked when
//! refused; policy reloads; mTLS identities; the actor is the identity.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{path::Path, time::Duration};

use tonic::{Code, Request, Status, metadata::MetadataValue};
use veltrix_auth::token_digest;
use veltrix_client::{Client, Error as ClientError};
use veltrix_proto::v1::{
    AbortRolloutRequest, ApplyRequest, Change, DeleteRequest, GetRequest, GetRolloutRequest, HistoryRequest,
    ListNamespacesRequest, ListRequest, ListRolloutsRequest, PauseRolloutRequest, PromoteRolloutRequest,
    ResumeRolloutRequest, RolloutStep, RolloutStrategy, SetValue, StartRolloutRequest, WatchRequest, change,
};
use veltrix_testkit::pki::TestCa;
use veltrix_testsystem::*;

const WRITER: &str = "w-token-1234567890";
const READER: &str = "r-token-1234567890";
const OUTSIDER: &str = "o-token-1234567890";

fn policy(extra_reader_roles: &str) -> String {
    format!(
        "tokens:\n\
         \x20 - {{identity: writer, sha256: \"{}\"}}\n\
         \x20 - {{identity: reader, sha256: \"{}\"}}\n\
         \x20 - {{identity: outsider, sha256: \"{}\"}}\n\
         grants:\n\
         \x20 - {{identity: writer, namespaces: [\"payments/*\"], roles: [write]}}\n\
         \x20 - {{identity: reader, namespaces: [\"payments/*\"], roles: [read{extra_reader_roles}]}}\n\
         \x20 - {{identity: outsider, namespaces: [\"billing/**\"], roles: [read, write]}}\n\
         \x20 - {{identity: \"dns:deployer.example\", namespaces: [\"payments/*\"], roles: [read, write]}}\n\
         \x20 - {{identity: \"cn:auditor\", namespaces: [\"payments/*\"], roles: [read]}}\n",
        token_digest(WRITER),
        token_digest(READER),
        token_digest(OUTSIDER)
    )
}

async fn start(auth: &Path, tls: Option<veltrix_server::tls::TlsArgs>) -> TestSystem {
    start_with(auth, tls, veltrix_access::LimitArgs::default()).await
}

async fn start_with(
    auth: &Path,
    tls: Option<veltrix_server::tls::TlsArgs>,
    limits: veltrix_access::LimitArgs,
) -> TestSystem {
    let builder = TestSystem::builder().auth(auth).limits(limits);
    match tls {
        Some(tls) => builder.tls(tls).start().await,
        None => builder.start().await,
    }
}

fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut r = Request::new(message);
    if let Some(t) = token {
        r.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {t}")).unwrap());
    }
    r.metadata_mut().insert("x-veltrix-actor", MetadataValue::from_static("mallory"));
    r
}

fn code<T, S: std::borrow::Borrow<Status>>(r: Result<T, S>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => s.borrow().code(),
    }
}

/// The callers of the matrix and the code each must get.
fn callers(ok: &'static str) -> [(Option<&'static str>, Code); 5] {
    let (no_role, ..) = if ok == WRITER { (READER, ()) } else { (WRITER, ()) };
    [
        (None, Code::Unauthenticated),
        (Some("not-a-known-token"), Code::Unauthenticated),
        (Some(no_role), Code::PermissionDenied),
        (Some(OUTSIDER), Code::PermissionDenied),
        (Some(ok), Code::Ok),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_checks_who_calls_and_refusals_change_or_leak_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.yaml");
    std::fs::write(&auth, policy("")).unwrap();
    let env = start(&auth, None).await;
    let mut cmd = Command::new(channel(env.command_addr()).await);
    let mut q = Query::new(channel(env.query_addr()).await);
    let ns = "payments/api";
    // Something of another namespace that must never show.
    cmd.put(with_token(put("billing/eu", "secret", "x"), Some(OUTSIDER))).await.unwrap();

    let mut revision = 0;
    for (token, expected) in callers(WRITER) {
        let r = cmd.put(with_token(put(ns, "k", "v"), token)).await;
        assert_eq!(code(r.as_ref().map(|_| ())), expected, "Put with {token:?}");
        if let Ok(r) = r {
            revision = r.into_inner().revision;
        }
        let apply = ApplyRequest {
            namespace: ns.into(),
            changes: vec![Change {
                key: "a".into(),
                expected_revision: None,
                op: Some(change::Op::Set(SetValue { value: b"1".to_vec(), content_type: String::new() })),
            }],
            ..Default::default()
        };
        assert_eq!(code(cmd.apply(with_token(apply, token)).await), expected, "Apply with {token:?}");
        let delete = DeleteRequest { namespace: ns.into(), key: "a".into(), ..Default::default() };
        assert_eq!(code(cmd.delete(with_token(delete, token)).await), expected, "Delete with {token:?}");
    }
    // Only the writer's three change sets were appended, with its identity.
    let history = HistoryRequest { namespace: ns.into(), ..Default::default() };
    let records = eventually(Duration::from_secs(10), "the writer's changes are projected", || {
        let mut q = q.clone();
        let history = history.clone();
        async move {
            let records = q.history(with_token(history, Some(READER))).await.ok()?.into_inner().records;
            (records.len() == 3).then_some(records)
        }
    })
    .await;
    assert!(records.iter().all(|r| r.actor == "writer"), "the actor is the identity, not x-veltrix-actor: {records:?}");
    assert!(records.iter().any(|r| r.revision == revision));

    for (token, expected) in callers(READER) {
        let mut get = get(ns, "k");
        get.min_revision = Some(revision);
        assert_eq!(code(q.get(with_token(get, token)).await), expected, "Get with {token:?}");
        let list = ListRequest { namespace: ns.into(), ..Default::default() };
        assert_eq!(code(q.list(with_token(list, token)).await), expected, "List with {token:?}");
        assert_eq!(code(q.history(with_token(history.clone(), token)).await), expected, "History with {token:?}");
        let watch = WatchRequest { namespace: ns.into(), include_snapshot: true, ..Default::default() };
        let r = q.watch(with_token(watch, token)).await;
        assert_eq!(code(r.as_ref().map(|_| ())), expected, "Watch with {token:?}");
        if let Ok(stream) = r {
            let mut stream = stream.into_inner();
            let first = stream.message().await.unwrap().unwrap();
            assert!(format!("{first:?}").contains("payments") || format!("{first:?}").contains("\"k\""));
            assert!(!format!("{first:?}").contains("secret"), "no key of another namespace");
        }
    }
    // ListNamespaces: everyone authenticated may call it, and sees only what
    // it may read.
    let names = |token| {
        let mut q = q.clone();
        async move {
            let r = q.list_namespaces(with_token(ListNamespacesRequest::default(), token)).await?;
            Ok::<_, Status>(r.into_inner().namespaces.into_iter().map(|n| n.name).collect::<Vec<_>>())
        }
    };
    assert_eq!(names(None).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(names(Some(READER)).await.unwrap(), ["payments/api"]);
    assert_eq!(names(Some(OUTSIDER)).await.unwrap(), ["billing/eu"]);
    assert!(names(Some(WRITER)).await.unwrap().is_empty(), "write without read lists nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_need_write_to_change_and_read_to_see() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.yaml");
    std::fs::write(&auth, policy("")).unwrap();
    let env = start(&auth, None).await;
    let mut cmd = Command::new(channel(env.command_addr()).await);
    let mut q = Query::new(channel(env.query_addr()).await);
    let ns = "payments/roll";
    let start = |request_id: &str| StartRolloutRequest {
        namespace: ns.into(),
        changes: vec![Change {
            key: "port".into(),
            expected_revision: None,
            op: Some(change::Op::Set(SetValue { value: b"81".to_vec(), content_type: String::new() })),
        }],
        strategy: Some(RolloutStrategy {
            steps: vec![RolloutStep {
                percent: 100,
                bake_time: Some(prost_types::Duration { seconds: 3600, nanos: 0 }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        request_id: request_id.into(),
        ..Default::default()
    };
    let mut id = String::new();
    for (token, expected) in callers(WRITER) {
        let r = cmd.start_rollout(with_token(start("first"), token)).await;
        assert_eq!(code(r.as_ref().map(|_| ())), expected, "StartRollout with {token:?}");
        if let Ok(r) = r {
            id = r.into_inner().rollout_id;
        }
    }
    let action = |rollout_id: &str| (ns.to_owned(), rollout_id.to_owned());
    for (token, expected) in callers(WRITER) {
        let (namespace, rollout_id) = action(&id);
        let pause = PauseRolloutRequest { namespace, rollout_id, ..Default::default() };
        assert_eq!(code(cmd.pause_rollout(with_token(pause, token)).await), expected, "PauseRollout with {token:?}");
    }
    for (token, expected) in callers(WRITER) {
        let (namespace, rollout_id) = action(&id);
        let resume = ResumeRolloutRequest { namespace, rollout_id, ..Default::default() };
        assert_eq!(code(cmd.resume_rollout(with_token(resume, token)).await), expected, "ResumeRollout with {token:?}");
    }
    for (token, expected) in callers(WRITER) {
        let (namespace, rollout_id) = action(&id);
        let abort = AbortRolloutRequest { namespace, rollout_id, ..Default::default() };
        assert_eq!(code(cmd.abort_rollout(with_token(abort, token)).await), expected, "AbortRollout with {token:?}");
    }
    let second = cmd.start_rollout(with_token(start("second"), Some(WRITER))).await.unwrap().into_inner().rollout_id;
    for (token, expected) in callers(WRITER) {
        let (namespace, rollout_id) = action(&second);
        let promote = PromoteRolloutRequest { namespace, rollout_id, ..Default::default() };
        assert_eq!(
            code(cmd.promote_rollout(with_token(promote, token)).await),
            expected,
            "PromoteRollout with {token:?}"
        );
    }
    // Reads need read: the writer sees nothing, the reader both rollouts.
    eventually(Duration::from_secs(10), "both rollouts are projected", || {
        let mut q = q.clone();
        async move {
            let list = ListRolloutsRequest { namespace: ns.into(), ..Default::default() };
            let r = q.list_rollouts(with_token(list, Some(READER))).await.ok()?.into_inner();
            (r.rollouts.len() == 2).then_some(())
        }
    })
    .await;
    for (token, expected) in callers(READER) {
        let get = GetRolloutRequest { namespace: ns.into(), rollout_id: id.clone() };
        assert_eq!(code(q.get_rollout(with_token(get, token)).await), expected, "GetRollout with {token:?}");
        let list = ListRolloutsRequest { namespace: ns.into(), ..Default::default() };
        assert_eq!(code(q.list_rollouts(with_token(list, token)).await), expected, "ListRollouts with {token:?}");
    }
    // Every transition was made by the writer, whatever x-veltrix-actor said.
    let get = GetRolloutRequest { namespace: ns.into(), rollout_id: id.clone() };
    let first = q.get_rollout(with_token(get, Some(READER))).await.unwrap().into_inner().rollout.unwrap();
    let actors: Vec<_> = first.transitions.iter().map(|t| t.actor.as_str()).collect();
    assert_eq!(actors, ["writer", "writer", "writer", "writer"], "started, paused, resumed, aborted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_namespaces_pages_over_what_the_caller_may_read_and_its_tokens_name_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.yaml");
    std::fs::write(
        &auth,
        format!(
            "tokens:\n  - {{identity: writer, sha256: \"{}\"}}\n  - {{identity: outsider, sha256: \"{}\"}}\n\
             grants:\n  - {{identity: writer, namespaces: [\"**\"], roles: [read, write]}}\n\
             \x20 - {{identity: outsider, namespaces: [\"m/**\"], roles: [read]}}\n",
            token_digest(WRITER),
            token_digest(OUTSIDER)
        ),
    )
    .unwrap();
    let env = start(&auth, None).await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    // 50 namespaces; the outsider may read one, in the middle of the order.
    let mut hidden: Vec<String> = (0..24).map(|i| format!("a/n{i:02}")).collect();
    hidden.extend((0..25).map(|i| format!("z/n{i:02}")));
    let mut last = 0;
    for ns in hidden.iter().map(String::as_str).chain(["m/x"]) {
        last = cmd.put(with_token(put(ns, "k", "v"), Some(WRITER))).await.unwrap().into_inner().revision;
    }
    let ready = GetRequest { min_revision: Some(last), ..get("m/x", "k") };
    q.get(with_token(ready, Some(WRITER))).await.unwrap();

    let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let request = ListNamespacesRequest { page_size: 1, page_token: token, ..Default::default() };
        let page = q.list_namespaces(with_token(request, Some(OUTSIDER))).await.unwrap().into_inner();
        pages += 1;
        let mut said = format!("{page:?}").into_bytes();
        said.extend(
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &page.next_page_token)
                .unwrap_or_default(),
        );
        for name in &hidden {
            assert!(!said.windows(name.len()).any(|w| w == name.as_bytes()), "page {pages} names {name}: {page:?}");
        }
        seen.extend(page.namespaces.into_iter().map(|n| n.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 60, "paging ends");
    }
    assert_eq!(seen, ["m/x"]);
    // The writer sees all 50, one page at a time; its token does not work
    // for the outsider (tokens are bound to the caller).
    let request = ListNamespacesRequest { page_size: 1, ..Default::default() };
    let first = q.list_namespaces(with_token(request, Some(WRITER))).await.unwrap().into_inner();
    assert_eq!(first.namespaces[0].name, "a/n00");
    let stolen = ListNamespacesRequest { page_size: 1, page_token: first.next_page_token, ..Default::default() };
    assert_eq!(code(q.list_namespaces(with_token(stolen, Some(OUTSIDER))).await), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_policy_takes_effect_without_a_restart_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.yaml");
    std::fs::write(&auth, policy("")).unwrap();
    let env = start(&auth, None).await;
    let mut cmd = Command::new(channel(env.command_addr()).await);
    assert_eq!(code(cmd.put(with_token(put("payments/api", "k", "v"), Some(READER))).await), Code::PermissionDenied);

    // The file changes on disk: the reader may now write, same connection.
    std::fs::write(&auth, policy(", write")).unwrap();
    eventually(Duration::from_secs(10), "the new policy is in force", || {
        let mut cmd = cmd.clone();
        async move { cmd.put(with_token(put("payments/api", "k", "v"), Some(READER))).await.ok() }
    })
    .await;
    // A broken file is refused; the policy in force stays.
    std::fs::write(&auth, "grants: [{identity: x, namespaces: [\"a*\"], roles: [read]}]").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    cmd.put(with_token(put("payments/api", "k", "v2"), Some(READER))).await.unwrap();

    // A change that keeps the modification time (two writes within one tick
    // of a coarse file-system clock) is still seen: content is compared.
    let modified = std::fs::metadata(&auth).unwrap().modified().unwrap();
    std::fs::write(&auth, policy("")).unwrap();
    std::fs::File::options().write(true).open(&auth).unwrap().set_modified(modified).unwrap();
    eventually(Duration::from_secs(10), "the same-time change is in force", || {
        let mut cmd = cmd.clone();
        async move {
            let r = cmd.put(with_token(put("payments/api", "k", "v3"), Some(READER))).await;
            (code(r) == Code::PermissionDenied).then_some(())
        }
    })
    .await;
    // SIGHUP reloads at once.
    std::fs::write(&auth, policy(", write")).unwrap();
    let status = std::process::Command::new("kill").args(["-HUP", &std::process::id().to_string()]).status().unwrap();
    assert!(status.success());
    eventually(Duration::from_secs(10), "SIGHUP reloads", || {
        let mut cmd = cmd.clone();
        async move { cmd.put(with_token(put("payments/api", "k", "v4"), Some(READER))).await.ok() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_identifies_clients_by_certificate_and_refuses_untrusted_ones() {
    let ca = TestCa::new("veltrix-test");
    let server = ca.issue("server", "localhost", &["localhost"]);
    let deployer = ca.issue("deployer", "deployer", &["deployer.example"]);
    let cn_only = ca.issue("cn-only", "auditor", &[]);
    let named_like_a_token = ca.issue("like-a-token", "reader", &[]);
    let not_for_clients = ca.issue_without_key_usage("no-usage", "deployer", &["deployer.example"]);
    let stranger_ca = TestCa::new("stranger");
    let stranger = stranger_ca.issue("stranger", "deployer", &["deployer.example"]);
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.yaml");
    std::fs::write(&auth, policy("")).unwrap();
    let tls = veltrix_server::tls::TlsArgs {
        tls_cert: Some(server.cert.clone()),
        tls_key: Some(server.key.clone()),
        tls_client_ca: Some(ca.ca.clone()),
        ..Default::default()
    };
    let env = start(&auth, Some(tls)).await;
    let client = |cert: Option<&veltrix_testkit::pki::CertFiles>| {
        let mut b = Client::builder()
            .command_url(env.command_url())
            .query_url(env.query_url())
            .ca_certificate(ca.ca_pem.clone())
            .retries(0)
            .timeout(Duration::from_secs(5));
        if let Some(c) = cert {
            b = b.client_identity(c.cert_pem.clone(), c.key_pem.clone());
        }
        b.build().unwrap()
    };

    // The identity is the first DNS SAN; its grants apply; it is the actor.
    let deployer_client = client(Some(&deployer));
    let revision = deployer_client.put("payments/api", "k", "v").await.unwrap();
    let history = eventually(Duration::from_secs(10), "projected", || async {
        let h = deployer_client.history("payments/api", None, Default::default()).await.ok()?;
        (h.last()?.revision == revision).then_some(h)
    })
    .await;
    assert_eq!(history[0].actor, "dns:deployer.example", "certificate identities carry their kind");
    assert!(matches!(deployer_client.put("billing/eu", "k", "v").await, Err(ClientError::PermissionDenied { .. })));
    // Without a SAN the CN is the identity ("cn:auditor": read only).
    let auditor = client(Some(&cn_only));
    auditor.get("payments/api", "k").await.unwrap();
    assert!(matches!(auditor.put("payments/api", "k", "x").await, Err(ClientError::PermissionDenied { .. })));
    // A certificate whose CN is a token identity's name ("reader") is
    // `cn:reader`, which has no grants: it does not get the token's.
    let impostor = client(Some(&named_like_a_token));
    let e = impostor.get("payments/api", "k").await.unwrap_err();
    assert!(matches!(e, ClientError::PermissionDenied { .. }), "{e:?}");
    assert!(e.to_string().contains("cn:reader"), "{e}");
    // A certificate without the clientAuth usage is no client's.
    let e = client(Some(&not_for_clients)).get("payments/api", "k").await.unwrap_err();
    assert!(matches!(e, ClientError::Unauthenticated { .. }), "{e:?}");
    assert!(e.to_string().contains("clientAuth"), "{e}");
    // A certificate from another CA, or none, does not get through the handshake.
    // (With TLS 1.3 the server refuses after the client's handshake is
    // done, so the client sees a dropped connection.)
    for refused in [client(Some(&stranger)), client(None)] {
        let e = refused.get("payments/api", "k").await.unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::Unavailable { .. } | ClientError::Other { code: Code::Cancelled | Code::Unknown, .. }
            ),
            "{e:?}"
        );
        assert!(refused.put("payments/api", "k", "stranger").await.is_err());
    }
    let after = deployer_client.history("payments/api", None, Default::default()).await.unwrap();
    assert_eq!(after.len(), history.len(), "nothing appended by refused clients");
    // A token still works over TLS with a trusted certificate.
    let mut b = Client::builder()
        .query_url(env.query_url())
        .ca_certificate(ca.ca_pem.clone())
        .client_identity(cn_only.cert_pem.clone(), cn_only.key_pem.clone())
        .token(OUTSIDER);
    b = b.retries(0);
    let outsider = b.build().unwrap();
    assert!(matches!(outsider.get("payments/api", "k").await, Err(ClientError::PermissionDenied { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_are_limited_in_rate_open_watches_and_request_size() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.yaml");
    std::fs::write(&auth, policy("")).unwrap();
    let limits = veltrix_access::LimitArgs { rate_limit: 2.0, rate_burst: 3, max_watchers_per_caller: 2 };
    let env = start_with(&auth, None, limits).await;
    let mut q = Query::new(channel(env.query_addr()).await);
    let list = || ListRequest { namespace: "payments/api".into(), ..Default::default() };

    // A burst of three, then RESOURCE_EXHAUSTED with a retry hint; other
    // callers have their own bucket.
    for _ in 0..3 {
        q.list(with_token(list(), Some(READER))).await.unwrap();
    }
    let refused = q.list(with_token(list(), Some(READER))).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.message().contains("retry in"), "{}", refused.message());
    assert!(tonic_types::StatusExt::get_details_retry_info(&refused).is_some());
    let bucket = ListNamespacesRequest { page_size: 10, ..Default::default() };
    q.list_namespaces(with_token(bucket, Some(OUTSIDER))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    q.list(with_token(list(), Some(READER))).await.unwrap();

    // Two open watch streams per caller.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let watch = || WatchRequest { namespace: "payments/api".into(), ..Default::default() };
    let first = q.watch(with_token(watch(), Some(READER))).await.unwrap();
    let _second = q.watch(with_token(watch(), Some(READER))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(q.watch(with_token(watch(), Some(READER))).await.unwrap_err().code(), Code::ResourceExhausted);
    drop(first);
    eventually(Duration::from_secs(10), "a closed stream frees its place", || {
        let mut q = q.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            q.watch(with_token(watch(), Some(READER))).await.ok()
        }
    })
    .await;

    // A request larger than the service accepts is refused before decoding.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let huge = ListRequest { namespace: "payments/api".into(), prefix: "p".repeat(100 * 1024), ..Default::default() };
    let e = q.list(with_token(huge, Some(READER))).await.unwrap_err();
    assert!(matches!(e.code(), Code::OutOfRange | Code::ResourceExhausted), "{e:?}");
}
