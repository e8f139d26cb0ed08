//! Telemetry end to end: the Prometheus metrics move with traffic and cover
//! every name the Grafana dashboard uses; one write is one trace across both
//! services (OTLP to an in-process receiver).
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
    trace::v1::Span,
};
use tokio_stream::StreamExt;
use tonic::{Code, Request};
use veltrix_proto::v1::{WatchRequest, watch_response::Event};
use veltrix_testkit::{eventually, free_port};
use veltrix_testsystem::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_traffic_and_cover_the_dashboard() {
    // The command service starts first with its own endpoint, as in
    // production (both share this process's recorder here).
    let (command_metrics, metrics_addr) = (metrics_addr(), metrics_addr());
    let env = TestSystem::builder()
        .command(move |c| c.serve.metrics_listen = Some(command_metrics))
        .query(move |c| c.serve.metrics_listen = Some(metrics_addr))
        .start()
        .await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    let ns = "metrics/app";

    let mut watch = q.watch(WatchRequest { namespace: ns.into(), ..Default::default() }).await.unwrap().into_inner();
    let revision = cmd.put(put(ns, "k", "v1")).await.unwrap().into_inner().revision;
    // A compare-and-set that loses: ABORTED.
    let mut stale = put(ns, "k", "v2");
    stale.expected_revision = Some(revision + 100);
    assert_code(cmd.put(stale).await, Code::Aborted);
    let mut read = get(ns, "k");
    read.min_revision = Some(revision);
    q.get(read).await.unwrap();
    assert_code(q.get(get(ns, "missing")).await, Code::NotFound);
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), watch.next()).await.unwrap().unwrap().unwrap();
        if matches!(msg.event, Some(Event::Change(_))) {
            break;
        }
    }
    drop(watch);
    // The ended watcher is counted once the server notices the client left.
    eventually(Duration::from_secs(10), "the watch end is counted", || async {
        let text = scrape(metrics_addr).await;
        (labelled(&text, "veltrix_watch_ended_total", &[]) >= 1.0).then_some(())
    })
    .await;

    let text = scrape(metrics_addr).await;
    let cmd = r#"service="veltrix.config.v1.ConfigCommand""#;
    let qsvc = r#"service="veltrix.config.v1.ConfigQuery""#;
    assert!(labelled(&text, "veltrix_grpc_server_requests_total", &[cmd, r#"method="Put""#, r#"code="OK""#]) >= 1.0);
    assert!(labelled(&text, "veltrix_grpc_server_requests_total", &[cmd, r#"code="ABORTED""#]) >= 1.0);
    assert!(labelled(&text, "veltrix_grpc_server_requests_total", &[qsvc, r#"method="Get""#, r#"code="OK""#]) >= 1.0);
    assert!(labelled(&text, "veltrix_grpc_server_requests_total", &[qsvc, r#"code="NOT_FOUND""#]) >= 1.0);
    assert!(labelled(&text, "veltrix_grpc_server_request_duration_seconds_count", &[qsvc, r#"method="Get""#]) >= 2.0);
    assert!(labelled(&text, "veltrix_grpc_server_request_duration_seconds_bucket", &[r#"le="0.005""#]) >= 1.0);
    assert!(metric(&text, "veltrix_append_duration_seconds_count").unwrap() >= 1.0);
    assert!(metric(&text, "veltrix_projection_applied_revision").unwrap() >= revision as f64);
    assert_eq!(metric(&text, "veltrix_projection_lag_events"), Some(0.0));
    assert!(metric(&text, "veltrix_watch_events_delivered_total").unwrap() >= 1.0);
    assert!(text.contains("# HELP veltrix_grpc_server_requests_total"), "metrics are described: {text}");

    // Every metric the dashboard queries is one the services export.
    let names = exported(&text);
    for name in dashboard_metric_names() {
        assert!(names.contains(&name), "the dashboard uses {name}, which no service exports; exported: {names:?}");
    }
    drop(env);
}

/// An OTLP trace receiver that keeps every span with its service's name.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                spans.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_write_is_one_trace_from_the_call_to_the_watchers() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let servers = TestSystem::builder().servers_only().start().await;
    let (command_bin, query_bin) = (binary("veltrix-command"), binary("veltrix-query"));
    let (cport, qport) = (free_port(), free_port());
    let otel = [("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let command_args = servers.command_binary_args();
    let _command = spawn_service(&command_bin, &command_args, &otel, cport, "veltrix.config.v1.ConfigCommand").await;
    let query_args = servers.query_binary_args();
    let _query = spawn_service(&query_bin, &query_args, &otel, qport, "veltrix.config.v1.ConfigQuery").await;
    let mut cmd = Command::new(channel(([127, 0, 0, 1], cport).into()).await);
    let mut q = Query::new(channel(([127, 0, 0, 1], qport).into()).await);
    let ns = "traced/app";

    // A live watcher, then the traced write.
    let mut live = q.watch(WatchRequest { namespace: ns.into(), ..Default::default() }).await.unwrap().into_inner();
    let (trace_id, client_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let mut request = Request::new(put(ns, "k", "v"));
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-{client_span}-01").parse().unwrap());
    let revision = cmd.put(request).await.unwrap().into_inner().revision;
    let record = loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), live.next()).await.unwrap().unwrap().unwrap();
        if let Some(Event::Change(record)) = msg.event {
            break record;
        }
    };
    assert_eq!(record.revision, revision);
    assert!(record.traceparent.contains(trace_id), "the change names its trace: {}", record.traceparent);
    // A late watcher replays the change: its delivery links to the trace.
    let mut late = q
        .watch(WatchRequest { namespace: ns.into(), start_revision: Some(1), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), late.next()).await.unwrap().unwrap().unwrap();
        if matches!(msg.event, Some(Event::Change(_))) {
            break;
        }
    }

    let find = |spans: &[(String, Span)], service: &str, name: &str, live: Option<bool>| {
        spans
            .iter()
            .find(|(s, span)| {
                s == service
                    && span.name.contains(name)
                    && live.is_none_or(|live| {
                        span.attributes.iter().any(|a| {
                            a.key == "live"
                                && matches!(a.value.as_ref().and_then(|v| v.value.as_ref()), Some(Value::BoolValue(b)) if *b == live)
                        })
                    })
            })
            .map(|(_, span)| span.clone())
    };
    let spans = eventually(Duration::from_secs(30), "every span is exported", || async {
        let spans = receiver.spans.lock().unwrap().clone();
        let server = find(&spans, "veltrix-command", "ConfigCommand/Put", None)?;
        let append = find(&spans, "veltrix-command", "publish", None)?;
        let apply = find(&spans, "veltrix-query", "projection.apply", None)?;
        let delivered = find(&spans, "veltrix-query", "watch.deliver", Some(true))?;
        let replayed = find(&spans, "veltrix-query", "watch.deliver", Some(false))?;
        Some((server, append, apply, delivered, replayed))
    })
    .await;
    let (server, append, apply, delivered, replayed) = spans;
    // client → command service → JetStream append, and → projection → watcher.
    assert_eq!(hex(&server.trace_id), trace_id);
    assert_eq!(hex(&server.parent_span_id), client_span, "the server span continues the caller's");
    for child in [&append, &apply, &delivered] {
        assert_eq!(hex(&child.trace_id), trace_id, "{} is in the write's trace", child.name);
        assert_eq!(child.parent_span_id, server.span_id, "{} is a child of the command call", child.name);
    }
    assert_ne!(hex(&replayed.trace_id), trace_id, "a replay is its own trace");
    assert!(
        replayed.links.iter().any(|l| hex(&l.trace_id) == trace_id && l.span_id == server.span_id),
        "a replay links to the write's trace"
    );
}
