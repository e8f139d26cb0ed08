//! Gradual rollouts as a pure aggregate: a rollout of a set of keys of one
//! namespace, from a base revision, through cumulative steps, each
//! transition (started, advanced, paused, resumed, aborted, completed) with
//! its time, reason and trigger, and the gate's inputs when a gate fired.
//! [`Rollout::decide`] checks a person's command against the state and the
//! expected version; [`Rollout::evolve`] folds a transition in; the gates
//! are [`gate::evaluate`]; who sees the target is [`cohort`].

pub mod cohort;
pub mod decide;
pub mod event;
pub mod gate;
#[cfg(test)]
mod namespace_tests;
pub mod strategy;
#[cfg(test)]
mod tests;

use std::{collections::BTreeSet, fmt, time::SystemTime};

pub use cohort::{BUCKETS, Cohort, bucket, covers};
pub use decide::{RolloutAction, StartRollout, decide_action, decide_gate, decide_start};
pub use event::{RolloutChange, RolloutEvent, Started, fold, fold_all};
pub use gate::{GateInputs, Verdict, cohort_inputs, evaluate};
pub use strategy::{Step, StepInput, Strategy};

use crate::{Key, KeyChange, Namespace, Revision, ValidationError, fleet::RejectionGroup};

/// A rollout's id: 1 to 64 letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RolloutId(String);

impl RolloutId {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::new("rollout_id", "must be 1 to 64 letters, digits, '-' or '_'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of a start: from its request id, so a retry names the same
    /// rollout; without one, from the time of the call as well.
    pub fn derive(namespace: &Namespace, request_id: &crate::RequestId, at: SystemTime) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(namespace.as_str().as_bytes());
        h.update([0]);
        h.update(request_id.as_str().as_bytes());
        if request_id.is_empty() {
            let nanos = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
            h.update(nanos.to_be_bytes());
        }
        let digest: [u8; 32] = h.finalize().into();
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        Self(format!("r-{hex}"))
    }
}

impl fmt::Display for RolloutId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RolloutState {
    Running,
    Paused,
    Completed,
    Aborted,
}

impl RolloutState {
    pub fn is_over(self) -> bool {
        matches!(self, Self::Completed | Self::Aborted)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Paused => "PAUSED",
            Self::Completed => "COMPLETED",
            Self::Aborted => "ABORTED",
        }
    }
}

/// Who caused a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    User,
    Gate,
    Timeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    Started,
    /// To the step with this index.
    Advanced {
        step: usize,
    },
    Paused,
    Resumed,
    Aborted,
    Completed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub kind: TransitionKind,
    pub at: SystemTime,
    pub reason: String,
    pub triggered_by: Trigger,
    /// What the ledger said of the cohort when a gate (or a person) decided.
    pub inputs: Option<GateInputs>,
    /// At an abort by the gate: the cohort's rejections, grouped.
    pub rejections: Vec<RejectionGroup>,
    /// The revision of its event (zero until it is committed).
    pub revision: Revision,
    /// Who made it (the controller's name for a gate's transition).
    pub actor: String,
}

impl Transition {
    pub fn new(kind: TransitionKind, at: SystemTime, reason: &str, triggered_by: Trigger) -> Self {
        Self {
            kind,
            at,
            reason: reason.to_owned(),
            triggered_by,
            inputs: None,
            rejections: Vec::new(),
            revision: Revision::ZERO,
            actor: String::new(),
        }
    }
}

/// What a person asks of a running rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutCommand {
    Pause,
    Resume,
    Abort,
    /// Straight to 100 % and complete.
    Promote,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutError {
    #[error("rollout {id} is at version {actual}, not the expected {expected}")]
    Version { id: RolloutId, expected: u64, actual: u64 },
    #[error("rollout {id} is {state}: it cannot {what}", state = .state.as_str())]
    State { id: RolloutId, state: RolloutState, what: &'static str },
}

/// One rollout, folded from its transitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub id: RolloutId,
    pub namespace: Namespace,
    /// The revision the namespace was at when the rollout started.
    pub base: Revision,
    /// The keys the target changes (writes to them are refused meanwhile).
    pub keys: BTreeSet<Key>,
    /// The target, decided against the base: the completion commits it.
    pub target: Vec<KeyChange>,
    /// The revision of the start event.
    pub started_revision: Revision,
    /// The revision of the completion's change set.
    pub completed_revision: Option<Revision>,
    pub strategy: Strategy,
    pub state: RolloutState,
    /// Index of the current step.
    pub step: usize,
    /// When the current step began (or was last resumed): bake time and ACK
    /// timeout count from here, from event times, never process memory.
    pub step_since: SystemTime,
    /// Transitions folded in (1 after the start), for expected versions.
    pub version: u64,
    pub transitions: Vec<Transition>,
}

impl Rollout {
    pub fn start(
        id: RolloutId,
        namespace: Namespace,
        base: Revision,
        target: Vec<KeyChange>,
        strategy: Strategy,
        started: Transition,
    ) -> Self {
        Self {
            id,
            namespace,
            base,
            keys: target.iter().map(|c| c.key.clone()).collect(),
            target,
            started_revision: started.revision,
            completed_revision: None,
            strategy,
            state: RolloutState::Running,
            step: 0,
            step_since: started.at,
            version: 1,
            transitions: vec![started],
        }
    }

    pub fn current_step(&self) -> Option<&Step> {
        self.strategy.steps.get(self.step)
    }

    pub fn is_last_step(&self) -> bool {
        self.step + 1 >= self.strategy.steps.len()
    }

    /// The share of clients the target reaches now (0 once aborted, 100
    /// once completed).
    pub fn percent(&self) -> u8 {
        match self.state {
            RolloutState::Aborted => 0,
            RolloutState::Completed => 100,
            _ => self.current_step().map_or(100, |s| s.percent),
        }
    }

    /// Whether the rollout changes `key` (writes to it are refused while it
    /// runs or is paused).
    pub fn holds(&self, key: &Key) -> bool {
        !self.state.is_over() && self.keys.contains(key)
    }

    /// Whether it has not completed or aborted.
    pub fn is_live(&self) -> bool {
        !self.state.is_over()
    }

    /// The revision of the last transition (where the current cohort was
    /// last defined).
    pub fn last_revision(&self) -> Revision {
        self.transitions.last().map_or(self.started_revision, |t| t.revision)
    }

    /// The transition's kind and the step after it, for a change record.
    pub fn last_kind(&self) -> TransitionKind {
        self.transitions.last().map_or(TransitionKind::Started, |t| t.kind)
    }

    /// When the current step's bake time ends.
    pub fn bake_until(&self) -> Option<SystemTime> {
        self.current_step().and_then(|s| self.step_since.checked_add(s.bake))
    }

    /// When the rollout pauses without enough ACKs.
    pub fn ack_deadline(&self) -> Option<SystemTime> {
        self.strategy.ack_timeout.and_then(|t| self.step_since.checked_add(t))
    }

    /// The cohort of the current step.
    pub fn cohort(&self) -> Cohort<'_> {
        Cohort { rollout: &self.id, percent: self.percent(), canary: &self.strategy.canary }
    }

    /// The transition a person's command makes, checked against the state
    /// and `expected` (the rollout's version, if the caller gave one).
    pub fn decide(
        &self,
        command: RolloutCommand,
        expected: Option<u64>,
        at: SystemTime,
        reason: &str,
    ) -> Result<Transition, RolloutError> {
        if let Some(expected) = expected.filter(|e| *e != self.version) {
            return Err(RolloutError::Version { id: self.id.clone(), expected, actual: self.version });
        }
        let refuse = |what| Err(RolloutError::State { id: self.id.clone(), state: self.state, what });
        let kind = match (command, self.state) {
            (RolloutCommand::Pause, RolloutState::Running) => TransitionKind::Paused,
            (RolloutCommand::Resume, RolloutState::Paused) => TransitionKind::Resumed,
            (RolloutCommand::Abort, RolloutState::Running | RolloutState::Paused) => TransitionKind::Aborted,
            (RolloutCommand::Promote, RolloutState::Running | RolloutState::Paused) => TransitionKind::Completed,
            (RolloutCommand::Pause, _) => return refuse("pause (only a running rollout pauses)"),
            (RolloutCommand::Resume, _) => return refuse("resume (only a paused rollout resumes)"),
            (RolloutCommand::Abort, _) => return refuse("abort (it is over)"),
            (RolloutCommand::Promote, _) => return refuse("be promoted (it is over)"),
        };
        Ok(Transition::new(kind, at, reason, Trigger::User))
    }

    /// The transition a gate verdict makes, if any.
    pub fn gate_transition(&self, verdict: Verdict, inputs: GateInputs, at: SystemTime) -> Option<Transition> {
        let (kind, triggered_by, reason) = match verdict {
            Verdict::Wait => return None,
            Verdict::Advance => {
                (TransitionKind::Advanced { step: self.step + 1 }, Trigger::Gate, "the step's gates passed".to_owned())
            }
            Verdict::Complete => (TransitionKind::Completed, Trigger::Gate, "the last step's gates passed".to_owned()),
            Verdict::Abort => (
                TransitionKind::Aborted,
                Trigger::Gate,
                format!("{} of {} clients rejected the target", inputs.rejected, inputs.cohort),
            ),
            Verdict::Pause => (
                TransitionKind::Paused,
                Trigger::Timeout,
                format!("{} of {} clients applied the target by the ACK timeout", inputs.applied, inputs.cohort),
            ),
        };
        Some(Transition { inputs: Some(inputs), ..Transition::new(kind, at, &reason, triggered_by) })
    }

    /// Folds a transition in (as read from the log: never refused; one that
    /// makes no sense in the current state changes nothing but the version).
    pub fn evolve(&mut self, t: Transition) {
        match (t.kind, self.state) {
            (_, state) if state.is_over() => {}
            (TransitionKind::Started, _) => {}
            (TransitionKind::Advanced { step }, RolloutState::Running) if step < self.strategy.steps.len() => {
                self.step = step;
                self.step_since = t.at;
            }
            (TransitionKind::Advanced { .. }, _) => {}
            (TransitionKind::Paused, RolloutState::Running) => self.state = RolloutState::Paused,
            (TransitionKind::Paused, _) => {}
            (TransitionKind::Resumed, RolloutState::Paused) => {
                self.state = RolloutState::Running;
                self.step_since = t.at;
            }
            (TransitionKind::Resumed, _) => {}
            (TransitionKind::Aborted, _) => self.state = RolloutState::Aborted,
            (TransitionKind::Completed, _) => {
                self.state = RolloutState::Completed;
                self.completed_revision = Some(t.revision);
                self.step = self.strategy.steps.len().saturating_sub(1);
            }
        }
        self.version = self.version.saturating_add(1);
        self.transitions.push(t);
    }
}
