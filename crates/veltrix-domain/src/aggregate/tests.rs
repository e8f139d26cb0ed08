use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use proptest::prelude::*;

use super::*;
use crate::{
    command::{ChangeSetCommand, CommandMeta, KeyCommand, Limits},
    event::TraceContext,
    names::{Actor, Reason},
};

const DAY: Duration = Duration::from_secs(86_400);

fn meta(request_id: &str, time: SystemTime) -> CommandMeta {
    CommandMeta {
        actor: Actor::anonymous(),
        reason: Reason::parse("test").unwrap(),
        request_id: RequestId::parse(request_id).unwrap(),
        trace: TraceContext::default(),
        time,
    }
}

fn put(key: &str, value: &str, expected: Option<u64>, request_id: &str) -> ChangeSetCommand {
    let change = KeyCommand {
        key: Key::parse(key).unwrap(),
        expected: Expectation::from_wire(expected),
        op: Operation::set(value.as_bytes().to_vec(), "", &Limits::default()).unwrap(),
    };
    let ns = Namespace::parse("ns").unwrap();
    ChangeSetCommand::new(ns, vec![change], meta(request_id, SystemTime::UNIX_EPOCH), &Limits::default()).unwrap()
}

/// Decides and, when accepted, commits at `next` like a store would.
fn run(state: &mut NamespaceState, next: &mut u64, cmd: &ChangeSetCommand) -> Result<u64, Rejection> {
    match decide(state, cmd)? {
        Decision::AlreadyApplied(r) => Ok(r.get()),
        Decision::Append(event) => {
            *next += 1;
            state.evolve(Revision::new(*next), &event);
            // The event carries what a projection needs without earlier state.
            for c in event.changes.iter().filter(|c| matches!(c.op, KeyOp::Set { .. })) {
                let meta = state.key(&c.key).copied().unwrap();
                let create = if c.create_revision == 0 { Revision::new(*next) } else { c.create_revision };
                assert_eq!((meta.create_revision, meta.version), (create, c.version));
            }
            Ok(*next)
        }
    }
}

#[test]
fn compare_and_set() {
    let (mut s, mut n) = (NamespaceState::new(DAY), 0);
    assert_eq!(run(&mut s, &mut n, &put("a", "1", Some(0), "")), Ok(1));
    let err = run(&mut s, &mut n, &put("a", "2", Some(0), "")).unwrap_err();
    assert!(matches!(err, Rejection::Conflict { current, .. } if current == 1), "{err}");
    assert!(err.to_string().contains("'a'") && err.to_string().contains("mod_revision is 1"));
    assert_eq!(run(&mut s, &mut n, &put("a", "2", Some(1), "")), Ok(2));
    assert_eq!(
        s.key(&Key::parse("a").unwrap()).map(|m| (m.create_revision.get(), m.mod_revision.get(), m.version)),
        Some((1, 2, 2))
    );
}

#[test]
fn retry_with_stale_expectation_returns_original_revision() {
    let (mut s, mut n) = (NamespaceState::new(DAY), 0);
    let cmd = put("a", "1", Some(0), "req-1");
    assert_eq!(run(&mut s, &mut n, &cmd), Ok(1));
    assert_eq!(run(&mut s, &mut n, &cmd), Ok(1));
    assert_eq!(n, 1, "nothing appended");
    let reused = run(&mut s, &mut n, &put("a", "other", Some(0), "req-1")).unwrap_err();
    assert_eq!(
        reused,
        Rejection::RequestIdReused { request_id: RequestId::parse("req-1").unwrap(), revision: Revision::new(1) }
    );
}

#[test]
fn request_ids_expire_after_the_window_of_event_time() {
    let mut s = NamespaceState::new(Duration::from_secs(60));
    let t0 = SystemTime::UNIX_EPOCH + DAY;
    let mut first = match decide(&s, &put("a", "1", None, "old")).unwrap() {
        Decision::Append(e) => e,
        d => panic!("{d:?}"),
    };
    first.time = t0;
    s.evolve(Revision::new(1), &first);
    let mut later = first.clone();
    later.request_id = RequestId::default();
    later.time = t0 + Duration::from_secs(61);
    s.evolve(Revision::new(2), &later);
    assert!(matches!(decide(&s, &put("a", "1", None, "old")), Ok(Decision::Append(_))));
}

#[test]
fn delete_missing_key_is_not_found_and_evolve_ignores_replays() {
    let (mut s, mut n) = (NamespaceState::new(DAY), 0);
    let del = |k: &str| {
        let change = KeyCommand { key: Key::parse(k).unwrap(), expected: None, op: Operation::Delete };
        ChangeSetCommand::new(
            Namespace::parse("ns").unwrap(),
            vec![change],
            meta("", SystemTime::UNIX_EPOCH),
            &Limits::default(),
        )
        .unwrap()
    };
    assert!(matches!(run(&mut s, &mut n, &del("a")), Err(Rejection::NotFound { .. })));
    let Decision::Append(e) = decide(&s, &put("a", "1", None, "")).unwrap() else { panic!() };
    s.evolve(Revision::new(5), &e);
    s.evolve(Revision::new(5), &e);
    s.evolve(Revision::new(3), &e);
    n = 5;
    assert_eq!(s.key(&Key::parse("a").unwrap()).map(|m| m.version), Some(1));
    assert_eq!(run(&mut s, &mut n, &del("a")).map(|_| s.is_empty()), Ok(true));
}

// ---- property test against a reference model ----

#[derive(Debug, Clone)]
enum Op {
    Set(u8),
    Delete,
}

#[derive(Debug, Clone)]
struct Cmd {
    changes: Vec<(u8, Option<u64>, Op)>,
    request_id: Option<u8>,
}

fn cmd_strategy() -> impl Strategy<Value = Cmd> {
    let op = prop_oneof![any::<u8>().prop_map(Op::Set), Just(Op::Delete)];
    let expected = prop_oneof![Just(None), (0u64..12).prop_map(Some)];
    let change = (0u8..6, expected, op);
    (proptest::collection::vec(change, 1..4), proptest::option::of(0u8..4))
        .prop_map(|(changes, request_id)| Cmd { changes, request_id })
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Committed(u64),
    Conflict,
    NotFound,
    Reused,
}

/// The rules of the issue, written as plainly as possible.
#[derive(Default)]
struct Reference {
    keys: BTreeMap<u8, (u64, u64, u64)>, // key -> (create, mod, version)
    requests: BTreeMap<u8, (u64, String)>,
    last: u64,
}

impl Reference {
    fn apply(&mut self, cmd: &Cmd) -> Outcome {
        let mut seen = std::collections::BTreeSet::new();
        if cmd.changes.iter().any(|(k, _, _)| !seen.insert(*k)) {
            return Outcome::Reused; // never generated: filtered below
        }
        let fingerprint = format!("{:?}", cmd.changes);
        if let Some(id) = cmd.request_id
            && let Some((rev, fp)) = self.requests.get(&id)
        {
            return if *fp == fingerprint { Outcome::Committed(*rev) } else { Outcome::Reused };
        }
        for (k, expected, op) in &cmd.changes {
            let current = self.keys.get(k).map_or(0, |m| m.1);
            if expected.is_some_and(|e| e != current) {
                return Outcome::Conflict;
            }
            if matches!(op, Op::Delete) && current == 0 {
                return Outcome::NotFound;
            }
        }
        self.last += 1;
        let rev = self.last;
        for (k, _, op) in &cmd.changes {
            match op {
                Op::Set(_) => {
                    let e = self.keys.entry(*k).or_insert((rev, rev, 0));
                    e.1 = rev;
                    e.2 += 1;
                }
                Op::Delete => {
                    self.keys.remove(k);
                }
            }
        }
        if let Some(id) = cmd.request_id {
            self.requests.insert(id, (rev, fingerprint));
        }
        Outcome::Committed(rev)
    }
}

fn to_command(cmd: &Cmd) -> ChangeSetCommand {
    let changes = cmd
        .changes
        .iter()
        .map(|(k, expected, op)| KeyCommand {
            key: Key::parse(&format!("k{k}")).unwrap(),
            expected: Expectation::from_wire(*expected),
            op: match op {
                Op::Set(v) => Operation::set(vec![*v], "application/octet-stream", &Limits::default()).unwrap(),
                Op::Delete => Operation::Delete,
            },
        })
        .collect();
    let id = cmd.request_id.map(|i| format!("r{i}")).unwrap_or_default();
    ChangeSetCommand::new(
        Namespace::parse("ns").unwrap(),
        changes,
        meta(&id, SystemTime::UNIX_EPOCH),
        &Limits::default(),
    )
    .unwrap()
}

proptest! {
    #[test]
    fn aggregate_matches_reference_model(
        cmds in proptest::collection::vec(cmd_strategy(), 1..60)
            .prop_map(|v| v.into_iter().filter(|c| {
                let mut seen = std::collections::BTreeSet::new();
                c.changes.iter().all(|(k, _, _)| seen.insert(*k))
            }).collect::<Vec<_>>())
    ) {
        let mut reference = Reference::default();
        let (mut state, mut next) = (NamespaceState::new(DAY), 0);
        for (i, cmd) in cmds.iter().enumerate() {
            // Now and then from a snapshot (request ids remembered too).
            if i % 4 == 3 {
                let ns = Namespace::parse("ns").unwrap();
                let snapshot = state.snapshot(&ns);
                state = NamespaceState::restore(snapshot.clone(), DAY);
                prop_assert_eq!(state.snapshot(&ns), snapshot);
            }
            let expected = reference.apply(cmd);
            let got = match run(&mut state, &mut next, &to_command(cmd)) {
                Ok(r) => Outcome::Committed(r),
                Err(Rejection::Conflict { .. }) => Outcome::Conflict,
                Err(Rejection::NotFound { .. }) => Outcome::NotFound,
                Err(Rejection::RequestIdReused { .. }) => Outcome::Reused,
                Err(e @ Rejection::NamespaceMoved { .. }) => panic!("a write is never derived: {e}"),
                Err(e @ Rejection::SchemaViolation(_)) => panic!("no schemas here: {e}"),
                Err(e) => panic!("no rollouts here: {e}"),
            };
            prop_assert_eq!(got, expected);
        }
        prop_assert_eq!(state.revision(), reference.last);
        prop_assert_eq!(state.len(), reference.keys.len());
        for (k, (create, m, version)) in &reference.keys {
            let meta = state.key(&Key::parse(&format!("k{k}")).unwrap()).copied();
            let (create_revision, mod_revision) = (Revision::new(*create), Revision::new(*m));
            prop_assert_eq!(meta, Some(KeyMeta { create_revision, mod_revision, version: *version }));
        }
    }
}
