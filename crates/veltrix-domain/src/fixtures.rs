//! Committed events made from compact random commands, for property tests
//! of what reads the stream (the read model, the read cache): decided by
//! the real aggregate, rejected commands dropped, like the service does.

use std::time::{Duration, SystemTime};

use crate::{
    Actor, ChangeSetCommand, ChangeSetCommitted, CommandMeta, Decision, Key, KeyCommand, Limits, Namespace,
    NamespaceState, Operation, Reason, RequestId, Revision, TraceContext, decide,
};

/// What a command does to one key: set a value of a few copies of the byte
/// (its length is the byte modulo 8), or delete it.
#[derive(Debug, Clone)]
pub enum KeyOp {
    Set(u8),
    Delete,
}

/// One command: a namespace (its index modulo `namespaces.len()`) and its
/// key changes (`k/N`; a key named twice counts once).
pub type Command = (u8, Vec<(u8, KeyOp)>);

/// The change sets the commands commit, numbered 1, 2, ... in order.
pub fn committed(namespaces: &[Namespace], cmds: &[Command]) -> Vec<(Revision, ChangeSetCommitted)> {
    let mut states: Vec<NamespaceState> =
        namespaces.iter().map(|_| NamespaceState::new(Duration::from_secs(3600))).collect();
    let mut out = Vec::new();
    for (i, (ns, changes)) in cmds.iter().enumerate() {
        let n = usize::from(*ns) % namespaces.len().max(1);
        let (Some(namespace), Some(command)) = (namespaces.get(n), command(namespaces, n, i, changes)) else {
            continue;
        };
        let Some(state) = states.get_mut(n) else { continue };
        if let Ok(Decision::Append(event)) = decide(state, &command) {
            let revision = Revision::new(out.len() as u64 + 1);
            state.evolve(revision, &event);
            debug_assert_eq!(&event.namespace, namespace);
            out.push((revision, *event));
        }
    }
    out
}

fn command(namespaces: &[Namespace], n: usize, i: usize, changes: &[(u8, KeyOp)]) -> Option<ChangeSetCommand> {
    let limits = Limits::default();
    let mut seen = std::collections::HashSet::new();
    let changes = changes
        .iter()
        .filter(|(k, _)| seen.insert(*k))
        .map(|(k, op)| {
            let op = match op {
                KeyOp::Set(v) => Operation::set(vec![*v; usize::from(*v % 8)], "text/plain", &limits).ok()?,
                KeyOp::Delete => Operation::Delete,
            };
            Some(KeyCommand { key: Key::parse(&format!("k/{k}")).ok()?, expected: None, op })
        })
        .collect::<Option<Vec<_>>>()?;
    let meta = CommandMeta {
        actor: Actor::parse(&format!("actor-{i}")).ok()?,
        reason: Reason::parse("prop").ok()?,
        request_id: RequestId::default(),
        trace: TraceContext::default(),
        time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000u64.saturating_add(i as u64)),
    };
    ChangeSetCommand::new(namespaces.get(n)?.clone(), changes, meta, &limits).ok()
}
