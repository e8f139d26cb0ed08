//! The checks: each answers every violation it finds, with the operations
//! (and revisions) that make it one.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::history::{Call, Committed, History, Op, Outcome, WatchLog};

/// Why a history is illegal, naming what shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The stream holds two change sets at one revision.
    RevisionTwice { revision: u64 },
    /// The stream's revisions go down.
    StreamOutOfOrder { revision: u64, after: u64 },
    /// One request committed more than once.
    CommittedTwice { request_id: String, revisions: Vec<u64> },
    /// An acknowledged write is not in the stream.
    LostWrite { op: u64, revision: u64 },
    /// An acknowledged write is in the stream at another revision.
    WrongRevision { op: u64, acknowledged: u64, committed: u64 },
    /// What the stream holds for a write is not what it asked.
    WrongChanges { op: u64, revision: u64 },
    /// A write that failed definitely is in the stream.
    FailedButCommitted { op: u64, revision: u64 },
    /// `earlier` completed before `later` began, yet has the higher revision.
    RealTime { key: String, earlier: u64, later: u64 },
    /// A compare-and-set committed while its key was at another revision.
    CasBroken { op: u64, key: String, expected: u64, actual: u64 },
    /// A compare-and-set was refused though its keys were certainly at the
    /// expected revisions for the whole call.
    CasRefusedWithoutCause { op: u64 },
    /// A read answered below its `min_revision`.
    StaleRead { op: u64, min_revision: u64, revision: u64 },
    /// A read's answer is not the stream's state of the key at its revision.
    WrongRead { op: u64, revision: u64, expected: (Option<String>, u64), got: (Option<String>, u64) },
    /// A read answered as of a revision whose change sets include one
    /// (`writer`'s) first asked for after the read ended.
    FutureRead { op: u64, writer: u64, revision: u64 },
    /// Two operations with one request id ask different things (the
    /// history is malformed: a request id names one request).
    RequestIdReused { first: u64, again: u64 },
    /// A watch stream missed a change set touching its prefix.
    WatchGap { watch: usize, missing: u64 },
    /// A watch stream delivered a change set twice.
    WatchDuplicate { watch: usize, revision: u64 },
    /// A watch stream delivered change sets out of order.
    WatchOutOfOrder { watch: usize, revision: u64, after: u64 },
    /// A watch stream delivered a change set that does not touch its prefix
    /// (or is not in the stream at all).
    WatchExtra { watch: usize, revision: u64 },
}

impl Violation {
    /// The operations that show it.
    pub fn ops(&self) -> Vec<u64> {
        match self {
            Self::LostWrite { op, .. }
            | Self::WrongRevision { op, .. }
            | Self::WrongChanges { op, .. }
            | Self::FailedButCommitted { op, .. }
            | Self::CasBroken { op, .. }
            | Self::CasRefusedWithoutCause { op }
            | Self::StaleRead { op, .. }
            | Self::WrongRead { op, .. } => vec![*op],
            Self::RealTime { earlier, later, .. } => vec![*earlier, *later],
            Self::FutureRead { op, writer, .. } => vec![*writer, *op],
            Self::RequestIdReused { first, again } => vec![*first, *again],
            Self::RevisionTwice { .. }
            | Self::StreamOutOfOrder { .. }
            | Self::CommittedTwice { .. }
            | Self::WatchGap { .. }
            | Self::WatchDuplicate { .. }
            | Self::WatchOutOfOrder { .. }
            | Self::WatchExtra { .. } => Vec::new(),
        }
    }

    /// The smallest part of `history` that shows it: its operations, the
    /// watch stream it is about, and the change sets of the keys involved.
    pub fn sub_history(&self, history: &History) -> History {
        let ids = self.ops();
        let named: Vec<&Op> = history.ops.iter().filter(|o| ids.contains(&o.id)).collect();
        let keys: HashSet<(&str, &str)> = named.iter().flat_map(|o| op_keys(o)).collect();
        // With every write of those keys: what decides whether the named
        // operations were legal.
        let ops: Vec<Op> = history
            .ops
            .iter()
            .filter(|o| {
                let of_request = match (&o.call, self) {
                    (Call::Write { request_id, .. }, Self::CommittedTwice { request_id: twice, .. }) => {
                        request_id == twice
                    }
                    _ => false,
                };
                ids.contains(&o.id)
                    || of_request
                    || (matches!(o.call, Call::Write { .. }) && op_keys(o).iter().any(|k| keys.contains(k)))
            })
            .cloned()
            .collect();
        let watches: Vec<WatchLog> = match self {
            Self::WatchGap { watch, .. }
            | Self::WatchDuplicate { watch, .. }
            | Self::WatchOutOfOrder { watch, .. }
            | Self::WatchExtra { watch, .. } => history.watches.get(*watch).cloned().into_iter().collect(),
            _ => Vec::new(),
        };
        let stream = history
            .stream
            .iter()
            .filter(|c| {
                c.changes.iter().any(|(k, _)| keys.contains(&(c.namespace.as_str(), k.as_str())))
                    || watches.iter().any(|w| touches(c, w))
                    || self.revisions().contains(&c.revision)
            })
            .cloned()
            .collect();
        History { ops, watches, stream }
    }

    fn revisions(&self) -> Vec<u64> {
        match self {
            Self::RevisionTwice { revision }
            | Self::StreamOutOfOrder { revision, .. }
            | Self::FutureRead { revision, .. } => vec![*revision],
            Self::CommittedTwice { revisions, .. } => revisions.clone(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RevisionTwice { revision } => write!(f, "revision {revision} was assigned twice"),
            Self::StreamOutOfOrder { revision, after } => write!(f, "revision {revision} follows {after}"),
            Self::CommittedTwice { request_id, revisions } => {
                write!(f, "request {request_id:?} committed at {revisions:?}")
            }
            Self::LostWrite { op, revision } => {
                write!(f, "op {op} was acknowledged at {revision} but is not in the stream")
            }
            Self::WrongRevision { op, acknowledged, committed } => {
                write!(f, "op {op} was acknowledged at {acknowledged} but committed at {committed}")
            }
            Self::WrongChanges { op, revision } => write!(f, "op {op}: the stream's change set {revision} differs"),
            Self::FailedButCommitted { op, revision } => write!(f, "op {op} failed, yet committed at {revision}"),
            Self::RealTime { key, earlier, later } => {
                write!(f, "{key}: op {earlier} completed before op {later} began but has the higher revision")
            }
            Self::CasBroken { op, key, expected, actual } => {
                write!(f, "op {op} committed expecting {key} at {expected}, which was at {actual}")
            }
            Self::CasRefusedWithoutCause { op } => {
                write!(f, "op {op} was refused though its keys were at the expected revisions throughout")
            }
            Self::StaleRead { op, min_revision, revision } => {
                write!(f, "op {op} asked for at least {min_revision} and was answered as of {revision}")
            }
            Self::WrongRead { op, revision, expected, got } => {
                write!(f, "op {op} read {got:?} as of {revision}; the stream holds {expected:?}")
            }
            Self::FutureRead { op, writer, revision } => {
                write!(
                    f,
                    "op {op} answered as of {revision}, which holds op {writer}'s write, asked for after the read ended"
                )
            }
            Self::RequestIdReused { first, again } => {
                write!(f, "ops {first} and {again} share a request id but ask different things")
            }
            Self::WatchGap { watch, missing } => write!(f, "watch {watch} never got change set {missing}"),
            Self::WatchDuplicate { watch, revision } => write!(f, "watch {watch} got change set {revision} twice"),
            Self::WatchOutOfOrder { watch, revision, after } => {
                write!(f, "watch {watch} got change set {revision} after {after}")
            }
            Self::WatchExtra { watch, revision } => {
                write!(f, "watch {watch} got change set {revision}, which does not touch its prefix")
            }
        }
    }
}

fn op_keys(op: &Op) -> Vec<(&str, &str)> {
    match &op.call {
        Call::Write { namespace, changes, expected, .. } => changes
            .iter()
            .map(|(k, _)| (namespace.as_str(), k.as_str()))
            .chain(expected.iter().map(|(k, _)| (namespace.as_str(), k.as_str())))
            .collect(),
        Call::Get { namespace, key, .. } => vec![(namespace.as_str(), key.as_str())],
    }
}

fn touches(c: &Committed, w: &WatchLog) -> bool {
    c.namespace == w.namespace && c.changes.iter().any(|(k, _)| k.starts_with(&w.prefix))
}

/// Every check, in order.
pub fn check(history: &History) -> Vec<Violation> {
    let index = Index::new(history);
    let mut found = writes(history, &index);
    found.extend(reads(history, &index));
    found.extend(check_watches(history));
    found
}

/// When a write's request took effect at the latest, as far as a client
/// can tell: an acknowledged write before its answer; anything else
/// (a timeout, UNAVAILABLE, no answer) may still land later.
fn effect_by(op: &Op) -> u64 {
    if matches!(op.outcome, Outcome::Written { .. }) { op.complete } else { u64::MAX }
}

/// One request as its client made it, over all its attempts (a retry with
/// the same request id is the same request): from the first invocation to
/// the first acknowledgement.
#[derive(Debug, Clone, Copy)]
struct Request {
    /// The first attempt's id, for reports.
    op: u64,
    invoke: u64,
    effect_by: u64,
}

/// One key's change sets in revision order: (revision, value after, the
/// request that wrote it when the history has it).
type Timeline<'a> = Vec<(u64, Option<&'a str>, Option<Request>)>;

struct Index<'a> {
    by_request: HashMap<(&'a str, &'a str), Vec<&'a Committed>>,
    requests: HashMap<(&'a str, &'a str), Request>,
    /// Namespace → key → timeline.
    keys: HashMap<&'a str, HashMap<&'a str, Timeline<'a>>>,
    by_revision: HashMap<u64, &'a Committed>,
    /// The stream by revision, with the latest invocation among the
    /// requests of it and every change set before it (the earliest time
    /// all of them could have been committed).
    prefix: Vec<(u64, u64, Option<u64>)>,
}

impl<'a> Index<'a> {
    fn new(history: &'a History) -> Self {
        let mut by_request: HashMap<(&str, &str), Vec<&Committed>> = HashMap::new();
        for c in history.stream.iter().filter(|c| !c.request_id.is_empty()) {
            by_request.entry((c.namespace.as_str(), c.request_id.as_str())).or_default().push(c);
        }
        let by_revision: HashMap<u64, &Committed> = history.stream.iter().map(|c| (c.revision, c)).collect();
        let mut requests: HashMap<(&str, &str), Request> = HashMap::new();
        // Acknowledged writes without a request id are found by revision.
        let mut anonymous: HashMap<u64, Request> = HashMap::new();
        for op in &history.ops {
            let Call::Write { namespace, request_id, .. } = &op.call else { continue };
            let attempt = Request { op: op.id, invoke: op.invoke, effect_by: effect_by(op) };
            if request_id.is_empty() {
                if let Outcome::Written { revision } = op.outcome {
                    anonymous.insert(revision, attempt);
                }
                continue;
            }
            requests
                .entry((namespace.as_str(), request_id.as_str()))
                .and_modify(|r| {
                    r.invoke = r.invoke.min(attempt.invoke);
                    r.effect_by = r.effect_by.min(attempt.effect_by);
                })
                .or_insert(attempt);
        }
        let mut stream: Vec<&Committed> = history.stream.iter().collect();
        stream.sort_by_key(|c| c.revision);
        let mut keys: HashMap<&str, HashMap<&str, Timeline>> = HashMap::new();
        let mut prefix = Vec::with_capacity(stream.len());
        let mut latest: (u64, Option<u64>) = (0, None);
        for c in &stream {
            let writer = match c.request_id.as_str() {
                "" => anonymous.get(&c.revision).copied(),
                id => requests.get(&(c.namespace.as_str(), id)).copied(),
            };
            if let Some(w) = writer.filter(|w| w.invoke > latest.0) {
                latest = (w.invoke, Some(w.op));
            }
            prefix.push((c.revision, latest.0, latest.1));
            for (k, v) in &c.changes {
                let timeline = keys.entry(c.namespace.as_str()).or_default().entry(k.as_str()).or_default();
                timeline.push((c.revision, v.as_deref(), writer));
            }
        }
        Self { by_request, requests, keys, by_revision, prefix }
    }

    /// The change set a write committed as: by its request id, or (without
    /// one) at the revision it was acknowledged with, if it is that write.
    fn committed(&self, op: &Op) -> Option<&'a Committed> {
        let Call::Write { namespace, request_id, changes, .. } = &op.call else { return None };
        if request_id.is_empty() {
            let Outcome::Written { revision } = op.outcome else { return None };
            return self
                .by_revision
                .get(&revision)
                .copied()
                .filter(|c| c.namespace == *namespace && c.changes == *changes);
        }
        self.by_request.get(&(namespace.as_str(), request_id.as_str())).and_then(|v| v.first().copied())
    }

    fn timeline(&self, namespace: &str, key: &str) -> &[(u64, Option<&'a str>, Option<Request>)] {
        self.keys.get(namespace).and_then(|keys| keys.get(key)).map(Vec::as_slice).unwrap_or_default()
    }

    /// The key's value and mod revision right after `revision` (0: absent).
    fn state_at(&self, namespace: &str, key: &str, revision: u64) -> (Option<String>, u64) {
        let timeline = self.timeline(namespace, key);
        let upto = timeline.partition_point(|(r, _, _)| *r <= revision);
        match upto.checked_sub(1).and_then(|i| timeline.get(i)) {
            Some((r, Some(v), _)) => (Some((*v).to_owned()), *r),
            _ => (None, 0),
        }
    }
}

/// Acknowledged writes, definite failures, requests, real-time order and
/// compare-and-set.
pub fn check_writes(history: &History) -> Vec<Violation> {
    writes(history, &Index::new(history))
}

fn writes(history: &History, index: &Index) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    let mut last = 0u64;
    for c in &history.stream {
        if !seen.insert(c.revision) {
            found.push(Violation::RevisionTwice { revision: c.revision });
        } else if c.revision < last {
            found.push(Violation::StreamOutOfOrder { revision: c.revision, after: last });
        }
        last = last.max(c.revision);
    }
    // Requests of the history only: others (a rollout controller's, say)
    // follow rules of their own.
    let mut twice: Vec<_> =
        index.by_request.iter().filter(|(k, v)| v.len() > 1 && index.requests.contains_key(*k)).collect();
    twice.sort_by_key(|(_, v)| v.first().map(|c| c.revision));
    for ((_, request_id), v) in twice {
        let revisions = v.iter().map(|c| c.revision).collect();
        found.push(Violation::CommittedTwice { request_id: (*request_id).to_owned(), revisions });
    }
    found.extend(reused_ids(history));
    for op in &history.ops {
        let Call::Write { changes, .. } = &op.call else { continue };
        let committed = index.committed(op);
        match (&op.outcome, committed) {
            (Outcome::Written { revision }, None) => {
                found.push(Violation::LostWrite { op: op.id, revision: *revision })
            }
            (Outcome::Written { revision }, Some(c)) if c.revision != *revision => {
                found.push(Violation::WrongRevision { op: op.id, acknowledged: *revision, committed: c.revision });
            }
            (Outcome::Failed { .. }, Some(c)) => {
                found.push(Violation::FailedButCommitted { op: op.id, revision: c.revision });
            }
            _ => {}
        }
        if let Some(c) = committed
            && c.changes != *changes
        {
            found.push(Violation::WrongChanges { op: op.id, revision: c.revision });
        }
    }
    found.extend(real_time(index));
    found.extend(compare_and_set(history, index));
    found
}

/// Attempts of one request id must ask the same thing.
fn reused_ids(history: &History) -> Vec<Violation> {
    let mut first: HashMap<(&str, &str), &Op> = HashMap::new();
    let mut found = Vec::new();
    for op in &history.ops {
        let Call::Write { namespace, request_id, .. } = &op.call else { continue };
        if request_id.is_empty() {
            continue;
        }
        match first.get(&(namespace.as_str(), request_id.as_str())) {
            Some(earlier) if earlier.call != op.call => {
                found.push(Violation::RequestIdReused { first: earlier.id, again: op.id });
            }
            Some(_) => {}
            None => {
                first.insert((namespace.as_str(), request_id.as_str()), op);
            }
        }
    }
    found
}

/// Per key, in revision order: no request took effect (by its answer)
/// before an earlier-revision request was first made.
fn real_time(index: &Index) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut keys: Vec<_> =
        index.keys.iter().flat_map(|(ns, keys)| keys.iter().map(move |(k, timeline)| ((*ns, *k), timeline))).collect();
    keys.sort_by_key(|(key, _)| *key);
    for ((ns, key), timeline) in keys {
        // The earliest acknowledgement among the requests after each one.
        let mut after: Option<Request> = None;
        for request in timeline.iter().rev().filter_map(|(_, _, w)| *w) {
            if let Some(later) = after
                && later.effect_by < request.invoke
            {
                found.push(Violation::RealTime { key: format!("{ns}/{key}"), earlier: later.op, later: request.op });
            }
            if after.is_none_or(|a| request.effect_by < a.effect_by) {
                after = Some(request);
            }
        }
    }
    found
}

fn compare_and_set(history: &History, index: &Index) -> Vec<Violation> {
    let mut found = Vec::new();
    for op in &history.ops {
        let Call::Write { namespace, expected, .. } = &op.call else { continue };
        if expected.is_empty() {
            continue;
        }
        if let Some(c) = index.committed(op) {
            for (key, want) in expected {
                let (_, actual) = index.state_at(namespace, key, c.revision.saturating_sub(1));
                if actual != *want {
                    found.push(Violation::CasBroken { op: op.id, key: key.clone(), expected: *want, actual });
                }
            }
        } else if op.outcome == (Outcome::Failed { conflict: true })
            && expected.iter().all(|(key, want)| certainly_at(index, namespace, key, *want, op))
        {
            found.push(Violation::CasRefusedWithoutCause { op: op.id });
        }
    }
    found
}

/// Whether `key` was at revision `want` (0: absent) for all of `op`'s call:
/// the change set that put it there was acknowledged before the call
/// began, and the next one to the key was first asked for after the call
/// ended. Change sets the history has no request for may have happened at
/// any time.
fn certainly_at(index: &Index, namespace: &str, key: &str, want: u64, op: &Op) -> bool {
    let timeline = index.timeline(namespace, key);
    let undisturbed = |next: usize| match timeline.get(next) {
        None => true,
        Some((_, _, writer)) => writer.is_some_and(|w| w.invoke > op.complete),
    };
    let established =
        |i: usize| timeline.get(i).is_some_and(|(_, _, writer)| writer.is_some_and(|w| w.effect_by < op.invoke));
    if want == 0 {
        // Absent from the beginning, or after a delete.
        let deletes = timeline.iter().enumerate().filter(|(_, (_, v, _))| v.is_none()).map(|(i, _)| i);
        return undisturbed(0) || deletes.into_iter().any(|i| established(i) && undisturbed(i.saturating_add(1)));
    }
    let i = timeline.partition_point(|(r, _, _)| *r < want);
    let set_there = timeline.get(i).is_some_and(|(r, v, _)| *r == want && v.is_some());
    set_there && established(i) && undisturbed(i.saturating_add(1))
}

/// Reads against the stream's state at the revisions they report.
pub fn check_reads(history: &History) -> Vec<Violation> {
    reads(history, &Index::new(history))
}

fn reads(history: &History, index: &Index) -> Vec<Violation> {
    let mut found = Vec::new();
    for op in &history.ops {
        let (Call::Get { namespace, key, min_revision }, Outcome::Read { value, mod_revision, revision }) =
            (&op.call, &op.outcome)
        else {
            continue;
        };
        if let Some(min) = min_revision
            && revision < min
        {
            found.push(Violation::StaleRead { op: op.id, min_revision: *min, revision: *revision });
        }
        let expected = index.state_at(namespace, key, *revision);
        let got = (value.clone(), *mod_revision);
        if expected != got {
            found.push(Violation::WrongRead { op: op.id, revision: *revision, expected, got });
            continue;
        }
        // Everything up to the answer's revision was committed before the
        // answer came: none of it may have been asked for after.
        let upto = index.prefix.partition_point(|(r, _, _)| r <= revision);
        if let Some((_, latest, Some(writer))) = upto.checked_sub(1).and_then(|i| index.prefix.get(i))
            && *latest > op.complete
        {
            found.push(Violation::FutureRead { op: op.id, writer: *writer, revision: *revision });
        }
    }
    found
}

/// Each watch stream against the committed change sets touching its prefix.
pub fn check_watches(history: &History) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut stream: Vec<&Committed> = history.stream.iter().collect();
    stream.sort_by_key(|c| c.revision);
    for (i, w) in history.watches.iter().enumerate() {
        let until = w.delivered.iter().copied().max().unwrap_or(0).max(w.reached);
        let expected: Vec<u64> = stream
            .iter()
            .filter(|c| c.revision > w.after && c.revision <= until && touches(c, w))
            .map(|c| c.revision)
            .collect();
        let wanted: HashSet<u64> = expected.iter().copied().collect();
        let mut got = HashSet::new();
        let mut last = w.after;
        for &r in &w.delivered {
            if !got.insert(r) {
                found.push(Violation::WatchDuplicate { watch: i, revision: r });
            } else if r < last {
                found.push(Violation::WatchOutOfOrder { watch: i, revision: r, after: last });
            } else if !wanted.contains(&r) {
                found.push(Violation::WatchExtra { watch: i, revision: r });
            }
            last = last.max(r);
        }
        for r in expected.into_iter().filter(|r| !got.contains(r)) {
            found.push(Violation::WatchGap { watch: i, missing: r });
        }
    }
    found
}
