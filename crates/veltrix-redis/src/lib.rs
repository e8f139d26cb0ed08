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
mod keys;
mod query;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use apply::ApplyOptions;
pub use generation::GenerationState;
pub use keys::Keys;
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
    Compacted { requested: u64, oldest: u64 },
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
        // Without TCP_NODELAY a pipeline written in several segments waits
        // for the delayed ACK (~40 ms) on every read.
        let info = redis::IntoConnectionInfo::into_connection_info(url)?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { conn, keys: Keys::new(prefix) })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}
