//! Flags both services share, flattened into each service's config.

use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::{TransportSettings, parse_duration};

/// gRPC serving, deadlines, shutdown and logs.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Deadline of calls that carry none.
    #[arg(long, env = "VELTRIX_DEFAULT_DEADLINE", default_value = "5s", value_parser = parse_duration)]
    pub default_deadline: Duration,

    /// The most time a call may take, whatever deadline the client sends
    /// (watch streams excepted).
    #[arg(long, env = "VELTRIX_MAX_CALL_TIME", default_value = "30s", value_parser = parse_duration)]
    pub max_call_time: Duration,

    /// How long in-flight calls may finish after a shutdown signal.
    #[arg(long, env = "VELTRIX_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Concurrent HTTP/2 streams per client connection.
    #[arg(long, env = "VELTRIX_MAX_CONCURRENT_STREAMS", default_value_t = 1024)]
    pub max_concurrent_streams: u32,

    /// Maximum age of a client connection, so that clients rebalance.
    #[arg(long, env = "VELTRIX_MAX_CONNECTION_AGE", default_value = "30m", value_parser = parse_duration)]
    pub max_connection_age: Duration,

    /// Address of the Prometheus `/metrics` endpoint (off when unset).
    #[arg(long, env = "VELTRIX_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// How long a connection past --max-connection-age may keep its open
    /// streams (watches) before it is closed; clients reconnect and resume.
    #[arg(long, env = "VELTRIX_MAX_CONNECTION_AGE_GRACE", default_value = "1m", value_parser = parse_duration)]
    pub max_connection_age_grace: Duration,

    /// Client connections this process holds at once; one more is closed
    /// at once.
    #[arg(long, env = "VELTRIX_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Requests per second per remote address, counted before
    /// authentication (bad tokens and unknown methods too); 0: off.
    #[arg(long, env = "VELTRIX_PEER_RATE_LIMIT", default_value_t = 0.0)]
    pub peer_rate_limit: f64,

    /// Largest burst above --peer-rate-limit.
    #[arg(long, env = "VELTRIX_PEER_RATE_BURST", default_value_t = 200)]
    pub peer_rate_burst: u32,

    /// Log line format.
    #[arg(long, env = "VELTRIX_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Policy file of tokens and grants; authentication is off without it.
    #[arg(long, env = "VELTRIX_AUTH_CONFIG")]
    pub auth_config: Option<std::path::PathBuf>,

    /// Serve without authentication on purpose (local development): said
    /// once at INFO instead of the warning an unset --auth-config gives.
    #[arg(long, env = "VELTRIX_AUTH_OFF", conflicts_with = "auth_config")]
    pub auth_off: bool,

    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,

    #[command(flatten)]
    pub limits: veltrix_access::LimitArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    pub fn transport(&self) -> TransportSettings {
        TransportSettings {
            max_concurrent_streams: self.max_concurrent_streams,
            max_connection_age: self.max_connection_age,
            max_connection_age_grace: self.max_connection_age_grace,
            peer_rate_limit: self.peer_rate_limit,
            peer_rate_burst: self.peer_rate_burst,
            ..TransportSettings::default()
        }
    }

    pub fn call_time(&self) -> crate::CallTime {
        crate::CallTime { default: self.default_deadline, max: self.max_call_time }
    }

    pub fn json_logs(&self) -> bool {
        self.log_format == LogFormat::Json
    }
}
