//! What operators see: every metric the Grafana dashboard and the alert
//! rules use exists from start-up, and a real Prometheus scraping both services while a small
//! workload runs answers every one of the dashboard's queries with data.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{net::SocketAddr, time::Duration};

use tokio_stream::StreamExt;
use tonic::Code;
use veltrix_proto::v1::{WatchRequest, watch_response::Event};
use veltrix_testkit::PrometheusServer;
use veltrix_testsystem::*;

/// Both service binaries with their own `/metrics` endpoints, as deployed.
struct Deployed {
    _servers: TestSystem,
    _command: tokio::process::Child,
    _query: tokio::process::Child,
    cmd: Command,
    q: Query,
    command_metrics: SocketAddr,
    query_metrics: SocketAddr,
    q_addr: SocketAddr,
}

async fn deploy() -> Deployed {
    let servers = TestSystem::builder().servers_only().start().await;
    let (nats, redis) = (servers.nats_url(), servers.redis_url());
    let (command_bin, query_bin) = (binary("veltrix-command"), binary("veltrix-query"));
    let (cport, qport) = (free_port(), free_port());
    let (command_metrics, query_metrics) = (metrics_addr(), metrics_addr());
    let args = |metrics: SocketAddr, extra: &[String]| {
        let mut args = vec!["--nats-url".into(), nats.clone(), "--metrics-listen".into(), metrics.to_string()];
        args.extend_from_slice(extra);
        args
    };
    let command =
        spawn_service(&command_bin, &args(command_metrics, &[]), &[], cport, "veltrix.config.v1.ConfigCommand").await;
    let query_extra = ["--redis-url".into(), redis.clone(), "--page-token-key".into(), "k".repeat(32)];
    let query =
        spawn_service(&query_bin, &args(query_metrics, &query_extra), &[], qport, "veltrix.config.v1.ConfigQuery")
            .await;
    Deployed {
        cmd: Command::new(channel(([127, 0, 0, 1], cport).into()).await),
        q: Query::new(channel(([127, 0, 0, 1], qport).into()).await),
        _servers: servers,
        _command: command,
        _query: query,
        command_metrics,
        query_metrics,
        q_addr: ([127, 0, 0, 1], qport).into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_metrics_exist_from_start_up() {
    let d = deploy().await;
    // No call made yet: a fresh replica's panels must not say "No data".
    let text = scrape(d.command_metrics).await + &scrape(d.query_metrics).await;
    let names = exported(&text);
    let missing: Vec<_> = dashboard_metric_names().into_iter().filter(|n| !names.contains(n)).collect();
    assert!(missing.is_empty(), "dashboard metrics exported only after traffic: {missing:?}\n{text}");
    let missing: Vec<_> = alert_metric_names().into_iter().filter(|n| !names.contains(n)).collect();
    assert!(missing.is_empty(), "alert metrics exported only after traffic, or not at all: {missing:?}\n{text}");
    assert_eq!(metric(&text, "veltrix_watch_watchers"), Some(0.0));
    for reason in ["client_gone", "stalled", "unavailable", "error"] {
        let line = format!("veltrix_watch_ended_total{{reason=\"{reason}\"}} 0");
        assert!(text.contains(&line), "{line} from the start:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_answers_every_dashboard_query() {
    let d = deploy().await;
    let (mut cmd, mut q) = (d.cmd.clone(), d.q.clone());
    let prometheus =
        PrometheusServer::start(&[("veltrix-command", d.command_metrics), ("veltrix-query", d.query_metrics)]);
    let ns = "dashboard/app";

    // A watcher that stays, one that leaves, writes, a conflict, reads and a miss.
    let mut watch = q.watch(WatchRequest { namespace: ns.into(), ..Default::default() }).await.unwrap().into_inner();
    let left = q.watch(WatchRequest { namespace: ns.into(), ..Default::default() }).await.unwrap();
    drop(left);
    let workload = async {
        let mut revision = 0;
        for i in 0.. {
            revision = cmd.put(put(ns, "k", &format!("v{i}"))).await.unwrap().into_inner().revision;
            let mut stale = put(ns, "k", "lost");
            stale.expected_revision = Some(revision + 1000);
            assert_code(cmd.put(stale).await, Code::Aborted);
            let mut read = get(ns, "k");
            read.min_revision = Some(revision);
            q.get(read).await.unwrap();
            assert_code(q.get(get(ns, "missing")).await, Code::NotFound);
            tokio::time::sleep(Duration::from_millis(200)).await;
            if i > 10_000 {
                break;
            }
        }
        revision
    };
    let delivered = async {
        loop {
            let msg = watch.next().await.unwrap().unwrap();
            assert!(!matches!(msg.event, Some(Event::Snapshot(_))), "no snapshot was asked for");
        }
    };
    let mut delivered = std::pin::pin!(delivered);

    // The dashboard's range variable, as Grafana fills it in for a short range.
    let exprs: Vec<String> = dashboard_exprs().iter().map(|e| e.replace("$__rate_interval", "15s")).collect();
    let answered = async {
        // Rates need two scrapes inside their window: a few seconds.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let unanswered: Vec<String> = exprs
                .iter()
                .filter_map(|expr| match prometheus.query(expr) {
                    Ok(result) if result.as_array().is_some_and(|r| !r.is_empty()) => None,
                    Ok(result) => Some(format!("{expr}: no data ({result})")),
                    Err(e) => Some(format!("{expr}: error {e}")),
                })
                .collect();
            if unanswered.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "dashboard queries without data: {unanswered:#?}; targets: {:?}",
                prometheus.target_health()
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::select! {
        () = answered => {}
        _ = workload => panic!("the workload ended first"),
        () = &mut delivered => {}
    }
    // Both services were scraped.
    let health = prometheus.target_health().unwrap();
    assert_eq!(health.len(), 2, "{health:?}");
    assert!(health.iter().all(|(_, h)| h == "up"), "{health:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_method_names_add_no_metric_series() {
    let d = deploy().await;
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("veltrix_grpc_server_requests_total{"))
            .map(|l| l.rsplit_once(' ').map_or(l, |(series, _)| series).to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let before = series(&scrape(d.query_metrics).await);
    let channel = channel(d.q_addr).await;
    for i in 0..500 {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let path: http::uri::PathAndQuery =
            format!("/veltrix.config.v1.ConfigQuery/MadeUp{i}-{}", fastrand::u64(..)).parse().unwrap();
        let codec = tonic_prost::ProstCodec::<(), ()>::default();
        let answer = grpc.unary(tonic::Request::new(()), path, codec).await;
        assert_eq!(answer.map(|_| ()).unwrap_err().code(), Code::Unimplemented);
    }
    let after = series(&scrape(d.query_metrics).await);
    let added: Vec<_> = after.difference(&before).collect();
    assert!(added.len() <= 1, "made-up names made series: {added:#?}");
    assert!(added.iter().all(|s| s.contains(r#"method="unknown""#)), "{added:?}");
}
