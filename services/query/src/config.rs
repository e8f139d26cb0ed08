//! Configuration from flags and `VELTRIX_*` environment variables.

use std::{net::SocketAddr, time::Duration};

use clap::{Parser, Subcommand};
use veltrix_jetstream::NatsArgs;
use veltrix_jetstream::StreamSettings;
use veltrix_redis::ApplyOptions;
use veltrix_server::{ServeArgs, parse_duration};

/// The read cache's size unless configured.
pub const DEFAULT_READ_CACHE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone, Parser)]
#[command(
    name = "veltrix-query",
    version,
    about = "Veltrix Config query service: projects the event stream into Redis and serves reads"
)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address of the gRPC server.
    #[arg(long, env = "VELTRIX_LISTEN", default_value = "127.0.0.1:50052")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub nats: NatsArgs,

    /// Redis of the read model: `redis://host:port` (or `rediss://`, TLS)
    /// for one server, `redis+cluster://host:port,host:port,...` for a Redis
    /// Cluster (any of its nodes as seeds), `redis+sentinel://host:port,.../NAME`
    /// for the master Sentinel knows as NAME. Credentials may be in the URL
    /// (`redis+cluster://user:pass@...`) or in the flags below.
    #[arg(long, env = "VELTRIX_REDIS_URL", default_value = "redis://127.0.0.1:6379", hide_env_values = true, value_parser = parse_redis_url)]
    pub redis_url: String,

    /// Replicas that must hold each projected batch before the watermark
    /// moves past it (Redis WAIT): reads at a revision then survive a
    /// master's failover. Default: 1 on a cluster or behind Sentinel, 0 on
    /// one server.
    #[arg(long, env = "VELTRIX_REDIS_REPLICA_ACKS")]
    pub redis_replica_acks: Option<u32>,

    /// PEM CA bundle the Redis server's certificate must chain to (rediss://).
    #[arg(long, env = "VELTRIX_REDIS_CA_CERT")]
    pub redis_ca_cert: Option<std::path::PathBuf>,

    /// PEM client certificate for Redis (with --redis-client-key).
    #[arg(long, env = "VELTRIX_REDIS_CLIENT_CERT", requires = "redis_client_key")]
    pub redis_client_cert: Option<std::path::PathBuf>,

    /// PEM key of the Redis client certificate.
    #[arg(long, env = "VELTRIX_REDIS_CLIENT_KEY", requires = "redis_client_cert")]
    pub redis_client_key: Option<std::path::PathBuf>,

    /// Redis ACL user.
    #[arg(long, env = "VELTRIX_REDIS_USERNAME")]
    pub redis_username: Option<String>,

    /// Redis password (ACL user's, or `requirepass`).
    #[arg(long, env = "VELTRIX_REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,

    /// Prefix of every Redis key of the read model.
    #[arg(long, env = "VELTRIX_REDIS_PREFIX", default_value = "veltrix", value_parser = parse_prefix)]
    pub redis_prefix: String,

    /// Change sets of history kept per namespace for History and
    /// point-in-time reads (0 keeps all).
    #[arg(long, env = "VELTRIX_HISTORY_KEEP", default_value_t = 0)]
    pub history_keep: u64,

    /// Key that protects page tokens (at least 32 bytes); replicas behind
    /// one load balancer must share it. Default: a random key per process,
    /// from the operating system's secure random source.
    #[arg(long, env = "VELTRIX_PAGE_TOKEN_KEY", hide_env_values = true, value_parser = parse_token_key)]
    pub page_token_key: Option<String>,

    /// A file that holds the page-token key (so that it is not in the
    /// environment); read at start-up, a trailing newline ignored.
    #[arg(long, env = "VELTRIX_PAGE_TOKEN_KEY_FILE", conflicts_with = "page_token_key")]
    pub page_token_key_file: Option<std::path::PathBuf>,

    /// Largest request accepted, in bytes (reads carry names, prefixes and
    /// page tokens only).
    #[arg(long, env = "VELTRIX_MAX_REQUEST_BYTES", default_value_t = 64 * 1024)]
    pub max_request_bytes: usize,

    /// Largest List or History page, in bytes: a page stops before it and
    /// its token leads on (a single entry larger than this still comes, alone).
    #[arg(long, env = "VELTRIX_MAX_RESPONSE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_response_bytes: usize,

    /// Bytes of current keys kept in process for Get (an estimate of keys,
    /// values and entries): the namespaces read most recently stay, a miss
    /// reads Redis. 0 turns the cache off.
    #[arg(long, env = "VELTRIX_READ_CACHE_BYTES", default_value_t = DEFAULT_READ_CACHE_BYTES)]
    pub read_cache_bytes: usize,

    /// How often the service checks that the read model is still there and
    /// which generation is active.
    #[arg(long, env = "VELTRIX_MODEL_CHECK_INTERVAL", default_value = "500ms", value_parser = parse_duration)]
    pub model_check_interval: Duration,

    #[command(flatten)]
    pub watch: WatchArgs,

    #[command(flatten)]
    pub fleet: FleetArgs,

    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The fleet ledger (Sync streams and client reports).
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// A revision delivered to a client and not acknowledged for longer is
    /// STALE (before that: PENDING).
    #[arg(long, env = "VELTRIX_CLIENT_STALE_AFTER", default_value = "60s", value_parser = parse_duration)]
    pub client_stale_after: Duration,

    /// A disconnected client is forgotten after this long without a report.
    #[arg(long, env = "VELTRIX_CLIENT_FORGET_AFTER", default_value = "24h", value_parser = parse_duration)]
    pub client_forget_after: Duration,

    /// How often this replica refreshes the ledger entries of the streams it
    /// holds; an entry not refreshed for three times as long counts as
    /// DISCONNECTED (its replica is gone).
    #[arg(long, env = "VELTRIX_CLIENT_HEARTBEAT", default_value = "10s", value_parser = parse_duration)]
    pub client_heartbeat: Duration,

    /// Reports are coalesced per client and written to the ledger this often.
    #[arg(long, env = "VELTRIX_LEDGER_FLUSH_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    pub ledger_flush_interval: Duration,

    /// This replica's name in the ledger (default: host name and port).
    #[arg(long, env = "VELTRIX_REPLICA_NAME")]
    pub replica_name: Option<String>,

    /// How often `veltrix_clients` (clients per namespace and state) is
    /// recomputed from the ledger.
    #[arg(long, env = "VELTRIX_CLIENTS_GAUGE_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub clients_gauge_interval: Duration,

    /// How often the rollout controller evaluates the gates of the running
    /// rollouts (and appends the transitions they decide).
    #[arg(long, env = "VELTRIX_ROLLOUT_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub rollout_interval: Duration,
}

/// Watch streams.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Send a progress message on a watch stream idle for this long.
    #[arg(long, env = "VELTRIX_WATCH_PROGRESS_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub watch_progress_interval: Duration,

    /// End a watch stream with RESOURCE_EXHAUSTED when its client accepts
    /// no message for this long.
    #[arg(long, env = "VELTRIX_WATCH_STALL_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub watch_stall_timeout: Duration,

    /// Messages queued per watch stream before it waits for its client.
    #[arg(long, env = "VELTRIX_WATCH_QUEUE", default_value_t = 32)]
    pub watch_queue: usize,

    /// Change sets buffered per watched namespace for watchers that fall
    /// behind; a watcher further behind catches up from history.
    #[arg(long, env = "VELTRIX_WATCH_HUB_CAPACITY", default_value_t = 1024)]
    pub watch_hub_capacity: usize,

    /// Most namespaces watched at once on this replica (each holds a
    /// buffer of --watch-hub-capacity change sets while it has watchers); a
    /// watch on one more is RESOURCE_EXHAUSTED.
    #[arg(long, env = "VELTRIX_WATCH_MAX_NAMESPACES", default_value_t = 10_000)]
    pub watch_max_namespaces: usize,

    /// Keys per snapshot message.
    #[arg(long, env = "VELTRIX_WATCH_SNAPSHOT_CHUNK", default_value_t = 500)]
    pub watch_snapshot_chunk: usize,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve reads and project the event stream (the default).
    Serve,
    /// Rebuild the read model from the event stream into a new generation
    /// and switch to it while running services keep serving, then remove
    /// the old generation.
    Rebuild {
        /// How long to leave the old generation for services to switch.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        drop_old_after: Duration,
    },
}

/// Shortest page-token key accepted.
pub const MIN_TOKEN_KEY: usize = 32;

/// Secrets (the Redis URL and password, the page-token key) redacted.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("command", &self.command)
            .field("listen", &self.listen)
            .field("nats", &self.nats)
            .field("redis", &self.redis_options())
            .field("redis_prefix", &self.redis_prefix)
            .field("history_keep", &self.history_keep)
            .field("page_token_key", &self.page_token_key.as_ref().map(|_| "<redacted>"))
            .field("page_token_key_file", &self.page_token_key_file)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("read_cache_bytes", &self.read_cache_bytes)
            .field("model_check_interval", &self.model_check_interval)
            .field("watch", &self.watch)
            .field("serve", &self.serve)
            .finish()
    }
}

fn parse_token_key(s: &str) -> Result<String, String> {
    if s.len() < MIN_TOKEN_KEY {
        return Err(format!("the page-token key must be at least {MIN_TOKEN_KEY} bytes (it is {})", s.len()));
    }
    Ok(s.to_owned())
}

fn parse_redis_url(s: &str) -> Result<String, String> {
    veltrix_redis::Topology::parse(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

fn parse_prefix(s: &str) -> Result<String, String> {
    // It ends up in SCAN patterns: no glob characters either.
    if s.is_empty() || s.contains(['{', '}', ' ', '*', '?', '[', ']', '\\']) {
        return Err("the Redis prefix must be non-empty, without braces, spaces or glob characters (* ? [ ] \\)".into());
    }
    Ok(s.to_owned())
}

impl Config {
    /// The defaults, as if started without flags or environment.
    /// Every setting at its default, whatever the process environment says.
    pub fn defaults() -> Self {
        match veltrix_server::parse_from::<Self>(["veltrix-query".into()], |_| None) {
            Ok(config) => config,
            // The defaults are compile-time constants that parse.
            Err(e) => unreachable!("the default configuration does not parse: {e}"),
        }
    }

    /// The ledger's timing.
    pub fn fleet_timing(&self) -> veltrix_domain::fleet::Timing {
        veltrix_domain::fleet::Timing {
            stale_after: self.fleet.client_stale_after,
            forget_after: self.fleet.client_forget_after,
            heartbeat: self.fleet.client_heartbeat.max(Duration::from_millis(100)),
        }
    }

    /// This replica's name in the ledger: `--replica-name`, or the host
    /// name and the port it is `bound` to.
    pub fn replica_name(&self, bound: SocketAddr) -> String {
        self.fleet.replica_name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "query".to_owned());
            format!("{host}:{}", bound.port())
        })
    }

    /// The configured page-token key, from the flag or the key file; `None`
    /// when neither is set.
    pub fn page_token_key(&self) -> Result<Option<Vec<u8>>, String> {
        if let Some(key) = &self.page_token_key {
            return Ok(Some(key.clone().into_bytes()));
        }
        let Some(path) = &self.page_token_key_file else { return Ok(None) };
        let text =
            std::fs::read(path).map_err(|e| format!("cannot read the page-token key file {}: {e}", path.display()))?;
        let key = text.strip_suffix(b"\n").unwrap_or(&text);
        let key = key.strip_suffix(b"\r").unwrap_or(key);
        if key.len() < MIN_TOKEN_KEY {
            return Err(format!("the page-token key in {} must be at least {MIN_TOKEN_KEY} bytes", path.display()));
        }
        Ok(Some(key.to_vec()))
    }

    pub fn stream_settings(&self) -> StreamSettings {
        StreamSettings {
            name: self.nats.stream.clone(),
            subject_prefix: self.nats.subject_prefix.clone(),
            ..StreamSettings::default()
        }
    }

    pub fn apply_options(&self) -> ApplyOptions {
        ApplyOptions { history_keep: self.history_keep }
    }
}

impl Config {
    /// How to reach Redis.
    pub fn redis_options(&self) -> veltrix_redis::RedisOptions {
        veltrix_redis::RedisOptions {
            url: self.redis_url.clone(),
            ca_cert: self.redis_ca_cert.clone(),
            client_cert: self.redis_client_cert.clone(),
            client_key: self.redis_client_key.clone(),
            username: self.redis_username.clone(),
            password: self.redis_password.clone(),
            replica_acks: self.redis_replica_acks,
        }
    }
}
