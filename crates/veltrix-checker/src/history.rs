//! What a run records: operations, watch streams and the committed stream.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// One operation of one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Unique in the history.
    pub id: u64,
    pub client: u32,
    /// Microseconds since the run began, when the call was made.
    pub invoke: u64,
    /// When its answer arrived; `u64::MAX` if it never did.
    pub complete: u64,
    pub call: Call,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Call {
    /// Put, Delete or Apply: keys set (`Some`) or deleted (`None`), each
    /// compare-and-set's expected revision (0: the key must not exist).
    Write {
        namespace: String,
        request_id: String,
        changes: Vec<(String, Option<String>)>,
        expected: Vec<(String, u64)>,
    },
    /// A current Get.
    Get { namespace: String, key: String, min_revision: Option<u64> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// A write acknowledged at `revision`.
    Written { revision: u64 },
    /// A Get's answer: the value (`None`: not found), the key's
    /// `mod_revision` (0 when not found) and the answer's revision.
    Read { value: Option<String>, mod_revision: u64, revision: u64 },
    /// A definite failure: the call changed nothing. `conflict`: a
    /// compare-and-set refused because a key was at another revision (the
    /// REVISION_CONFLICT refusal; not contention, which is also ABORTED).
    Failed { conflict: bool },
    /// A timeout or UNAVAILABLE: it may or may not have taken effect.
    Unknown,
}

/// One watch stream as its client saw it, across its resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchLog {
    pub client: u32,
    pub namespace: String,
    pub prefix: String,
    /// Deliveries begin after this revision.
    pub after: u64,
    /// The revisions of the change sets delivered, in the order they came.
    pub delivered: Vec<u64>,
    /// The stream had reached this revision when the log ended (a progress
    /// notice): everything up to it must have been delivered.
    pub reached: u64,
}

/// A change set in the stream after the run (read back from JetStream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub revision: u64,
    pub namespace: String,
    pub request_id: String,
    pub changes: Vec<(String, Option<String>)>,
}

/// A whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub ops: Vec<Op>,
    pub watches: Vec<WatchLog>,
    pub stream: Vec<Committed>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum Line {
    Op(Op),
    Watch(WatchLog),
    Committed(Committed),
}

/// Writes a history as JSON lines (one record per line).
pub fn write_jsonl(history: &History, out: &mut impl Write) -> std::io::Result<()> {
    let lines = history
        .ops
        .iter()
        .cloned()
        .map(Line::Op)
        .chain(history.watches.iter().cloned().map(Line::Watch))
        .chain(history.stream.iter().cloned().map(Line::Committed));
    for line in lines {
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Reads a history written by [`write_jsonl`].
pub fn read_jsonl(input: impl BufRead) -> std::io::Result<History> {
    let mut history = History::default();
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line)? {
            Line::Op(op) => history.ops.push(op),
            Line::Watch(w) => history.watches.push(w),
            Line::Committed(c) => history.stream.push(c),
        }
    }
    Ok(history)
}
