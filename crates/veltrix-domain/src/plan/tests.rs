#![allow(clippy::unwrap_used)]
use std::time::SystemTime;

use super::*;
use crate::{Actor, ChangeSetCommitted, ContentType, KeyChange, KeyOp, Reason, RequestId, TraceContext, event::Origin};

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
        schema_changes: Vec::new(),
        rollout: None,
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
        keys: Vec::new(),
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
    // Named keys: only those, whether added, changed or (with delete_missing) removed.
    promote.keys = vec!["db/old".into(), "db/url".into()];
    let (plan, _) = plan_promote(&promote, &source, &target);
    let kinds: Vec<_> = plan.changes.iter().map(|c| (c.key.as_str(), c.kind)).collect();
    assert_eq!(kinds, [("db/old", DiffKind::Removed), ("db/url", DiffKind::Changed)]);
    let whole = Promote { keys: Vec::new(), ..promote.clone() };
    assert_ne!(promote.request(), whole.request(), "the named keys are part of the request");
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
