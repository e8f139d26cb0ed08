//! The rollout controller: every `--rollout-interval`, for each namespace
//! whose latest rollout is running, it reads what the ledger says of the
//! current step's cohort, evaluates the gates (bake time from the event
//! times, ACKs, NACKs, the ACK timeout) and appends the transition the
//! verdict makes.
//!
//! It runs in every query replica (each has the projection of every event
//! and the ledger); a transition is appended under the namespace's expected
//! last revision, so when two replicas (or a person) decide at once exactly
//! one transition lands and the others find the namespace moved and decide
//! again next round on what landed. Nothing is kept in memory between
//! rounds: a restarted replica resumes every rollout where its events left
//! it.

use std::{sync::Arc, time::Duration, time::SystemTime};

use veltrix_domain::{
    Actor, Appended, EventStore, Namespace, Revision, StoreError,
    rollout::{RolloutState, cohort_inputs, decide_gate, evaluate},
};
use veltrix_redis::{Generation, ReadModel};
use veltrix_server::{CancellationToken, ServingGate};

use crate::{fleet::Fleet, metric, state::ReadState, status::ReadError};

/// Appends tried in one round when other writes keep moving the namespace.
const APPEND_TRIES: usize = 3;

#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Model(#[from] veltrix_redis::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Controller<S> {
    /// Where the transitions are appended (the event stream).
    pub store: ServingGate<S>,
    pub model: ServingGate<ReadModel>,
    pub state: Arc<ReadState>,
    pub fleet: Arc<Fleet>,
    pub interval: Duration,
    /// The actor of the gates' transitions.
    pub actor: Actor,
}

impl<S: EventStore> Controller<S> {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = shutdown.cancelled() => return,
            }
            let (Ok(model), Ok(store), Some(generation)) =
                (self.model.get(), self.store.get(), self.state.generation())
            else {
                continue;
            };
            if let Err(e) = self.round(store, model, generation).await {
                tracing::warn!(error = %e, "rollout controller round failed; retrying next round");
            }
        }
    }

    /// One evaluation of every namespace's running rollout.
    async fn round(&self, store: &S, model: &ReadModel, generation: Generation) -> Result<(), RoundError> {
        let mut live = [0u64; 2];
        for ns in model.rollout_namespaces(generation).await? {
            match self.evaluate(store, model, generation, &ns).await {
                Ok(Some(RolloutState::Running)) => live[0] += 1,
                Ok(Some(RolloutState::Paused)) => live[1] += 1,
                Ok(_) => {}
                Err(e) => tracing::warn!(namespace = %ns, error = %e, "could not evaluate the namespace's rollout"),
            }
        }
        metrics::gauge!(metric::ROLLOUTS, "state" => "running").set(live[0] as f64);
        metrics::gauge!(metric::ROLLOUTS, "state" => "paused").set(live[1] as f64);
        Ok(())
    }

    /// Evaluates the namespace's latest rollout and appends what its gates
    /// decide; answers its state (before the transition) while it is live.
    async fn evaluate(
        &self,
        store: &S,
        model: &ReadModel,
        generation: Generation,
        ns: &Namespace,
    ) -> Result<Option<RolloutState>, RoundError> {
        // The namespace's revision in the model first, then its rollout: the
        // rollout read holds every transition up to that revision (the apply
        // script stores both at once), and the stream's events after it are
        // read below, so no transition can slip between what is decided on
        // and the revision the transition is appended under.
        let rows = model.namespace_rows(generation, vec![ns.as_str().to_owned()]).await?;
        let known = rows.first().map_or(Revision::ZERO, |row| row.revision);
        let Some(rollout) = super::rollouts(model, &self.state, generation, ns).await?.pop() else { return Ok(None) };
        if !rollout.is_live() {
            // Out of the round until the namespace's next rollout.
            model.rollout_finished(generation, ns, rollout.last_revision()).await?;
            return Ok(None);
        }
        if rollout.state != RolloutState::Running {
            return Ok(Some(rollout.state));
        }
        let now = SystemTime::now();
        let records = self.fleet.remembered(ns, now).await?;
        let (inputs, rejections) = cohort_inputs(&rollout, &records, now, &self.fleet.timing);
        let verdict = evaluate(&rollout, inputs, now);
        let Some(event) = decide_gate(&rollout, verdict, inputs, rejections, now, &self.actor) else {
            return Ok(Some(rollout.state));
        };
        // Writes to other keys may land meanwhile: a few tries at once, each
        // on the namespace's last revision; a transition among the events
        // the model has not applied (a person paused it a moment ago) defers
        // the gate to the next round, once projected.
        let mut after = known.max(rollout.last_revision());
        for _ in 0..APPEND_TRIES {
            let later = store.read(ns, after).await?;
            if later.iter().any(|e| e.event.rollout.is_some()) {
                return Ok(Some(rollout.state));
            }
            let head = later.last().map_or(after, |e| e.revision);
            match store.append(head, &event).await {
                Ok(Appended::Committed(revision)) => {
                    let kind = event.rollout.as_deref().map_or("unknown", |r| kind_label(&r.change));
                    metrics::counter!(metric::ROLLOUT_TRANSITIONS, "kind" => kind, "triggered_by" => trigger_label(&event))
                        .increment(1);
                    tracing::info!(namespace = %ns, rollout = %rollout.id, %revision, kind, reason = %event.reason, "rollout gate transition");
                    break;
                }
                // Another controller appended the same transition.
                Ok(Appended::Duplicate(_)) => break,
                Err(StoreError::WrongLastRevision { .. }) => after = head,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(rollout.state))
    }
}

fn kind_label(change: &veltrix_domain::rollout::RolloutChange) -> &'static str {
    use veltrix_domain::rollout::RolloutChange as C;
    match change {
        C::Started(_) => "started",
        C::Advanced { .. } => "advanced",
        C::Paused => "paused",
        C::Resumed => "resumed",
        C::Aborted { .. } => "aborted",
        C::Completed => "completed",
    }
}

fn trigger_label(event: &veltrix_domain::ChangeSetCommitted) -> &'static str {
    use veltrix_domain::rollout::Trigger;
    match event.rollout.as_deref().map(|r| r.triggered_by) {
        Some(Trigger::Gate) => "gate",
        Some(Trigger::Timeout) => "timeout",
        Some(Trigger::User) | None => "user",
    }
}
