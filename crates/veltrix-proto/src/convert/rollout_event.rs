//! A rollout's transition in the stored event format (`EventRollout`).

use std::time::Duration;

use veltrix_domain::{
    KeyChange,
    fleet::{LabelSelector, RejectionGroup, Step as ReportStep},
    rollout::{GateInputs, RolloutChange, RolloutEvent, RolloutId, Started, Step, Strategy, Trigger},
};

use super::event::{EventDecodeError, decode_change, encode_change};
use crate::v1;

pub(super) fn encode(r: &RolloutEvent) -> v1::EventRollout {
    use v1::event_rollout::Transition as T;
    let transition = match &r.change {
        RolloutChange::Started(s) => T::Started(v1::EventRolloutStarted {
            target: s.target.iter().map(encode_change).collect(),
            steps: s.strategy.steps.iter().map(encode_step).collect(),
            canary_selector: s.strategy.canary.pairs().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            ack_timeout_millis: s.strategy.ack_timeout.map_or(0, millis),
            base_revision: s.base.get(),
        }),
        RolloutChange::Advanced { step } => {
            T::Advanced(v1::EventRolloutAdvanced { step: u32::try_from(*step).unwrap_or(u32::MAX) })
        }
        RolloutChange::Paused => T::Paused(v1::EventRolloutPaused {}),
        RolloutChange::Resumed => T::Resumed(v1::EventRolloutResumed {}),
        RolloutChange::Aborted { rejections } => {
            T::Aborted(v1::EventRolloutAborted { rejections: rejections.iter().map(encode_rejection).collect() })
        }
        RolloutChange::Completed => T::Completed(v1::EventRolloutCompleted {}),
    };
    v1::EventRollout {
        rollout_id: r.id.to_string(),
        transition: Some(transition),
        triggered_by: match r.triggered_by {
            Trigger::User => 1,
            Trigger::Gate => 2,
            Trigger::Timeout => 3,
        },
        inputs: r.inputs.map(|i| v1::EventGateInputs {
            cohort: i.cohort,
            applied: i.applied,
            rejected: i.rejected,
            pending: i.pending,
        }),
    }
}

pub(super) fn decode(r: v1::EventRollout) -> Result<RolloutEvent, EventDecodeError> {
    use v1::event_rollout::Transition as T;
    let bad = |what: &str| EventDecodeError::Rollout(what.to_owned());
    let change = match r.transition.ok_or_else(|| bad("transition is not set or unknown"))? {
        T::Started(s) => RolloutChange::Started(Box::new(decode_started(s)?)),
        T::Advanced(a) => {
            RolloutChange::Advanced { step: usize::try_from(a.step).map_err(|_| bad("advanced.step is out of range"))? }
        }
        T::Paused(_) => RolloutChange::Paused,
        T::Resumed(_) => RolloutChange::Resumed,
        T::Aborted(a) => RolloutChange::Aborted {
            rejections: a.rejections.into_iter().map(decode_rejection).collect::<Result<_, _>>()?,
        },
        T::Completed(_) => RolloutChange::Completed,
    };
    let triggered_by = match r.triggered_by {
        1 => Trigger::User,
        2 => Trigger::Gate,
        3 => Trigger::Timeout,
        _ => return Err(bad("triggered_by is unknown")),
    };
    Ok(RolloutEvent {
        id: RolloutId::parse(&r.rollout_id)?,
        change,
        triggered_by,
        inputs: r.inputs.map(|i| GateInputs {
            cohort: i.cohort,
            applied: i.applied,
            rejected: i.rejected,
            pending: i.pending,
        }),
    })
}

fn decode_started(s: v1::EventRolloutStarted) -> Result<Started, EventDecodeError> {
    let target =
        s.target.into_iter().enumerate().map(|(i, c)| decode_change(i, c)).collect::<Result<Vec<KeyChange>, _>>()?;
    // Stored steps were validated when the rollout started; they are read
    // back as they are (a later version's stricter rules must not make an
    // old rollout unreadable), bounded only to what the types hold.
    let steps = s
        .steps
        .into_iter()
        .map(|st| Step {
            percent: percent(st.percent),
            bake: Duration::from_millis(st.bake_millis),
            min_applied_percent: percent(st.min_applied_percent),
            max_rejected_percent: percent(st.max_rejected_percent),
        })
        .collect::<Vec<_>>();
    if steps.is_empty() {
        return Err(EventDecodeError::Rollout("started.steps is empty".to_owned()));
    }
    let canary = LabelSelector::from_pairs("started.canary_selector", &s.canary_selector)?;
    let ack_timeout = (s.ack_timeout_millis > 0).then(|| Duration::from_millis(s.ack_timeout_millis));
    Ok(Started {
        base: veltrix_domain::Revision::new(s.base_revision),
        target,
        strategy: Strategy { steps, canary, ack_timeout },
    })
}

fn percent(p: u32) -> u8 {
    u8::try_from(p.min(100)).unwrap_or(100)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn encode_step(s: &Step) -> v1::EventRolloutStep {
    v1::EventRolloutStep {
        percent: u32::from(s.percent),
        bake_millis: millis(s.bake),
        min_applied_percent: u32::from(s.min_applied_percent),
        max_rejected_percent: u32::from(s.max_rejected_percent),
    }
}

fn encode_rejection(g: &RejectionGroup) -> v1::EventRejectionGroup {
    v1::EventRejectionGroup {
        step: match g.step {
            ReportStep::Render => 1,
            ReportStep::Check => 2,
            ReportStep::Reload => 3,
            ReportStep::Health => 4,
        },
        error: g.error.clone(),
        count: g.count,
        client_ids: g.client_ids.clone(),
    }
}

fn decode_rejection(g: v1::EventRejectionGroup) -> Result<RejectionGroup, EventDecodeError> {
    let step = match g.step {
        1 => ReportStep::Render,
        2 => ReportStep::Check,
        3 => ReportStep::Reload,
        4 => ReportStep::Health,
        _ => return Err(EventDecodeError::Rollout("aborted.rejections[].step is unknown".to_owned())),
    };
    Ok(RejectionGroup { step, error: g.error, count: g.count, client_ids: g.client_ids })
}
