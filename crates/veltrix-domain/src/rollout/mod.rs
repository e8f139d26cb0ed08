//! Gradual rollouts as a pure aggregate: a rollout of a set of keys of one
//! namespace, from a base revision, through cumulative steps, each
//! transition (started, advanced, paused, resumed, aborted, completed) with
//! its time, reason and trigger, and the gate's inputs when a gate fired.
//! [`Rollout::decide`] checks a person's command against the state and the
//! expected version; [`Rollout::evolve`] folds a transition in; the gates
//! are [`gate::evaluate`]; who sees the target is [`cohort`].

pub mod cohort;
pub mod gate;
pub mod strategy;
#[cfg(test)]
mod tests;

use std::{collections::BTreeSet, fmt, time::SystemTime};

pub use cohort::{BUCKETS, Cohort, bucket, covers};
pub use gate::{GateInputs, Verdict, evaluate};
pub use strategy::{Step, StepInput, Strategy};

use crate::{Key, Namespace, Revision, ValidationError};

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
        keys: BTreeSet<Key>,
        strategy: Strategy,
        started: Transition,
    ) -> Self {
        Self {
            id,
            namespace,
            base,
            keys,
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
        Ok(Transition { kind, at, reason: reason.to_owned(), triggered_by: Trigger::User, inputs: None })
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
        Some(Transition { kind, at, reason, triggered_by, inputs: Some(inputs) })
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
                self.step = self.strategy.steps.len().saturating_sub(1);
            }
        }
        self.version = self.version.saturating_add(1);
        self.transitions.push(t);
    }
}
