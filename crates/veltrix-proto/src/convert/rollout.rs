//! Rollouts between the domain and the API: StartRollout and the four
//! actions to validated commands; a folded rollout to `Rollout`.

use std::time::{Duration, SystemTime};

use prost::Message;
use veltrix_domain::{
    Limits, Namespace, Reason, RequestId, Revision, ValidationError,
    digest::derived_digest,
    fleet::LabelSelector,
    rollout::{
        GateInputs, Rollout, RolloutAction, RolloutCommand, RolloutEvent, RolloutId, RolloutState, StartRollout,
        StepInput, Strategy, Transition, TransitionKind, Trigger,
    },
};

use super::{CallContext, IntoCommand, fleet::step_to_wire, read::timestamp};
use crate::v1;

/// A validated StartRollout: the changes as an Apply, the strategy, and the
/// rollout's id (derived from the request id, so a retry names the same
/// one).
pub fn start_rollout(
    req: v1::StartRolloutRequest,
    ctx: CallContext,
    limits: &Limits,
) -> Result<StartRollout, ValidationError> {
    let namespace = Namespace::parse(&req.namespace)?;
    let request_id = RequestId::parse(&req.request_id)?;
    reserved(&req.request_id)?;
    let reason = Reason::parse(&req.reason)?;
    let strategy = strategy(req.strategy.as_ref())?;
    if req.expected_revision == Some(0) {
        return Err(ValidationError::new("expected_revision", "must be at least 1 when set"));
    }
    let digest = derived_digest(&namespace, &canonical(&req), &reason);
    let id = RolloutId::derive(&namespace, &request_id, ctx.time);
    let apply = v1::ApplyRequest {
        namespace: req.namespace,
        changes: req.changes,
        request_id: req.request_id,
        reason: req.reason,
    };
    Ok(StartRollout {
        id,
        target: apply.into_command(ctx, limits)?,
        strategy,
        expected_revision: req.expected_revision.map(Revision::new),
        digest,
    })
}

/// The request's bytes for its digest, the same for every encoding of it:
/// the canary selector (a map, encoded in any order) in key order.
fn canonical(req: &v1::StartRolloutRequest) -> Vec<u8> {
    let mut plain = req.clone();
    let selector: std::collections::BTreeMap<String, String> = plain
        .strategy
        .as_mut()
        .map(|s| std::mem::take(&mut s.canary_selector))
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut out = plain.encode_to_vec();
    for (k, v) in selector {
        for part in [k, v] {
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
    }
    out
}

fn duration(field: &str, d: Option<&prost_types::Duration>) -> Result<Option<Duration>, ValidationError> {
    let Some(d) = d else { return Ok(None) };
    match (u64::try_from(d.seconds), u32::try_from(d.nanos)) {
        (Ok(s), Ok(n)) if n < 1_000_000_000 => Ok(Some(Duration::new(s, n))),
        _ => Err(ValidationError::new(field, "must be a non-negative duration")),
    }
}

/// The strategy as the request gives it, validated (steps cumulative and
/// ending at 100, gates 0..100, waits at most a week).
pub fn strategy(s: Option<&v1::RolloutStrategy>) -> Result<Strategy, ValidationError> {
    let Some(s) = s else { return Err(ValidationError::new("strategy", "must be set")) };
    let steps = s
        .steps
        .iter()
        .enumerate()
        .map(|(i, st)| {
            Ok(StepInput {
                percent: st.percent,
                bake: duration(&format!("strategy.steps[{i}].bake_time"), st.bake_time.as_ref())?.unwrap_or_default(),
                min_applied_percent: st.min_applied_percent,
                max_rejected_percent: st.max_rejected_percent,
            })
        })
        .collect::<Result<Vec<_>, ValidationError>>()?;
    let canary = LabelSelector::from_pairs("strategy.canary_selector", &s.canary_selector)?;
    let ack_timeout = duration("strategy.ack_timeout", s.ack_timeout.as_ref())?;
    Strategy::new(&steps, canary, ack_timeout)
}

/// What every action request carries.
pub struct ActionRequest<'a> {
    pub namespace: &'a str,
    pub rollout_id: &'a str,
    pub expected_rollout_version: Option<u64>,
    pub request_id: &'a str,
    pub reason: &'a str,
}

macro_rules! action_request {
    ($($t:ty),*) => {$(
        impl<'a> From<&'a $t> for ActionRequest<'a> {
            fn from(r: &'a $t) -> Self {
                Self {
                    namespace: &r.namespace,
                    rollout_id: &r.rollout_id,
                    expected_rollout_version: r.expected_rollout_version,
                    request_id: &r.request_id,
                    reason: &r.reason,
                }
            }
        }
    )*};
}
action_request!(v1::PauseRolloutRequest, v1::ResumeRolloutRequest, v1::AbortRolloutRequest, v1::PromoteRolloutRequest);

/// Request ids the rollout controller gives its transitions
/// (`rollout/{id}/{version}`): a caller's request must not take one.
pub fn reserved(request_id: &str) -> Result<(), ValidationError> {
    if request_id.starts_with("rollout/") {
        return Err(ValidationError::new("request_id", "must not start with 'rollout/' (the rollout controller's)"));
    }
    Ok(())
}

/// A validated pause, resume, abort or promote.
pub fn rollout_action(
    req: ActionRequest<'_>,
    command: RolloutCommand,
    ctx: CallContext,
) -> Result<(Namespace, RolloutAction), ValidationError> {
    let namespace = Namespace::parse(req.namespace)?;
    let id = RolloutId::parse(req.rollout_id)?;
    let meta = super::command::meta(ctx, req.request_id, req.reason)?;
    let request = format!("{command:?}/{id}/{:?}", req.expected_rollout_version);
    let digest = derived_digest(&namespace, request.as_bytes(), &meta.reason);
    let action = RolloutAction { id, command, expected_version: req.expected_rollout_version, meta, digest };
    Ok((namespace, action))
}

fn state(s: RolloutState) -> v1::RolloutState {
    match s {
        RolloutState::Running => v1::RolloutState::Running,
        RolloutState::Paused => v1::RolloutState::Paused,
        RolloutState::Completed => v1::RolloutState::Completed,
        RolloutState::Aborted => v1::RolloutState::Aborted,
    }
}

fn trigger(t: Trigger) -> v1::RolloutTrigger {
    match t {
        Trigger::User => v1::RolloutTrigger::User,
        Trigger::Gate => v1::RolloutTrigger::Gate,
        Trigger::Timeout => v1::RolloutTrigger::Timeout,
    }
}

fn kind(k: TransitionKind) -> (v1::rollout_transition::Kind, Option<usize>) {
    use v1::rollout_transition::Kind;
    match k {
        TransitionKind::Started => (Kind::Started, Some(0)),
        TransitionKind::Advanced { step } => (Kind::Advanced, Some(step)),
        TransitionKind::Paused => (Kind::Paused, None),
        TransitionKind::Resumed => (Kind::Resumed, None),
        TransitionKind::Aborted => (Kind::Aborted, None),
        TransitionKind::Completed => (Kind::Completed, None),
    }
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

pub fn gate_inputs(i: GateInputs) -> v1::GateInputs {
    v1::GateInputs { cohort: i.cohort, applied: i.applied, rejected: i.rejected, pending: i.pending }
}

/// How a stored event is part of a rollout, as History shows it.
pub fn change_rollout(r: &RolloutEvent) -> v1::ChangeRollout {
    let (k, step) = kind(r.change.kind());
    v1::ChangeRollout {
        rollout_id: r.id.to_string(),
        kind: k.into(),
        step: step.map_or(0, index),
        percent: 0,
        triggered_by: trigger(r.triggered_by).into(),
    }
}

/// How a record delivered to one Sync client is part of `rollout`: the
/// transition that brought it, the current step and its share.
pub fn delivery_rollout(rollout: &Rollout, kind_now: TransitionKind) -> v1::ChangeRollout {
    let triggered_by = rollout.transitions.last().map_or(Trigger::User, |t| t.triggered_by);
    v1::ChangeRollout {
        rollout_id: rollout.id.to_string(),
        kind: kind(kind_now).0.into(),
        step: index(rollout.step),
        percent: u32::from(rollout.percent()),
        triggered_by: trigger(triggered_by).into(),
    }
}

fn transition(t: &Transition, step_after: usize) -> v1::RolloutTransition {
    v1::RolloutTransition {
        kind: kind(t.kind).0.into(),
        step: index(step_after),
        time: Some(timestamp(t.at)),
        reason: t.reason.clone(),
        triggered_by: trigger(t.triggered_by).into(),
        inputs: t.inputs.map(gate_inputs),
        revision: t.revision.get(),
        actor: t.actor.clone(),
        rejections: t
            .rejections
            .iter()
            .map(|g| v1::RejectionGroup {
                step: step_to_wire(g.step).into(),
                error: g.error.clone(),
                count: g.count,
                client_ids: g.client_ids.clone(),
            })
            .collect(),
    }
}

fn wire_strategy(s: &Strategy) -> v1::RolloutStrategy {
    let wire_duration = |d: Duration| prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or_default(),
    };
    v1::RolloutStrategy {
        steps: s
            .steps
            .iter()
            .map(|st| v1::RolloutStep {
                percent: u32::from(st.percent),
                bake_time: Some(wire_duration(st.bake)),
                min_applied_percent: Some(u32::from(st.min_applied_percent)),
                max_rejected_percent: Some(u32::from(st.max_rejected_percent)),
            })
            .collect(),
        canary_selector: s.canary.pairs().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        ack_timeout: s.ack_timeout.map(wire_duration),
    }
}

/// A rollout as GetRollout shows it; `current` is what the ledger says of
/// the cohort now (while it is live).
pub fn rollout_to_wire(r: &Rollout, current: Option<GateInputs>) -> v1::Rollout {
    // The step after each transition, replayed.
    let mut step = 0;
    let transitions = r
        .transitions
        .iter()
        .map(|t| {
            match t.kind {
                TransitionKind::Advanced { step: s } => step = s,
                TransitionKind::Completed => step = r.strategy.steps.len().saturating_sub(1),
                _ => {}
            }
            transition(t, step)
        })
        .collect();
    let live = r.is_live();
    let running = r.state == RolloutState::Running;
    let time = |t: Option<SystemTime>| t.filter(|_| running).map(timestamp);
    v1::Rollout {
        rollout_id: r.id.to_string(),
        namespace: r.namespace.to_string(),
        state: state(r.state).into(),
        base_revision: r.base.get(),
        changes: r.target.iter().map(super::read::wire_change).collect(),
        strategy: Some(wire_strategy(&r.strategy)),
        step: index(r.step),
        percent: u32::from(r.percent()),
        transitions,
        version: r.version,
        current: current.filter(|_| live).map(gate_inputs),
        bake_until: time(r.bake_until()),
        ack_deadline: time(r.ack_deadline()),
        completed_revision: r.completed_revision.map_or(0, Revision::get),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ctx() -> CallContext {
        CallContext {
            actor: veltrix_domain::Actor::anonymous(),
            trace: veltrix_domain::TraceContext::default(),
            time: SystemTime::UNIX_EPOCH,
        }
    }

    fn request(labels: &[(&str, &str)]) -> v1::StartRolloutRequest {
        let mut canary_selector = std::collections::HashMap::new();
        for (k, v) in labels {
            canary_selector.insert((*k).to_owned(), (*v).to_owned());
        }
        v1::StartRolloutRequest {
            namespace: "shop/prod".into(),
            changes: vec![v1::Change {
                key: "port".into(),
                expected_revision: None,
                op: Some(v1::change::Op::Set(v1::SetValue { value: b"81".to_vec(), content_type: String::new() })),
            }],
            strategy: Some(v1::RolloutStrategy {
                steps: vec![v1::RolloutStep { percent: 100, ..Default::default() }],
                canary_selector,
                ack_timeout: None,
            }),
            request_id: "start-1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_retry_has_the_same_digest_and_id_whatever_order_its_selector_was_encoded_in() {
        let labels: Vec<(String, String)> = (0..8).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
        let forward: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let backward: Vec<(&str, &str)> = forward.iter().rev().copied().collect();
        let limits = Limits::default();
        let a = start_rollout(request(&forward), ctx(), &limits).unwrap();
        for _ in 0..20 {
            // Each map has its own hasher: its encoding order differs.
            let b = start_rollout(request(&backward), ctx(), &limits).unwrap();
            assert_eq!((a.digest, &a.id), (b.digest, &b.id));
        }
        let other = start_rollout(request(&[("k0", "other")]), ctx(), &limits).unwrap();
        assert_ne!(a.digest, other.digest, "another selector is another request");
    }

    #[test]
    fn request_ids_of_the_controller_are_reserved() {
        let mut r = request(&[]);
        r.request_id = "rollout/r-1/3".into();
        let e = start_rollout(r, ctx(), &Limits::default()).unwrap_err();
        assert_eq!(e.field, "request_id");
    }
}
