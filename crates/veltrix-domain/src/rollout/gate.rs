//! The gates of a running step, as a pure function of the rollout, what
//! the ledger says of the step's cohort, and the time: abort at once on too
//! many NACKs; advance (or complete) once the bake time has passed and
//! enough of the cohort ACKed the target; pause when the ACKs have not come
//! by the ACK timeout; otherwise wait.

use std::time::SystemTime;

use super::{Rollout, RolloutState};
use crate::fleet::{ClientRecord, RejectionGroup, Timing, Touch, group_rejections};

/// What the ledger says of a step's cohort.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateInputs {
    pub cohort: u32,
    pub applied: u32,
    pub rejected: u32,
    pub pending: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do yet.
    Wait,
    /// On to the next step.
    Advance,
    /// The last step passed: the target becomes committed.
    Complete,
    /// Too many rejections.
    Abort,
    /// Not enough ACKs by the ACK timeout.
    Pause,
}

/// `part` is more than `percent` % of `whole` (exactly, in integers).
fn above(part: u32, percent: u8, whole: u32) -> bool {
    u64::from(part) * 100 > u64::from(percent) * u64::from(whole)
}

pub fn evaluate(rollout: &Rollout, inputs: GateInputs, now: SystemTime) -> Verdict {
    let Some(step) = rollout.current_step() else { return Verdict::Wait };
    if rollout.state != RolloutState::Running {
        return Verdict::Wait;
    }
    if above(inputs.rejected, step.max_rejected_percent, inputs.cohort) {
        return Verdict::Abort;
    }
    let elapsed = now.duration_since(rollout.step_since).unwrap_or_default();
    // An empty cohort has nothing to wait for.
    let enough = u64::from(inputs.applied) * 100 >= u64::from(step.min_applied_percent) * u64::from(inputs.cohort);
    if elapsed >= step.bake && enough {
        return if rollout.is_last_step() { Verdict::Complete } else { Verdict::Advance };
    }
    match rollout.strategy.ack_timeout {
        Some(timeout) if !enough && elapsed >= timeout => Verdict::Pause,
        _ => Verdict::Wait,
    }
}

/// What the ledger says of the current step's cohort: the clients whose
/// prefix covers a key the rollout changes, who are in the cohort, and who
/// are connected or were sent the target (until the ledger forgets them);
/// of those, who run the target (ACKed the message that carried it), who
/// rejected it (NACKed it or newer and run something older), and the rest.
/// With the rejections grouped, for an abort.
pub fn cohort_inputs<'a>(
    rollout: &Rollout,
    records: impl IntoIterator<Item = &'a ClientRecord>,
    now: SystemTime,
    timing: &Timing,
) -> (GateInputs, Vec<RejectionGroup>) {
    let touch = Touch { keys: rollout.keys.iter().map(|k| k.as_str().to_owned()).collect(), whole_namespace: false };
    let cohort = rollout.cohort();
    let mut inputs = GateInputs::default();
    let mut rejected = Vec::new();
    for r in records {
        let sent = r.rollout.as_ref().filter(|t| t.id == rollout.id).map(|t| t.revision);
        // A client that was sent the target stays in the count when it
        // goes away (a target that crashes its clients must not pass the
        // gates by making them leave); one that was not is counted while
        // it is connected.
        let counted = sent.is_some() || r.is_live(now, timing);
        if !counted || !touch.covers(&r.prefix) || !cohort.includes(&r.client_id, &r.labels) {
            continue;
        }
        inputs.cohort = inputs.cohort.saturating_add(1);
        match sent {
            Some(at) if r.applied >= at => inputs.applied = inputs.applied.saturating_add(1),
            Some(at) if r.rejected.is_some_and(|n| n >= at) => {
                inputs.rejected = inputs.rejected.saturating_add(1);
                rejected.push(r);
            }
            _ => inputs.pending = inputs.pending.saturating_add(1),
        }
    }
    (inputs, group_rejections(rejected))
}
