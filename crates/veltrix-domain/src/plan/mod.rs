//! Differences between two states, and the change sets built on them: a
//! rollback (every key under a prefix exactly as it was right after an
//! earlier revision) and a promotion (a namespace's keys under a prefix made
//! equal to another's). Computed from the namespaces' events, so they reach
//! as far back as the event stream does.

use crate::{
    Key, KeyCommand, Limits, Namespace, Operation, Revision,
    projection::{ProjectedKey, Projection},
    store::StoredEvent,
    validation::ValidationError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffKind {
    /// Only in the later state.
    Added,
    /// Only in the earlier state.
    Removed,
    /// In both, with another value or content type.
    Changed,
}

/// One key that differs between two states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffEntry {
    pub key: Key,
    pub kind: DiffKind,
    pub before: Option<ProjectedKey>,
    pub after: Option<ProjectedKey>,
}

/// An entry of two key-ordered sequences walked together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paired<T> {
    /// Only in the first.
    Left(T),
    /// Only in the second.
    Right(T),
    Both(T, T),
}

/// Walks two sequences ordered by `key` together, key by key.
pub fn pair_by_key<T>(left: Vec<T>, right: Vec<T>, key: impl Fn(&T) -> &str) -> Vec<Paired<T>> {
    let (mut old, mut new) = (left.into_iter().peekable(), right.into_iter().peekable());
    let mut out = Vec::new();
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => return out,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(a), Some(b)) => key(a).cmp(key(b)),
        };
        let next = match order {
            std::cmp::Ordering::Less => old.next().map(Paired::Left),
            std::cmp::Ordering::Greater => new.next().map(Paired::Right),
            std::cmp::Ordering::Equal => old.next().zip(new.next()).map(|(a, b)| Paired::Both(a, b)),
        };
        match next {
            Some(pair) => out.push(pair),
            None => return out,
        }
    }
}

/// The keys under `prefix` that differ from `before` to `after` (both in
/// key order), in key order.
pub fn diff(before: &[(&Key, &ProjectedKey)], after: &[(&Key, &ProjectedKey)], prefix: &str) -> Vec<DiffEntry> {
    let under = |entries: &[(&Key, &ProjectedKey)]| -> Vec<(Key, ProjectedKey)> {
        entries
            .iter()
            .filter(|(k, _)| k.as_str().starts_with(prefix))
            .map(|(k, v)| ((*k).clone(), (*v).clone()))
            .collect()
    };
    pair_by_key(under(before), under(after), |(k, _)| k.as_str())
        .into_iter()
        .filter_map(|pair| match pair {
            Paired::Left((key, was)) => {
                Some(DiffEntry { key, kind: DiffKind::Removed, before: Some(was), after: None })
            }
            Paired::Right((key, is)) => Some(DiffEntry { key, kind: DiffKind::Added, before: None, after: Some(is) }),
            Paired::Both((key, was), (_, is)) => (was.value != is.value || was.content_type != is.content_type)
                .then_some(DiffEntry { key, kind: DiffKind::Changed, before: Some(was), after: Some(is) }),
        })
        .collect()
}

/// A validated Rollback request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    pub namespace: Namespace,
    /// At least 1.
    pub to_revision: Revision,
    pub prefix: String,
    /// The namespace's revision the caller expects (else ABORTED).
    pub expected: Option<Revision>,
    pub dry_run: bool,
    pub meta: crate::CommandMeta,
}

impl Rollback {
    /// What the request asks for, canonically: its digest tells a retry
    /// from a reused request id whatever changes it computes.
    pub fn request(&self) -> Vec<u8> {
        let mut out = b"rollback".to_vec();
        out.extend_from_slice(&self.to_revision.get().to_be_bytes());
        out.extend_from_slice(&(self.prefix.len() as u64).to_be_bytes());
        out.extend_from_slice(self.prefix.as_bytes());
        out
    }
}

/// A validated Promote request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promote {
    pub source: Namespace,
    /// Absent: the source's latest revision.
    pub source_revision: Option<Revision>,
    pub target: Namespace,
    pub prefix: String,
    /// Also delete the target's keys under the prefix that the source lacks.
    pub delete_missing: bool,
    /// The target's revision the caller expects (else ABORTED).
    pub expected: Option<Revision>,
    pub dry_run: bool,
    pub meta: crate::CommandMeta,
}

impl Promote {
    /// What the request asks for, canonically (see [`Rollback::request`]).
    pub fn request(&self, source_revision: Revision) -> Vec<u8> {
        let mut out = b"promote".to_vec();
        for part in [self.source.as_str().as_bytes(), self.prefix.as_bytes()] {
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(&source_revision.get().to_be_bytes());
        out.push(u8::from(self.delete_missing));
        out
    }
}

/// The promotion of `source`'s keys under `prefix` (as of `source_revision`,
/// else its latest) into `target`; answers the plan and the source revision
/// it was computed from.
pub fn plan_promote(
    promote: &Promote,
    source_events: &[StoredEvent],
    target_events: &[StoredEvent],
) -> (Plan, Revision) {
    let mut source = Projection::new();
    for stored in source_events.iter().filter(|s| s.event.namespace == promote.source) {
        if promote.source_revision.is_none_or(|at| stored.revision <= at) {
            source.apply(stored.revision, &stored.event);
        }
    }
    let mut target = Projection::new();
    for stored in target_events.iter().filter(|s| s.event.namespace == promote.target) {
        target.apply(stored.revision, &stored.event);
    }
    let mut changes = diff(&target.keys(&promote.target), &source.keys(&promote.source), &promote.prefix);
    if !promote.delete_missing {
        changes.retain(|c| c.kind != DiffKind::Removed);
    }
    let from = promote.source_revision.unwrap_or_else(|| source.revision(&promote.source));
    (Plan { at: target.revision(&promote.target), changes }, from)
}

/// What a computed change set would change, computed at the namespace's
/// revision `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub at: Revision,
    /// From the current state (`before`) to the state at the target (`after`).
    pub changes: Vec<DiffEntry>,
}

/// The rollback of `namespace`'s keys under `prefix` to right after
/// `to_revision`, from the namespace's events in revision order.
pub fn plan_rollback(namespace: &Namespace, events: &[StoredEvent], to_revision: Revision, prefix: &str) -> Plan {
    let (mut now, mut then) = (Projection::new(), Projection::new());
    for stored in events.iter().filter(|s| &s.event.namespace == namespace) {
        now.apply(stored.revision, &stored.event);
        if stored.revision <= to_revision {
            then.apply(stored.revision, &stored.event);
        }
    }
    let changes = diff(&now.keys(namespace), &then.keys(namespace), prefix);
    Plan { at: now.revision(namespace), changes }
}

impl Plan {
    /// The key commands that carry the plan out.
    pub fn commands(&self, limits: &Limits) -> Result<Vec<KeyCommand>, ValidationError> {
        self.changes
            .iter()
            .map(|c| {
                let op = match &c.after {
                    Some(k) => Operation::set(k.value.clone(), &k.content_type, limits)?,
                    None => Operation::Delete,
                };
                Ok(KeyCommand { key: c.key.clone(), expected: None, op })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::SystemTime;

    use super::*;
    use crate::{
        Actor, ChangeSetCommitted, ContentType, KeyChange, KeyOp, Reason, RequestId, TraceContext, event::Origin,
    };

    fn event(changes: &[(&str, Option<&str>)]) -> ChangeSetCommitted {
        ChangeSetCommitted {
            namespace: Namespace::parse("app").unwrap(),
            changes: changes
                .iter()
                .map(|(k, v)| KeyChange {
                    key: Key::parse(k).unwrap(),
                    op: match v {
                        Some(v) => KeyOp::Set {
                            value: v.as_bytes().to_vec(),
                            content_type: ContentType::parse("text/plain").unwrap(),
                        },
                        None => KeyOp::Delete,
                    },
                    previous_mod_revision: Revision::ZERO,
                    expected: None,
                    create_revision: Revision::ZERO,
                    version: 1,
                })
                .collect(),
            actor: Actor::anonymous(),
            reason: Reason::default(),
            request_id: RequestId::default(),
            request_digest: Vec::new(),
            time: SystemTime::UNIX_EPOCH,
            trace: TraceContext::default(),
            origin: Origin::Write,
        }
    }

    fn stored(events: Vec<ChangeSetCommitted>) -> Vec<StoredEvent> {
        events.into_iter().zip(1..).map(|(event, r)| StoredEvent { revision: Revision::new(r), event }).collect()
    }

    #[test]
    fn a_promotion_copies_the_source_under_its_prefix_and_deletes_only_when_asked() {
        let mut staging = event(&[("db/url", Some("staging")), ("db/pool", Some("9")), ("ui", Some("x"))]);
        staging.namespace = Namespace::parse("staging").unwrap();
        let prod = event(&[("db/url", Some("prod")), ("db/old", Some("1"))]);
        let (source, target) = (stored(vec![staging]), stored(vec![prod]));
        let meta = crate::CommandMeta {
            actor: Actor::anonymous(),
            reason: Reason::default(),
            request_id: RequestId::default(),
            trace: TraceContext::default(),
            time: SystemTime::UNIX_EPOCH,
        };
        let mut promote = Promote {
            source: Namespace::parse("staging").unwrap(),
            source_revision: None,
            target: Namespace::parse("app").unwrap(),
            prefix: "db/".into(),
            delete_missing: false,
            expected: None,
            dry_run: false,
            meta,
        };
        let (plan, from) = plan_promote(&promote, &source, &target);
        assert_eq!(from, 1);
        let kinds: Vec<_> = plan.changes.iter().map(|c| (c.key.as_str(), c.kind)).collect();
        assert_eq!(kinds, [("db/pool", DiffKind::Added), ("db/url", DiffKind::Changed)]);
        promote.delete_missing = true;
        let (plan, _) = plan_promote(&promote, &source, &target);
        assert!(plan.changes.iter().any(|c| c.key.as_str() == "db/old" && c.kind == DiffKind::Removed));
    }

    #[test]
    fn a_rollback_undoes_sets_deletes_and_creations_under_its_prefix() {
        let ns = Namespace::parse("app").unwrap();
        let events = stored(vec![
            event(&[("db/url", Some("a")), ("db/pool", Some("5")), ("ui/theme", Some("light"))]),
            event(&[("db/url", Some("b")), ("db/new", Some("x"))]),
            event(&[("db/pool", None), ("ui/theme", Some("dark"))]),
        ]);
        let plan = plan_rollback(&ns, &events, Revision::new(1), "db/");
        assert_eq!(plan.at, 3);
        let kinds: Vec<_> = plan.changes.iter().map(|c| (c.key.as_str(), c.kind)).collect();
        assert_eq!(
            kinds,
            [("db/new", DiffKind::Removed), ("db/pool", DiffKind::Added), ("db/url", DiffKind::Changed)],
            "ui/ is outside the prefix"
        );
        let commands = plan.commands(&Limits::default()).unwrap();
        assert_eq!(commands[0].op, Operation::Delete);
        assert!(matches!(&commands[2].op, Operation::Set { value, .. } if value == b"a"));
        // At the latest revision there is nothing to do.
        assert!(plan_rollback(&ns, &events, Revision::new(3), "").changes.is_empty());
    }

    proptest::proptest! {
        /// Any history, any target and prefix: carrying the plan out leaves
        /// the keys under the prefix as they were at the target, and the
        /// others as they are.
        #[test]
        fn a_rollback_restores_exactly_the_target_under_its_prefix(
            history in proptest::collection::vec(
                proptest::collection::vec((0u8..6, proptest::option::of(0u8..4)), 1..4),
                1..20,
            ),
            pick in 0usize..20,
            prefixed in proptest::bool::ANY,
        ) {
            let ns = Namespace::parse("app").unwrap();
            let names = ["a/1", "a/2", "a/3", "b/1", "b/2", "c"];
            let events = stored(history.iter().map(|changes| {
                let mut seen = std::collections::HashSet::new();
                let changes: Vec<(&str, Option<String>)> = changes
                    .iter()
                    .filter(|(k, _)| seen.insert(*k))
                    .map(|(k, v)| (names[usize::from(*k)], v.map(|v| format!("v{v}"))))
                    .collect();
                let refs: Vec<(&str, Option<&str>)> = changes.iter().map(|(k, v)| (*k, v.as_deref())).collect();
                event(&refs)
            }).collect());
            let to = Revision::new((pick % events.len()) as u64 + 1);
            let prefix = if prefixed { "a/" } else { "" };
            let plan = plan_rollback(&ns, &events, to, prefix);
            let (mut now, mut then) = (Projection::new(), Projection::new());
            for e in &events {
                now.apply(e.revision, &e.event);
                if e.revision <= to {
                    then.apply(e.revision, &e.event);
                }
            }
            let before = now.clone();
            let commands = plan.commands(&Limits::default()).unwrap();
            let mut rollback = event(&[]);
            rollback.changes = commands
                .into_iter()
                .map(|c| KeyChange {
                    key: c.key,
                    op: match c.op {
                        Operation::Set { value, content_type } => KeyOp::Set { value, content_type },
                        Operation::Delete => KeyOp::Delete,
                    },
                    previous_mod_revision: Revision::ZERO,
                    expected: None,
                    create_revision: Revision::ZERO,
                    version: 1,
                })
                .collect();
            now.apply(plan.at + 1, &rollback);
            let view = |p: &Projection, under: bool| -> Vec<(String, Vec<u8>, String)> {
                p.keys(&ns)
                    .into_iter()
                    .filter(|(k, _)| k.as_str().starts_with(prefix) == under)
                    .map(|(k, v)| (k.to_string(), v.value.clone(), v.content_type.clone()))
                    .collect()
            };
            proptest::prop_assert_eq!(view(&now, true), view(&then, true));
            proptest::prop_assert_eq!(view(&now, false), view(&before, false));
        }
    }
}
