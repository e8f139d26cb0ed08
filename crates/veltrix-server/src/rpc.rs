//! Per-RPC telemetry for every gRPC server: a span that continues the
//! caller's W3C trace (when traces are exported), and the Prometheus request
//! counter by status code and latency histogram.
//!
//! Unary calls are measured until their response; streaming calls (Watch)
//! until the stream is established, and their code is the one the stream
//! started with (a stream's end is counted by the watch metrics).

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::PoisonError,
    task::{Context, Poll},
    time::Instant,
};

use tracing::{Instrument, Span};
use veltrix_telemetry::{TRACEPARENT, TRACESTATE, traces_enabled};

pub const REQUESTS: &str = "veltrix_grpc_server_requests_total";
pub const DURATION: &str = "veltrix_grpc_server_request_duration_seconds";

/// Describes the per-RPC metrics (help text and unit on `/metrics`).
pub fn describe_rpc_metrics() {
    metrics::describe_counter!(REQUESTS, "gRPC calls handled, by service, method and status code.");
    metrics::describe_histogram!(
        DURATION,
        metrics::Unit::Seconds,
        "Time to answer a gRPC call (streams: until established), by service and method."
    );
}

/// The label of every call to a method this process does not serve: a
/// caller cannot make a new series by making up a name.
pub const UNKNOWN: &str = "unknown";

/// Methods every server serves besides its own (health and reflection).
const STANDARD: &[(&str, &str)] = &[
    ("grpc.health.v1.Health", "Check"),
    ("grpc.health.v1.Health", "Watch"),
    ("grpc.reflection.v1.ServerReflection", "ServerReflectionInfo"),
    ("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo"),
];

/// `/service/method` → its labels, for every method served. Written when a
/// service starts (a few dozen entries, kept for the process's life), read
/// on every call.
static KNOWN: std::sync::RwLock<Option<HashMap<String, Labels>>> = std::sync::RwLock::new(None);

#[derive(Debug, Clone, Copy)]
struct Labels {
    service: &'static str,
    method: &'static str,
}

/// Registers every method of `services` (and health and reflection) as
/// known, and with the per-RPC metrics (a call counter with code OK and
/// the latency histogram, both empty), so that dashboards and alerts have
/// series from start-up.
pub fn register_rpc_metrics(services: &[&'static str]) {
    let mut known = KNOWN.write().unwrap_or_else(PoisonError::into_inner);
    let known = known.get_or_insert_with(HashMap::new);
    let ours = services.iter().flat_map(|&s| veltrix_proto::methods(s).into_iter().map(move |m| (s, m)));
    let standard = STANDARD.iter().map(|&(s, m)| (s, m.to_owned()));
    for (service, method) in ours.chain(standard) {
        let path = format!("/{service}/{method}");
        if known.contains_key(&path) {
            continue;
        }
        // Leaked once per method served: bounded by the descriptor set.
        let method: &'static str = Box::leak(method.into_boxed_str());
        known.insert(path, Labels { service, method });
        metrics::counter!(REQUESTS, "service" => service, "method" => method, "code" => "OK").increment(0);
        let _registered = metrics::histogram!(DURATION, "service" => service, "method" => method);
    }
}

/// The labels of a request path: its service and method when served, else
/// [`UNKNOWN`] for both.
fn labels(path: &str) -> Labels {
    let known = KNOWN.read().unwrap_or_else(PoisonError::into_inner);
    known.as_ref().and_then(|k| k.get(path)).copied().unwrap_or(Labels { service: UNKNOWN, method: UNKNOWN })
}

/// The layer `server_builder` installs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcTelemetryLayer;

impl<S> tower_layer::Layer<S> for RpcTelemetryLayer {
    type Service = RpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcTelemetry { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RpcTelemetry<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower_service::Service<http::Request<B>> for RpcTelemetry<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Labels { service, method } = labels(request.uri().path());
        let span = if traces_enabled() { server_span(&request, service, method) } else { Span::none() };
        let started = Instant::now();
        let response = self.inner.call(request).instrument(span.clone());
        Box::pin(async move {
            let result = response.await;
            let code = match &result {
                Ok(response) => status_code(response.headers()),
                Err(_) => tonic::Code::Internal,
            };
            span.record("rpc.grpc.status_code", code as i32);
            metrics::counter!(REQUESTS, "service" => service, "method" => method, "code" => code_name(code))
                .increment(1);
            metrics::histogram!(DURATION, "service" => service, "method" => method)
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}

fn server_span<B>(request: &http::Request<B>, service: &str, method: &str) -> Span {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = format!("{service}/{method}"),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = tracing::field::Empty,
    );
    veltrix_telemetry::set_parent(&span, header(TRACEPARENT), header(TRACESTATE));
    span
}

/// The status of a response: in its headers for errors and for streams that
/// ended at once (tonic sends those as trailers-only responses), otherwise
/// OK (unary calls with a message succeeded).
fn status_code(headers: &http::HeaderMap) -> tonic::Code {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32)
}

/// The canonical name of a code (as in the gRPC specification).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths_and_reads_codes() {
        register_rpc_metrics(&["veltrix.config.v1.ConfigQuery"]);
        let get = labels("/veltrix.config.v1.ConfigQuery/Get");
        assert_eq!((get.service, get.method), ("veltrix.config.v1.ConfigQuery", "Get"));
        let made_up = labels("/veltrix.config.v1.ConfigQuery/Nope");
        assert_eq!((made_up.service, made_up.method), (UNKNOWN, UNKNOWN));
        assert_eq!(labels("/grpc.health.v1.Health/Check").method, "Check");
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_code(&headers), tonic::Code::Ok);
        headers.insert("grpc-status", http::HeaderValue::from_static("10"));
        assert_eq!(code_name(status_code(&headers)), "ABORTED");
    }
}
