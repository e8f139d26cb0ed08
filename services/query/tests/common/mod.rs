//! Shared fixtures: real nats-server and redis-server, the command service
//! and the query service in-process, clients, and helpers to compare models.
#![allow(dead_code)]

use std::time::Duration;

use tonic::{Code, Status, transport::Channel};
use veltrix_proto::v1::{
    ChangeRecord, GetRequest, HistoryRequest, KeyValue, ListNamespacesRequest, ListRequest, PutRequest,
    config_command_client::ConfigCommandClient, config_query_client::ConfigQueryClient,
};
use veltrix_query::Started;
use veltrix_server::Running;
use veltrix_testkit::{NatsServer, RedisServer};

pub type Command = ConfigCommandClient<Channel>;
pub type Query = ConfigQueryClient<Channel>;

pub async fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).expect("url").connect().await.expect("connect")
}

pub async fn start_command(nats: &NatsServer) -> (Running, Command) {
    let mut c = veltrix_command::Config::defaults();
    c.listen = "127.0.0.1:0".parse().expect("addr");
    c.nats.nats_url = nats.url();
    c.serve.shutdown_grace = Duration::from_secs(1);
    let mut running = veltrix_command::start(c).await.expect("start command service");
    tokio::time::timeout(Duration::from_secs(20), running.ready()).await.expect("in time").expect("ready");
    let client = ConfigCommandClient::new(channel(running.addr()).await);
    (running, client)
}

pub fn query_config(nats: &NatsServer, redis: &RedisServer) -> veltrix_query::Config {
    let mut c = veltrix_query::Config::defaults();
    c.listen = "127.0.0.1:0".parse().expect("addr");
    c.nats.nats_url = nats.url();
    c.redis_url = redis.url();
    c.page_token_key = Some("a test key of sixteen bytes or more".into());
    c.model_check_interval = Duration::from_millis(100);
    c.serve.shutdown_grace = Duration::from_secs(1);
    c
}

pub async fn start_query(config: veltrix_query::Config) -> (Started, Query) {
    let mut started = veltrix_query::start(config).await.expect("start query service");
    tokio::time::timeout(Duration::from_secs(20), started.running.ready()).await.expect("in time").expect("ready");
    let client = ConfigQueryClient::new(channel(started.running.addr()).await);
    (started, client)
}

/// NATS, Redis, both services and their clients.
pub struct Env {
    pub nats: NatsServer,
    pub redis: RedisServer,
    pub command: Running,
    pub cmd: Command,
    pub query: Started,
    pub q: Query,
}

pub async fn env() -> Env {
    env_with(|_| {}).await
}

/// Like [`env`], with the query service's configuration adjusted.
pub async fn env_with(adjust: impl FnOnce(&mut veltrix_query::Config)) -> Env {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let (command, cmd) = start_command(&nats).await;
    let mut config = query_config(&nats, &redis);
    adjust(&mut config);
    let (query, q) = start_query(config).await;
    Env { nats, redis, command, cmd, query, q }
}

/// A free loopback address for a `/metrics` endpoint.
pub fn metrics_addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], veltrix_testkit::free_port()))
}

pub fn put(ns: &str, key: &str, value: &str) -> PutRequest {
    PutRequest { namespace: ns.into(), key: key.into(), value: value.as_bytes().to_vec(), ..Default::default() }
}

pub fn get(ns: &str, key: &str) -> GetRequest {
    GetRequest { namespace: ns.into(), key: key.into(), ..Default::default() }
}

pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Err(s) if s.code() == code => s,
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

/// Writes `count` change sets over `namespaces` namespaces with `concurrency`
/// writers; answers the highest revision.
pub async fn burst(cmd: &Command, count: usize, namespaces: usize, concurrency: usize) -> u64 {
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let mut c = cmd.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for i in (w..count).step_by(concurrency) {
                let ns = format!("burst/n{}", i % namespaces);
                let req =
                    PutRequest { request_id: format!("b{i}"), ..put(&ns, &format!("k{}", i % 7), &i.to_string()) };
                last = last.max(c.put(req).await.expect("burst put").into_inner().revision);
            }
            last
        }));
    }
    let mut last = 0;
    for t in tasks {
        last = last.max(t.await.expect("writer"));
    }
    last
}

/// Everything a client can read: every namespace with its keys and history.
pub type Dump = Vec<(String, u64, Vec<KeyValue>, Vec<ChangeRecord>)>;

pub async fn dump(q: &mut Query, min_revision: u64) -> Dump {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = q
            .list_namespaces(ListNamespacesRequest { page_size: 1000, page_token: token, ..Default::default() })
            .await
            .expect("namespaces")
            .into_inner();
        for ns in page.namespaces {
            let (mut kvs, mut records) = (Vec::new(), Vec::new());
            let mut t = String::new();
            loop {
                let r = ListRequest {
                    namespace: ns.name.clone(),
                    page_size: 1000,
                    page_token: t,
                    min_revision: Some(min_revision),
                    ..Default::default()
                };
                let p = q.list(r).await.expect("list").into_inner();
                kvs.extend(p.kvs);
                if p.next_page_token.is_empty() {
                    break;
                }
                t = p.next_page_token;
            }
            let mut t = String::new();
            loop {
                let r =
                    HistoryRequest { namespace: ns.name.clone(), page_size: 1000, page_token: t, ..Default::default() };
                let p = q.history(r).await.expect("history").into_inner();
                records.extend(p.records);
                if p.next_page_token.is_empty() {
                    break;
                }
                t = p.next_page_token;
            }
            out.push((ns.name, ns.revision, kvs, records));
        }
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

/// The Prometheus text of a `/metrics` endpoint.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect to /metrics");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: test\r\n\r\n").await.expect("request");
    let mut out = String::new();
    conn.read_to_string(&mut out).await.expect("response");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// The value of a metric line `name value` (without labels).
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The built `veltrix-query` and `veltrix-command` binaries (the workspace
/// build makes both).
pub fn service_binaries() -> (std::path::PathBuf, std::path::PathBuf) {
    let query = std::path::PathBuf::from(env!("CARGO_BIN_EXE_veltrix-query"));
    let command = query.with_file_name("veltrix-command");
    (command, query)
}

/// Starts a service binary on `port` with `env` and waits for SERVING.
pub async fn spawn(
    program: &std::path::Path,
    args: &[String],
    env: &[(&str, &str)],
    port: u16,
    service: &str,
) -> tokio::process::Child {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    assert!(
        program.exists(),
        "{} is not built: run `cargo build --workspace` (`cargo xtask test` builds it)",
        program.display()
    );
    let child = tokio::process::Command::new(program)
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .envs(env.iter().copied())
        // Log lines at warn: what is tested must not depend on the log filter.
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the service");
    veltrix_testkit::eventually(Duration::from_secs(30), "the service reports SERVING", || async {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).ok()?.connect().await.ok()?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest { service: service.into() })
            .await
            .ok()?
            .into_inner()
            .status;
        (status == ServingStatus::Serving as i32).then_some(())
    })
    .await;
    child
}

/// The Grafana dashboard's query expressions, in panel order.
pub fn dashboard_exprs() -> Vec<String> {
    const DASHBOARD: &str = include_str!("../../../../deploy/grafana/dashboards/veltrix.json");
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
    let exprs: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 10, "the dashboard has queries: {exprs:?}");
    exprs
}

/// The `veltrix_` metric names the dashboard's queries use (histogram
/// series by their family name).
pub fn dashboard_metric_names() -> std::collections::BTreeSet<String> {
    metric_names(&dashboard_exprs().join("\n"))
}

/// The `veltrix_` metric names the alert rules use.
pub fn alert_metric_names() -> std::collections::BTreeSet<String> {
    const ALERTS: &str = include_str!("../../../../deploy/prometheus/alerts.yml");
    let exprs: Vec<&str> = ALERTS.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    let names = metric_names(&exprs.join("\n"));
    assert!(names.len() >= 8, "the alerts use veltrix metrics: {names:?}");
    names
}

fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for (i, _) in text.match_indices("veltrix_") {
        let rest = &text[i..];
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        names.insert(rest[..end].to_owned());
    }
    names
}

/// Metric family names in a Prometheus text exposition.
pub fn exported(text: &str) -> std::collections::HashSet<String> {
    text.lines()
        .filter(|l| l.starts_with("veltrix_"))
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
        .collect()
}
