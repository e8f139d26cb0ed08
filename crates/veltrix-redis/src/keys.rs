//! The key layout. Every key of a namespace carries the namespace as its hash
//! tag: `{prefix}:g{gen}:{payments/prod}:kv`.

use veltrix_domain::Namespace;

use crate::Generation;

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// The keys of one namespace in one generation.
pub struct NsKeys {
    base: String,
}

impl Keys {
    /// `prefix` must not contain `{` or `}` (checked by the service config).
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.replace(['{', '}'], "") }
    }

    // The keys that describe generations share one hash tag (the prefix),
    // so the scripts that check the active generation touch one slot.

    /// A namespace's fleet ledger: a hash by client id. Outside generations,
    /// so a rebuild of the read model keeps it.
    pub fn ledger(&self, namespace: &Namespace) -> String {
        format!("{}:ledger:{{{}}}", self.prefix, namespace.as_str())
    }

    /// The generation reads should use.
    pub fn active(&self) -> String {
        format!("{{{}}}:active", self.prefix)
    }

    /// Set once a generation holds every event up to the stream's head as it
    /// was when the generation started.
    pub fn complete(&self, generation: Generation) -> String {
        format!("{{{}}}:g{generation}:complete", self.prefix)
    }

    /// The contiguous watermark: every change set up to it is applied.
    pub fn applied(&self, generation: Generation) -> String {
        format!("{{{}}}:g{generation}:applied", self.prefix)
    }

    pub fn namespaces(&self, generation: Generation) -> String {
        format!("{{{}}}:g{generation}:namespaces", self.prefix)
    }

    /// ZSET of the namespaces whose latest rollout may be live (the
    /// controller's round), scored by the revision of that rollout's last
    /// event; the controller removes one whose rollout is over.
    pub fn rollout_namespaces(&self, generation: Generation) -> String {
        format!("{{{}}}:g{generation}:rollouts-live", self.prefix)
    }

    /// Patterns of every key of a generation (for deleting an old one).
    pub fn generation_patterns(&self, generation: Generation) -> [String; 2] {
        [format!("{}:g{generation}:*", self.prefix), format!("{{{}}}:g{generation}:*", self.prefix)]
    }

    pub fn namespace(&self, generation: Generation, namespace: &Namespace) -> NsKeys {
        self.named(generation, namespace.as_str())
    }

    /// The keys of a namespace by its stored name (as the namespace set
    /// lists it).
    pub(crate) fn named(&self, generation: Generation, namespace: &str) -> NsKeys {
        NsKeys { base: format!("{}:g{generation}:{{{namespace}}}", self.prefix) }
    }
}

impl NsKeys {
    /// HASH key -> `KeyValue` of live keys.
    pub fn kv(&self) -> String {
        format!("{}:kv", self.base)
    }

    /// HASH key -> revision of the last change applied to it (also deletes).
    pub fn mods(&self) -> String {
        format!("{}:mods", self.base)
    }

    /// ZSET of live keys (score 0) for lexicographic ranges.
    pub fn live(&self) -> String {
        format!("{}:idx", self.base)
    }

    /// ZSET of every key that ever existed, for point-in-time listings.
    pub fn all(&self) -> String {
        format!("{}:all", self.base)
    }

    /// ZSET of `ChangeRecord`s scored by revision.
    pub fn log(&self) -> String {
        format!("{}:log", self.base)
    }

    /// HASH: `rev` (latest applied change set), `floor` (oldest revision
    /// point-in-time reads can answer; absent: all history is kept).
    pub fn meta(&self) -> String {
        format!("{}:meta", self.base)
    }

    /// ZSET of `SchemaHistoryEntry`s scored by revision: every schema
    /// change, never trimmed (ListSchemas at any revision folds them).
    pub fn schemas(&self) -> String {
        format!("{}:schemas", self.base)
    }

    /// ZSET of the stored events of the namespace's rollout transitions,
    /// scored by revision (never trimmed).
    pub fn rollouts(&self) -> String {
        format!("{}:rollouts", self.base)
    }

    /// ZSET of the key's `KeyHistoryEntry`s scored by revision.
    pub fn history(&self, key: &str) -> String {
        format!("{}:h:{key}", self.base)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn namespace_keys_share_one_hash_tag() {
        let k = Keys::new("vx{bad}");
        let ns = k.namespace(Generation::from_u64(3), &Namespace::parse("payments/prod").unwrap());
        for key in [ns.kv(), ns.live(), ns.log(), ns.meta(), ns.rollouts(), ns.history("db/url")] {
            assert!(key.starts_with("vxbad:g3:{payments/prod}:"), "{key}");
        }
    }
}
