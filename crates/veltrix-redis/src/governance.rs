//! What the read model knows beyond key values: the schemas in force in a
//! namespace at a revision, and the change set that last set each key
//! (Blame).

use std::collections::BTreeMap;

use prost::Message;
use redis::FromRedisValue;
use veltrix_domain::{Namespace, Revision};
use veltrix_proto::v1::{ChangeRecord, KeyHistoryEntry, SchemaHistoryEntry, schema_change::Op};

use crate::{Error, Generation, ReadModel};

/// A schema in force: its pattern, document and the revision that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRow {
    pub pattern: String,
    pub schema: String,
    pub revision: Revision,
}

impl ReadModel {
    /// The schemas in force right after `at` (else now), in pattern order.
    /// Schema changes are never trimmed, so any revision answers.
    pub async fn schemas(
        &self,
        generation: Generation,
        namespace: &Namespace,
        at: Option<Revision>,
    ) -> Result<Vec<SchemaRow>, Error> {
        let ns = self.keys.namespace(generation, namespace);
        let max = at.map_or_else(|| "+inf".to_owned(), |r| r.to_string());
        let mut p = redis::pipe();
        p.cmd("ZRANGEBYSCORE").arg(ns.schemas()).arg("-inf").arg(max);
        let values = self.check_complete(generation, &mut p).await?;
        let (members,): (Vec<Vec<u8>>,) = FromRedisValue::from_redis_value(values)?;
        let mut entries =
            members.iter().map(|m| Ok(SchemaHistoryEntry::decode(m.as_slice())?)).collect::<Result<Vec<_>, Error>>()?;
        entries.sort_by_key(|e| e.revision);
        let mut in_force = BTreeMap::new();
        for entry in entries {
            let change = entry.change.ok_or_else(|| Error::Corrupt("schema entry without its change".into()))?;
            match Op::try_from(change.op) {
                Ok(Op::Set) => {
                    let row = SchemaRow {
                        pattern: change.key_pattern.clone(),
                        schema: change.schema,
                        revision: Revision::new(entry.revision),
                    };
                    in_force.insert(change.key_pattern, row);
                }
                Ok(Op::Delete) => {
                    in_force.remove(&change.key_pattern);
                }
                _ => return Err(Error::Corrupt(format!("schema change op {}", change.op))),
            }
        }
        Ok(in_force.into_values().collect())
    }

    /// The change set that set each key at its `mod_revision`, from the
    /// key's history (which always keeps the entry of a key's latest change
    /// at or after the retention floor), in the order asked.
    pub async fn last_changes(
        &self,
        generation: Generation,
        namespace: &Namespace,
        keys: &[(&str, Revision)],
    ) -> Result<Vec<ChangeRecord>, Error> {
        let ns = self.keys.namespace(generation, namespace);
        let mut p = redis::pipe();
        for (key, revision) in keys {
            let r = revision.get();
            p.cmd("ZRANGEBYSCORE").arg(ns.history(key)).arg(r).arg(r).arg("LIMIT").arg(0).arg(1);
        }
        let values = self.check_complete(generation, &mut p).await?;
        let entries: Vec<Vec<Vec<u8>>> = FromRedisValue::from_redis_value(values)?;
        keys.iter()
            .zip(entries)
            .map(|((key, revision), found)| {
                let missing = || Error::Corrupt(format!("no history entry of '{key}' at {revision}"));
                let bytes = found.first().ok_or_else(missing)?;
                KeyHistoryEntry::decode(bytes.as_slice())?.record.ok_or_else(missing)
            })
            .collect()
    }

    /// The newest change set that touched `prefix` (a key under it, or the
    /// namespace's schemas), looking back over at most `scan` change sets
    /// from the newest; `None` when none of those did. A rollout's
    /// transition changes no key: it touches nothing.
    pub async fn newest_touching(
        &self,
        generation: Generation,
        namespace: &Namespace,
        prefix: &str,
        scan: usize,
    ) -> Result<Option<ChangeRecord>, Error> {
        const BATCH: usize = 200;
        let log = self.keys.namespace(generation, namespace).log();
        let mut offset = 0usize;
        while offset < scan {
            let count = BATCH.min(scan.saturating_sub(offset));
            let mut p = redis::pipe();
            p.cmd("ZREVRANGEBYSCORE").arg(&log).arg("+inf").arg("-inf").arg("LIMIT").arg(offset).arg(count);
            let values = self.check_complete(generation, &mut p).await?;
            let (members,): (Vec<Vec<u8>>,) = FromRedisValue::from_redis_value(values)?;
            for m in &members {
                let record = ChangeRecord::decode(m.as_slice())?;
                let touches =
                    !record.schema_changes.is_empty() || record.changes.iter().any(|c| c.key.starts_with(prefix));
                if touches {
                    return Ok(Some(record));
                }
            }
            if members.len() < count {
                return Ok(None);
            }
            offset = offset.saturating_add(count);
        }
        Ok(None)
    }
}
