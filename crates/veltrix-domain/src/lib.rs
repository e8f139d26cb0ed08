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
pub mod fixtures;
pub mod fleet;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod names;
pub mod plan;
pub mod projection;
pub mod rollout;
pub mod schema;
pub mod store;
pub mod validation;

pub use aggregate::{Decision, KeyMeta, NamespaceState, Rejection, decide};
pub use command::{ChangeSetCommand, CommandMeta, Derived, EVENT_OVERHEAD, Expectation, KeyCommand, Limits, Operation};
pub use event::{ChangeSetCommitted, KeyChange, KeyOp, Origin, TraceContext};
pub use feed::{EventFeed, FeedError, FeedItem, FeedReader, next_batch};
pub use names::{Actor, ContentType, Key, Namespace, Reason, RequestId};
pub use schema::{KeyPattern, SchemaChange, Schemas, Violation};
pub use store::{Appended, EventStore, StoreError, StoredEvent};
pub use validation::ValidationError;

/// A revision: the stream sequence of a committed change set. Global and
/// monotonic across every namespace; 0 means "nothing" (no such key, empty
/// namespace). Its own type, so that it is never taken for another number
/// (a generation, a count, a version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision(u64);

impl Revision {
    /// "Nothing": before the first change set.
    pub const ZERO: Self = Self(0);

    pub const fn new(n: u64) -> Self {
        Self(n)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// The revision after this one (saturating: the stream never gets there).
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl From<u64> for Revision {
    fn from(n: u64) -> Self {
        Self(n)
    }
}

impl From<Revision> for u64 {
    fn from(r: Revision) -> Self {
        r.0
    }
}

/// Revisions `n` apart; saturating, so no stored number can overflow it.
impl std::ops::Add<u64> for Revision {
    type Output = Self;

    fn add(self, n: u64) -> Self {
        Self(self.0.saturating_add(n))
    }
}

impl std::ops::AddAssign<u64> for Revision {
    fn add_assign(&mut self, n: u64) {
        self.0 = self.0.saturating_add(n);
    }
}

/// Saturating at zero.
impl std::ops::Sub<u64> for Revision {
    type Output = Self;

    fn sub(self, n: u64) -> Self {
        Self(self.0.saturating_sub(n))
    }
}

/// Compared with plain numbers (`revision == 0`, `revision > floor`) where
/// the number is a revision read from the wire or a test.
impl PartialEq<u64> for Revision {
    fn eq(&self, other: &u64) -> bool {
        self.0 == *other
    }
}

impl PartialOrd<u64> for Revision {
    fn partial_cmp(&self, other: &u64) -> Option<std::cmp::Ordering> {
        Some(self.0.cmp(other))
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
