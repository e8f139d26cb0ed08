//! The port an event store implements (JetStream in production, memory in
//! tests).

use std::future::Future;

use crate::{Revision, aggregate::StateSnapshot, event::ChangeSetCommitted, names::Namespace};

type Source = Box<dyn std::error::Error + Send + Sync>;

/// An event read back from the store, with the revision the store gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub revision: Revision,
    pub event: ChangeSetCommitted,
}

/// A successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The event was committed at this revision.
    Committed(Revision),
    /// The store recognised the request id and did not append; this is the
    /// revision of the original.
    Duplicate(Revision),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The namespace has events after the expected last revision: another
    /// writer got there first. Catch up and decide again.
    #[error("namespace has moved past the expected revision {expected}")]
    WrongLastRevision { expected: Revision },
    /// The store cannot be reached or did not answer in time. For an append
    /// the outcome is unknown.
    #[error("event store unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Source>,
    },
    /// The store refuses the append for good (e.g. it is full or the message
    /// is too large).
    #[error("event store refused the append: {message}")]
    Refused { message: String },
    /// An event in the store cannot be decoded by this version.
    #[error("event at revision {revision} cannot be decoded: {message}")]
    Undecodable { revision: Revision, message: String },
}

impl StoreError {
    /// The same error for another caller (without its source, which stays
    /// with the first for the log).
    pub fn duplicate(&self) -> Self {
        match self {
            Self::WrongLastRevision { expected } => Self::WrongLastRevision { expected: *expected },
            Self::Unavailable { message, .. } => Self::Unavailable { message: message.clone(), source: None },
            Self::Refused { message } => Self::Refused { message: message.clone() },
            Self::Undecodable { revision, message } => {
                Self::Undecodable { revision: *revision, message: message.clone() }
            }
        }
    }

    pub fn unavailable(message: impl Into<String>, source: impl Into<Source>) -> Self {
        Self::Unavailable { message: message.into(), source: Some(source.into()) }
    }
}

/// Where change sets are appended and read back, one ordered log per
/// namespace inside one global sequence.
pub trait EventStore: Send + Sync + 'static {
    /// Every event of `namespace` with a revision above `after`, in order.
    fn read(
        &self,
        namespace: &Namespace,
        after: Revision,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Appends `event` if the namespace's last revision is still
    /// `expected_last` (0: the namespace has no events). A non-empty request
    /// id lets the store drop a duplicate within its deduplication window.
    fn append(
        &self,
        expected_last: Revision,
        event: &ChangeSetCommitted,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send;

    /// Hands every event of `namespace` with a revision above `after` to
    /// `visit`, in order, without holding them all (a long history is
    /// folded in bounded memory).
    fn read_each(
        &self,
        namespace: &Namespace,
        after: Revision,
        mut visit: impl FnMut(StoredEvent) + Send,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            for event in self.read(namespace, after).await? {
                visit(event);
            }
            Ok(())
        }
    }

    /// The latest snapshot of the namespace's state that matches the log
    /// (its revision is the namespace's event at that revision in this
    /// log); `None` when there is none, or none to trust.
    fn snapshot(
        &self,
        namespace: &Namespace,
    ) -> impl Future<Output = Result<Option<StateSnapshot>, StoreError>> + Send {
        let _ = namespace;
        async { Ok(None) }
    }

    /// Stores a snapshot of the namespace's state, replacing the one before.
    /// A store without snapshots keeps nothing.
    fn save_snapshot(&self, snapshot: &StateSnapshot) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = snapshot;
        async { Ok(()) }
    }
}
