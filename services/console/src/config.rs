//! Configuration from flags and `VELTRIX_*` environment variables.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use veltrix_server::{LogFormat, parse_duration};

#[derive(Clone, Parser)]
#[command(
    name = "veltrix-console",
    version,
    about = "Veltrix Config web console: browse, search, diff, edit, roll back and promote configuration in a browser"
)]
pub struct Config {
    /// Address of the HTTP server (the web app and its JSON API under /api/).
    #[arg(long, env = "VELTRIX_CONSOLE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// URL of the command service.
    #[arg(long, env = "VELTRIX_COMMAND_URL", default_value = "http://127.0.0.1:50051")]
    pub command_url: String,
    /// URL of the query service.
    #[arg(long, env = "VELTRIX_QUERY_URL", default_value = "http://127.0.0.1:50052")]
    pub query_url: String,
    /// PEM CA bundle to trust for the services' certificates (https:// URLs).
    #[arg(long, env = "VELTRIX_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate (mutual TLS), with --client-key: the identity
    /// of a session signed in without a token.
    #[arg(long, env = "VELTRIX_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM key of the client certificate.
    #[arg(long, env = "VELTRIX_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Deadline of each call to the services.
    #[arg(long, env = "VELTRIX_CONSOLE_CALL_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub call_timeout: Duration,
    /// A session unused for this long is signed out.
    #[arg(long, env = "VELTRIX_CONSOLE_SESSION_IDLE", default_value = "30m", value_parser = parse_duration)]
    pub session_idle: Duration,
    /// A session is signed out this long after sign-in, used or not.
    #[arg(long, env = "VELTRIX_CONSOLE_SESSION_MAX", default_value = "12h", value_parser = parse_duration)]
    pub session_max: Duration,
    /// The most sessions held at once (the oldest leaves first).
    #[arg(long, env = "VELTRIX_CONSOLE_MAX_SESSIONS", default_value_t = 10_000)]
    pub max_sessions: usize,
    /// The host names (with port) browsers may reach the console by, e.g.
    /// `console.example.com,console.example.com:443`; any other `Host` is
    /// refused, so a page on another name that resolves here (DNS
    /// rebinding) gets nothing. Default: the listen address, and
    /// `localhost`, `127.0.0.1` and `[::1]` on its port.
    #[arg(long, env = "VELTRIX_CONSOLE_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Session cookies without the Secure attribute, for a console served
    /// over plain HTTP (development, tests). Behind HTTPS leave this off.
    #[arg(long, env = "VELTRIX_CONSOLE_INSECURE_COOKIES")]
    pub insecure_cookies: bool,
    /// Log line format.
    #[arg(long, env = "VELTRIX_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}
