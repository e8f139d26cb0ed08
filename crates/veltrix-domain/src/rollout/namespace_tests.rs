//! Rollouts inside a namespace, against a reference model of who sees
//! what: random interleavings of starts, gate verdicts, a person's pause,
//! resume, abort and promote, and plain writes (to held keys and others),
//! each decided and folded like the services do.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, SystemTime},
};

use proptest::{
    prelude::{Just, prop, prop_assert, prop_assert_eq, prop_oneof, proptest},
    strategy::Strategy as _,
};

use super::*;
use crate::{
    Actor, ChangeSetCommand, ChangeSetCommitted, CommandMeta, Decision, KeyCommand, KeyOp, Limits, NamespaceState,
    Operation, Reason, Rejection, RequestId, TraceContext, decide,
    fleet::{ClientId, Labels},
};

const KEYS: [&str; 3] = ["a", "b", "c"];
const PERCENTS: [u32; 3] = [10, 50, 100];
const CLIENTS: usize = 60;
/// Clients below this index carry the canary label.
const CANARIES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Write(usize, u8),
    Start(Vec<(usize, u8)>),
    User(RolloutCommand),
    /// Every client of the step ACKed, its bake time passed.
    Pass,
    /// A client of the step NACKed.
    Reject,
    /// No ACK by the ACK timeout.
    Timeout,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        (0..KEYS.len(), 0u8..4).prop_map(|(k, v)| Op::Write(k, v)),
        prop::collection::vec((0..KEYS.len(), 0u8..4), 1..3).prop_map(Op::Start),
        Just(Op::User(RolloutCommand::Pause)),
        Just(Op::User(RolloutCommand::Resume)),
        Just(Op::User(RolloutCommand::Abort)),
        Just(Op::User(RolloutCommand::Promote)),
        Just(Op::Pass),
        Just(Op::Pass),
        Just(Op::Reject),
        Just(Op::Timeout),
    ]
}

/// The model's live rollout.
#[derive(Debug, Clone)]
struct Live {
    id: RolloutId,
    target: BTreeMap<String, String>,
    step: usize,
    paused: bool,
}

#[derive(Debug, Default)]
struct Model {
    committed: BTreeMap<String, String>,
    live: Option<Live>,
}

impl Model {
    fn includes(&self, client: usize, id: &ClientId) -> bool {
        let Some(l) = &self.live else { return false };
        let percent = u8::try_from(PERCENTS[l.step]).unwrap();
        client < CANARIES || covers(percent, bucket(&l.id, id))
    }

    /// What `client` runs: the committed values, with the target for the
    /// cohort of a live rollout.
    fn sees(&self, client: usize, id: &ClientId) -> BTreeMap<String, String> {
        let mut out = self.committed.clone();
        if let Some(l) = self.live.as_ref().filter(|_| self.includes(client, id)) {
            out.extend(l.target.clone());
        }
        out
    }
}

struct World {
    state: NamespaceState,
    next: u64,
    committed: BTreeMap<String, String>,
    now: SystemTime,
    n: u64,
}

fn ns() -> Namespace {
    Namespace::parse("shop/prod").unwrap()
}

fn meta(at: SystemTime, n: u64) -> CommandMeta {
    CommandMeta {
        actor: Actor::parse("alice").unwrap(),
        reason: Reason::parse("test").unwrap(),
        request_id: RequestId::parse(&format!("req-{n}")).unwrap(),
        trace: TraceContext::default(),
        time: at,
    }
}

fn command(changes: &[(usize, u8)], at: SystemTime, n: u64) -> ChangeSetCommand {
    let limits = Limits::default();
    let mut seen = BTreeSet::new();
    let changes = changes
        .iter()
        .filter(|(k, _)| seen.insert(*k))
        .map(|(k, v)| KeyCommand {
            key: Key::parse(KEYS[*k]).unwrap(),
            expected: None,
            op: Operation::set(format!("v{v}").into_bytes(), "", &limits).unwrap(),
        })
        .collect();
    ChangeSetCommand::new(ns(), changes, meta(at, n), &limits).unwrap()
}

impl World {
    fn commit(&mut self, event: &ChangeSetCommitted) {
        self.next += 1;
        self.state.evolve(Revision::new(self.next), event);
        for c in &event.changes {
            match &c.op {
                KeyOp::Set { value, .. } => {
                    self.committed.insert(c.key.to_string(), String::from_utf8(value.clone()).unwrap());
                }
                KeyOp::Delete => {
                    self.committed.remove(c.key.as_str());
                }
            }
        }
    }

    fn decided(&mut self, d: Result<Decision, Rejection>) -> Result<(), Rejection> {
        match d? {
            Decision::Append(e) => self.commit(&e),
            Decision::AlreadyApplied(_) => panic!("every request id is new"),
        }
        Ok(())
    }

    fn gate(&mut self, inputs: GateInputs, at: SystemTime) {
        let Some(r) = self.state.live_rollout().cloned() else { return };
        let verdict = evaluate(&r, inputs, at);
        if let Some(e) = decide_gate(&r, verdict, inputs, Vec::new(), at, &Actor::parse("controller").unwrap()) {
            self.commit(&e);
        }
    }
}

fn strategy() -> Strategy {
    let steps: Vec<StepInput> = PERCENTS
        .iter()
        .map(|p| StepInput { percent: *p, bake: Duration::from_secs(1), ..Default::default() })
        .collect();
    Strategy::new(&steps, crate::fleet::LabelSelector::parse("canary=true").unwrap(), Some(Duration::from_secs(1)))
        .unwrap()
}

proptest! {
    #[test]
    fn writes_and_rollouts_interleaved_match_the_model_of_who_sees_what(
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let clients: Vec<(ClientId, Labels)> = (0..CLIENTS)
            .map(|i| {
                let mut labels = Labels::new();
                if i < CANARIES {
                    labels.insert("canary".into(), "true".into());
                }
                (ClientId::parse(&format!("pod-{i}")).unwrap(), labels)
            })
            .collect();
        let mut w = World {
            state: NamespaceState::new(Duration::from_secs(3600)),
            next: 0,
            committed: BTreeMap::new(),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            n: 0,
        };
        let mut m = Model::default();
        let mut ran_target: BTreeSet<usize> = BTreeSet::new();
        for op in ops {
            // Every third step goes on from a snapshot of the state, as a
            // command service restarted from one would.
            let snapshot = w.state.snapshot(&ns());
            let restored = NamespaceState::restore(snapshot.clone(), Duration::from_secs(3600));
            prop_assert_eq!(&restored.snapshot(&ns()), &snapshot);
            prop_assert_eq!(restored.rollout(), w.state.rollout());
            if w.n.is_multiple_of(3) {
                w.state = restored;
            }
            w.now += Duration::from_secs(2);
            w.n += 1;
            let (now, n) = (w.now, w.n);
            let before = w.next;
            match op {
                Op::Write(k, v) => {
                    let got = w.decided(decide(&w.state, &command(&[(k, v)], now, n)));
                    match &m.live {
                        Some(l) if l.target.contains_key(KEYS[k]) => {
                            prop_assert!(matches!(got, Err(Rejection::HeldByRollout { .. })), "{got:?}");
                        }
                        _ => {
                            prop_assert!(got.is_ok(), "{got:?}");
                            m.committed.insert(KEYS[k].to_owned(), format!("v{v}"));
                        }
                    }
                }
                Op::Start(mut changes) => {
                    let mut keys = BTreeSet::new();
                    changes.retain(|(k, _)| keys.insert(*k));
                    let target = command(&changes, now, n);
                    let id = RolloutId::parse(&format!("r-{n}")).unwrap();
                    let start = StartRollout { id: id.clone(), target, strategy: strategy(), expected_revision: None, digest: [u8::try_from(n % 251).unwrap(); 32] };
                    let got = w.decided(decide_start(&w.state, start));
                    if m.live.is_some() {
                        prop_assert!(matches!(got, Err(Rejection::RolloutRunning(_))), "{got:?}");
                    } else {
                        prop_assert!(got.is_ok(), "{got:?}");
                        let target = changes.iter().map(|(k, v)| (KEYS[*k].to_owned(), format!("v{v}"))).collect();
                        m.live = Some(Live { id, target, step: 0, paused: false });
                        ran_target.clear();
                    }
                }
                Op::User(cmd) => {
                    let Some(id) = w.state.rollout().map(|r| r.id.clone()) else { continue };
                    let action = RolloutAction { id, command: cmd, expected_version: None, meta: meta(now, n), digest: [7; 32] };
                    let got = w.decided(decide_action(&w.state, &ns(), action));
                    let expected = match (&mut m.live, cmd) {
                        (Some(l), RolloutCommand::Pause) if !l.paused => { l.paused = true; true }
                        (Some(l), RolloutCommand::Resume) if l.paused => { l.paused = false; true }
                        (Some(_), RolloutCommand::Abort) => { m.live = None; true }
                        (Some(l), RolloutCommand::Promote) => {
                            let target = l.target.clone();
                            m.committed.extend(target);
                            m.live = None;
                            true
                        }
                        _ => false,
                    };
                    prop_assert_eq!(got.is_ok(), expected, "{:?}: {:?}", cmd, got);
                }
                Op::Pass => {
                    w.gate(GateInputs { cohort: 1, applied: 1, rejected: 0, pending: 0 }, now);
                    if let Some(l) = m.live.as_mut().filter(|l| !l.paused) {
                        if l.step + 1 == PERCENTS.len() {
                            let target = l.target.clone();
                            m.committed.extend(target);
                            m.live = None;
                        } else {
                            l.step += 1;
                        }
                    }
                }
                Op::Reject => {
                    w.gate(GateInputs { cohort: 2, applied: 1, rejected: 1, pending: 0 }, now);
                    if m.live.as_ref().is_some_and(|l| !l.paused) {
                        m.live = None;
                    }
                }
                Op::Timeout => {
                    w.gate(GateInputs { cohort: 2, applied: 0, rejected: 0, pending: 2 }, now);
                    if let Some(l) = m.live.as_mut().filter(|l| !l.paused) {
                        l.paused = true;
                    }
                }
            }
            // A refusal appended nothing.
            prop_assert!(w.next == before || w.next == before + 1);
            // What Get shows is the committed state: never a live target.
            prop_assert_eq!(&w.committed, &m.committed);
            let live = w.state.live_rollout();
            prop_assert_eq!(live.map(|r| r.id.clone()), m.live.as_ref().map(|l| l.id.clone()));
            if let (Some(r), Some(l)) = (live, &m.live) {
                prop_assert_eq!(r.step, l.step);
                prop_assert_eq!(r.state == RolloutState::Paused, l.paused);
            }
            // Who sees what: the aggregate's cohort is the model's, and
            // within one rollout a client that ran the target still does.
            for (i, (id, labels)) in clients.iter().enumerate() {
                let domain_in = live.is_some_and(|r| r.cohort().includes(id, labels));
                prop_assert_eq!(domain_in, m.includes(i, id), "client {}", i);
                let sees = m.sees(i, id);
                if domain_in {
                    ran_target.insert(i);
                } else if m.live.is_some() {
                    prop_assert!(!ran_target.contains(&i), "client {} left the cohort of a live rollout", i);
                }
                if m.live.is_none() {
                    prop_assert_eq!(&sees, &m.committed);
                }
            }
        }
    }
}
