//! Start-up as `just dev` does it on a machine with nothing running: the
//! query service first (the stream does not exist yet), then the command
//! service. Normal start-up logs no warning; the wait is said once at INFO.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{process::Stdio, time::Duration};

use tokio::io::AsyncReadExt;
use veltrix_testkit::free_port;
use veltrix_testsystem::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_before_command_waits_quietly() {
    let servers = TestSystem::builder().servers_only().start().await;
    let (nats, redis) = (servers.nats_url(), servers.redis_url());
    let (command_bin, query_bin) = (binary("veltrix-command"), binary("veltrix-query"));
    let qport = free_port();
    let mut query = tokio::process::Command::new(&query_bin)
        .args(["--listen", &format!("127.0.0.1:{qport}"), "--nats-url", &nats, "--redis-url", &redis])
        .env("VELTRIX_AUTH_OFF", "true")
        .env("VELTRIX_PAGE_TOKEN_KEY", "k".repeat(32))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Long enough for several retries of the missing stream.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The command service's start-up is quiet too (it creates the stream).
    let mut command = tokio::process::Command::new(&command_bin)
        .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--nats-url", &nats])
        .env("VELTRIX_AUTH_OFF", "true")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The query service becomes ready once the stream exists.
    veltrix_testkit::eventually(Duration::from_secs(30), "the query service answers", || async {
        let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{qport}")).ok()?;
        let mut q = Query::new(channel.connect().await.ok()?);
        q.list_namespaces(veltrix_proto::v1::ListNamespacesRequest::default()).await.ok()
    })
    .await;
    query.start_kill().unwrap();
    command.start_kill().unwrap();
    let (mut log, mut command_log) = (String::new(), String::new());
    query.stderr.take().unwrap().read_to_string(&mut log).await.unwrap();
    command.stderr.take().unwrap().read_to_string(&mut command_log).await.unwrap();
    for (service, log) in [("query", &log), ("command", &command_log)] {
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
        assert!(warnings.is_empty(), "{service} start-up warnings: {warnings:#?}");
    }
    assert!(command_log.contains("command service ready"), "{command_log}");
    let said = log.lines().filter(|l| l.contains("waiting for the event stream")).count();
    assert_eq!(said, 1, "the wait is said once:\n{log}");
    assert!(log.contains("query service ready"), "{log}");
}
