//! The pure domain model of Veltrix Config.
//!
//! Names (namespaces, keys, content types) as validated newtypes, change-set
//! commands, the `ChangeSetCommitted` event, the namespace aggregate as two pure
//! functions ([`decide`] and [`NamespaceState::evolve`]), and the ports that an
//! event store implements (appends and namespace reads; the ordered feed of
//! every namespace the projection reads). No I/O, no async runtime, no wire types: the adapters
//! and services depend on this crate, never the other way round.

pub mod aggregate;
pub mod command;
#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
pub mod digest;
pub mod event;
pub mod feed;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod names;
pub mod projection;
pub mod store;
pub mod validation;

pub use aggregate::{Decision, KeyMeta, NamespaceState, Rejection, decide};
pub use command::{ChangeSetCommand, CommandMeta, Expectation, KeyCommand, Limits, Operation};
pub use event::{ChangeSetCommitted, KeyChange, KeyOp, TraceContext};
pub use feed::{EventFeed, FeedError, FeedItem, FeedReader, next_batch};
pub use names::{Actor, ContentType, Key, Namespace, Reason, RequestId};
pub use store::{Appended, EventStore, StoreError, StoredEvent};
pub use validation::ValidationError;

/// A revision: the stream sequence of a committed change set. Global and
/// monotonic across every namespace; 0 means "nothing" (no such key, empty
/// namespace).
pub type Revision = u64;
