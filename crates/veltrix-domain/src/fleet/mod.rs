//! The fleet ledger's model: what each client reports it runs, and the state
//! that follows from it (SYNCED, PENDING, STALE, REJECTED, DISCONNECTED).
//! Pure: the query service keeps the records in a [`LedgerStore`] and asks
//! these functions what they mean at a given time.

mod names;
mod status;
mod store;

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

pub use names::{ClientId, LabelSelector, Labels, MAX_ERROR_BYTES, check_labels};
pub use status::{RejectionGroup, RevisionStatus, Touch, group_rejections, revision_status};
pub use store::{LedgerError, LedgerStore, MemoryLedger};

use crate::{Namespace, Revision};

/// Where a client rejected a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Render,
    Check,
    Reload,
    Health,
}

/// What a client's ledger entry says it is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientState {
    Synced,
    Pending,
    Stale,
    Rejected,
    Disconnected,
}

impl ClientState {
    pub const ALL: [Self; 5] = [Self::Synced, Self::Pending, Self::Stale, Self::Rejected, Self::Disconnected];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Synced => "synced",
            Self::Pending => "pending",
            Self::Stale => "stale",
            Self::Rejected => "rejected",
            Self::Disconnected => "disconnected",
        }
    }
}

/// A client's last NACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub revision: Revision,
    pub step: Step,
    pub error: String,
    pub at: SystemTime,
}

/// The agent software a client runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    pub name: String,
    pub version: String,
}

/// How long the ledger believes what.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A revision delivered and not acknowledged for longer is STALE.
    pub stale_after: Duration,
    /// A disconnected client is forgotten after this long without a report.
    pub forget_after: Duration,
    /// A replica refreshes the entries of the streams it holds at least this
    /// often; an entry not refreshed for three times as long is
    /// disconnected (its replica is gone).
    pub heartbeat: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            stale_after: Duration::from_secs(60),
            forget_after: Duration::from_secs(24 * 3600),
            heartbeat: Duration::from_secs(10),
        }
    }
}

/// One client of a namespace as the ledger knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: ClientId,
    pub namespace: Namespace,
    pub prefix: String,
    pub labels: Labels,
    pub agent: Agent,
    /// It runs everything up to this.
    pub applied: Revision,
    /// The digest of its last ACK.
    pub digest: String,
    /// The newest revision sent to it, and when.
    pub delivered: Revision,
    pub delivered_at: Option<SystemTime>,
    /// The newest NACKed revision it has not acknowledged since.
    pub rejected: Option<Revision>,
    pub last_error: Option<ClientError>,
    pub connected_since: SystemTime,
    pub last_seen: SystemTime,
    /// The replica holding (or last holding) its stream.
    pub replica: String,
    /// A replica says it holds the stream open (believed while `replica_seen`
    /// is recent).
    pub connected: bool,
    pub replica_seen: SystemTime,
    /// The rollout whose target it was sent, and the revision of the
    /// message that carried it (cleared when the base is sent back).
    pub rollout: Option<RolloutTarget>,
}

/// A rollout's target sent to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutTarget {
    pub id: crate::rollout::RolloutId,
    pub revision: Revision,
}

impl ClientRecord {
    /// A client that just subscribed (or reported once) through `replica`.
    pub fn new(client_id: ClientId, namespace: Namespace, prefix: String, replica: &str, now: SystemTime) -> Self {
        Self {
            client_id,
            namespace,
            prefix,
            labels: BTreeMap::new(),
            agent: Agent::default(),
            applied: Revision::ZERO,
            digest: String::new(),
            delivered: Revision::ZERO,
            delivered_at: None,
            rejected: None,
            last_error: None,
            connected_since: now,
            last_seen: now,
            replica: replica.to_owned(),
            connected: false,
            replica_seen: now,
            rollout: None,
        }
    }

    /// Takes over what the ledger knew of the same client (its last error,
    /// a rejection newer than what it runs), from an earlier stream or another replica.
    pub fn continue_from(&mut self, earlier: &Self) {
        if earlier.rejected > Some(self.applied) {
            self.rejected = earlier.rejected;
        }
        if self.last_error.is_none() {
            self.last_error.clone_from(&earlier.last_error);
        }
        if self.rollout.is_none() {
            self.rollout.clone_from(&earlier.rollout);
        }
    }

    /// The client runs everything up to `revision`.
    pub fn ack(&mut self, revision: Revision, digest: &str, now: SystemTime) {
        self.applied = revision;
        if !digest.is_empty() {
            digest.clone_into(&mut self.digest);
        }
        if self.rejected.is_some_and(|r| r <= revision) {
            self.rejected = None;
        }
        self.last_seen = now;
    }

    /// The client rejected `revision` at `step` and still runs `applied`.
    pub fn nack(&mut self, revision: Revision, applied: Revision, step: Step, error: &str, now: SystemTime) {
        self.applied = applied;
        self.rejected = Some(revision.max(self.rejected.unwrap_or(Revision::ZERO)));
        self.last_error = Some(ClientError { revision, step, error: names::bounded_error(error), at: now });
        self.last_seen = now;
    }

    /// The replica sent it `revision`.
    pub fn delivered(&mut self, revision: Revision, now: SystemTime) {
        if revision > self.delivered {
            self.delivered = revision;
            self.delivered_at = Some(now);
        }
    }

    /// Is a replica holding its stream open (and alive to say so)?
    pub fn is_live(&self, now: SystemTime, timing: &Timing) -> bool {
        self.connected && age(self.replica_seen, now) <= timing.heartbeat.saturating_mul(3)
    }

    /// Disconnected, and silent for longer than the ledger remembers.
    pub fn is_forgotten(&self, now: SystemTime, timing: &Timing) -> bool {
        !self.is_live(now, timing) && age(self.last_seen.max(self.replica_seen), now) > timing.forget_after
    }

    /// The state as of `now`, about `target`: the newest revision that
    /// touched its prefix, committed at `committed_at` (if known).
    pub fn state(
        &self,
        target: Revision,
        committed_at: Option<SystemTime>,
        now: SystemTime,
        timing: &Timing,
    ) -> ClientState {
        if !self.is_live(now, timing) {
            return ClientState::Disconnected;
        }
        self.standing(target.max(self.delivered), committed_at, now, timing)
    }

    /// How it stands on `revision`, connected or not ([`revision_status`]
    /// counts a disconnected client that runs it as applied).
    fn standing(
        &self,
        revision: Revision,
        committed_at: Option<SystemTime>,
        now: SystemTime,
        timing: &Timing,
    ) -> ClientState {
        if self.applied >= revision {
            ClientState::Synced
        } else if self.rejected.is_some_and(|r| r >= revision) {
            ClientState::Rejected
        } else if !self.is_live(now, timing) {
            ClientState::Disconnected
        } else {
            // Waiting since the revision existed for it: since it was
            // delivered, committed or the client connected, whichever is
            // latest.
            let since = [self.delivered_at.filter(|_| self.delivered >= revision), committed_at]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now)
                .max(self.connected_since);
            if age(since, now) > timing.stale_after { ClientState::Stale } else { ClientState::Pending }
        }
    }
}

/// How long ago `then` was (zero if in the future: clocks of replicas
/// differ).
fn age(then: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or_default()
}
