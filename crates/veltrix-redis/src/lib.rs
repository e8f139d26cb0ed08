//! The Redis read model of Veltrix Config.
//!
//! Each change set is applied by ONE Lua script touching only its namespace's
//! keys (one hash tag, so one Cluster slot): last-writer-wins per key by
//! revision (deletes leave the revision behind as a tombstone), per-key
//! history and the namespace's change log as sorted sets scored by revision,
//! a lexicographic index of live keys for prefix listing, and the namespace's
//! latest revision. Applying is idempotent and independent of delivery order.
//!
//! Everything lives under a generation (`{prefix}:g{N}:`), so a rebuild can
//! write a new generation while reads use the old one, then switch.
//!
//! Records are stored as the query API's protobuf messages, so reads decode
//! what they return and nothing else.

mod apply;
mod generation;
mod governance;
mod keys;
mod ledger;
mod query;
mod rollouts;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use apply::ApplyOptions;
pub use generation::{Generation, GenerationState};
pub use governance::SchemaRow;
pub use keys::Keys;
pub use ledger::{RedisLedger, step_from_wire, step_to_wire};
pub use query::{ListPage, NamespaceRow};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    #[error("corrupt read model entry: {0}")]
    Corrupt(String),
    #[error("the read model is incomplete (being rebuilt)")]
    Incomplete,
    #[error("revision {requested} is older than the retained history; the oldest available revision is {oldest}")]
    Compacted { requested: veltrix_domain::Revision, oldest: veltrix_domain::Revision },
}

/// Counted where every Redis error passes: the ones after which the
/// connection manager reconnects.
pub const RECONNECTS: &str = "veltrix_redis_reconnects_total";

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        if e.is_unrecoverable_error() {
            metrics::counter!(RECONNECTS).increment(1);
        }
        Self::Redis(e)
    }
}

impl From<redis::ParsingError> for Error {
    fn from(e: redis::ParsingError) -> Self {
        Self::Corrupt(e.to_string())
    }
}

impl From<prost::DecodeError> for Error {
    fn from(e: prost::DecodeError) -> Self {
        Self::Corrupt(e.to_string())
    }
}

/// Where Redis is and how to prove who we are to it. `Debug` hides the
/// password (and the URL, which may carry one).
#[derive(Clone, Default)]
pub struct RedisOptions {
    /// `redis://` or `rediss://` (TLS).
    pub url: String,
    /// PEM CA bundle the server's certificate must chain to.
    pub ca_cert: Option<std::path::PathBuf>,
    /// PEM client certificate and key, for servers that verify clients.
    pub client_cert: Option<std::path::PathBuf>,
    pub client_key: Option<std::path::PathBuf>,
    /// ACL user and password.
    pub username: Option<String>,
    pub password: Option<String>,
}

impl RedisOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &"<redacted>")
            .field("ca_cert", &self.ca_cert)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A handle on the read model: a reconnecting connection and the key layout.
#[derive(Clone)]
pub struct ReadModel {
    conn: ConnectionManager,
    keys: Keys,
}

impl ReadModel {
    /// Connects (retrying in the background after failures). Commands that
    /// fail while Redis is away return errors; callers retry.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, Error> {
        Self::connect_with(&RedisOptions::new(url), prefix).await
    }

    /// Like [`ReadModel::connect`], with TLS (`rediss://` URLs) and ACL
    /// credentials.
    pub async fn connect_with(options: &RedisOptions, prefix: &str) -> Result<Self, Error> {
        Ok(Self { conn: open(options).await?, keys: Keys::new(prefix) })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

/// A reconnecting connection to Redis.
async fn open(options: &RedisOptions) -> Result<ConnectionManager, Error> {
    // Without TCP_NODELAY a pipeline written in several segments waits
    // for the delayed ACK (~40 ms) on every read.
    let mut info = redis::IntoConnectionInfo::into_connection_info(options.url.as_str())?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    if options.username.is_some() || options.password.is_some() {
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &options.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &options.password {
            settings = settings.set_password(password);
        }
        info = info.set_redis_settings(settings);
    }
    let client = if options.ca_cert.is_some() || options.client_cert.is_some() {
        let read = |p: &std::path::PathBuf| {
            std::fs::read(p).map_err(|e| Error::Corrupt(format!("cannot read {}: {e}", p.display())))
        };
        let client_tls = match (&options.client_cert, &options.client_key) {
            (Some(cert), Some(key)) => {
                Some(redis::ClientTlsConfig { client_cert: read(cert)?, client_key: read(key)? })
            }
            _ => None,
        };
        let root_cert = options.ca_cert.as_ref().map(read).transpose()?;
        redis::Client::build_with_tls(info, redis::TlsCertificates { client_tls, root_cert })?
    } else {
        redis::Client::open(info)?
    };
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    Ok(ConnectionManager::new_with_config(client, config).await?)
}

impl From<veltrix_proto::convert::EventDecodeError> for Error {
    fn from(e: veltrix_proto::convert::EventDecodeError) -> Self {
        Self::Corrupt(e.to_string())
    }
}
