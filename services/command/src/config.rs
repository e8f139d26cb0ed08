//! Configuration from flags and `VELTRIX_*` environment variables.

use std::{net::SocketAddr, time::Duration};

use clap::{Parser, ValueEnum};
use veltrix_domain::Limits;
use veltrix_jetstream::StreamSettings;
use veltrix_server::{TransportSettings, parse_duration};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "veltrix-command",
    version,
    about = "Veltrix Config command service: validates config changes and appends them to NATS JetStream"
)]
pub struct Config {
    /// Address of the gRPC server.
    #[arg(long, env = "VELTRIX_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "VELTRIX_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// JetStream stream that holds every change set.
    #[arg(long, env = "VELTRIX_STREAM", default_value = "VELTRIX_EVENTS")]
    pub stream: String,

    /// Subject prefix of the event stream; a namespace a/b is `{prefix}.a.b`.
    #[arg(long, env = "VELTRIX_SUBJECT_PREFIX", default_value = "veltrix.events")]
    pub subject_prefix: String,

    /// Replicas of the event stream when this service creates it.
    #[arg(long, env = "VELTRIX_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,

    /// Size guard-rail of the event stream in bytes when this service creates
    /// it (-1: unlimited). At the limit writes are refused, history is kept.
    #[arg(long, env = "VELTRIX_STREAM_MAX_BYTES", default_value_t = -1, allow_hyphen_values = true)]
    pub stream_max_bytes: i64,

    /// JetStream deduplication window for request ids when this service
    /// creates the stream.
    #[arg(long, env = "VELTRIX_DUPLICATE_WINDOW", default_value = "2m", value_parser = parse_duration)]
    pub duplicate_window: Duration,

    /// How long a namespace remembers request ids, so that retries are safe.
    #[arg(long, env = "VELTRIX_IDEMPOTENCY_WINDOW", default_value = "24h", value_parser = parse_duration)]
    pub idempotency_window: Duration,

    /// Largest value accepted, in bytes.
    #[arg(long, env = "VELTRIX_MAX_VALUE_BYTES", default_value_t = 1024 * 1024)]
    pub max_value_bytes: usize,

    /// Deadline of calls that carry none.
    #[arg(long, env = "VELTRIX_DEFAULT_DEADLINE", default_value = "5s", value_parser = parse_duration)]
    pub default_deadline: Duration,

    /// How long in-flight calls may finish after a shutdown signal.
    #[arg(long, env = "VELTRIX_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Concurrent HTTP/2 streams per client connection.
    #[arg(long, env = "VELTRIX_MAX_CONCURRENT_STREAMS", default_value_t = 1024)]
    pub max_concurrent_streams: u32,

    /// Maximum age of a client connection, so that clients rebalance.
    #[arg(long, env = "VELTRIX_MAX_CONNECTION_AGE", default_value = "30m", value_parser = parse_duration)]
    pub max_connection_age: Duration,

    /// Log line format.
    #[arg(long, env = "VELTRIX_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The defaults, as if started without flags or environment.
    pub fn defaults() -> Self {
        Self::parse_from(["veltrix-command"])
    }

    pub fn stream_settings(&self) -> StreamSettings {
        StreamSettings {
            name: self.stream.clone(),
            subject_prefix: self.subject_prefix.clone(),
            replicas: self.stream_replicas,
            duplicate_window: self.duplicate_window,
            max_bytes: self.stream_max_bytes,
        }
    }

    pub fn limits(&self) -> Limits {
        Limits { max_value_bytes: self.max_value_bytes, ..Limits::default() }
    }

    pub fn transport(&self) -> TransportSettings {
        TransportSettings {
            max_concurrent_streams: self.max_concurrent_streams,
            max_connection_age: self.max_connection_age,
            ..TransportSettings::default()
        }
    }

    pub fn telemetry_format(&self) -> veltrix_telemetry::LogFormat {
        match self.log_format {
            LogFormat::Text => veltrix_telemetry::LogFormat::Text,
            LogFormat::Json => veltrix_telemetry::LogFormat::Json,
        }
    }
}
