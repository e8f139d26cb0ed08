#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::{Duration, SystemTime};

use proptest::prelude::{Just, prop, prop_assert, prop_assert_eq, prop_oneof, proptest};

use super::*;
use crate::fleet::{ClientId, LabelSelector, Labels};

fn id(s: &str) -> RolloutId {
    RolloutId::parse(s).unwrap()
}

fn client(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

fn steps(percents: &[u32], bake: Duration) -> Vec<StepInput> {
    percents.iter().map(|p| StepInput { percent: *p, bake, ..Default::default() }).collect()
}

fn strategy(percents: &[u32], bake: Duration, ack_timeout: Option<Duration>) -> Strategy {
    Strategy::new(&steps(percents, bake), LabelSelector::default(), ack_timeout).unwrap()
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn rollout(s: Strategy) -> Rollout {
    let started = Transition::new(TransitionKind::Started, t0(), "new limits", Trigger::User);
    let target = vec![crate::KeyChange {
        key: Key::parse("limits").unwrap(),
        op: crate::KeyOp::Delete,
        previous_mod_revision: Revision::new(3),
        expected: None,
        create_revision: Revision::ZERO,
        version: 0,
    }];
    Rollout::start(id("r-1"), Namespace::parse("payments/prod").unwrap(), Revision::new(7), target, s, started)
}

fn inputs(cohort: u32, applied: u32, rejected: u32) -> GateInputs {
    GateInputs { cohort, applied, rejected, pending: cohort - applied - rejected }
}

#[test]
fn the_bucket_hash_is_pinned() {
    // A storage format: running rollouts' cohorts depend on it.
    assert_eq!(bucket(&id("r-1"), &client("web-1")), PINNED_R1_WEB1);
    assert_eq!(bucket(&id("r-1"), &client("web-2")), PINNED_R1_WEB2);
    assert_eq!(bucket(&id("r-2"), &client("web-1")), PINNED_R2_WEB1);
}

// Computed independently: Python's hashlib over the same bytes.
const PINNED_R1_WEB1: u16 = 893;
const PINNED_R1_WEB2: u16 = 9456;
const PINNED_R2_WEB1: u16 = 1784;

#[test]
fn buckets_spread_evenly() {
    let r = id("r-spread");
    let buckets: Vec<u16> = (0..10_000).map(|i| bucket(&r, &client(&format!("web-{i}")))).collect();
    let share = |p: u8| buckets.iter().filter(|b| covers(p, **b)).count();
    assert!((900..=1100).contains(&share(10)), "{}", share(10));
    assert!((4800..=5200).contains(&share(50)), "{}", share(50));
    assert_eq!(share(100), 10_000);
    assert!(buckets.iter().all(|b| *b < BUCKETS));
}

#[test]
fn canaries_are_in_from_the_first_step_and_an_empty_selector_selects_no_one() {
    let r = id("r-1");
    let canary = LabelSelector::parse("canary=true").unwrap();
    let mut labels = Labels::new();
    labels.insert("canary".into(), "true".into());
    let none = LabelSelector::default();
    let out = (0..1000).map(|i| client(&format!("c-{i}"))).find(|c| !covers(1, bucket(&r, c))).unwrap();
    assert!(Cohort { rollout: &r, percent: 1, canary: &canary }.includes(&out, &labels));
    assert!(!Cohort { rollout: &r, percent: 1, canary: &canary }.includes(&out, &Labels::new()));
    assert!(!Cohort { rollout: &r, percent: 1, canary: &none }.includes(&out, &labels));
}

#[test]
fn strategies_are_checked_field_by_field() {
    let none = LabelSelector::default;
    let err = |s: &[StepInput], t: Option<Duration>| Strategy::new(s, none(), t).unwrap_err().field;
    assert_eq!(err(&[], None), "strategy.steps");
    assert_eq!(err(&steps(&[10, 10, 100], Duration::ZERO), None), "strategy.steps[1].percent");
    assert_eq!(err(&steps(&[10, 50], Duration::ZERO), None), "strategy.steps[1].percent");
    assert_eq!(err(&steps(&[0, 100], Duration::ZERO), None), "strategy.steps[0].percent");
    assert_eq!(err(&steps(&[101], Duration::ZERO), None), "strategy.steps[0].percent");
    assert_eq!(err(&steps(&[100], Duration::from_secs(8 * 24 * 3600)), None), "strategy.steps[0].bake_time");
    assert_eq!(err(&steps(&[100], Duration::ZERO), Some(Duration::ZERO)), "strategy.ack_timeout");
    let bad_gate = [StepInput { percent: 100, min_applied_percent: Some(101), ..Default::default() }];
    assert_eq!(err(&bad_gate, None), "strategy.steps[0].min_applied_percent");
    let s = strategy(&[10, 100], Duration::ZERO, None);
    assert_eq!((s.steps[0].min_applied_percent, s.steps[0].max_rejected_percent), (100, 0), "the defaults");
}

#[test]
fn gates_wait_for_the_bake_and_the_acks_then_advance_and_complete() {
    let bake = Duration::from_secs(60);
    let mut r = rollout(strategy(&[10, 100], bake, None));
    let soon = t0() + Duration::from_secs(30);
    let later = t0() + bake;
    assert_eq!(evaluate(&r, inputs(10, 10, 0), soon), Verdict::Wait, "baking");
    assert_eq!(evaluate(&r, inputs(10, 9, 0), later), Verdict::Wait, "not every client applied it");
    assert_eq!(evaluate(&r, inputs(10, 10, 0), later), Verdict::Advance);
    let t = r.gate_transition(Verdict::Advance, inputs(10, 10, 0), later).unwrap();
    r.evolve(t);
    assert_eq!((r.step, r.percent(), r.version, r.step_since), (1, 100, 2, later));
    assert_eq!(evaluate(&r, inputs(100, 100, 0), later), Verdict::Wait, "the bake restarts with the step");
    assert_eq!(evaluate(&r, inputs(100, 100, 0), later + bake), Verdict::Complete);
    assert_eq!(evaluate(&r, inputs(0, 0, 0), later + bake), Verdict::Complete, "an empty cohort waits for nothing");
}

#[test]
fn too_many_rejections_abort_at_once_and_missing_acks_pause_at_the_timeout() {
    let step = StepInput {
        percent: 100,
        bake: Duration::from_secs(600),
        min_applied_percent: Some(90),
        max_rejected_percent: Some(10),
    };
    let timeout = Duration::from_secs(120);
    let r = rollout(Strategy::new(&[step], LabelSelector::default(), Some(timeout)).unwrap());
    assert_eq!(evaluate(&r, inputs(100, 50, 10), t0()), Verdict::Wait, "10 % is within the gate");
    assert_eq!(evaluate(&r, inputs(100, 50, 11), t0()), Verdict::Abort);
    assert_eq!(evaluate(&r, inputs(100, 89, 0), t0() + timeout), Verdict::Pause);
    assert_eq!(evaluate(&r, inputs(100, 90, 0), t0() + timeout), Verdict::Wait, "enough acks: the bake goes on");
    let t = r.gate_transition(Verdict::Abort, inputs(100, 50, 11), t0()).unwrap();
    assert_eq!(
        (t.kind, t.triggered_by, t.reason.as_str()),
        (TransitionKind::Aborted, Trigger::Gate, "11 of 100 clients rejected the target")
    );
    let t = r.gate_transition(Verdict::Pause, inputs(100, 89, 0), t0() + timeout).unwrap();
    assert_eq!((t.kind, t.triggered_by), (TransitionKind::Paused, Trigger::Timeout));
}

#[test]
fn people_pause_resume_abort_and_promote_with_expected_versions() {
    let mut r = rollout(strategy(&[10, 50, 100], Duration::from_secs(60), None));
    let at = t0() + Duration::from_secs(5);
    assert!(matches!(
        r.decide(RolloutCommand::Pause, Some(2), at, ""),
        Err(RolloutError::Version { expected: 2, actual: 1, .. })
    ));
    assert!(matches!(r.decide(RolloutCommand::Resume, None, at, ""), Err(RolloutError::State { .. })));
    r.evolve(r.decide(RolloutCommand::Pause, Some(1), at, "looking").unwrap());
    assert_eq!(r.state, RolloutState::Paused);
    assert_eq!(evaluate(&r, inputs(1, 1, 0), at + Duration::from_secs(600)), Verdict::Wait, "a paused rollout waits");
    let resumed = at + Duration::from_secs(100);
    r.evolve(r.decide(RolloutCommand::Resume, None, resumed, "fine").unwrap());
    assert_eq!((r.state, r.step_since), (RolloutState::Running, resumed));
    r.evolve(r.decide(RolloutCommand::Promote, None, resumed, "ship it").unwrap());
    assert_eq!((r.state, r.percent(), r.step), (RolloutState::Completed, 100, 2));
    assert!(!r.holds(&Key::parse("limits").unwrap()), "writes to its keys are free again");
    assert!(matches!(r.decide(RolloutCommand::Abort, None, resumed, ""), Err(RolloutError::State { .. })));
    assert_eq!(r.transitions.len(), 4);
}

/// The reference model: a state, a step index, and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    Running(usize),
    Paused(usize),
    Completed,
    Aborted,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    User(RolloutCommand),
    /// The gate passes the current step.
    Pass,
    /// The gate sees too many rejections.
    Reject,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        Just(Op::User(RolloutCommand::Pause)),
        Just(Op::User(RolloutCommand::Resume)),
        Just(Op::User(RolloutCommand::Abort)),
        Just(Op::User(RolloutCommand::Promote)),
        Just(Op::Pass),
        Just(Op::Pass),
        Just(Op::Reject),
    ]
}

fn model_step(m: Model, op: Op, last: usize) -> Model {
    use RolloutCommand::*;
    match (m, op) {
        (Model::Running(s), Op::User(Pause)) => Model::Paused(s),
        (Model::Paused(s), Op::User(Resume)) => Model::Running(s),
        (Model::Running(_) | Model::Paused(_), Op::User(Abort)) => Model::Aborted,
        (Model::Running(_) | Model::Paused(_), Op::User(Promote)) => Model::Completed,
        (Model::Running(s), Op::Pass) if s == last => Model::Completed,
        (Model::Running(s), Op::Pass) => Model::Running(s + 1),
        (Model::Running(_), Op::Reject) => Model::Aborted,
        (m, _) => m,
    }
}

proptest! {
    /// Any interleaving of people and gates: the aggregate agrees with the
    /// model, the cohort only grows until an abort empties it, and a
    /// refused command changes nothing.
    #[test]
    fn rollouts_follow_the_model_and_cohorts_only_grow(ops in prop::collection::vec(op(), 0..24)) {
        let percents = [5, 20, 50, 100];
        let mut r = rollout(strategy(&percents, Duration::from_secs(1), None));
        let mut m = Model::Running(0);
        let clients: Vec<ClientId> = (0..200).map(|i| client(&format!("pod-{i}"))).collect();
        let members = |r: &Rollout| -> std::collections::BTreeSet<usize> {
            let c = r.cohort();
            clients.iter().enumerate().filter(|(_, id)| c.includes(id, &Labels::new())).map(|(i, _)| i).collect()
        };
        let mut seen = members(&r);
        let mut now = t0();
        for op in ops {
            now += Duration::from_secs(2);
            let before = r.clone();
            match op {
                Op::User(cmd) => match r.decide(cmd, Some(r.version), now, "") {
                    Ok(t) => r.evolve(t),
                    Err(_) => prop_assert_eq!(&r, &before),
                },
                Op::Pass => {
                    let all = inputs(1, 1, 0);
                    if let Some(t) = r.gate_transition(evaluate(&r, all, now), all, now) { r.evolve(t) }
                }
                Op::Reject => {
                    let bad = inputs(1, 0, 1);
                    if let Some(t) = r.gate_transition(evaluate(&r, bad, now), bad, now) { r.evolve(t) }
                }
            }
            m = model_step(m, op, percents.len() - 1);
            let got = match r.state {
                RolloutState::Running => Model::Running(r.step),
                RolloutState::Paused => Model::Paused(r.step),
                RolloutState::Completed => Model::Completed,
                RolloutState::Aborted => Model::Aborted,
            };
            prop_assert_eq!(got, m);
            let now_in = members(&r);
            if r.state == RolloutState::Aborted {
                prop_assert!(now_in.is_empty());
            } else {
                prop_assert!(seen.is_subset(&now_in), "the cohort shrank");
            }
            seen = now_in;
        }
    }
}

#[test]
fn a_client_sent_the_target_stays_counted_when_it_goes_away() {
    use crate::fleet::{ClientRecord, RolloutTarget, Timing};
    let r = rollout(strategy(&[100], Duration::from_secs(1), None));
    let timing = Timing {
        stale_after: Duration::from_secs(60),
        forget_after: Duration::from_secs(24 * 3600),
        heartbeat: Duration::from_secs(10),
    };
    let now = t0() + Duration::from_secs(5);
    let record = |name: &str, connected: bool, sent: bool| {
        let mut c = ClientRecord::new(client(name), r.namespace.clone(), String::new(), "q1", t0());
        c.connected = connected;
        c.rollout = sent.then(|| RolloutTarget { id: r.id.clone(), revision: Revision::new(8) });
        c
    };
    let records = [
        record("up-sent", true, true),
        record("up-new", true, false),
        // Crashed on the target: still pending, so the gate waits.
        record("gone-sent", false, true),
        // Never sent it and gone: not counted.
        record("gone-new", false, false),
    ];
    let (inputs, _) = cohort_inputs(&r, &records, now, &timing);
    assert_eq!((inputs.cohort, inputs.applied, inputs.pending), (3, 0, 3));
    assert_eq!(evaluate(&r, inputs, now), Verdict::Wait, "no ACK from those that got it: the step waits");
}
