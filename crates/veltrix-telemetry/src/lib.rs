//! Telemetry for the Veltrix services: structured logs with `tracing`
//! (filtered by `RUST_LOG`), Prometheus metrics on an optional `/metrics`
//! endpoint, and W3C trace-context handling so that every event records the
//! trace of the request that made it.

pub mod metrics;
mod propagation;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

pub use propagation::{TRACEPARENT, TRACESTATE, child_traceparent};

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
}

/// Flushes telemetry when dropped; keep it alive for the life of the process.
#[must_use = "telemetry is flushed when the guard is dropped"]
pub struct TelemetryGuard {
    _private: (),
}

/// Installs the global subscriber: `RUST_LOG` (default `info`) filters, and
/// `format` chooses the line format.
pub fn init(service: &'static str, format: LogFormat) -> Result<TelemetryGuard, Error> {
    let filter = EnvFilter::builder().with_default_directive(tracing::Level::INFO.into()).from_env()?;
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(fmt::layer().with_target(false)).try_init()?,
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true)).try_init()?,
    }
    tracing::debug!(service, "telemetry initialised");
    Ok(TelemetryGuard { _private: () })
}
