//! The services reach NATS and Redis as production deploys them: over TLS
//! with client certificates, with users and passwords, a token, a NATS
//! creds file; and wrong or missing credentials keep a service unready.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{path::Path, time::Duration};

use veltrix_testkit::{NatsServer, RedisServer, pki::TestCa};
use veltrix_testsystem::*;

/// How long a service with wrong credentials is given to (not) get ready.
const REFUSED_FOR: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_reach_nats_and_redis_over_tls_with_credentials() {
    let ca = TestCa::new("backends");
    let server = ca.issue("backend", "localhost", &["localhost"]);
    let client_cert = ca.issue("veltrix", "veltrix", &["veltrix.internal"]);
    let p = |path: &Path| path.display().to_string();
    // NATS: TLS, client certificates verified, user and password.
    let nats = NatsServer::start_with_args(&[
        "--tls",
        "--tlscert",
        &p(&server.cert),
        "--tlskey",
        &p(&server.key),
        "--tlsverify",
        "--tlscacert",
        &p(&ca.ca),
        "--user",
        "veltrix",
        "--pass",
        "nats-s3cret",
    ]);
    // A second NATS with a token.
    let nats_token = NatsServer::start_with_args(&[
        "--tls",
        "--tlscert",
        &p(&server.cert),
        "--tlskey",
        &p(&server.key),
        "--auth",
        "nats-t0ken",
    ]);
    // Redis: TLS only, client certificates verified, an ACL user.
    let redis = RedisServer::start_tls(&[
        "--tls-cert-file".into(),
        p(&server.cert),
        "--tls-key-file".into(),
        p(&server.key),
        "--tls-ca-cert-file".into(),
        p(&ca.ca),
        "--tls-auth-clients".into(),
        "yes".into(),
        "--user".into(),
        "veltrix".into(),
        "on".into(),
        ">redis-s3cret".into(),
        "~*".into(),
        "&*".into(),
        "+@all".into(),
        "--user".into(),
        "default".into(),
        "off".into(),
    ]);

    let (nats_url, redis_url) = (nats.url(), redis.tls_url());
    let (ca_file, cert, key) = (ca.ca.clone(), client_cert.cert.clone(), client_cert.key.clone());
    let nats_options = move |c: &mut veltrix_jetstream::NatsArgs| {
        c.nats_url = nats_url.clone();
        c.nats_ca_cert = Some(ca_file.clone());
        c.nats_client_cert = Some(cert.clone());
        c.nats_client_key = Some(key.clone());
        c.nats_user = Some("veltrix".into());
        c.nats_password = Some("nats-s3cret".into());
    };
    let (command_nats, query_nats) = (nats_options.clone(), nats_options);
    let (ca_file, cert, key) = (ca.ca.clone(), client_cert.cert.clone(), client_cert.key.clone());
    let mut env = TestSystem::builder()
        .nats(nats)
        .redis(redis)
        .commands(2)
        .command(move |c| command_nats(&mut c.nats))
        .query(move |c| {
            query_nats(&mut c.nats);
            c.redis_url = redis_url.clone();
            c.redis_ca_cert = Some(ca_file.clone());
            c.redis_client_cert = Some(cert.clone());
            c.redis_client_key = Some(key.clone());
            c.redis_username = Some("veltrix".into());
            c.redis_password = Some("redis-s3cret".into());
        })
        .start()
        .await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    let revision = cmd.put(put("tls/app", "k", "v")).await.unwrap().into_inner().revision;
    let mut read = get("tls/app", "k");
    read.min_revision = Some(revision);
    assert_eq!(q.get(read).await.unwrap().into_inner().kv.unwrap().value, b"v".as_slice());

    // A token over TLS: replica 1 moves to the NATS that takes tokens.
    env.stop_command(1).await;
    let token = env.command_config(1);
    (token.nats.nats_client_cert, token.nats.nats_client_key) = (None, None);
    (token.nats.nats_user, token.nats.nats_password) = (None, None);
    token.nats.nats_url = nats_token.url();
    token.nats.nats_ca_cert = Some(ca.ca.clone());
    token.nats.nats_token = Some("nats-t0ken".into());
    env.start_command(1).await;

    // Wrong credentials, or no client certificate: never ready.
    env.stop_command(1).await;
    let (good, listen) = (env.command_config(0).nats.clone(), env.command_config(1).listen);
    let wrong = env.command_config(1);
    (wrong.nats, wrong.listen) = (good, listen);
    wrong.nats.nats_password = Some("wrong".into());
    env.start_command_unready(1).await;
    assert!(!env.command_ready_within(1, REFUSED_FOR).await, "a wrong NATS password");
    env.stop_query(0).await;
    env.query_config(0).redis_client_cert = None;
    env.query_config(0).redis_client_key = None;
    env.start_query_unready(0).await;
    assert!(!env.query_ready_within(0, REFUSED_FOR).await, "Redis without a client certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_password_is_used_and_a_wrong_one_keeps_the_service_unready() {
    let redis = RedisServer::start_with_args(&["--requirepass", "redis-pass-1"]);
    let builder = TestSystem::builder().redis(redis);
    let mut env = builder.query(|c| c.redis_password = Some("redis-pass-1".into())).start().await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    let revision = cmd.put(put("auth/app", "k", "v")).await.unwrap().into_inner().revision;
    let mut read = get("auth/app", "k");
    read.min_revision = Some(revision);
    q.get(read).await.unwrap();
    env.stop_query(0).await;
    env.query_config(0).redis_password = Some("wrong".into());
    env.start_query_unready(0).await;
    assert!(!env.query_ready_within(0, REFUSED_FOR).await, "a wrong Redis password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_creds_file_authenticates_the_services() {
    let creds = veltrix_testkit::creds::NatsCreds::new();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nats.conf");
    std::fs::write(&conf, &creds.server_config).unwrap();
    let creds_file = dir.path().join("veltrix.creds");
    std::fs::write(&creds_file, &creds.creds).unwrap();
    let nats = NatsServer::start_with_args(&["-c", conf.to_str().unwrap()]);
    let (for_command, for_query) = (creds_file.clone(), creds_file);
    let mut env = TestSystem::builder()
        .nats(nats)
        .command(move |c| c.nats.nats_creds = Some(for_command.clone()))
        .query(move |c| c.nats.nats_creds = Some(for_query.clone()))
        .start()
        .await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    let revision = cmd.put(put("creds/app", "k", "v")).await.unwrap().into_inner().revision;
    let mut read = get("creds/app", "k");
    read.min_revision = Some(revision);
    q.get(read).await.unwrap();

    // Without the creds file the server refuses the connection.
    env.stop_command(0).await;
    env.command_config(0).nats.nats_creds = None;
    env.start_command_unready(0).await;
    assert!(!env.command_ready_within(0, REFUSED_FOR).await, "no creds file");
}
