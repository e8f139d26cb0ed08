//! A rollout's transitions as they are stored: each is a change set of the
//! namespace (the event's time, actor and reason are the transition's)
//! carrying a [`RolloutEvent`]. Only the completion has key changes: the
//! target, committed. [`fold`] rebuilds a rollout from its events, the same
//! way on the command side (to decide) and the query side (to serve it).

use super::{GateInputs, Rollout, RolloutId, Strategy, Transition, TransitionKind, Trigger};
use crate::{ChangeSetCommitted, KeyChange, Revision, fleet::RejectionGroup};

/// What a change set says of a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutEvent {
    pub id: RolloutId,
    pub change: RolloutChange,
    pub triggered_by: Trigger,
    pub inputs: Option<GateInputs>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutChange {
    Started(Box<Started>),
    /// To the step with this index.
    Advanced {
        step: usize,
    },
    Paused,
    Resumed,
    Aborted {
        rejections: Vec<RejectionGroup>,
    },
    Completed,
}

/// What a start records: the target decided against the base, and how it
/// goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The namespace's revision the target was decided against.
    pub base: Revision,
    pub target: Vec<KeyChange>,
    pub strategy: Strategy,
}

impl RolloutChange {
    pub fn kind(&self) -> TransitionKind {
        match self {
            Self::Started(_) => TransitionKind::Started,
            Self::Advanced { step } => TransitionKind::Advanced { step: *step },
            Self::Paused => TransitionKind::Paused,
            Self::Resumed => TransitionKind::Resumed,
            Self::Aborted { .. } => TransitionKind::Aborted,
            Self::Completed => TransitionKind::Completed,
        }
    }

    /// The stored form of a transition (a start needs its target and
    /// strategy: use [`RolloutChange::Started`] directly).
    pub fn from_transition(t: &Transition) -> Option<Self> {
        Some(match t.kind {
            TransitionKind::Started => return None,
            TransitionKind::Advanced { step } => Self::Advanced { step },
            TransitionKind::Paused => Self::Paused,
            TransitionKind::Resumed => Self::Resumed,
            TransitionKind::Aborted => Self::Aborted { rejections: t.rejections.clone() },
            TransitionKind::Completed => Self::Completed,
        })
    }
}

/// The transition a stored event is.
pub fn transition(revision: Revision, event: &ChangeSetCommitted, r: &RolloutEvent) -> Transition {
    let mut t = Transition::new(r.change.kind(), event.time, event.reason.as_str(), r.triggered_by);
    t.inputs = r.inputs;
    t.revision = revision;
    t.actor = event.actor.to_string();
    if let RolloutChange::Aborted { rejections } = &r.change {
        t.rejections.clone_from(rejections);
    }
    t
}

/// Folds one stored event into `current` (the namespace's latest rollout):
/// a start replaces it, a transition of the same rollout evolves it, and
/// anything else leaves it.
pub fn fold(current: &mut Option<Rollout>, revision: Revision, event: &ChangeSetCommitted) {
    let Some(r) = event.rollout.as_deref() else { return };
    let t = transition(revision, event, r);
    match (&r.change, current.as_mut()) {
        (RolloutChange::Started(s), _) => {
            *current = Some(Rollout::start(
                r.id.clone(),
                event.namespace.clone(),
                s.base,
                s.target.clone(),
                s.strategy.clone(),
                t,
            ));
        }
        (_, Some(rollout)) if rollout.id == r.id && rollout.last_revision() < revision => rollout.evolve(t),
        _ => {}
    }
}

/// Every rollout of a namespace from its transition events (oldest first):
/// the rollouts, oldest first.
pub fn fold_all<'a>(events: impl IntoIterator<Item = (Revision, &'a ChangeSetCommitted)>) -> Vec<Rollout> {
    let mut out: Vec<Rollout> = Vec::new();
    let mut current: Option<Rollout> = None;
    for (revision, event) in events {
        let starts = matches!(event.rollout.as_deref(), Some(RolloutEvent { change: RolloutChange::Started(_), .. }));
        if starts && let Some(done) = current.take() {
            out.push(done);
        }
        fold(&mut current, revision, event);
    }
    out.extend(current);
    out
}
