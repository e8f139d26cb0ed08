//! Rollout commands against the namespace aggregate: a start decides its
//! target like an Apply (conflicts, missing keys, schemas) but commits
//! nothing; a person's pause, resume, abort or promote and a gate's verdict
//! become transition events. Every one is appended under the namespace's
//! expected revision, so each transition is committed once however many
//! deciders race.

use std::time::SystemTime;

use super::{
    GateInputs, Rollout, RolloutChange, RolloutCommand, RolloutEvent, RolloutId, Started, Strategy, TransitionKind,
    Trigger, Verdict,
};
use crate::{
    Actor, ChangeSetCommand, ChangeSetCommitted, CommandMeta, Decision, NamespaceState, Origin, Rejection, Revision,
    decide, fleet::RejectionGroup,
};

/// A validated StartRollout.
#[derive(Debug, Clone)]
pub struct StartRollout {
    pub id: RolloutId,
    /// The target as an Apply would write it.
    pub target: ChangeSetCommand,
    pub strategy: Strategy,
    /// The namespace's revision must be this.
    pub expected_revision: Option<Revision>,
    /// Digest of the whole request (target and strategy), for retries.
    pub digest: [u8; 32],
}

/// A person's command to a rollout.
#[derive(Debug, Clone)]
pub struct RolloutAction {
    pub id: RolloutId,
    pub command: RolloutCommand,
    pub expected_version: Option<u64>,
    pub meta: CommandMeta,
    pub digest: [u8; 32],
}

/// A transition's event; the completion commits the target.
fn transition_event(
    rollout: &Rollout,
    template: ChangeSetCommitted,
    event: RolloutEvent,
    completes: bool,
) -> ChangeSetCommitted {
    let changes = if completes { rollout.target.clone() } else { Vec::new() };
    ChangeSetCommitted { changes, rollout: Some(Box::new(event)), ..template }
}

fn empty_event(namespace: &crate::Namespace, meta: &CommandMeta, digest: [u8; 32]) -> ChangeSetCommitted {
    ChangeSetCommitted {
        namespace: namespace.clone(),
        changes: Vec::new(),
        actor: meta.actor.clone(),
        reason: meta.reason.clone(),
        request_id: meta.request_id.clone(),
        request_digest: digest.to_vec(),
        time: meta.time,
        trace: meta.trace.clone(),
        origin: Origin::Rollout,
        schema_changes: Vec::new(),
        rollout: None,
    }
}

/// The start event: the target decided against `state` (not committed).
pub fn decide_start(state: &NamespaceState, start: StartRollout) -> Result<Decision, Rejection> {
    let meta = start.target.meta();
    if let Some(answer) = state.answered(&meta.request_id, &start.digest) {
        return answer.map(Decision::AlreadyApplied);
    }
    if let Some(expected) = start.expected_revision.filter(|e| *e != state.revision()) {
        return Err(Rejection::NamespaceMoved { expected, current: state.revision() });
    }
    if let Some(running) = state.live_rollout() {
        return Err(Rejection::RolloutRunning(running.id.clone()));
    }
    let Decision::Append(decided) = decide(state, &start.target)? else {
        // The request id is unknown (checked above), so decide cannot
        // answer an earlier commit.
        return Err(Rejection::RolloutNotFound(start.id.to_string()));
    };
    let started = Started { base: state.revision(), target: decided.changes, strategy: start.strategy };
    let event = RolloutEvent {
        id: start.id,
        change: RolloutChange::Started(Box::new(started)),
        triggered_by: Trigger::User,
        inputs: None,
    };
    let mut out = empty_event(start.target.namespace(), meta, start.digest);
    out.trace = decided.trace;
    out.rollout = Some(Box::new(event));
    Ok(Decision::Append(Box::new(out)))
}

/// The event of a person's pause, resume, abort or promote.
pub fn decide_action(
    state: &NamespaceState,
    namespace: &crate::Namespace,
    action: RolloutAction,
) -> Result<Decision, Rejection> {
    if let Some(answer) = state.answered(&action.meta.request_id, &action.digest) {
        return answer.map(Decision::AlreadyApplied);
    }
    let rollout = state
        .rollout()
        .filter(|r| r.id == action.id)
        .ok_or_else(|| Rejection::RolloutNotFound(action.id.to_string()))?;
    let t = rollout.decide(action.command, action.expected_version, action.meta.time, action.meta.reason.as_str())?;
    let change = RolloutChange::from_transition(&t).ok_or_else(|| Rejection::RolloutNotFound(action.id.to_string()))?;
    let event = RolloutEvent { id: action.id, change, triggered_by: Trigger::User, inputs: None };
    let template = empty_event(namespace, &action.meta, action.digest);
    let completes = t.kind == TransitionKind::Completed;
    Ok(Decision::Append(Box::new(transition_event(rollout, template, event, completes))))
}

/// The event a gate's verdict makes for `rollout` (if it is live and the
/// verdict changes something): made by `actor` (the controller) at `at`,
/// with the ledger's `inputs` and, at an abort, its grouped `rejections`.
/// The caller appends it under the namespace's expected revision, so a
/// verdict reached by two controllers is committed once.
pub fn decide_gate(
    rollout: &Rollout,
    verdict: Verdict,
    inputs: GateInputs,
    rejections: Vec<RejectionGroup>,
    at: SystemTime,
    actor: &Actor,
) -> Option<ChangeSetCommitted> {
    if !rollout.is_live() {
        return None;
    }
    let mut t = rollout.gate_transition(verdict, inputs, at)?;
    if t.kind == TransitionKind::Aborted {
        t.rejections = rejections;
    }
    let change = RolloutChange::from_transition(&t)?;
    let event = RolloutEvent { id: rollout.id.clone(), change, triggered_by: t.triggered_by, inputs: t.inputs };
    let meta = CommandMeta {
        actor: actor.clone(),
        reason: crate::Reason::parse(&t.reason).unwrap_or_default(),
        // The same verdict on the same version by another controller is the
        // same request: the store's deduplication drops it as well.
        request_id: crate::RequestId::parse(&format!("rollout/{}/{}", rollout.id, rollout.version)).unwrap_or_default(),
        trace: crate::TraceContext::default(),
        time: at,
    };
    let template = empty_event(&rollout.namespace, &meta, [0; 32]);
    Some(transition_event(rollout, template, event, t.kind == TransitionKind::Completed))
}
