//! Origins between the domain and the wire (events, History, Watch).

use veltrix_domain::{Namespace, Origin, Revision, event::UnknownOrigin};

use crate::v1;

/// The wire origin of a change set of `namespace`.
pub fn origin_to_wire(origin: &Origin, namespace: &Namespace) -> v1::Origin {
    match origin {
        Origin::Write => v1::Origin { kind: v1::origin::Kind::Write as i32, ..Default::default() },
        Origin::Rollback { to_revision } => v1::Origin {
            kind: v1::origin::Kind::Rollback as i32,
            source_namespace: namespace.to_string(),
            source_revision: to_revision.get(),
        },
        Origin::Promotion { source_namespace, source_revision } => v1::Origin {
            kind: v1::origin::Kind::Promotion as i32,
            source_namespace: source_namespace.to_string(),
            source_revision: source_revision.get(),
        },
        Origin::Schema => v1::Origin { kind: v1::origin::Kind::Schema as i32, ..Default::default() },
        Origin::NamespaceDelete => v1::Origin { kind: v1::origin::Kind::NamespaceDelete as i32, ..Default::default() },
        Origin::Rollout => v1::Origin { kind: v1::origin::Kind::Rollout as i32, ..Default::default() },
        Origin::Other(unknown) => v1::Origin {
            kind: unknown.kind,
            source_namespace: unknown.source_namespace.clone(),
            source_revision: unknown.source_revision.get(),
        },
    }
}

/// The domain origin of a stored one; none (events from before origins) is
/// a write, and a kind this version does not know is kept as it is.
pub fn origin_from_wire(origin: Option<v1::Origin>) -> Origin {
    let Some(o) = origin else { return Origin::Write };
    match v1::origin::Kind::try_from(o.kind) {
        Ok(v1::origin::Kind::Unspecified | v1::origin::Kind::Write) => Origin::Write,
        Ok(v1::origin::Kind::Rollback) => Origin::Rollback { to_revision: Revision::new(o.source_revision) },
        Ok(v1::origin::Kind::Promotion) => match Namespace::parse(&o.source_namespace) {
            Ok(source) => Origin::Promotion {
                source_namespace: Box::new(source),
                source_revision: Revision::new(o.source_revision),
            },
            Err(_) => unknown(o),
        },
        Ok(v1::origin::Kind::Schema) => Origin::Schema,
        Ok(v1::origin::Kind::NamespaceDelete) => Origin::NamespaceDelete,
        Ok(v1::origin::Kind::Rollout) => Origin::Rollout,
        Err(_) => unknown(o),
    }
}

fn unknown(o: v1::Origin) -> Origin {
    Origin::Other(Box::new(UnknownOrigin {
        kind: o.kind,
        source_namespace: o.source_namespace,
        source_revision: Revision::new(o.source_revision),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn origins_round_trip_and_unknown_kinds_are_kept() {
        let ns = Namespace::parse("app").unwrap();
        let staging = Box::new(Namespace::parse("payments/staging").unwrap());
        for origin in [
            Origin::Write,
            Origin::Rollback { to_revision: Revision::new(41) },
            Origin::Promotion { source_namespace: staging, source_revision: Revision::new(88) },
            Origin::Schema,
            Origin::NamespaceDelete,
            Origin::Rollout,
        ] {
            assert_eq!(origin_from_wire(Some(origin_to_wire(&origin, &ns))), origin);
        }
        assert_eq!(origin_from_wire(None), Origin::Write, "events from before origins");
        let future = v1::Origin { kind: 99, source_namespace: "x".into(), source_revision: 3 };
        let kept = origin_from_wire(Some(future.clone()));
        assert_eq!(origin_to_wire(&kept, &ns), future);
    }
}
