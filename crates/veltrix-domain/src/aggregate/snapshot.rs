//! A namespace's state as plain data, so that the command service can store
//! it and start from it instead of folding the whole history: what
//! `NamespaceState` holds, and nothing derived (compiled schemas and the
//! folded rollout are made again on restore).

use std::time::{Duration, SystemTime};

use super::{NamespaceState, RequestRecord};
use crate::{
    KeyMeta, Revision,
    event::ChangeSetCommitted,
    names::{Key, Namespace, RequestId},
    schema::{SchemaChange, Schemas},
};

/// A request id the state still remembers (within the idempotency window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedRequest {
    pub time: SystemTime,
    pub request_id: RequestId,
    pub revision: Revision,
    pub digest: Vec<u8>,
}

/// Everything needed to continue folding a namespace after `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSnapshot {
    pub namespace: Namespace,
    pub revision: Revision,
    /// Live keys, in key order.
    pub keys: Vec<(Key, KeyMeta)>,
    /// The schemas in force, as the changes that set them, in pattern order.
    pub schemas: Vec<SchemaChange>,
    /// Remembered request ids, oldest commit first.
    pub requests: Vec<RememberedRequest>,
    /// The events of the latest rollout, from its start.
    pub rollout_events: Vec<(Revision, ChangeSetCommitted)>,
}

impl NamespaceState {
    /// The state as plain data.
    pub fn snapshot(&self, namespace: &Namespace) -> StateSnapshot {
        let mut keys: Vec<(Key, KeyMeta)> = self.keys.iter().map(|(k, m)| (k.clone(), *m)).collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        let schemas = self
            .schemas
            .iter()
            .map(|(pattern, schema)| SchemaChange::Set { pattern: pattern.clone(), schema: schema.source().to_owned() })
            .collect();
        let requests = self
            .request_order
            .iter()
            .filter_map(|(time, id)| {
                let record = self.requests.get(id)?;
                Some(RememberedRequest {
                    time: *time,
                    request_id: id.clone(),
                    revision: record.revision,
                    digest: record.digest.clone(),
                })
            })
            .collect();
        StateSnapshot {
            namespace: namespace.clone(),
            revision: self.revision,
            keys,
            schemas,
            requests,
            rollout_events: self.rollout_events.clone(),
        }
    }

    /// The state a snapshot describes, remembering request ids for
    /// `idempotency_window` from here on.
    pub fn restore(snapshot: StateSnapshot, idempotency_window: Duration) -> Self {
        let mut state = Self::new(idempotency_window);
        state.revision = snapshot.revision;
        state.keys = snapshot.keys.into_iter().collect();
        let mut schemas = Schemas::default();
        snapshot.schemas.iter().for_each(|c| schemas.apply(c));
        state.schemas = schemas;
        for r in snapshot.requests {
            let record = RequestRecord { revision: r.revision, digest: r.digest };
            if state.requests.insert(r.request_id.clone(), record).is_none() {
                state.request_order.push_back((r.time, r.request_id));
            }
        }
        for (revision, event) in &snapshot.rollout_events {
            crate::rollout::event::fold(&mut state.rollout, *revision, event);
        }
        state.rollout_events = snapshot.rollout_events;
        state
    }
}
