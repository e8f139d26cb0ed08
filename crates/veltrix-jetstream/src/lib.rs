//! NATS JetStream adapter of Veltrix Config: the event stream (created or
//! verified at start-up) and an [`EventStore`](veltrix_domain::EventStore)
//! that appends change sets with `Nats-Expected-Last-Subject-Sequence` and
//! reads a namespace's events back, and an [`EventFeed`](veltrix_domain::EventFeed)
//! of every namespace's events in order for the projection.
//!
//! Subject layout: one subject per namespace, `{prefix}.{segment}.{segment}`
//! (namespace segments are valid subject tokens by construction), all in one
//! stream whose sequence is the global revision.

mod args;
mod classify;
mod connect;
mod error;
mod feed;
mod settings;
mod snapshots;
mod store;
mod stream;

pub use args::NatsArgs;
/// A connection to NATS, as [`connect`] opens it.
pub type NatsClient = async_nats::Client;
pub use connect::{ConnectionEvents, NatsOptions, connect};
pub use error::Error;
pub use feed::{JetStreamFeed, JetStreamReader};
pub use settings::StreamSettings;
pub use snapshots::{IGNORED_REASONS as SNAPSHOT_IGNORED_REASONS, SNAPSHOTS_IGNORED};
pub use store::{JetStreamEventStore, StreamUsage, decode_message};
pub use stream::ensure_stream;

/// Header naming the payload type and version of an event.
pub const EVENT_TYPE_HEADER: &str = "Veltrix-Event";
