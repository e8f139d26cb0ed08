//! Flags both services share, flattened into each service's config.

use std::{path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

use crate::{TransportSettings, parse_duration};

/// Where the event stream is.
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "VELTRIX_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// JetStream stream that holds every change set.
    #[arg(long, env = "VELTRIX_STREAM", default_value = "VELTRIX_EVENTS")]
    pub stream: String,

    /// Subject prefix of the event stream; a namespace a/b is `{prefix}.a.b`.
    #[arg(long, env = "VELTRIX_SUBJECT_PREFIX", default_value = "veltrix.events")]
    pub subject_prefix: String,

    /// Require TLS to NATS (implied by the certificate flags and tls:// URLs).
    #[arg(long, env = "VELTRIX_NATS_TLS")]
    pub nats_tls: bool,

    /// PEM CA bundle the NATS servers' certificates must chain to.
    #[arg(long, env = "VELTRIX_NATS_CA_CERT")]
    pub nats_ca_cert: Option<PathBuf>,

    /// PEM client certificate for NATS (with --nats-client-key).
    #[arg(long, env = "VELTRIX_NATS_CLIENT_CERT", requires = "nats_client_key")]
    pub nats_client_cert: Option<PathBuf>,

    /// PEM key of the NATS client certificate.
    #[arg(long, env = "VELTRIX_NATS_CLIENT_KEY", requires = "nats_client_cert")]
    pub nats_client_key: Option<PathBuf>,

    /// NATS user (with --nats-password).
    #[arg(long, env = "VELTRIX_NATS_USER", requires = "nats_password")]
    pub nats_user: Option<String>,

    /// NATS password.
    #[arg(long, env = "VELTRIX_NATS_PASSWORD", hide_env_values = true, requires = "nats_user")]
    pub nats_password: Option<String>,

    /// NATS token.
    #[arg(long, env = "VELTRIX_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,

    /// NATS credentials file (JWT and NKey seed).
    #[arg(long, env = "VELTRIX_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
}

impl NatsArgs {
    /// Connection options for the JetStream adapter.
    pub fn options(&self) -> veltrix_jetstream::NatsOptions {
        veltrix_jetstream::NatsOptions {
            url: self.nats_url.clone(),
            require_tls: self.nats_tls,
            ca_cert: self.nats_ca_cert.clone(),
            client_cert: self.nats_client_cert.clone(),
            client_key: self.nats_client_key.clone(),
            user: self.nats_user.clone(),
            password: self.nats_password.clone(),
            token: self.nats_token.clone(),
            creds: self.nats_creds.clone(),
        }
    }
}

/// gRPC serving, deadlines, shutdown and logs.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
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

    /// Address of the Prometheus `/metrics` endpoint (off when unset).
    #[arg(long, env = "VELTRIX_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,

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
    pub limits: crate::admission::LimitArgs,
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
            ..TransportSettings::default()
        }
    }

    pub fn json_logs(&self) -> bool {
        self.log_format == LogFormat::Json
    }
}
