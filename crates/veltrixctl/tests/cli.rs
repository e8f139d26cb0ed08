//! `veltrixctl` driven as a user would, against real servers: every
//! subcommand, every exit status, and `apply --dry-run` changing nothing.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{
    io::{BufRead, BufReader, Write},
    process::Stdio,
};

use veltrix_testkit::free_port;
use veltrix_testsystem::{Ctl, TestSystem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_and_exit_status() {
    let env = Ctl::new(TestSystem::start().await);
    let ns = "ctl/app";

    // put, with a reason; then get as a table and as JSON.
    let put = json(&env.ok(&["put", ns, "db.url", "postgres://a", "--reason", "first", "-o", "json"]).await);
    let r1 = put["revision"].as_u64().unwrap();
    let got = json(&env.ok(&["get", ns, "db.url", "--min-revision", &r1.to_string(), "-o", "json"]).await);
    assert_eq!(got["value"], "postgres://a");
    assert_eq!(
        (got["mod_revision"].as_u64(), got["create_revision"].as_u64(), got["version"].as_u64()),
        (Some(r1), Some(r1), Some(1))
    );
    let table = env.ok(&["get", ns, "db.url"]).await;
    assert!(table.contains("postgres://a") && table.contains("mod_revision"), "{table}");
    let yaml = env.ok(&["get", ns, "db.url", "-o", "yaml"]).await;
    assert!(yaml.contains("value: postgres://a"), "{yaml}");

    // put --file and --content-type; compare-and-set with --expect-revision.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("limits.json");
    std::fs::write(&file, br#"{"rps": 100}"#).unwrap();
    env.ok(&["put", ns, "limits", "--file", file.to_str().unwrap(), "--content-type", "application/json"]).await;
    let r2 =
        json(&env.ok(&["put", ns, "db.url", "postgres://b", "--expect-revision", &r1.to_string(), "-o", "json"]).await)
            ["revision"]
            .as_u64()
            .unwrap();

    // Exit statuses: conflict 4, not found 3, invalid 5, usage 2, unavailable 6.
    let stderr = env.fails(&["put", ns, "db.url", "x", "--expect-revision", &r1.to_string()], 4).await;
    assert!(stderr.contains("conflict"), "{stderr}");
    env.fails(&["get", ns, "missing", "--min-revision", &r2.to_string()], 3).await;
    env.fails(&["delete", ns, "missing"], 3).await;
    let stderr = env.fails(&["put", ns, "bad key!", "x"], 5).await;
    assert!(stderr.contains("key"), "names the field: {stderr}");
    env.fails(&["put", ns, "k"], 2).await;
    // Any other error: 1 (a request id reused for a different request).
    env.ok(&["put", "ctl/other", "once", "a", "--request-id", "req-1"]).await;
    let stderr = env.fails(&["put", "ctl/other", "once", "b", "--request-id", "req-1"], 1).await;
    assert!(stderr.contains("req-1"), "{stderr}");
    env.fails(&["frobnicate"], 2).await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut cmd = env.cmd(&["get", ns, "db.url", "--timeout", "500ms"]);
    cmd.env("VELTRIX_QUERY_URL", &dead);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));

    // list (with a prefix) and namespaces.
    let listed = json(&env.ok(&["list", ns, "-o", "json"]).await);
    let keys: Vec<_> = listed["entries"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["db.url", "limits"]);
    let table = env.ok(&["list", ns, "db."]).await;
    assert!(table.starts_with("KEY") && table.contains("postgres://b") && !table.contains("limits"), "{table}");
    let namespaces = env.ok(&["namespaces", "ctl/"]).await;
    assert!(namespaces.contains("ctl/app"), "{namespaces}");

    // apply --dry-run shows the diff and changes nothing; apply applies.
    let change_file = dir.path().join("change.yaml");
    std::fs::write(
        &change_file,
        "reason: rotate\nchanges:\n  - key: db.url\n    value: postgres://c\n  - key: limits\n    delete: true\n  - key: new.flag\n    value: \"on\"\n",
    )
    .unwrap();
    let before = env.ok(&["history", ns, "-o", "json"]).await;
    let plan = env.ok(&["apply", ns, change_file.to_str().unwrap(), "--dry-run"]).await;
    assert!(plan.contains("~ db.url: postgres://b -> postgres://c"), "{plan}");
    assert!(plan.contains("- limits") && plan.contains("+ new.flag = on"), "{plan}");
    let plan = json(&env.ok(&["apply", ns, change_file.to_str().unwrap(), "--dry-run", "-o", "json"]).await);
    assert_eq!(plan["changes"].as_array().unwrap().len(), 3);
    assert_eq!(env.ok(&["history", ns, "-o", "json"]).await, before, "a dry run appends nothing");
    let r3 =
        json(&env.ok(&["apply", ns, change_file.to_str().unwrap(), "-o", "json"]).await)["revision"].as_u64().unwrap();
    let got = json(&env.ok(&["get", ns, "new.flag", "--min-revision", &r3.to_string(), "-o", "json"]).await);
    assert_eq!(got["value"], "on");
    // A dry run that would conflict says so with the conflict status.
    std::fs::write(&change_file, "changes:\n  - key: db.url\n    value: x\n    expected_revision: 1\n").unwrap();
    env.fails(&["apply", ns, change_file.to_str().unwrap(), "--dry-run"], 4).await;
    std::fs::write(&change_file, "changes:\n  - key: db.url\n").unwrap();
    env.fails(&["apply", ns, change_file.to_str().unwrap()], 5).await;

    // history of the namespace and of a key, with who, when and why.
    let history = json(&env.ok(&["history", ns, "db.url", "-o", "json"]).await);
    let revisions: Vec<_> = history.as_array().unwrap().iter().map(|h| h["revision"].as_u64().unwrap()).collect();
    assert_eq!(revisions, [r1, r2, r3]);
    assert_eq!(history[0]["reason"], "first");
    assert_eq!(history[2]["reason"], "rotate");
    let table = env.ok(&["history", ns, "--limit", "2"]).await;
    assert_eq!(table.lines().count(), 3, "a header and two change sets: {table}");

    // delete, then completions.
    env.ok(&["delete", ns, "new.flag", "--reason", "done"]).await;
    let completions = env.ok(&["completions", "bash"]).await;
    assert!(completions.contains("veltrixctl"), "a completion script");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_changes_as_they_come() {
    let env = Ctl::new(TestSystem::start().await);
    let ns = "ctl/watch";
    let r1 = json(&env.ok(&["put", ns, "a", "1", "-o", "json"]).await)["revision"].as_u64().unwrap();

    // From a revision: history first, then live; exits after --count.
    let mut child = env
        .cmd(&["watch", ns, "--from", &r1.to_string(), "--count", "3", "-o", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || BufReader::new(stdout).lines().map(Result::unwrap).collect::<Vec<_>>());
    env.ok(&["put", ns, "b", "2"]).await;
    env.ok(&["delete", ns, "a"]).await;
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success());
    let lines = reader.join().unwrap();
    let changes: Vec<serde_json::Value> = lines.iter().map(|l| json(l)).filter(|v| v["type"] == "change").collect();
    assert_eq!(changes.len(), 3, "{lines:?}");
    assert_eq!(changes[0]["revision"].as_u64(), Some(r1));
    assert_eq!(changes[1]["changes"][0]["key"], "b");
    assert!(changes[2]["changes"][0].get("value").is_none(), "a delete has no value");

    // The table form, with a snapshot first.
    let mut child = env.cmd(&["watch", ns, "--snapshot", "--count", "1"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        (line, stdout)
    })
    .await
    .unwrap();
    assert!(first.0.contains("snapshot b=2"), "{}", first.0);
    env.ok(&["put", ns, "c", "3"]).await;
    let (rest, status) = tokio::task::spawn_blocking(move || {
        let mut stdout = first.1;
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        (rest, child.wait().unwrap())
    })
    .await
    .unwrap();
    assert!(status.success());
    assert!(rest.contains("set c=3"), "{rest}");
    let _ = std::io::stdout().flush();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_tls_options_reach_a_secured_service() {
    use veltrix_testkit::pki::TestCa;
    let ca = TestCa::new("ctl");
    let server = ca.issue("server", "localhost", &["localhost"]);
    let client = ca.issue("client", "client", &["deployer.example"]);
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.yaml");
    std::fs::write(
        &auth,
        format!(
            "tokens: [{{identity: ci, sha256: \"{}\"}}]\ngrants:\n  - {{identity: ci, namespaces: [\"apps/**\"], roles: [read, write]}}\n  - {{identity: \"dns:deployer.example\", namespaces: [\"apps/**\"], roles: [read]}}\n",
            veltrix_auth::token_digest("ci-token-123")
        ),
    )
    .unwrap();
    let tls = veltrix_server::tls::TlsArgs {
        tls_cert: Some(server.cert.clone()),
        tls_key: Some(server.key.clone()),
        tls_client_ca: Some(ca.ca.clone()),
        ..Default::default()
    };
    let env = Ctl::new(TestSystem::builder().auth(auth).tls(tls).start().await);
    let tls_args = [
        "--ca-cert",
        ca.ca.to_str().unwrap(),
        "--client-cert",
        client.cert.to_str().unwrap(),
        "--client-key",
        client.key.to_str().unwrap(),
    ];
    fn with<'a>(args: &[&'a str], tls: &[&'a str]) -> Vec<&'a str> {
        [args, tls].concat()
    }

    // The certificate's identity may read, not write; the token may write.
    let stderr = env.fails(&with(&["put", "apps/web", "k", "v"], &tls_args), 1).await;
    assert!(stderr.contains("permission denied"), "{stderr}");
    let mut put = env.cmd(&with(&["put", "apps/web", "k", "v", "-o", "json"], &tls_args));
    put.env("VELTRIX_TOKEN", "ci-token-123");
    let out = tokio::task::spawn_blocking(move || put.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let revision = json(&String::from_utf8(out.stdout).unwrap())["revision"].as_u64().unwrap();
    let got = json(
        &env.ok(&with(&["get", "apps/web", "k", "--min-revision", &revision.to_string(), "-o", "json"], &tls_args))
            .await,
    );
    assert_eq!(got["updated_by"], "ci", "the actor is the token's identity");
    // An unknown token is refused.
    let stderr = env.fails(&with(&["get", "apps/web", "k", "--token", "nope"], &tls_args), 1).await;
    assert!(stderr.contains("unauthenticated"), "{stderr}");
}

/// (key, value, content type) of every key, as `list -o json` prints them,
/// once the read model has applied `at_least`.
async fn listed(env: &Ctl, ns: &str, at_least: u64) -> Vec<(serde_json::Value, serde_json::Value, serde_json::Value)> {
    let v = json(&env.ok(&["list", ns, "--min-revision", &at_least.to_string(), "-o", "json"]).await);
    let entries = v["entries"].as_array().unwrap().clone();
    entries.iter().map(|e| (e["key"].clone(), e["value"].clone(), e["content_type"].clone())).collect()
}

/// Runs a write with `-o json` and returns its revision.
async fn wrote(env: &Ctl, args: &[&str]) -> u64 {
    let out = json(&env.ok(&[args, &["-o", "json"]].concat()).await);
    out["revision"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_apply_round_trip_a_namespace() {
    let env = Ctl::new(TestSystem::start().await);
    let (src, dst) = ("ctl/src", "ctl/dst");
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    // Text that YAML would read as other types, JSON, several lines, binary.
    for (key, value) in [("db/url", "postgres://a"), ("feature/beta", "on"), ("port", "8080"), ("flag", "true")] {
        env.ok(&["put", src, key, value]).await;
    }
    env.ok(&["put", src, "multi", "line one\nline two: x\n"]).await;
    std::fs::write(path("limits.json"), br#"{"rps": 100}"#).unwrap();
    env.ok(&["put", src, "limits", "--file", &path("limits.json"), "--content-type", "application/json"]).await;
    let binary: Vec<u8> = vec![0, 159, 146, 150, 255, b'\n'];
    std::fs::write(path("blob"), &binary).unwrap();
    let r = wrote(&env, &["put", src, "blob", "--file", &path("blob")]).await.to_string();

    // get --raw prints the bytes as stored.
    let raw = env.run(&["get", src, "blob", "--raw", "--min-revision", &r]).await;
    assert!(raw.status.success());
    assert_eq!(raw.stdout, binary);

    // export | apply into another namespace, in YAML and JSON: the same keys,
    // values and content types; the header names the source and revision.
    let yaml = env.ok(&["export", src, "--min-revision", &r]).await;
    assert!(yaml.starts_with(&format!("# {src} at revision {r}")), "{yaml}");
    std::fs::write(path("src.yaml"), &yaml).unwrap();
    let copied = wrote(&env, &["apply", dst, &path("src.yaml"), "--reason", "copy"]).await;
    assert_eq!(listed(&env, src, copied).await, listed(&env, dst, copied).await);
    assert_eq!(listed(&env, src, copied).await.len(), 7);
    let again = env.ok(&["export", dst, "--min-revision", &copied.to_string()]).await;
    assert_eq!(again.lines().skip(1).collect::<Vec<_>>(), yaml.lines().skip(1).collect::<Vec<_>>());
    // Applying the same state again changes nothing.
    let before = env.ok(&["history", dst, "-o", "json"]).await;
    let same = env.ok(&["apply", dst, &path("src.yaml")]).await;
    assert!(same.starts_with("no changes"), "{same}");
    assert_eq!(env.ok(&["history", dst, "-o", "json"]).await, before);
    let exported_json = env.ok(&["export", src, "-o", "json"]).await;
    assert_eq!(json(&exported_json)["# exported"]["namespace"], src);
    std::fs::write(path("src.json"), &exported_json).unwrap();
    let from_json = wrote(&env, &["apply", "ctl/dst-json", &path("src.json")]).await;
    assert_eq!(listed(&env, src, from_json).await, listed(&env, "ctl/dst-json", from_json).await);

    // The file is the desired state: --delete-missing removes what it lacks;
    // --dry-run shows it and appends nothing.
    let extra = wrote(&env, &["put", dst, "extra", "x"]).await;
    listed(&env, dst, extra).await;
    std::fs::write(path("edited.yaml"), yaml.replace("port: '8080'", "port: '9090'")).unwrap();
    let before = env.ok(&["history", dst, "-o", "json"]).await;
    let plan = env.ok(&["apply", dst, &path("edited.yaml"), "--delete-missing", "--dry-run"]).await;
    assert_eq!(plan, "~ port: 8080 -> 9090\n- extra (was x)\n", "{yaml}");
    assert_eq!(env.ok(&["history", dst, "-o", "json"]).await, before, "a dry run appends nothing");
    let pruned = wrote(&env, &["apply", dst, &path("edited.yaml"), "--delete-missing"]).await;
    let keys: Vec<_> = listed(&env, dst, pruned).await.into_iter().map(|(k, v, _)| (k, v)).collect();
    assert!(!keys.iter().any(|(k, _)| k == "extra"), "{keys:?}");
    assert!(keys.contains(&(serde_json::json!("port"), serde_json::json!("9090"))), "{keys:?}");
    // Without --delete-missing, keys the file lacks stay.
    let kept = wrote(&env, &["put", dst, "kept", "y"]).await;
    listed(&env, dst, kept).await;
    let restored = wrote(&env, &["apply", dst, &path("src.yaml")]).await;
    assert!(listed(&env, dst, restored).await.iter().any(|(k, _, _)| k == "kept"));
    env.fails(&["apply", dst, &path("src.yaml"), "--prefix", "db/"], 5).await;
    std::fs::write(path("change.yaml"), "changes:\n  - key: a\n    value: b\n").unwrap();
    env.fails(&["apply", dst, &path("change.yaml"), "--delete-missing"], 2).await;
    std::fs::write(path("number.yaml"), "port: 8080\n").unwrap();
    let stderr = env.fails(&["apply", dst, &path("number.yaml")], 5).await;
    assert!(stderr.contains("port") && stderr.contains("quote"), "{stderr}");

    // export --revision: the state as it was; put - reads standard input.
    let old = env.ok(&["export", src, "--revision", "1"]).await;
    assert_eq!(old.lines().skip(1).collect::<Vec<_>>(), ["db/url: postgres://a"]);
    // export PREFIX: only the keys under it, which apply --prefix reads back.
    let db = env.ok(&["export", src, "db/"]).await;
    assert_eq!(db.lines().skip(1).collect::<Vec<_>>(), ["db/url: postgres://a"]);
    std::fs::write(path("db.yaml"), &db).unwrap();
    let plan = env.ok(&["apply", "ctl/db-only", &path("db.yaml"), "--prefix", "db/", "--dry-run"]).await;
    assert_eq!(plan, "+ db/url = postgres://a\n");
    let mut put = env.cmd(&["put", src, "stdin", "-", "-o", "json"]);
    put.stdin(Stdio::piped()).stdout(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = put.spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"from\nstdin").unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let r = json(&String::from_utf8(out.stdout).unwrap())["revision"].as_u64().unwrap();
    let raw = env.run(&["get", src, "stdin", "--raw", "--min-revision", &r.to_string()]).await;
    assert_eq!(raw.stdout, b"from\nstdin");

    // Tables escape control characters; only --raw prints them.
    let esc = wrote(&env, &["put", "ctl/esc", "k", "\u{1b}[31mred\u{7}"]).await.to_string();
    let table = env.ok(&["list", "ctl/esc", "--min-revision", &esc]).await;
    assert!(table.contains("\\u{1b}[31mred\\u{7}") && !table.contains('\u{1b}'), "{table:?}");
    let shown = env.ok(&["get", "ctl/esc", "k"]).await;
    assert!(!shown.contains('\u{1b}'), "{shown:?}");
    let raw = env.run(&["get", "ctl/esc", "k", "--raw"]).await;
    assert_eq!(raw.stdout, "\u{1b}[31mred\u{7}".as_bytes());
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_shows_its_diff_in_a_dry_run_and_restores_a_revision() {
    let env = Ctl::new(TestSystem::start().await);
    let ns = "ctl/rollback";
    let r1 = wrote(&env, &["put", ns, "limit", "10"]).await;
    wrote(&env, &["put", ns, "limit", "20"]).await;
    let r3 = wrote(&env, &["put", ns, "fresh", "x"]).await;
    let to = r1.to_string();

    let plan = env.ok(&["rollback", ns, "--to", &to, "--dry-run"]).await;
    assert!(plan.contains("~ limit: 20 -> 10") && plan.contains("- fresh"), "{plan}");
    assert!(plan.contains("nothing written"), "{plan}");
    // Refused when the namespace is not where the caller says: exit 4.
    env.fails(&["rollback", ns, "--to", &to, "--expect-revision", &r1.to_string()], 4).await;
    let done = json(&env.ok(&["rollback", ns, "--to", &to, "--expect-revision", &r3.to_string(), "-o", "json"]).await);
    let revision = done["revision"].as_u64().unwrap();
    assert!(revision > r3);
    assert_eq!(done["changes"].as_array().unwrap().len(), 2);
    let got = json(&env.ok(&["get", ns, "limit", "--min-revision", &revision.to_string(), "-o", "json"]).await);
    assert_eq!(got["value"], "10");
    env.fails(&["rollback", ns, "--to", "0"], 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_copies_staging_into_prod_after_a_dry_run() {
    let env = Ctl::new(TestSystem::start().await);
    wrote(&env, &["put", "ctl/staging", "db/url", "staging-db"]).await;
    wrote(&env, &["put", "ctl/prod", "db/url", "prod-db"]).await;
    let r = wrote(&env, &["put", "ctl/prod", "db/old", "1"]).await;

    let plan =
        env.ok(&["promote", "ctl/staging", "ctl/prod", "--prefix", "db/", "--delete-missing", "--dry-run"]).await;
    assert!(plan.contains("~ db/url: prod-db -> staging-db") && plan.contains("- db/old"), "{plan}");
    let stale = ["promote", "ctl/staging", "ctl/prod", "--expect-revision", "1"];
    env.fails(&stale, 4).await;
    let done = json(&env.ok(&["promote", "ctl/staging", "ctl/prod", "--prefix", "db/", "-o", "json"]).await);
    let revision = done["revision"].as_u64().unwrap();
    assert!(revision > r);
    let listed = listed(&env, "ctl/prod", revision).await;
    assert_eq!(listed.len(), 2, "without --delete-missing db/old stays: {listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_lists_what_changed_between_revisions_and_namespaces() {
    let env = Ctl::new(TestSystem::start().await);
    let r1 = wrote(&env, &["put", "ctl/d", "a", "1"]).await;
    wrote(&env, &["put", "ctl/d", "a", "2"]).await;
    let r3 = wrote(&env, &["put", "ctl/d", "b", "x"]).await;
    env.ok(&["get", "ctl/d", "b", "--min-revision", &r3.to_string()]).await;
    let text = env.ok(&["diff", &format!("ctl/d@{r1}"), "ctl/d"]).await;
    assert!(text.contains("~ a: 1 -> 2") && text.contains("+ b = x"), "{text}");
    let v = json(&env.ok(&["diff", &format!("ctl/d@{r1}"), "-o", "json"]).await);
    assert_eq!(v["entries"].as_array().unwrap().len(), 2);
    assert_eq!(v["from_revision"].as_u64(), Some(r1));
    env.fails(&["diff", "ctl/d@x"], 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_blame_and_delete_namespace_from_the_command_line() {
    let env = Ctl::new(TestSystem::start().await);
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("limits.json");
    std::fs::write(&schema, r#"{"type":"object","properties":{"rps":{"type":"integer","maximum":100}}}"#).unwrap();
    let schema = schema.to_str().unwrap();
    let ns = "ctl/schema";
    let json_put =
        |key: &'static str, value: &'static str| ["put", ns, key, value, "--content-type", "application/json"];
    wrote(&env, &json_put("limits/api", r#"{"rps": 500}"#)).await;

    // Refused while a current value breaks it, in a dry run too: exit 5.
    let refused = env.fails(&["schema", "set", ns, "limits/*", schema, "--dry-run"], 5).await;
    assert!(refused.contains("limits/api"), "{refused}");
    wrote(&env, &json_put("limits/api", r#"{"rps": 50}"#)).await;
    let dry = env.ok(&["schema", "set", ns, "limits/*", schema, "--dry-run"]).await;
    assert!(dry.contains("nothing written"), "{dry}");
    let set = json(&env.ok(&["schema", "set", ns, "limits/*", schema, "--reason", "cap rps", "-o", "json"]).await);
    let set = set["revision"].as_u64().unwrap();
    // A value that breaks it: exit 5, naming the key and the JSON pointer.
    let bad = env.fails(&json_put("limits/api", r#"{"rps": 101}"#), 5).await;
    assert!(bad.contains("limits/api#/rps"), "{bad}");
    env.fails(&["schema", "set", ns, "limits/*", "/no/such/file"], 2).await;

    let list = env.ok(&["schema", "list", ns, "--revision", &set.to_string()]).await;
    assert!(list.contains("limits/*") && list.contains("maximum"), "{list}");
    let history = env.ok(&["history", ns]).await;
    assert!(history.contains("(schema change) schema:limits/*"), "{history}");

    // Blame: who last set each key, and why.
    wrote(&env, &["--actor", "alice", "put", ns, "owner", "team-a", "--reason", "hand over"]).await;
    let r = wrote(&env, &["schema", "delete", ns, "limits/*"]).await;
    env.ok(&["get", ns, "owner", "--min-revision", &r.to_string()]).await;
    let blame = env.ok(&["blame", ns]).await;
    let owner = blame.lines().find(|l| l.starts_with("owner")).unwrap();
    assert!(owner.contains("alice") && owner.contains("hand over") && owner.contains("write"), "{blame}");
    let blamed = json(&env.ok(&["blame", ns, "limits/", "-o", "json"]).await);
    assert_eq!(blamed.as_array().unwrap().len(), 1);
    env.fails(&["schema", "delete", ns, "limits/*"], 3).await;

    // delete-namespace: a dry run, then gone from the listing but not its history.
    let dry = env.ok(&["delete-namespace", ns, "--dry-run"]).await;
    assert!(dry.contains("- owner") && dry.contains("nothing written"), "{dry}");
    let gone = json(&env.ok(&["delete-namespace", ns, "-o", "json"]).await);
    let gone = gone["revision"].as_u64().unwrap();
    env.fails(&["get", ns, "owner", "--min-revision", &gone.to_string()], 3).await;
    let listed = env.ok(&["namespaces", "ctl/"]).await;
    assert!(!listed.contains(ns), "{listed}");
    let all = env.ok(&["namespaces", "ctl/", "--include-deleted"]).await;
    assert!(all.contains("ctl/schema (deleted)"), "{all}");
    let history = env.ok(&["history", ns]).await;
    assert!(history.contains("(namespace deleted)"), "{history}");
    env.fails(&["delete-namespace", "ctl/never"], 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_status_show_what_the_fleet_runs() {
    let env = Ctl::new(TestSystem::start().await);
    let ns = "ctl/fleet";
    let rev = wrote(&env, &["put", ns, "port", "80"]).await;
    let client = veltrix_client::Client::builder()
        .command_url(env.command_url.clone())
        .query_url(env.query_url.clone())
        .build()
        .unwrap();
    let who = |id: &str| veltrix_client::SyncOptions::new(id);
    let ack = veltrix_client::StatusReport::Ack { revision: rev, digest: String::new() };
    client.report_status(ns, &who("web-1"), ack).await.unwrap();
    for id in ["web-7", "web-9"] {
        let nack = veltrix_client::StatusReport::Nack {
            revision: rev,
            applied: 0,
            step: veltrix_client::SyncStep::Check,
            error: "invalid port".into(),
        };
        client.report_status(ns, &who(id), nack).await.unwrap();
    }
    // A NACK that claims to still run the revision it rejects is refused.
    let confused = veltrix_client::StatusReport::Nack {
        revision: rev,
        applied: rev,
        step: veltrix_client::SyncStep::Check,
        error: "x".into(),
    };
    let refused = client.report_status(ns, &who("web-8"), confused).await.unwrap_err().to_string();
    assert!(refused.contains("nack.applied_revision"), "{refused}");
    let status = env.ok(&["status", ns]).await;
    assert_eq!(
        status.trim(),
        format!("revision {rev}: 1 applied, 2 rejected: check: invalid port (2 clients: web-7, web-9)")
    );
    // One-shot reports hold no stream: DISCONNECTED in the listing, counted
    // by what they run in the status.
    let listed = json(&env.ok(&["clients", ns, "--state", "disconnected", "-o", "json"]).await);
    let ids: Vec<_> = listed.as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["web-1", "web-7", "web-9"]);
    assert_eq!(listed[1]["last_error"]["error"], "invalid port");
    assert!(json(&env.ok(&["clients", ns, "--state", "synced", "-o", "json"]).await).as_array().unwrap().is_empty());
    let table = env.ok(&["clients", ns]).await;
    assert!(table.contains("web-1") && table.contains("DISCONNECTED") && table.contains("check@"), "{table}");
    assert_eq!(json(&env.ok(&["status", ns, &rev.to_string(), "-o", "json"]).await)["rejected"], 2);
    env.fails(&["clients", ns, "--state", "sleepy"], 2).await;
    env.fails(&["status", ns, "999999"], 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_from_the_command_line() {
    let env = Ctl::new(TestSystem::start().await);
    let ns = "ctl/roll";
    env.ok(&["put", ns, "port", "80"]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("port.yaml");
    std::fs::write(&file, "reason: new port\nchanges:\n  - key: port\n    value: \"81\"\n").unwrap();
    let f = file.to_str().unwrap();
    // Bad flags are usage errors before anything is sent.
    env.fails(&["rollout", "start", ns, f, "--steps", "10,50,100", "--min-applied", "120%"], 2).await;
    let stderr = env.fails(&["rollout", "start", ns, f, "--steps", "10,50"], 5).await;
    assert!(stderr.contains("strategy.steps[1].percent"), "names the field: {stderr}");
    let started = json(
        &env.ok(&[
            "rollout",
            "start",
            ns,
            f,
            "--steps",
            "10,50,100",
            "--bake",
            "1h",
            "--min-applied",
            "95%",
            "--max-rejected",
            "2%",
            "--canary",
            "canary=true",
            "--ack-timeout",
            "10m",
            "-o",
            "json",
        ])
        .await,
    );
    let id = started["rollout_id"].as_str().unwrap().to_owned();
    // Projected, then shown: the step, the cohort (no clients), the gate.
    let status = veltrix_testsystem::eventually(std::time::Duration::from_secs(10), "the rollout is shown", || async {
        let out = env.run(&["rollout", "status", ns]).await;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .await;
    assert!(status.starts_with(&format!("rollout {id} RUNNING at step 1/3 (10%): cohort 0: 0 applied")), "{status}");
    assert!(status.contains("next gate in 3600 s") || status.contains("next gate in 3599 s"), "{status}");
    let shown = json(&env.ok(&["rollout", "status", ns, "--id", &id, "-o", "json"]).await);
    assert_eq!(shown["strategy"]["steps"][0]["min_applied_percent"], 95);
    assert_eq!(shown["strategy"]["canary"]["canary"], "true");
    assert_eq!(shown["strategy"]["ack_timeout"], 600.0);
    // A held key is refused (exit 5); pause, resume, promote.
    let stderr = env.fails(&["put", ns, "port", "99"], 5).await;
    assert!(stderr.contains(&id), "{stderr}");
    let paused = env.ok(&["rollout", "pause", ns, "--reason", "lunch"]).await;
    assert!(paused.starts_with(&format!("rollout {id} PAUSED")) && paused.contains("paused by user"), "{paused}");
    env.fails(&["rollout", "pause", ns, "--id", &id], 5).await;
    env.fails(&["rollout", "resume", ns, "--id", &id, "--expect-version", "1"], 4).await;
    env.ok(&["rollout", "resume", ns, "--id", &id]).await;
    let promoted = env.ok(&["rollout", "promote", ns, "--id", &id, "--reason", "ship it"]).await;
    assert!(promoted.starts_with(&format!("rollout {id} COMPLETED at step 3/3 (100%)")), "{promoted}");
    assert!(promoted.contains("committed at revision"), "{promoted}");
    let list = env.ok(&["rollout", "list", ns]).await;
    assert!(list.lines().nth(1).is_some_and(|l| l.starts_with(&id) && l.contains("COMPLETED")), "{list}");
    env.fails(&["rollout", "abort", ns, "--id", "r-nope"], 3).await;
}
