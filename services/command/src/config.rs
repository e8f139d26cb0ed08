//! Configuration from flags and `VELTRIX_*` environment variables.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use veltrix_domain::Limits;
use veltrix_jetstream::NatsArgs;
use veltrix_jetstream::StreamSettings;
use veltrix_server::{ServeArgs, parse_duration};

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

    #[command(flatten)]
    pub nats: NatsArgs,

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

    /// Most namespace states kept in memory; idle ones beyond it are
    /// forgotten and loaded from the stream again when next written.
    #[arg(long, env = "VELTRIX_NAMESPACE_CACHE", default_value_t = 100_000)]
    pub namespace_cache: usize,

    /// Largest value accepted, in bytes.
    #[arg(long, env = "VELTRIX_MAX_VALUE_BYTES", default_value_t = 1024 * 1024)]
    pub max_value_bytes: usize,

    #[command(flatten)]
    pub serve: ServeArgs,
}

impl Config {
    /// The defaults, as if started without flags or environment.
    /// Every setting at its default, whatever the process environment says.
    pub fn defaults() -> Self {
        match veltrix_server::parse_from::<Self>(["veltrix-command".into()], |_| None) {
            Ok(config) => config,
            // The defaults are compile-time constants that parse.
            Err(e) => unreachable!("the default configuration does not parse: {e}"),
        }
    }

    pub fn stream_settings(&self) -> StreamSettings {
        StreamSettings {
            name: self.nats.stream.clone(),
            subject_prefix: self.nats.subject_prefix.clone(),
            replicas: self.stream_replicas,
            duplicate_window: self.duplicate_window,
            max_bytes: self.stream_max_bytes,
        }
    }

    pub fn limits(&self) -> Limits {
        Limits { max_value_bytes: self.max_value_bytes, ..Limits::default() }
    }
}
