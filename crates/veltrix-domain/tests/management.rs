//! Writes, rollbacks, promotions and schema changes, in any order over two
//! namespaces, carried out as the command service does (plan from the
//! events, then decide and evolve), agree with a reference model written
//! as plainly as possible: snapshots of each namespace after every revision.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use proptest::prelude::*;
use veltrix_domain::{
    Actor, ChangeSetCommand, CommandMeta, Decision, Derived, Key, KeyCommand, KeyPattern, Limits, Namespace,
    NamespaceState, Operation, Origin, Reason, RequestId, Revision, StoredEvent, TraceContext, decide,
    plan::{DeleteSchema, Plan, Promote, SetSchema, plan_delete_schema, plan_promote, plan_rollback, plan_set_schema},
    projection::Projection,
};

const KEYS: [&str; 4] = ["a/1", "a/2", "b/1", "c"];
const NAMESPACES: [&str; 2] = ["staging", "prod"];
const PATTERN: &str = "a/*";
const PREFIXES: [&str; 2] = ["", "a/"];

#[derive(Debug, Clone)]
enum Step {
    Write { ns: usize, key: usize, value: Option<u8> },
    Rollback { ns: usize, to: u64, prefix: usize },
    Promote { from: usize, at: Option<u64>, prefix: usize, delete_missing: bool },
    SetSchema { ns: usize, maximum: u8 },
    DeleteSchema { ns: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..2usize, 0..4usize, proptest::option::of(0u8..10)).prop_map(|(ns, key, value)| Step::Write { ns, key, value }),
        2 => (0..2usize, 1u64..30, 0..2usize).prop_map(|(ns, to, prefix)| Step::Rollback { ns, to, prefix }),
        2 => (0..2usize, proptest::option::of(1u64..30), 0..2usize, any::<bool>())
            .prop_map(|(from, at, prefix, delete_missing)| Step::Promote { from, at, prefix, delete_missing }),
        1 => (0..2usize, 2u8..10).prop_map(|(ns, maximum)| Step::SetSchema { ns, maximum }),
        1 => (0..2usize).prop_map(|ns| Step::DeleteSchema { ns }),
    ]
}

fn schema(maximum: u8) -> String {
    format!(r#"{{"type":"integer","maximum":{maximum}}}"#)
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Appended,
    Nothing,
    Refused,
}

/// One namespace as the model sees it: key → value, and the maximum of its
/// one schema (over `a/*`), if set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NsModel {
    keys: BTreeMap<&'static str, u8>,
    maximum: Option<u8>,
}

impl NsModel {
    fn valid(&self) -> bool {
        self.keys.iter().all(|(k, v)| !k.starts_with("a/") || self.maximum.is_none_or(|m| *v <= m))
    }
}

#[derive(Default)]
struct Model {
    /// Every namespace after every revision: (revision, namespace, state).
    snapshots: Vec<(u64, usize, NsModel)>,
    now: [NsModel; 2],
    revision: u64,
}

impl Model {
    fn at(&self, ns: usize, revision: u64) -> NsModel {
        let found = self.snapshots.iter().rev().find(|(r, n, _)| *n == ns && *r <= revision);
        found.map(|(_, _, s)| s.clone()).unwrap_or_default()
    }

    /// Moves `ns` to `next` if it is valid and differs (or `always`).
    fn commit(&mut self, ns: usize, next: NsModel, always: bool) -> Outcome {
        if !next.valid() {
            return Outcome::Refused;
        }
        if next == self.now[ns] && !always {
            return Outcome::Nothing;
        }
        self.revision += 1;
        self.now[ns] = next.clone();
        self.snapshots.push((self.revision, ns, next));
        Outcome::Appended
    }

    fn run(&mut self, step: &Step) -> Outcome {
        match *step {
            Step::Write { ns, key, value } => {
                let mut next = self.now[ns].clone();
                match value {
                    Some(v) => next.keys.insert(KEYS[key], v),
                    None if next.keys.contains_key(KEYS[key]) => next.keys.remove(KEYS[key]),
                    None => return Outcome::Refused,
                };
                self.commit(ns, next, true)
            }
            Step::Rollback { ns, to, prefix } => {
                let then = self.at(ns, to);
                let mut next = self.now[ns].clone();
                next.keys.retain(|k, _| !k.starts_with(PREFIXES[prefix]));
                next.keys.extend(then.keys.iter().filter(|(k, _)| k.starts_with(PREFIXES[prefix])));
                if PREFIXES[prefix].is_empty() {
                    next.maximum = then.maximum;
                }
                self.commit(ns, next, false)
            }
            Step::Promote { from, at, prefix, delete_missing } => {
                let source = at.map_or_else(|| self.now[from].clone(), |r| self.at(from, r));
                let target = 1 - from;
                let mut next = self.now[target].clone();
                if delete_missing {
                    next.keys.retain(|k, _| !k.starts_with(PREFIXES[prefix]) || source.keys.contains_key(k));
                }
                next.keys.extend(source.keys.iter().filter(|(k, _)| k.starts_with(PREFIXES[prefix])));
                self.commit(target, next, false)
            }
            Step::SetSchema { ns, maximum } => {
                let next = NsModel { maximum: Some(maximum), ..self.now[ns].clone() };
                self.commit(ns, next, false)
            }
            Step::DeleteSchema { ns } if self.now[ns].maximum.is_none() => Outcome::Refused,
            Step::DeleteSchema { ns } => {
                let next = NsModel { maximum: None, ..self.now[ns].clone() };
                self.commit(ns, next, false)
            }
        }
    }
}

/// The aggregate with an event log, run as the command service runs it.
struct System {
    events: Vec<StoredEvent>,
    states: [NamespaceState; 2],
}

fn namespace(i: usize) -> Namespace {
    Namespace::parse(NAMESPACES[i]).unwrap()
}

fn meta() -> CommandMeta {
    CommandMeta {
        actor: Actor::anonymous(),
        reason: Reason::default(),
        request_id: RequestId::default(),
        trace: TraceContext::default(),
        time: SystemTime::UNIX_EPOCH,
    }
}

impl System {
    fn new() -> Self {
        let day = Duration::from_secs(86_400);
        Self { events: Vec::new(), states: [NamespaceState::new(day), NamespaceState::new(day)] }
    }

    fn submit(&mut self, ns: usize, cmd: &ChangeSetCommand) -> Outcome {
        match decide(&self.states[ns], cmd) {
            Ok(Decision::Append(event)) => {
                let revision = Revision::new(self.events.len() as u64 + 1);
                self.states[ns].evolve(revision, &event);
                self.events.push(StoredEvent { revision, event: *event });
                Outcome::Appended
            }
            Ok(Decision::AlreadyApplied(_)) => panic!("no request ids here"),
            Err(_) => Outcome::Refused,
        }
    }

    fn carry_out(&mut self, ns: usize, plan: Plan, origin: Origin) -> Outcome {
        if plan.is_noop() {
            return Outcome::Nothing;
        }
        assert_eq!(plan.at, self.states[ns].revision(), "planned at the namespace's revision");
        let derived = Derived { origin, computed_at: plan.at, request: Vec::new() };
        let limits = Limits::default();
        let commands = plan.commands(&limits).unwrap();
        let cmd = ChangeSetCommand::derived(namespace(ns), commands, plan.schema_changes, meta(), derived, &limits);
        self.submit(ns, &cmd.unwrap())
    }

    fn run(&mut self, step: &Step) -> Outcome {
        match *step {
            Step::Write { ns, key, value } => {
                let op = match value {
                    Some(v) => Operation::set(v.to_string().into_bytes(), "application/json", &Limits::default()),
                    None => Ok(Operation::Delete),
                };
                let change = KeyCommand { key: Key::parse(KEYS[key]).unwrap(), expected: None, op: op.unwrap() };
                let cmd = ChangeSetCommand::new(namespace(ns), vec![change], meta(), &Limits::default()).unwrap();
                self.submit(ns, &cmd)
            }
            Step::Rollback { ns, to, prefix } => {
                let plan = plan_rollback(&namespace(ns), &self.events, Revision::new(to), PREFIXES[prefix]);
                self.carry_out(ns, plan, Origin::Rollback { to_revision: Revision::new(to) })
            }
            Step::Promote { from, at, prefix, delete_missing } => {
                let promote = Promote {
                    source: namespace(from),
                    source_revision: at.map(Revision::new),
                    target: namespace(1 - from),
                    prefix: PREFIXES[prefix].into(),
                    delete_missing,
                    keys: Vec::new(),
                    expected: None,
                    dry_run: false,
                    meta: meta(),
                };
                let (plan, source_revision) = plan_promote(&promote, &self.events, &self.events);
                let origin = Origin::Promotion { source_namespace: Box::new(namespace(from)), source_revision };
                self.carry_out(1 - from, plan, origin)
            }
            Step::SetSchema { ns, maximum } => {
                let request = SetSchema {
                    namespace: namespace(ns),
                    pattern: KeyPattern::parse(PATTERN).unwrap(),
                    schema: schema(maximum),
                    expected: None,
                    dry_run: false,
                    meta: meta(),
                };
                match plan_set_schema(&request, &self.events) {
                    Ok(plan) => self.carry_out(ns, plan, Origin::Schema),
                    Err(_) => Outcome::Refused,
                }
            }
            Step::DeleteSchema { ns } => {
                let pattern = KeyPattern::parse(PATTERN).unwrap();
                let request =
                    DeleteSchema { namespace: namespace(ns), pattern, expected: None, dry_run: false, meta: meta() };
                match plan_delete_schema(&request, &self.events) {
                    Ok(plan) => self.carry_out(ns, plan, Origin::Schema),
                    Err(_) => Outcome::Refused,
                }
            }
        }
    }

    /// What the read side shows of a namespace, in the model's terms.
    fn view(&self, ns: usize) -> NsModel {
        let mut fold = Projection::new();
        for e in &self.events {
            fold.apply(e.revision, &e.event);
        }
        let keys = fold
            .keys(&namespace(ns))
            .into_iter()
            .map(|(k, v)| {
                let name = KEYS.iter().find(|n| **n == k.as_str()).unwrap();
                (*name, std::str::from_utf8(&v.value).unwrap().parse().unwrap())
            })
            .collect();
        let schemas = fold.schemas(&namespace(ns));
        assert!(schemas.len() <= 1);
        let maximum = schemas.values().next().map(|s| {
            let m = (2u8..10).find(|m| *s == schema(*m));
            m.unwrap()
        });
        NsModel { keys, maximum }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn writes_rollbacks_promotions_and_schemas_match_the_reference_model(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let (mut model, mut system) = (Model::default(), System::new());
        for (i, step) in steps.iter().enumerate() {
            let expected = model.run(step);
            let got = system.run(step);
            prop_assert_eq!(&got, &expected, "step {} {:?}", i, step);
            prop_assert_eq!(system.events.len() as u64, model.revision);
            for ns in 0..2 {
                prop_assert_eq!(system.view(ns), model.now[ns].clone(), "namespace {} after step {}", ns, i);
            }
        }
        // Schemas change only in change sets of origin SCHEMA or ROLLBACK.
        for e in &system.events {
            let allowed = matches!(e.event.origin, Origin::Schema | Origin::Rollback { .. });
            prop_assert!(e.event.schema_changes.is_empty() || allowed, "{:?}", e.event.origin);
        }
    }
}
