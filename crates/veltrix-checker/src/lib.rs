//! The history checker: what many clients did (each operation with its
//! invocation and completion time, its arguments and its outcome) judged
//! against what the event stream committed, after the faults stopped.
//!
//! The stream is the linearization of every write: JetStream assigns each
//! change set its revision, once. So an indeterminate write (a timeout, an
//! UNAVAILABLE) is resolved by its request id: it took effect exactly when
//! the stream holds it. What is left to decide is whether the stream's
//! order, and every answer the clients got, is legal:
//!
//! - [`check_writes`]: every acknowledged write is in the stream once, at
//!   the revision it was answered with; a definite failure is not; no
//!   request commits twice; per key the stream order respects real time
//!   (a write that completed before another began has the lower revision)
//!   and every compare-and-set held when it committed, and every refused
//!   one was refused while the key really was elsewhere.
//! - [`check_reads`]: a read answers exactly the stream's state of its key
//!   as of the revision it reports, never below its `min_revision` (a
//!   client that carries its last revision never reads back in time), and
//!   never as of a revision that holds a write first asked for after the
//!   read ended.
//!
//! A request is all the operations that carry its request id (retries);
//! it took effect at the latest when one of them was acknowledged: a
//! timeout or UNAVAILABLE may still land later.
//! - [`check_watches`]: each watch stream, stitched across its resumes, is
//!   exactly the committed change sets touching its prefix: no gap, no
//!   duplicate, no reordering.
//!
//! Each [`Violation`] names the operations it involves, which with the
//! stream entries they refer to are the minimal failing sub-history.
//! Histories are JSON lines ([`write_jsonl`], [`read_jsonl`]).

mod checks;
mod history;

pub use checks::{Violation, check, check_reads, check_watches, check_writes};
pub use history::{Call, Committed, History, Op, Outcome, WatchLog, read_jsonl, write_jsonl};
