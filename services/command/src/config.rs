//! Configuration from flags and `VELTRIX_*` environment variables.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use veltrix_domain::{EVENT_OVERHEAD, Limits};

/// The largest value by default, when the NATS server takes it.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Below this a server's `max_payload` is refused (a value of 1 KiB at least).
const MIN_VALUE_BYTES: usize = 1024;
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

    /// Write a namespace's snapshot (its state without values, in the
    /// `{stream}_SNAPSHOTS` stream) after this many of its events have been
    /// folded since the last one, so that a restart loads the snapshot and
    /// the events after it instead of the whole history. 0: never.
    #[arg(long, env = "VELTRIX_SNAPSHOT_EVERY", default_value_t = 1000)]
    pub snapshot_every: u64,

    /// ... or after this many bytes of keys and values have been folded.
    #[arg(long, env = "VELTRIX_SNAPSHOT_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub snapshot_bytes: u64,

    /// Largest value accepted, in bytes. It must fit in the NATS server's
    /// `max_payload` with 64 KiB of event overhead, else the service does
    /// not start. Default: 1 MiB, or less when the server's `max_payload`
    /// is smaller than that plus the overhead (a stock server's 1 MB).
    #[arg(long, env = "VELTRIX_MAX_VALUE_BYTES")]
    pub max_value_bytes: Option<usize>,

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

    /// The largest value a request may carry before the server is known
    /// (what the gRPC server decodes).
    pub fn max_value_bytes_asked(&self) -> usize {
        self.max_value_bytes.unwrap_or(DEFAULT_MAX_VALUE_BYTES)
    }

    /// The limits of commands on a NATS server that takes messages of at
    /// most `max_payload` bytes: an explicit `--max-value-bytes` must fit
    /// with the event's overhead; the default is fitted to the server.
    pub fn limits(&self, max_payload: usize) -> Result<Limits, String> {
        let need = |value: usize| value.saturating_add(EVENT_OVERHEAD);
        let max_value_bytes = match self.max_value_bytes {
            Some(value) if need(value) > max_payload => {
                return Err(format!(
                    "--max-value-bytes {value} does not fit in the NATS server's max_payload of {max_payload} bytes with {EVENT_OVERHEAD} bytes of event overhead: set max_payload to at least {} in the NATS server's configuration, or lower --max-value-bytes (VELTRIX_MAX_VALUE_BYTES) to at most {}",
                    need(value),
                    max_payload.saturating_sub(EVENT_OVERHEAD)
                ));
            }
            Some(value) => value,
            None => DEFAULT_MAX_VALUE_BYTES.min(max_payload.saturating_sub(EVENT_OVERHEAD)),
        };
        if max_value_bytes < MIN_VALUE_BYTES {
            return Err(format!(
                "the NATS server's max_payload of {max_payload} bytes leaves {max_value_bytes} bytes for a value after {EVENT_OVERHEAD} bytes of event overhead: set max_payload to at least {} in the NATS server's configuration",
                MIN_VALUE_BYTES + EVENT_OVERHEAD
            ));
        }
        Ok(Limits { max_value_bytes, max_event_bytes: max_payload, ..Limits::default() })
    }
}
