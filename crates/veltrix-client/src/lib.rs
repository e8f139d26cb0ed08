//! The Rust client of Veltrix Config.
//!
//! - [`Client`]: typed calls to both services (`put`, `get`, `list`,
//!   `delete`, `apply`, `history`, `namespaces`), per-call deadlines,
//!   retries of UNAVAILABLE with backoff (writes keep their request id, so a
//!   retry never applies twice), actor and credential metadata, and one
//!   [`Error`] type with the variants a caller acts on.
//! - [`Client::watch`]: a [`WatchStream`] that resumes on its own after
//!   disconnects and falls back to a snapshot when the history it needs is
//!   gone.
//! - [`Client::sync`]: a [`SyncHandle`], a resuming stream like a watch
//!   that also reports to the fleet ledger what this client runs
//!   ([`SyncHandle::ack`], [`SyncHandle::nack`], keepalives).
//! - [`LiveConfig`]: an in-memory copy of a namespace kept current by a
//!   watch (or a Sync stream that acknowledges each revision it takes, with
//!   an optional validator whose refusals are NACKed), with local reads,
//!   change notifications, and an optional cache file for starting while
//!   the servers are unreachable.
//!
//! ```no_run
//! # async fn demo() -> veltrix_client::Result<()> {
//! use veltrix_client::{Client, LiveConfig, LiveOptions};
//! let client = Client::builder().command_url("http://127.0.0.1:50051").query_url("http://127.0.0.1:50052").build()?;
//! let revision = client.put("payments/api", "db.url", "postgres://db").await?;
//! let live = LiveConfig::start(&client, "payments/api", LiveOptions::default()).await?;
//! live.wait_synced(std::time::Duration::from_secs(5)).await?;
//! assert!(live.revision() >= revision);
//! # Ok(()) }
//! ```

mod builder;
mod changes;
mod client;
mod error;
mod fleet;
mod governance;
mod live;
mod rollout;
mod sync;
mod types;
mod watch;

pub use changes::{Computed, Diff, DiffKind, DiffOptions, Differences, PromoteOptions, RollbackOptions};
pub use client::{Client, ClientBuilder, HistoryOptions, Listing, ReadOptions, WriteOptions};
pub use error::{Error, REVISION_COMPACTED, REVISION_CONFLICT, Result};
pub use fleet::{ClientError, ClientFilter, ClientInfo, ClientState, Rejection, RevisionStatus, StatusReport};
pub use governance::{AdminOptions, Blamed, Origin, OriginKind, SchemaChange, SchemaInfo};
pub use live::{LiveConfig, LiveOptions, Snapshot, Source, Validator};
pub use rollout::{
    GateInputs, Rollout, RolloutAction, RolloutActionOptions, RolloutChange, RolloutOptions, RolloutStep,
    RolloutStrategy, RolloutTransition,
};
pub use sync::{Reporter, SyncHandle, SyncOptions, SyncStep};
pub use types::{
    Change, ChangeOp, ChangeSet, Entry, KeyChange, NamespaceInfo, Revision, Roles, RolloutMark, WatchEvent, WhoAmI,
    decode_value, encode_value, rfc3339,
};
pub use watch::{WatchStart, WatchStream};

/// The README's Rust example compiles (`cargo test --doc -p veltrix-client`,
/// which `cargo xtask test` runs).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExamples;
