//! Telemetry for the Veltrix services: structured logs with `tracing`
//! (filtered by `RUST_LOG`), Prometheus metrics on an optional `/metrics`
//! endpoint, OpenTelemetry traces exported over OTLP when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and W3C trace-context handling so
//! that every event records the trace of the request that made it.

pub mod metrics;
mod propagation;
mod traces;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{EnvFilter, Layer, filter::filter_fn, fmt, prelude::*};

pub use propagation::{TRACEPARENT, TRACESTATE, child_traceparent};
pub use traces::{add_link, remote_context, set_parent, span_traceparent, traces_enabled};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid RUST_LOG filter")]
    Filter(#[from] tracing_subscriber::filter::FromEnvError),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled(#[from] tracing_subscriber::util::TryInitError),
    #[error("cannot set up the OTLP trace exporter")]
    Otlp(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Flushes telemetry when dropped; keep it alive for the life of the process.
#[must_use = "telemetry is flushed when the guard is dropped"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("could not flush traces: {e}");
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` (default `info`) filters, and
/// `format` chooses the line format. With `OTEL_EXPORTER_OTLP_ENDPOINT` set,
/// spans of this workspace's crates are also exported over OTLP/gRPC. Call
/// it inside the tokio runtime.
pub fn init(service: &'static str, format: LogFormat) -> Result<TelemetryGuard, Error> {
    let filter = EnvFilter::builder().with_default_directive(tracing::Level::INFO.into()).from_env()?;
    traces::install_propagator();
    let provider = if traces::otlp_requested() { Some(traces::provider(service)?) } else { None };
    // Only our own spans (INFO and above) are exported, whatever RUST_LOG
    // says about log lines: the exporter's gRPC client must not trace itself,
    // and library internals are noise in a request's trace.
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer().with_tracer(traces::tracer(p, service)).with_filter(filter_fn(|meta| {
            meta.target().starts_with("veltrix") && *meta.level() <= tracing::Level::INFO
        }))
    });
    let lines = match format {
        LogFormat::Text => fmt::layer().with_writer(std::io::stderr).with_target(false).boxed(),
        LogFormat::Json => fmt::layer().with_writer(std::io::stderr).json().flatten_event(true).boxed(),
    };
    tracing_subscriber::registry().with(otel).with(lines.with_filter(filter)).try_init()?;
    tracing::debug!(service, otlp = provider.is_some(), "telemetry initialised");
    Ok(TelemetryGuard { provider })
}
