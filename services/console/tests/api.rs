//! The console's JSON API against both services on real NATS and Redis:
//! sign-in and its cookie, CSRF, session expiry, compare-and-set, the
//! services' own authorization, and live updates that resume with
//! Last-Event-ID.

mod common;

use std::time::Duration;

use common::{ADMIN, Browser, READER, start};
use serde_json::json;

fn put(ns: &str, key: &str, value: &str, expected: u64) -> serde_json::Value {
    json!({ "namespace": ns, "key": key, "value": value, "expected_revision": expected, "reason": "test" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_trades_the_token_for_an_http_only_strict_cookie() {
    let env = start(|_| {}).await;
    let addr = env.console.addr;
    // No session: every API call is 401, and the app's page is still served.
    let mut anonymous = Browser::new(addr);
    let answer = anonymous.get("/api/session").await;
    assert_eq!((answer.status, answer.body["code"].as_str()), (401, Some("unauthenticated")));
    assert_eq!(anonymous.get("/api/namespaces").await.status, 401);
    let page = anonymous.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("<div id=\"app\">") && page.text.contains("/assets/"), "{}", page.text);
    assert_eq!(anonymous.get("/some/screen").await.status, 200, "any other path is the app's page");
    assert_eq!(anonymous.get("/healthz").await.status, 200);
    let missing = anonymous.get("/api/no-such-thing").await;
    assert_eq!((missing.status, missing.body["code"].as_str()), (404, Some("not_found")));
    assert!(page.headers.get("content-security-policy").is_some() && page.headers.get("x-frame-options").is_some());

    // A token the services do not know signs nobody in.
    let refused = anonymous.send("POST", "/api/session", Some(json!({ "token": "no-such-token" })), &[]).await;
    assert_eq!((refused.status, refused.body["code"].as_str()), (401, Some("unauthenticated")), "{}", refused.text);
    assert!(refused.headers.get("set-cookie").is_none());

    let mut browser = Browser::new(addr);
    let answer = browser.send("POST", "/api/session", Some(json!({ "token": ADMIN })), &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let cookie = answer.headers.get("set-cookie").and_then(|v| v.to_str().ok()).expect("a cookie").to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains(ADMIN) && !answer.text.contains(ADMIN), "the token never goes back to the browser");
    assert_eq!(answer.body["identity"], "admin");
    assert_eq!(answer.body["authentication_enabled"], true);
    let session = browser.get("/api/session").await;
    assert_eq!(session.body["identity"], "admin");
    assert_eq!(session.body["csrf"], answer.body["csrf"]);

    // Sign-out ends the session: the same cookie is 401 afterwards.
    browser.csrf = answer.body["csrf"].as_str().unwrap_or_default().to_owned();
    let kept = browser.cookie.clone();
    assert_eq!(browser.write("DELETE", "/api/session", json!({})).await.status, 200);
    let mut replay = Browser::new(addr);
    replay.cookie = kept;
    assert_eq!(replay.get("/api/namespaces").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_the_csrf_token_or_from_another_origin_changes_nothing() {
    let env = start(|_| {}).await;
    let mut browser = Browser::sign_in(env.console.addr, ADMIN).await;
    let body = put("app/prod", "db/url", "postgres://a", 0);
    let no_token = browser.send("PUT", "/api/key", Some(body.clone()), &[]).await;
    assert_eq!((no_token.status, no_token.body["code"].as_str()), (403, Some("csrf")), "{}", no_token.text);
    let wrong = browser.send("PUT", "/api/key", Some(body.clone()), &[("x-csrf-token", "forged")]).await;
    assert_eq!(wrong.status, 403);
    let csrf = browser.csrf.clone();
    let cross = browser
        .send("PUT", "/api/key", Some(body.clone()), &[("x-csrf-token", &csrf), ("origin", "http://evil.example")])
        .await;
    assert_eq!((cross.status, cross.body["code"].as_str()), (403, Some("csrf")));
    let listed = browser.get("/api/keys?namespace=app/prod").await;
    assert_eq!(listed.body["entries"].as_array().map(Vec::len), Some(0), "nothing was written: {}", listed.text);

    let same_origin = format!("http://{}", env.console.addr);
    let ok = browser.send("PUT", "/api/key", Some(body), &[("x-csrf-token", &csrf), ("origin", &same_origin)]).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let revision = ok.body["revision"].as_u64().expect("a revision");
    let key = browser.get("/api/key?namespace=app/prod&key=db/url").await;
    assert_eq!(key.body["entry"]["value"], "postgres://a");
    assert_eq!(key.body["entry"]["mod_revision"], revision);
    assert_eq!(key.body["history"][0]["reason"], "test");
    assert_eq!(key.body["history"][0]["actor"], "admin", "the change is the caller's own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_are_compare_and_set_and_need_a_reason() {
    let env = start(|_| {}).await;
    let mut browser = Browser::sign_in(env.console.addr, ADMIN).await;
    let first = browser.write("PUT", "/api/key", put("app/prod", "limits", "{\"rps\":1}", 0)).await;
    let first = first.body["revision"].as_u64().expect("written");
    // Someone else changes the key after this editor opened it at `first`.
    let other = browser.write("PUT", "/api/key", put("app/prod", "limits", "{\"rps\":2}", first)).await;
    let other = other.body["revision"].as_u64().expect("written");
    let stale = browser.write("PUT", "/api/key", put("app/prod", "limits", "{\"rps\":3}", first)).await;
    assert_eq!(stale.status, 409, "{}", stale.text);
    assert_eq!(stale.body["code"], "aborted");
    assert_eq!(stale.body["current_revision"], other);
    let key = browser.get("/api/key?namespace=app/prod&key=limits").await;
    assert_eq!(key.body["entry"]["value"], "{\"rps\":2}", "the concurrent change is not overwritten");

    let mut no_reason = put("app/prod", "limits", "{}", other);
    no_reason["reason"] = json!("  ");
    let refused = browser.write("PUT", "/api/key", no_reason).await;
    assert_eq!((refused.status, refused.body["field"].as_str()), (400, Some("reason")), "{}", refused.text);
    let mut no_revision = put("app/prod", "limits", "{}", 0);
    no_revision.as_object_mut().map(|o| o.remove("expected_revision"));
    let refused = browser.write("PUT", "/api/key", no_revision).await;
    assert_eq!((refused.status, refused.body["field"].as_str()), (400, Some("expected_revision")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_caller_sees_its_roles_and_a_forged_write_is_refused_by_the_service() {
    let env = start(|_| {}).await;
    let mut admin = Browser::sign_in(env.console.addr, ADMIN).await;
    assert_eq!(admin.write("PUT", "/api/key", put("app/prod", "a", "1", 0)).await.status, 200);
    let mut reader = Browser::sign_in(env.console.addr, READER).await;
    let roles = reader.get("/api/roles?namespace=app/prod").await;
    assert_eq!(roles.body, json!({ "namespace": "app/prod", "read": true, "write": false, "admin": false }));
    let admin_roles = admin.get("/api/roles?namespace=app/prod").await;
    assert_eq!(admin_roles.body["write"], true);
    // With a valid session and CSRF token, the service still decides.
    let forged = reader.write("PUT", "/api/key", put("app/prod", "a", "2", 1)).await;
    assert_eq!((forged.status, forged.body["code"].as_str()), (403, Some("permission_denied")), "{}", forged.text);
    let rollback = reader
        .write("POST", "/api/rollback", json!({ "namespace": "app/prod", "to_revision": 1, "reason": "x" }))
        .await;
    assert_eq!(rollback.status, 403);
    let key = reader.get("/api/key?namespace=app/prod&key=a").await;
    assert_eq!(key.body["entry"]["value"], "1");
    assert_eq!(key.body["roles"]["write"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_ends() {
    let env = start(|c| c.session_idle = Duration::from_millis(800)).await;
    let mut browser = Browser::sign_in(env.console.addr, ADMIN).await;
    assert_eq!(browser.get("/api/namespaces").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let answer = browser.get("/api/namespaces").await;
    assert_eq!((answer.status, answer.body["code"].as_str()), (401, Some("unauthenticated")));
    let csrf = browser.csrf.clone();
    let write = browser.send("PUT", "/api/key", Some(put("app/prod", "a", "1", 0)), &[("x-csrf-token", &csrf)]).await;
    assert_eq!(write.status, 401, "an ended session writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_updates_resume_after_the_last_event_id_without_a_gap() {
    let env = start(|_| {}).await;
    let mut browser = Browser::sign_in(env.console.addr, ADMIN).await;
    let mut revisions = Vec::new();
    for (i, value) in ["1", "2", "3"].iter().enumerate() {
        let answer = browser.write("PUT", "/api/key", put("app/prod", &format!("k{i}"), value, 0)).await;
        revisions.push(answer.body["revision"].as_u64().expect("written"));
    }
    let path = format!("/api/watch?namespace=app/prod&from={}", revisions[0]);
    let (status, mut events) = browser.events(&path, &[]).await;
    assert_eq!(status, 200);
    let first = events.next_change().await;
    assert_eq!((first.kind.as_str(), first.id.clone()), ("changes", revisions[0].to_string()));
    assert_eq!(first.data["changes"][0]["key"], "k0");
    let second = events.next_change().await;
    assert_eq!(second.id, revisions[1].to_string());
    drop(events);

    // The browser reconnects with the last id it saw: the next is the third.
    let last = second.id.clone();
    let (_, mut resumed) = browser.events(&path, &[("last-event-id", &last)]).await;
    let third = resumed.next_change().await;
    assert_eq!(third.id, revisions[2].to_string(), "no gap and no repeat");
    // And what is written from now on arrives live.
    let answer = browser.write("PUT", "/api/key", put("app/prod", "k3", "4", 0)).await;
    let fourth = resumed.next_change().await;
    assert_eq!(fourth.id, answer.body["revision"].as_u64().expect("written").to_string());
    assert_eq!(fourth.data["actor"], "admin");

    let (bad, _) = browser.events("/api/watch?namespace=app/prod", &[("last-event-id", "x")]).await;
    assert_eq!(bad, 400);
    let mut anonymous = Browser::new(env.console.addr);
    let (refused, _) = anonymous.events(&path, &[]).await;
    assert_eq!(refused, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_and_promote_preview_before_they_change_anything() {
    let env = start(|_| {}).await;
    let mut b = Browser::sign_in(env.console.addr, ADMIN).await;
    let r1 = b.write("PUT", "/api/key", put("pay/staging", "db/url", "new-db", 0)).await.body["revision"].as_u64();
    b.write("PUT", "/api/key", put("pay/staging", "db/pool", "10", 0)).await;
    b.write("PUT", "/api/key", put("pay/prod", "db/url", "old-db", 0)).await;
    // Namespace vs namespace: from prod's state to staging's.
    let diff = b.get("/api/diff?namespace=pay/prod&to_namespace=pay/staging").await;
    let kinds: Vec<_> = diff.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["key"].clone(), e["kind"].clone()))
        .collect();
    assert_eq!(kinds, [(json!("db/pool"), json!("added")), (json!("db/url"), json!("changed"))], "{}", diff.text);
    // Promote one ticked key: the dry run shows it and writes nothing.
    let form = json!({ "source": "pay/staging", "target": "pay/prod", "keys": ["db/url"], "dry_run": true });
    let preview = b.write("POST", "/api/promote", form).await;
    assert_eq!(preview.status, 200, "{}", preview.text);
    assert_eq!(preview.body["changes"].as_array().map(Vec::len), Some(1));
    assert_eq!(b.get("/api/key?namespace=pay/prod&key=db/url").await.body["entry"]["value"], "old-db");
    let at = preview.body["revision"].clone();
    let form = json!({ "source": "pay/staging", "target": "pay/prod", "keys": ["db/url"], "reason": "ship", "expected_revision": at });
    let done = b.write("POST", "/api/promote", form).await;
    assert_eq!(done.status, 200, "{}", done.text);
    let prod = b.get("/api/keys?namespace=pay/prod").await;
    let keys: Vec<_> = prod.body["entries"].as_array().expect("entries").iter().map(|e| e["key"].clone()).collect();
    assert_eq!(keys, [json!("db/url")], "db/pool was not ticked");
    let history = b.get("/api/history?namespace=pay/prod").await;
    assert_eq!(history.body["change_sets"][0]["origin"]["kind"], "promotion", "{}", history.text);
    // A key's history says how far it was read, not its own newest change:
    // a live stream from the next revision misses nothing.
    let of_key = b.get("/api/history?namespace=pay/staging&key=db/url").await;
    let (read_to, newest) = (of_key.body["revision"].as_u64(), of_key.body["change_sets"][0]["revision"].as_u64());
    assert_eq!(newest, r1, "{}", of_key.text);
    assert!(read_to >= done.body["revision"].as_u64(), "read up to at least the promotion: {}", of_key.text);

    // Roll staging back to its first revision: preview, then for real.
    let form = json!({ "namespace": "pay/staging", "to_revision": r1, "dry_run": true });
    let preview = b.write("POST", "/api/rollback", form).await;
    assert_eq!(preview.body["changes"][0]["key"], "db/pool", "{}", preview.text);
    assert_eq!(preview.body["changes"][0]["kind"], "removed");
    let form = json!({ "namespace": "pay/staging", "to_revision": r1, "reason": "" });
    assert_eq!(b.write("POST", "/api/rollback", form).await.body["field"], "reason");
    let form = json!({ "namespace": "pay/staging", "to_revision": r1, "reason": "bad pool" });
    assert_eq!(b.write("POST", "/api/rollback", form).await.status, 200);
    let staging = b.get("/api/keys?namespace=pay/staging").await;
    assert_eq!(staging.body["entries"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_value_and_as_of_a_revision() {
    let env = start(|_| {}).await;
    let mut b = Browser::sign_in(env.console.addr, ADMIN).await;
    let r1 =
        b.write("PUT", "/api/key", put("app/prod", "db/url", "postgres://Primary", 0)).await.body["revision"].as_u64();
    b.write("PUT", "/api/key", put("app/prod", "cache/url", "redis://cache", 0)).await;
    let found = b.get("/api/keys?namespace=app/prod&search=primary").await;
    let keys: Vec<_> = found.body["entries"].as_array().expect("entries").iter().map(|e| e["key"].clone()).collect();
    assert_eq!(keys, [json!("db/url")], "{}", found.text);
    let by_prefix = b.get("/api/keys?namespace=app/prod&prefix=cache/").await;
    assert_eq!(by_prefix.body["entries"][0]["key"], "cache/url");
    let then = b.get(&format!("/api/keys?namespace=app/prod&revision={}", r1.unwrap_or_default())).await;
    assert_eq!(then.body["entries"].as_array().map(Vec::len), Some(1), "{}", then.text);
    let namespaces = b.get("/api/namespaces").await;
    assert_eq!(namespaces.body[0]["name"], "app/prod");
    assert_eq!(namespaces.body[0]["key_count"], 2);
    assert_eq!(namespaces.body[0]["last_change"]["actor"], "admin");
    assert_eq!(namespaces.body[0]["roles"]["write"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_authentication_the_session_says_so_and_changes_carry_the_name_given() {
    let system = veltrix_testsystem::TestSystem::start().await;
    let console = common::start_console(&system, |_| {}).await;
    let mut browser = Browser::new(console.addr);
    let answer = browser.send("POST", "/api/session", Some(json!({ "actor": "alice" })), &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["authentication_enabled"], false);
    assert_eq!(answer.body["identity"], "");
    browser.csrf = answer.body["csrf"].as_str().unwrap_or_default().to_owned();
    let roles = browser.get("/api/roles?namespace=app/prod").await;
    assert_eq!(roles.body["admin"], true, "with authentication off every call is allowed");
    assert_eq!(browser.write("PUT", "/api/key", put("app/prod", "a", "1", 0)).await.status, 200);
    let key = browser.get("/api/key?namespace=app/prod&key=a").await;
    assert_eq!(key.body["history"][0]["actor"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mutual_tls_a_session_without_a_token_is_the_consoles_certificate() {
    use veltrix_testkit::pki::TestCa;
    let ca = TestCa::new("console-test");
    let server = ca.issue("server", "localhost", &["localhost"]);
    let console_cert = ca.issue("console", "console", &["console.example"]);
    let tls = veltrix_server::tls::TlsArgs {
        tls_cert: Some(server.cert.clone()),
        tls_key: Some(server.key.clone()),
        tls_client_ca: Some(ca.ca.clone()),
        ..Default::default()
    };
    let env = common::start_with(Some(tls), |c| {
        c.ca_cert = Some(ca.ca.clone());
        c.client_cert = Some(console_cert.cert.clone());
        c.client_key = Some(console_cert.key.clone());
    })
    .await;
    let mut browser = Browser::new(env.console.addr);
    let answer = browser.send("POST", "/api/session", Some(json!({ "token": "" })), &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        (answer.body["identity"].as_str(), answer.body["via_certificate"].as_bool()),
        (Some("dns:console.example"), Some(true))
    );
    browser.csrf = answer.body["csrf"].as_str().unwrap_or_default().to_owned();
    assert_eq!(browser.write("PUT", "/api/key", put("app/prod", "a", "1", 0)).await.status, 200);
    let key = browser.get("/api/key?namespace=app/prod&key=a").await;
    assert_eq!(key.body["history"][0]["actor"], "dns:console.example");
    // A token still takes precedence over the certificate.
    let admin = Browser::sign_in(env.console.addr, ADMIN).await;
    assert!(!admin.csrf.is_empty());
    let mut admin = admin;
    assert_eq!(admin.get("/api/session").await.body["identity"], "admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_host_name_is_refused_and_bad_requests_answer_json() {
    let env = start(|_| {}).await;
    let mut b = Browser::sign_in(env.console.addr, ADMIN).await;
    // A page on another name that resolves here (DNS rebinding) gets nothing.
    let cookie = b.cookie.clone().unwrap_or_default();
    let csrf = b.csrf.clone();
    let headers = [("host", "evil.example:8080"), ("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let mut stranger = Browser::new(env.console.addr);
    let rebound = stranger.send("PUT", "/api/key", Some(put("app/prod", "a", "1", 0)), &headers).await;
    assert_eq!((rebound.status, rebound.body["code"].as_str()), (421, Some("host_not_allowed")), "{}", rebound.text);
    assert_eq!(stranger.send("GET", "/", None, &[("host", "evil.example")]).await.status, 421);
    assert_eq!(stranger.send("GET", "/healthz", None, &[("host", "10.0.0.7:8080")]).await.status, 200);
    assert_eq!(b.get("/api/keys?namespace=app/prod").await.body["entries"].as_array().map(Vec::len), Some(0));

    // Malformed bodies and queries: the API's JSON error, naming the part.
    let csrf = b.csrf.clone();
    let broken = b.send("PUT", "/api/key", Some(json!({ "namespace": 7 })), &[("x-csrf-token", &csrf)]).await;
    assert_eq!((broken.status, broken.body["field"].as_str()), (400, Some("body")), "{}", broken.text);
    let query = b.get("/api/keys?namespace=app/prod&revision=abc").await;
    assert_eq!((query.status, query.body["field"].as_str()), (400, Some("query")), "{}", query.text);

    // A binary value travels as `base64:` and is stored as its bytes.
    let binary = b.write("PUT", "/api/key", put("app/prod", "blob", "base64:AP8=", 0)).await;
    assert_eq!(binary.status, 200, "{}", binary.text);
    let read = b.get("/api/key?namespace=app/prod&key=blob").await;
    assert_eq!(read.body["entry"]["value"], "base64:AP8=");
    let bad = b.write("PUT", "/api/key", put("app/prod", "blob2", "base64:%%", 0)).await;
    assert_eq!((bad.status, bad.body["field"].as_str()), (400, Some("value")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_ends_with_its_session() {
    let env = start(|_| {}).await;
    let mut b = Browser::sign_in(env.console.addr, ADMIN).await;
    let first = b.write("PUT", "/api/key", put("app/prod", "a", "1", 0)).await.body["revision"].as_u64().unwrap_or(1);
    let (_, mut events) = b.events(&format!("/api/watch?namespace=app/prod&from={first}"), &[]).await;
    assert_eq!(events.next_change().await.id, first.to_string());
    assert_eq!(b.write("DELETE", "/api/session", json!({})).await.status, 200);
    assert!(events.ended().await, "sign-out ends the stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_signing_in_again_and_again_pushes_out_only_its_own_sessions() {
    let env = start(|c| c.max_sessions = 100).await;
    let mut reader = Browser::sign_in(env.console.addr, READER).await;
    let (_, mut stream) = reader.events("/api/watch?namespace=app/prod", &[]).await;
    let mut first_admin = Browser::sign_in(env.console.addr, ADMIN).await;
    // Under other actor names too: with authentication on, the caller is its identity.
    for i in 0..70 {
        let answer = Browser::new(env.console.addr)
            .send("POST", "/api/session", Some(json!({ "token": ADMIN, "actor": format!("name-{i}") })), &[])
            .await;
        assert_eq!(answer.status, 200);
    }
    assert_eq!(reader.get("/api/namespaces").await.status, 200, "another caller's session stays");
    assert_eq!(first_admin.get("/api/namespaces").await.status, 401, "its own oldest went");
    assert_eq!(reader.get("/api/session").await.body["identity"], "reader");
    // And a session pushed out at the limit takes its live stream with it.
    for _ in 0..100 {
        let answer =
            Browser::new(env.console.addr).send("POST", "/api/session", Some(json!({ "token": ADMIN })), &[]).await;
        assert_eq!(answer.status, 200);
    }
    let _ = Browser::sign_in(env.console.addr, READER).await;
    for _ in 0..64 {
        let _ = Browser::sign_in(env.console.addr, READER).await;
    }
    assert_eq!(reader.get("/api/namespaces").await.status, 401);
    assert!(stream.ended().await, "the evicted session's stream ends");
}
