//! The checker rejects hand-made illegal histories (a lost write, a stale
//! read, a duplicated or missing watch event, a non-linearizable
//! compare-and-set, ...) and accepts the legal ones next to them.
#![allow(clippy::unwrap_used)] // tests may unwrap

use veltrix_checker::{Call, Committed, History, Op, Outcome, Violation, WatchLog, check, read_jsonl, write_jsonl};

const NS: &str = "app";

fn put(
    id: u64,
    client: u32,
    (invoke, complete): (u64, u64),
    key: &str,
    value: &str,
    expected: Option<u64>,
    outcome: Outcome,
) -> Op {
    Op {
        id,
        client,
        invoke,
        complete,
        call: Call::Write {
            namespace: NS.into(),
            request_id: format!("req-{id}"),
            changes: vec![(key.into(), Some(value.into()))],
            expected: expected.map(|e| vec![(key.to_owned(), e)]).unwrap_or_default(),
        },
        outcome,
    }
}

fn get(
    id: u64,
    client: u32,
    (invoke, complete): (u64, u64),
    key: &str,
    min: Option<u64>,
    read: (Option<&str>, u64, u64),
) -> Op {
    let (value, mod_revision, revision) = read;
    Op {
        id,
        client,
        invoke,
        complete,
        call: Call::Get { namespace: NS.into(), key: key.into(), min_revision: min },
        outcome: Outcome::Read { value: value.map(str::to_owned), mod_revision, revision },
    }
}

fn committed(revision: u64, op: u64, key: &str, value: Option<&str>) -> Committed {
    Committed {
        revision,
        namespace: NS.into(),
        request_id: format!("req-{op}"),
        changes: vec![(key.into(), value.map(str::to_owned))],
    }
}

fn written(revision: u64) -> Outcome {
    Outcome::Written { revision }
}

/// Two clients: a put, a compare-and-set on it, a refused one, an
/// indeterminate write that did land, reads with and without min_revision,
/// and a watch that resumed once.
fn legal() -> History {
    History {
        ops: vec![
            put(1, 1, (0, 10), "a", "1", None, written(1)),
            put(2, 2, (20, 30), "a", "2", Some(1), written(2)),
            // Refused: the key was at 2 throughout (op 2 completed before).
            put(3, 1, (40, 50), "a", "3", Some(1), Outcome::Failed { conflict: true }),
            // Timed out, but committed: resolved by its request id.
            put(4, 1, (60, 70), "b", "x", None, Outcome::Unknown),
            get(5, 2, (80, 90), "a", Some(2), (Some("2"), 2, 3)),
            get(6, 1, (80, 90), "b", None, (None, 0, 2)),
            get(7, 1, (95, 99), "b", Some(3), (Some("x"), 3, 3)),
        ],
        watches: vec![WatchLog {
            client: 3,
            namespace: NS.into(),
            prefix: String::new(),
            after: 0,
            delivered: vec![1, 2, 3],
            reached: 3,
        }],
        stream: vec![committed(1, 1, "a", Some("1")), committed(2, 2, "a", Some("2")), committed(3, 4, "b", Some("x"))],
    }
}

fn violations(history: &History) -> Vec<Violation> {
    check(history)
}

/// `v` is found, and found again in its own sub-history (which holds what
/// decides it, and little else).
fn assert_found(history: &History, v: &Violation) {
    let found = check(history);
    assert!(found.contains(v), "{v} not in {found:?}");
    let sub = v.sub_history(history);
    assert!(check(&sub).contains(v), "{v} not found in its sub-history {sub:?}");
    assert!(sub.ops.len() <= history.ops.len() && sub.stream.len() <= history.stream.len());
}

#[test]
fn a_legal_history_passes() {
    assert_eq!(violations(&legal()), Vec::new());
}

#[test]
fn a_lost_write_is_found() {
    let mut h = legal();
    h.stream.retain(|c| c.revision != 2);
    assert_found(&h, &Violation::LostWrite { op: 2, revision: 2 });
}

#[test]
fn a_failed_write_that_committed_and_a_request_committed_twice_are_found() {
    let mut h = legal();
    h.stream.push(committed(4, 3, "a", Some("3")));
    h.stream.push(committed(5, 1, "a", Some("1")));
    let found = violations(&h);
    assert!(found.contains(&Violation::FailedButCommitted { op: 3, revision: 4 }), "{found:?}");
    assert!(
        found.contains(&Violation::CommittedTwice { request_id: "req-1".into(), revisions: vec![1, 5] }),
        "{found:?}"
    );
}

#[test]
fn a_revision_assigned_twice_is_found() {
    let mut h = legal();
    h.stream.push(Committed {
        revision: 3,
        namespace: NS.into(),
        request_id: "other".into(),
        changes: vec![("c".into(), None)],
    });
    assert_found(&h, &Violation::RevisionTwice { revision: 3 });
}

#[test]
fn stale_and_wrong_reads_are_found() {
    let mut h = legal();
    // Asked for at least 3, answered as of 2.
    h.ops.push(get(8, 1, (100, 110), "b", Some(3), (None, 0, 2)));
    // As of 3, but the value from before revision 2.
    h.ops.push(get(9, 2, (100, 110), "a", None, (Some("1"), 1, 3)));
    assert_found(&h, &Violation::StaleRead { op: 8, min_revision: 3, revision: 2 });
    let wrong =
        Violation::WrongRead { op: 9, revision: 3, expected: (Some("2".into()), 2), got: (Some("1".into()), 1) };
    assert_found(&h, &wrong);
}

#[test]
fn a_read_of_a_write_begun_after_it_ended_is_found() {
    let mut h = legal();
    h.ops.push(get(8, 2, (1, 5), "b", None, (Some("x"), 3, 3)));
    assert_found(&h, &Violation::FutureRead { op: 8, writer: 4, revision: 3 });
    // Not found, as of a revision holding a later delete (nothing to look
    // the writer up by but the revision).
    let mut h = legal();
    h.ops.push(Op {
        id: 8,
        client: 2,
        invoke: 100,
        complete: 110,
        call: Call::Write {
            namespace: NS.into(),
            request_id: "req-8".into(),
            changes: vec![("b".into(), None)],
            expected: vec![],
        },
        outcome: written(4),
    });
    h.stream.push(committed(4, 8, "b", None));
    h.ops.push(get(9, 1, (20, 30), "b", None, (None, 0, 4)));
    assert_found(&h, &Violation::FutureRead { op: 9, writer: 8, revision: 4 });
}

#[test]
fn an_indeterminate_write_may_land_after_its_timeout_and_retries_are_one_request() {
    // Op 8 timed out at 110; op 9 began at 112 and was acknowledged at 114
    // as revision 4...
    let mut h = legal();
    h.ops.push(put(8, 1, (100, 110), "c", "u", None, Outcome::Unknown));
    h.ops.push(put(9, 2, (112, 114), "c", "w", None, written(4)));
    // ... and op 8's publish landed afterwards, at 5: legal.
    h.stream.push(committed(4, 9, "c", Some("w")));
    h.stream.push(committed(5, 8, "c", Some("u")));
    assert_eq!(violations(&h), Vec::new());
    // A retry of op 8 with the same request id, acknowledged at 5: the
    // request began with the first attempt.
    let retry = Op { id: 10, invoke: 200, complete: 210, outcome: written(5), ..h.ops[7].clone() };
    h.ops.push(retry);
    assert_eq!(violations(&h), Vec::new());
    // The same id for another call is a malformed history.
    let mut other = put(11, 1, (300, 310), "c", "other", None, Outcome::Unknown);
    if let Call::Write { request_id, .. } = &mut other.call {
        *request_id = "req-8".into();
    }
    h.ops.push(other);
    assert!(violations(&h).contains(&Violation::RequestIdReused { first: 8, again: 11 }));
}

#[test]
fn a_write_without_a_request_id_is_found_by_its_revision() {
    let mut h = legal();
    let mut anonymous = put(8, 1, (100, 110), "c", "v", None, written(4));
    if let Call::Write { request_id, .. } = &mut anonymous.call {
        request_id.clear();
    }
    h.ops.push(anonymous);
    h.stream.push(Committed { request_id: String::new(), ..committed(4, 8, "c", Some("v")) });
    assert_eq!(violations(&h), Vec::new());
    h.stream.pop();
    assert_found(&h, &Violation::LostWrite { op: 8, revision: 4 });
}

#[test]
fn duplicated_missing_and_reordered_watch_events_are_found() {
    let mut h = legal();
    h.watches[0].delivered = vec![1, 2, 2, 3];
    assert!(violations(&h).contains(&Violation::WatchDuplicate { watch: 0, revision: 2 }));
    h.watches[0].delivered = vec![1, 3];
    assert!(violations(&h).contains(&Violation::WatchGap { watch: 0, missing: 2 }));
    h.watches[0].delivered = vec![2, 1, 3];
    assert!(violations(&h).contains(&Violation::WatchOutOfOrder { watch: 0, revision: 1, after: 2 }));
    // Nothing delivered, but the stream had reached 3: all three missing.
    h.watches[0].delivered = vec![];
    assert_eq!(violations(&h).len(), 3);
    // A prefix watch must not get another key's change set.
    h.watches[0] = WatchLog { prefix: "b".into(), delivered: vec![2, 3], ..h.watches[0].clone() };
    assert!(violations(&h).contains(&Violation::WatchExtra { watch: 0, revision: 2 }));
}

#[test]
fn non_linearizable_compare_and_set_is_found() {
    // Both expected revision 1; both committed.
    let mut h = legal();
    h.ops.push(put(8, 1, (100, 110), "a", "4", Some(2), written(4)));
    h.ops.push(put(9, 2, (100, 110), "a", "5", Some(2), written(5)));
    h.stream.push(committed(4, 8, "a", Some("4")));
    h.stream.push(committed(5, 9, "a", Some("5")));
    let found = violations(&h);
    assert_eq!(found, vec![Violation::CasBroken { op: 9, key: "a".into(), expected: 2, actual: 4 }]);
    assert_found(&h, &found[0]);
    let sub = found[0].sub_history(&h);
    assert!(
        sub.ops.iter().all(|o| matches!(&o.call, Call::Write { changes, .. } if changes[0].0 == "a")),
        "only key a's writes"
    );
    assert!(sub.stream.iter().all(|c| c.changes.iter().all(|(k, _)| k == "a")));
}

#[test]
fn a_stream_order_against_real_time_is_found() {
    // Op 9 completed (110) before op 8 began (200), yet op 8 has the lower revision.
    let mut h = legal();
    h.ops.push(put(8, 1, (200, 210), "c", "late", None, written(4)));
    h.ops.push(put(9, 2, (100, 110), "c", "early", None, written(5)));
    h.stream.push(committed(4, 8, "c", Some("late")));
    h.stream.push(committed(5, 9, "c", Some("early")));
    let v = Violation::RealTime { key: "app/c".into(), earlier: 9, later: 8 };
    assert_eq!(violations(&h), vec![v.clone()]);
    assert_found(&h, &v);
}

#[test]
fn a_refusal_without_cause_is_found_and_one_with_a_concurrent_write_is_not() {
    let mut h = legal();
    // Key a was at 2 from t=30 on, and nothing else wrote it: a refusal of
    // "expected 2" at t=100 had no cause.
    h.ops.push(put(8, 1, (100, 110), "a", "4", Some(2), Outcome::Failed { conflict: true }));
    assert_eq!(violations(&h), vec![Violation::CasRefusedWithoutCause { op: 8 }]);
    assert_found(&h, &Violation::CasRefusedWithoutCause { op: 8 });
    // With a write to a that overlaps it, the refusal may be right.
    h.ops.push(put(9, 2, (105, 120), "a", "5", None, written(4)));
    h.stream.push(committed(4, 9, "a", Some("5")));
    assert_eq!(violations(&h), Vec::new());
}

#[test]
fn histories_round_trip_as_json_lines() {
    let h = legal();
    let mut out = Vec::new();
    write_jsonl(&h, &mut out).unwrap();
    assert_eq!(String::from_utf8_lossy(&out).lines().count(), h.ops.len() + h.watches.len() + h.stream.len());
    assert_eq!(read_jsonl(out.as_slice()).unwrap(), h);
}
