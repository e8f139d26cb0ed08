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
mod conn;
mod generation;
mod governance;
mod keys;
mod ledger;
mod query;
mod rollouts;
mod slots;
mod verify;

pub use apply::ApplyOptions;
pub(crate) use conn::Conn;
pub use conn::Topology;
pub use generation::{Generation, GenerationState};
pub use governance::SchemaRow;
pub use keys::Keys;
pub use ledger::{RedisLedger, step_from_wire, step_to_wire};
pub use query::{ListPage, NamespaceRow};
pub use slots::UNREPLICATED;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    #[error("corrupt read model entry: {0}")]
    Corrupt(String),
    #[error("redis configuration: {0}")]
    Config(String),
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
    /// `redis://` or `rediss://` (TLS) for one server,
    /// `redis+cluster://host:port,...` for a Redis Cluster,
    /// `redis+sentinel://host:port,.../master-name` for a master that
    /// Sentinel finds.
    pub url: String,
    /// PEM CA bundle the server's certificate must chain to.
    pub ca_cert: Option<std::path::PathBuf>,
    /// PEM client certificate and key, for servers that verify clients.
    pub client_cert: Option<std::path::PathBuf>,
    pub client_key: Option<std::path::PathBuf>,
    /// ACL user and password.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Replicas that must hold a projected batch before it counts as
    /// applied (WAIT). `None`: 1 on a cluster or behind Sentinel, 0 on
    /// one server.
    pub replica_acks: Option<u32>,
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
            .field("replica_acks", &self.replica_acks)
            .finish()
    }
}

/// A handle on the read model: a reconnecting connection and the key layout.
#[derive(Clone)]
pub struct ReadModel {
    conn: Conn,
    keys: Keys,
    /// Replicas a projected batch waits for (WAIT).
    replica_acks: u32,
    /// On a cluster: which master serves each slot, as lately asked.
    owners: std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<slots::Owners>>>>,
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
        let replica_acks = match (options.replica_acks, Topology::parse(&options.url)?) {
            (Some(n), _) => n,
            (None, Topology::Single) => 0,
            (None, _) => 1,
        };
        Ok(Self { conn: Conn::open(options).await?, keys: Keys::new(prefix), replica_acks, owners: Default::default() })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// Runs on a Redis Cluster (commands of different slots go in
    /// different pipelines).
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }
}

impl From<veltrix_proto::convert::EventDecodeError> for Error {
    fn from(e: veltrix_proto::convert::EventDecodeError) -> Self {
        Self::Corrupt(e.to_string())
    }
}
