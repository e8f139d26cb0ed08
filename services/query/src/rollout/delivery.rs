//! What a Sync session sends its client of the namespace's rollout.
//!
//! While a rollout is live the committed state (Get, List, Watch) is the
//! base; a Sync client in the cohort runs the target. The session turns the
//! rollout's transition records (which carry no key changes) into what its
//! client must apply: the target, when the transition brings the client
//! into the cohort; the base values back, when an abort takes it away; for
//! everyone else nothing (the record is dropped). A client that subscribes
//! with a snapshot while in the cohort gets the target in the snapshot. The
//! completion is an ordinary change set with the target, for everyone.

use std::time::SystemTime;

use veltrix_domain::{
    KeyChange, Namespace, Origin, Revision,
    fleet::ClientRecord,
    rollout::{Rollout, RolloutId, TransitionKind},
};
use veltrix_proto::{
    convert::{
        origin::origin_to_wire,
        read::{key_value_set, timestamp, wire_change},
        rollout::delivery_rollout,
    },
    v1::{ChangeRecord, KeyChange as WireKeyChange, KeyValue, key_change::Op},
};
use veltrix_redis::{Generation, ReadModel};

use crate::{state::ReadState, status::ReadError};

/// The namespace's latest rollout as of `at` (every transition up to it).
pub(crate) async fn latest_at(
    model: &ReadModel,
    state: &ReadState,
    generation: Generation,
    ns: &Namespace,
    at: Revision,
) -> Result<Option<Rollout>, ReadError> {
    let events = state.rollouts.events(model, generation, ns).await?;
    let upto = events.iter().filter(|(r, _)| *r <= at).map(|(r, e)| (*r, e));
    Ok(veltrix_domain::rollout::fold_all(upto).pop())
}

/// The target's changes under `prefix`.
fn under<'a>(rollout: &'a Rollout, prefix: &'a str) -> impl Iterator<Item = &'a KeyChange> + 'a {
    rollout.target.iter().filter(move |c| c.key.as_str().starts_with(prefix))
}

/// Whether the live rollout's current step includes this client: it reads
/// a key the rollout changes and the cohort holds it.
pub fn in_cohort(rollout: &Rollout, client: &ClientRecord) -> bool {
    rollout.is_live()
        && under(rollout, &client.prefix).next().is_some()
        && rollout.cohort().includes(&client.client_id, &client.labels)
}

/// What the session does with a rollout transition it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the target (the client enters the cohort).
    Target,
    /// Send the base values back (an abort; the client ran the target).
    Base,
    /// The client no longer runs a live rollout's target (completed: the
    /// committed change set carries the same values).
    Forget,
    Nothing,
}

/// What the client should get of `rollout`, given whether it runs the
/// target now.
pub fn action(rollout: &Rollout, client: &ClientRecord, holds: bool) -> Action {
    if holds {
        match rollout.last_kind() {
            TransitionKind::Aborted => Action::Base,
            TransitionKind::Completed => Action::Forget,
            _ => Action::Nothing,
        }
    } else if in_cohort(rollout, client) {
        Action::Target
    } else {
        Action::Nothing
    }
}

fn record(rollout: &Rollout, revision: Revision, changes: Vec<WireKeyChange>) -> ChangeRecord {
    let last = rollout.transitions.last();
    ChangeRecord {
        revision: revision.get(),
        namespace: rollout.namespace.to_string(),
        time: last.map(|t| timestamp(t.at)),
        actor: last.map(|t| t.actor.clone()).unwrap_or_default(),
        reason: last.map(|t| t.reason.clone()).unwrap_or_default(),
        request_id: String::new(),
        changes,
        traceparent: String::new(),
        origin: Some(origin_to_wire(&Origin::Rollout, &rollout.namespace)),
        schema_changes: Vec::new(),
        rollout: Some(delivery_rollout(rollout, rollout.last_kind())),
    }
}

/// The target under `prefix` as a change at `revision` (the transition
/// that brought the client in).
pub fn target_record(rollout: &Rollout, prefix: &str, revision: Revision) -> ChangeRecord {
    record(rollout, revision, under(rollout, prefix).map(wire_change).collect())
}

/// The base values of the target's keys under `prefix` as of `revision`
/// (the abort: the keys could not change while the rollout ran, and may
/// have since), as a change at that revision.
pub async fn base_record(
    model: &ReadModel,
    generation: Generation,
    rollout: &Rollout,
    prefix: &str,
    revision: Revision,
) -> Result<ChangeRecord, ReadError> {
    let mut changes = Vec::new();
    for c in under(rollout, prefix) {
        let kv = match model.get_at(generation, &rollout.namespace, c.key.as_str(), revision).await {
            Ok(kv) => kv,
            // Beyond the retained history (a client far behind): the value
            // now, which its replay of what followed brings it to anyway.
            Err(veltrix_redis::Error::Compacted { .. }) => {
                model.get(generation, &rollout.namespace, c.key.as_str()).await?.0
            }
            Err(e) => return Err(e.into()),
        };
        changes.push(match kv {
            Some(kv) => WireKeyChange {
                key: kv.key,
                op: Op::Set.into(),
                value: kv.value,
                content_type: kv.content_type,
                previous_mod_revision: kv.mod_revision,
            },
            None => WireKeyChange {
                key: c.key.to_string(),
                op: Op::Delete.into(),
                value: Default::default(),
                content_type: String::new(),
                previous_mod_revision: 0,
            },
        });
    }
    Ok(record(rollout, revision, changes))
}

/// A Sync client's snapshot: the watcher asks it, at the snapshot's
/// revision, whether the client is in a live rollout's cohort then (the
/// snapshot shows the target), and the session learns which rollout the
/// snapshot showed.
pub struct SnapshotView {
    pub client: ClientRecord,
    state: std::sync::Arc<ReadState>,
    shown: std::sync::Mutex<Option<RolloutId>>,
}

impl SnapshotView {
    pub fn new(client: ClientRecord, state: std::sync::Arc<ReadState>) -> Self {
        Self { client, state, shown: std::sync::Mutex::new(None) }
    }

    /// The target the snapshot at `at` shows, if the client is in the
    /// cohort of the rollout live at `at`.
    pub async fn overlay(
        &self,
        model: &ReadModel,
        generation: Generation,
        at: Revision,
    ) -> Result<Option<Overlay>, ReadError> {
        let rollout = latest_at(model, &self.state, generation, &self.client.namespace, at).await?;
        let shown = rollout.filter(|r| in_cohort(r, &self.client));
        let overlay = shown.as_ref().map(|r| Overlay::of(r, &self.client.prefix));
        *self.shown.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = shown.map(|r| r.id);
        Ok(overlay)
    }

    /// The rollout whose target the snapshot showed (once).
    pub fn take_shown(&self) -> Option<RolloutId> {
        self.shown.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

/// What a cohort client's snapshot shows instead of the base.
#[derive(Debug, Clone)]
pub struct Overlay {
    pub changes: Vec<KeyChange>,
    pub time: SystemTime,
    pub actor: String,
}

impl Overlay {
    pub fn of(rollout: &Rollout, prefix: &str) -> Self {
        let last = rollout.transitions.last();
        Self {
            changes: under(rollout, prefix).cloned().collect(),
            time: last.map_or(SystemTime::UNIX_EPOCH, |t| t.at),
            actor: last.map(|t| t.actor.clone()).unwrap_or_default(),
        }
    }

    /// Puts the target into one page of a snapshot at `revision`: the page
    /// holds the keys after `after` up to `upto` (the last page: to the
    /// end), in key order.
    pub fn apply(&self, kvs: &mut Vec<KeyValue>, after: Option<&str>, upto: Option<&str>, revision: Revision) {
        let mine = self.changes.iter().filter(|c| {
            let k = c.key.as_str();
            after.is_none_or(|a| k > a) && upto.is_none_or(|u| k <= u)
        });
        for c in mine {
            kvs.retain(|kv| kv.key != c.key.as_str());
            kvs.extend(key_value_set(revision, c, self.time, &self.actor));
        }
        kvs.sort_by(|a, b| a.key.cmp(&b.key));
    }
}
