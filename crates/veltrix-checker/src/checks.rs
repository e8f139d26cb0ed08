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
    /// A read saw a write that began after the read ended.
    FutureRead { op: u64, writer: u64 },
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
            Self::FutureRead { op, writer } => vec![*writer, *op],
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
        let ops: Vec<Op> = history.ops.iter().filter(|o| ids.contains(&o.id)).cloned().collect();
        let keys: HashSet<(&str, &str)> = ops.iter().flat_map(op_keys).collect();
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
            Self::RevisionTwice { revision } | Self::StreamOutOfOrder { revision, .. } => vec![*revision],
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
            Self::FutureRead { op, writer } => write!(f, "op {op} read what op {writer} wrote after the read ended"),
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
    let mut found = check_writes(history);
    found.extend(check_reads(history));
    found.extend(check_watches(history));
    found
}

/// One key's change sets in revision order: (revision, value after, the
/// operation that wrote it when the history has it).
type Timeline<'a> = Vec<(u64, Option<&'a str>, Option<&'a Op>)>;

struct Index<'a> {
    by_request: HashMap<(&'a str, &'a str), Vec<&'a Committed>>,
    keys: HashMap<(&'a str, &'a str), Timeline<'a>>,
    by_revision: HashMap<u64, &'a Committed>,
}

impl<'a> Index<'a> {
    fn new(history: &'a History) -> Self {
        let mut by_request: HashMap<(&str, &str), Vec<&Committed>> = HashMap::new();
        for c in history.stream.iter().filter(|c| !c.request_id.is_empty()) {
            by_request.entry((c.namespace.as_str(), c.request_id.as_str())).or_default().push(c);
        }
        let writers: HashMap<(&str, &str), &Op> = history
            .ops
            .iter()
            .filter_map(|op| match &op.call {
                Call::Write { namespace, request_id, .. } if !request_id.is_empty() => {
                    Some(((namespace.as_str(), request_id.as_str()), op))
                }
                _ => None,
            })
            .collect();
        let mut stream: Vec<&Committed> = history.stream.iter().collect();
        stream.sort_by_key(|c| c.revision);
        let mut keys: HashMap<(&str, &str), Timeline> = HashMap::new();
        for c in &stream {
            let writer = writers.get(&(c.namespace.as_str(), c.request_id.as_str())).copied();
            for (k, v) in &c.changes {
                keys.entry((c.namespace.as_str(), k.as_str())).or_default().push((c.revision, v.as_deref(), writer));
            }
        }
        let by_revision = history.stream.iter().map(|c| (c.revision, c)).collect();
        Self { by_request, keys, by_revision }
    }

    fn committed(&self, namespace: &str, request_id: &str) -> Option<&'a Committed> {
        if request_id.is_empty() {
            return None;
        }
        self.by_request.get(&(namespace, request_id)).and_then(|v| v.first().copied())
    }

    /// The key's value and mod revision right after `revision` (0: absent).
    fn state_at(&self, namespace: &str, key: &str, revision: u64) -> (Option<String>, u64) {
        let timeline = self.keys.get(&(namespace, key)).map(Vec::as_slice).unwrap_or_default();
        match timeline.iter().rev().find(|(r, _, _)| *r <= revision) {
            Some((r, Some(v), _)) => (Some((*v).to_owned()), *r),
            _ => (None, 0),
        }
    }
}

/// Acknowledged writes, definite failures, requests, real-time order and
/// compare-and-set.
pub fn check_writes(history: &History) -> Vec<Violation> {
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
    let index = Index::new(history);
    let mut twice: Vec<_> = index.by_request.iter().filter(|(_, v)| v.len() > 1).collect();
    twice.sort_by_key(|(_, v)| v.first().map(|c| c.revision));
    for ((_, request_id), v) in twice {
        let revisions = v.iter().map(|c| c.revision).collect();
        found.push(Violation::CommittedTwice { request_id: (*request_id).to_owned(), revisions });
    }
    for op in &history.ops {
        let Call::Write { namespace, request_id, changes, .. } = &op.call else { continue };
        let committed = index.committed(namespace, request_id);
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
    found.extend(real_time(&index));
    found.extend(compare_and_set(history, &index));
    found
}

/// Per key, in revision order: no write completed before an earlier-revision
/// write began.
fn real_time(index: &Index) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut keys: Vec<_> = index.keys.iter().collect();
    keys.sort_by_key(|((ns, k), _)| (*ns, *k));
    for ((ns, key), timeline) in keys {
        let ops: Vec<&Op> = timeline.iter().filter_map(|(_, _, op)| *op).collect();
        // The earliest completion among the writes after each one.
        let mut after: Option<&Op> = None;
        for &op in ops.iter().rev() {
            if let Some(later) = after
                && later.complete < op.invoke
            {
                found.push(Violation::RealTime { key: format!("{ns}/{key}"), earlier: later.id, later: op.id });
            }
            if after.is_none_or(|a| op.complete < a.complete) {
                after = Some(op);
            }
        }
    }
    found
}

fn compare_and_set(history: &History, index: &Index) -> Vec<Violation> {
    let mut found = Vec::new();
    for op in &history.ops {
        let Call::Write { namespace, request_id, expected, .. } = &op.call else { continue };
        if expected.is_empty() {
            continue;
        }
        if let Some(c) = index.committed(namespace, request_id) {
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
/// the change set that put it there completed before the call began, and
/// the next one to the key began after the call ended. Change sets the
/// history has no operation for may have happened at any time.
fn certainly_at(index: &Index, namespace: &str, key: &str, want: u64, op: &Op) -> bool {
    let timeline = index.keys.get(&(namespace, key)).map(Vec::as_slice).unwrap_or_default();
    // Positions after which the key is at `want`: the beginning (absent),
    // or right after a change set that set it at `want` (or deleted it).
    let starts = std::iter::once(None).chain((0..timeline.len()).map(Some));
    starts.into_iter().any(|start| {
        let (established, state) = match start {
            None => (true, 0),
            Some(i) => match timeline.get(i) {
                Some((r, value, writer)) => {
                    let state = if value.is_some() { *r } else { 0 };
                    (writer.is_some_and(|w| w.complete < op.invoke), state)
                }
                None => (false, u64::MAX),
            },
        };
        let next = timeline.get(start.map_or(0, |i| i.saturating_add(1)));
        let undisturbed = match next {
            None => true,
            Some((_, _, writer)) => writer.is_some_and(|w| w.invoke > op.complete),
        };
        state == want && established && undisturbed
    })
}

/// Reads against the stream's state at the revisions they report.
pub fn check_reads(history: &History) -> Vec<Violation> {
    let index = Index::new(history);
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
        let writer = index
            .by_revision
            .get(mod_revision)
            .and_then(|c| history.ops.iter().find(|w| matches!(&w.call, Call::Write { namespace: n, request_id, .. } if *n == c.namespace && *request_id == c.request_id && !request_id.is_empty())));
        if let Some(w) = writer.filter(|w| w.invoke > op.complete) {
            found.push(Violation::FutureRead { op: op.id, writer: w.id });
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
