//! OpenTelemetry traces: OTLP over gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, off otherwise. The
//! exporter reads the standard `OTEL_*` variables itself (endpoint, timeout,
//! headers); `OTEL_SERVICE_NAME` names the service, defaulting to the
//! binary's name.
//!
//! Trace context crosses process boundaries as W3C `traceparent` and
//! `tracestate` strings: in gRPC metadata, in NATS headers, and in every
//! event. The helpers here turn those strings into span parents and links.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
};

use opentelemetry::{
    Context, global,
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported. Code that would create many spans (one per
/// event or per watch delivery) checks this first, so that tracing costs
/// nothing when it is off.
pub fn traces_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether the environment asks for OTLP export.
pub(crate) fn otlp_requested() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Builds the exporting provider. Must run inside the tokio runtime: the
/// exporter's gRPC channel is bound to it.
pub(crate) fn provider(service: &'static str) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    let provider = SdkTracerProvider::builder().with_resource(resource.build()).with_batch_exporter(exporter).build();
    ENABLED.store(true, Ordering::Relaxed);
    Ok(provider)
}

pub(crate) fn tracer(provider: &SdkTracerProvider, service: &'static str) -> opentelemetry_sdk::trace::SdkTracer {
    provider.tracer(service)
}

/// The W3C propagator; installed globally by `init` so that libraries
/// agree with us.
pub(crate) fn install_propagator() {
    global::set_text_map_propagator(TraceContextPropagator::new());
}

/// The remote span context in a `traceparent` / `tracestate` pair, if valid.
pub fn remote_context(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Context> {
    let mut carrier = HashMap::with_capacity(2);
    carrier.insert("traceparent".to_owned(), traceparent?.to_owned());
    if let Some(state) = tracestate.filter(|s| !s.is_empty()) {
        carrier.insert("tracestate".to_owned(), state.to_owned());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// Makes `span` a child of the remote context (before it is first entered).
/// Without a valid context, or with traces off, nothing happens.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if traces_enabled()
        && let Some(cx) = remote_context(traceparent, tracestate)
    {
        // Fails only if the span is disabled or already started; it then
        // simply stays where it is.
        let _ = span.set_parent(cx);
    }
}

/// Links `span` to the remote context (for work caused by, but not part of,
/// another trace: replays).
pub fn add_link(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if traces_enabled()
        && let Some(cx) = remote_context(traceparent, tracestate)
    {
        span.add_link(cx.span().span_context().clone());
    }
}

/// `(traceparent, tracestate)` of `span`, when traces are on and it is
/// recorded; this is what the events it causes carry.
pub fn span_traceparent(span: &tracing::Span) -> Option<(String, String)> {
    if !traces_enabled() {
        return None;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::with_capacity(2);
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    let parent = carrier.remove("traceparent")?;
    Some((parent, carrier.remove("tracestate").unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_valid_context_and_refuses_invalid() {
        let cx = remote_context(Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), Some("k=v"));
        let cx = cx.expect("valid");
        assert_eq!(cx.span().span_context().trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert!(remote_context(Some("garbage"), None).is_none());
        assert!(remote_context(None, None).is_none());
    }
}
