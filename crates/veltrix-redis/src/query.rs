//! Reads. Each read of current state is one script in the namespace's slot
//! (atomic), pipelined with a check that the generation is complete; reads
//! at a revision use history entries, which never change once written.

use std::sync::LazyLock;

use prost::Message;
use redis::{ErrorKind, FromRedisValue, Pipeline, Script, ScriptInvocation};
use veltrix_domain::{Namespace, Revision};
use veltrix_proto::v1::{ChangeRecord, KeyHistoryEntry, KeyValue};

use crate::{Error, Generation, ReadModel, keys::NsKeys};

/// KEYS: kv, meta. ARGV: key. Returns {kv or nil, namespace revision}.
static GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[2], 'rev') or '0'}
"#,
    )
});

/// KEYS: live, kv, meta. ARGV: lex start, lex end, limit. Returns
/// {namespace revision, kv...}.
static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local keys = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {redis.call('HGET', KEYS[3], 'rev') or '0'}
if #keys > 0 then
  local vals = redis.call('HMGET', KEYS[2], unpack(keys))
  for i = 1, #keys do out[i + 1] = vals[i] end
end
return out
"#,
    )
});

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub kvs: Vec<KeyValue>,
    /// More keys follow the last one.
    pub more: bool,
    /// The namespace's latest applied revision when the page was read
    /// (current listings only; 0 for point-in-time).
    pub namespace_revision: Revision,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRow {
    pub name: String,
    pub revision: Revision,
    pub key_count: u64,
    /// Its latest change set is a DeleteNamespace.
    pub deleted: bool,
}

/// Lexicographic range of keys starting with `prefix`, after `after`.
/// Keys are printable ASCII (< 0x7f), so `prefix + 0x7f` bounds them.
fn lex_range(prefix: &str, after: Option<&str>) -> (String, String) {
    let start = match after {
        Some(a) => format!("({a}"),
        None if prefix.is_empty() => "-".to_owned(),
        None => format!("[{prefix}"),
    };
    let end = if prefix.is_empty() { "+".to_owned() } else { format!("[{prefix}\u{7f}") };
    (start, end)
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, Error> {
    Ok(M::decode(bytes)?)
}

fn parse_revision(s: &str) -> Result<Revision, Error> {
    s.parse().map(Revision::new).map_err(|_| Error::Corrupt(format!("revision {s:?}")))
}

impl ReadModel {
    /// Runs a read script and checks, after it, that the generation is
    /// complete: a read that found data in a complete generation is a read
    /// of a complete model.
    async fn checked<T: FromRedisValue>(
        &self,
        generation: Generation,
        invocation: &ScriptInvocation<'_>,
        script: &Script,
    ) -> Result<T, Error> {
        let complete = self.keys.complete(generation);
        let mut conn = self.conn();
        if self.is_cluster() {
            // The script and the marker are in different slots.
            let value: T = invocation.invoke_async(&mut conn).await?;
            self.then_check_complete(generation, &Pipeline::new()).await?;
            return Ok(value);
        }
        let run = |load: bool| {
            let mut p = Pipeline::new();
            if load {
                p.load_script(script).ignore();
            }
            p.invoke_script(invocation).get(&complete);
            p
        };
        let (value, complete): (T, Option<String>) = match run(false).query_async(&mut conn).await {
            Err(e) if e.kind() == ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                run(true).query_async(&mut conn).await?
            }
            other => other?,
        };
        if complete.is_none() {
            return Err(Error::Incomplete);
        }
        Ok(value)
    }

    pub(crate) async fn check_complete(&self, generation: Generation, p: &mut Pipeline) -> Result<redis::Value, Error> {
        if self.is_cluster() {
            return Ok(redis::Value::Array(self.then_check_complete(generation, p).await?));
        }
        p.get(self.keys.complete(generation));
        let mut values: Vec<redis::Value> = p.query_async(&mut self.conn()).await?;
        let complete = values.pop();
        if matches!(complete, None | Some(redis::Value::Nil)) {
            return Err(Error::Incomplete);
        }
        Ok(redis::Value::Array(values))
    }

    /// The oldest revision point-in-time reads can answer in a namespace.
    async fn floor(&self, ns: &NsKeys) -> Result<Revision, Error> {
        let floor: Option<String> =
            redis::cmd("HGET").arg(ns.meta()).arg("floor").query_async(&mut self.conn()).await?;
        floor.map_or(Ok(Revision::ZERO), |f| parse_revision(&f))
    }

    async fn check_floor(&self, ns: &NsKeys, at: Revision) -> Result<(), Error> {
        let floor = self.floor(ns).await?;
        if floor > 0 && at < floor {
            return Err(Error::Compacted { requested: at, oldest: floor });
        }
        Ok(())
    }

    /// The key's current value and the namespace's latest revision.
    pub async fn get(
        &self,
        generation: Generation,
        namespace: &Namespace,
        key: &str,
    ) -> Result<(Option<KeyValue>, Revision), Error> {
        let ns = self.keys.namespace(generation, namespace);
        let mut invocation = GET.prepare_invoke();
        invocation.key(ns.kv()).key(ns.meta()).arg(key);
        let (kv, rev): (Option<Vec<u8>>, String) = self.checked(generation, &invocation, &GET).await?;
        Ok((kv.map(|b| decode(&b)).transpose()?, parse_revision(&rev)?))
    }

    /// The key as it was right after revision `at`.
    pub async fn get_at(
        &self,
        generation: Generation,
        namespace: &Namespace,
        key: &str,
        at: Revision,
    ) -> Result<Option<KeyValue>, Error> {
        let ns = self.keys.namespace(generation, namespace);
        self.check_floor(&ns, at).await?;
        let mut p = redis::pipe();
        p.cmd("ZREVRANGEBYSCORE").arg(ns.history(key)).arg(at.get()).arg("-inf").arg("LIMIT").arg(0).arg(1);
        let values = self.check_complete(generation, &mut p).await?;
        let (entries,): (Vec<Vec<u8>>,) = FromRedisValue::from_redis_value(values)?;
        match entries.first() {
            Some(bytes) => Ok(decode::<KeyHistoryEntry>(bytes)?.kv),
            None => Ok(None),
        }
    }

    /// Live keys with `prefix` after `after`, at most `limit`.
    pub async fn list(
        &self,
        generation: Generation,
        namespace: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, Error> {
        let ns = self.keys.namespace(generation, namespace);
        let (start, end) = lex_range(prefix, after);
        let mut invocation = LIST.prepare_invoke();
        invocation.key(ns.live()).key(ns.kv()).key(ns.meta()).arg(start).arg(end).arg(limit + 1);
        let mut out: Vec<Option<Vec<u8>>> = self.checked(generation, &invocation, &LIST).await?;
        if out.is_empty() {
            return Err(Error::Corrupt("empty list reply".into()));
        }
        let rev = out.remove(0).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        let more = out.len() > limit;
        out.truncate(limit);
        let kvs = out.into_iter().flatten().map(|b| decode(&b)).collect::<Result<Vec<KeyValue>, _>>()?;
        Ok(ListPage { kvs, more, namespace_revision: parse_revision(&rev)? })
    }

    /// Keys with `prefix` after `after` as they were right after `at`.
    /// Walks every key that ever existed in key order, so deleted keys cost a
    /// lookup each; history entries are immutable, so no atomicity is needed.
    pub async fn list_at(
        &self,
        generation: Generation,
        namespace: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        at: Revision,
    ) -> Result<ListPage, Error> {
        let ns = self.keys.namespace(generation, namespace);
        self.check_floor(&ns, at).await?;
        let (mut start, end) = lex_range(prefix, after);
        let batch = (limit + 1).clamp(16, 1000);
        let mut kvs = Vec::new();
        loop {
            let candidates: Vec<String> = redis::cmd("ZRANGEBYLEX")
                .arg(ns.all())
                .arg(&start)
                .arg(&end)
                .arg("LIMIT")
                .arg(0)
                .arg(batch)
                .query_async(&mut self.conn())
                .await?;
            let mut p = redis::pipe();
            for key in &candidates {
                p.cmd("ZREVRANGEBYSCORE").arg(ns.history(key)).arg(at.get()).arg("-inf").arg("LIMIT").arg(0).arg(1);
            }
            let values = self.check_complete(generation, &mut p).await?;
            let entries: Vec<Vec<Vec<u8>>> = FromRedisValue::from_redis_value(values)?;
            for entry in entries.iter().filter_map(|e| e.first()) {
                if let Some(kv) = decode::<KeyHistoryEntry>(entry)?.kv {
                    if kvs.len() == limit {
                        return Ok(ListPage { kvs, more: true, namespace_revision: Revision::ZERO });
                    }
                    kvs.push(kv);
                }
            }
            match candidates.last() {
                Some(last) if candidates.len() == batch => start = format!("({last}"),
                _ => return Ok(ListPage { kvs, more: false, namespace_revision: Revision::ZERO }),
            }
        }
    }

    /// Change records of a namespace (or of one key) with revisions in
    /// `from..=to`, at most `limit`; and whether more follow.
    pub async fn history(
        &self,
        generation: Generation,
        namespace: &Namespace,
        key: Option<&str>,
        from: Revision,
        to: Option<Revision>,
        limit: usize,
    ) -> Result<(Vec<ChangeRecord>, bool), Error> {
        let ns = self.keys.namespace(generation, namespace);
        self.check_floor(&ns, from).await?;
        let zset = key.map_or_else(|| ns.log(), |k| ns.history(k));
        let mut p = redis::pipe();
        let max = to.map_or_else(|| "+inf".to_owned(), |t| t.to_string());
        p.cmd("ZRANGEBYSCORE").arg(zset).arg(from.get()).arg(max).arg("LIMIT").arg(0).arg(limit + 1);
        let values = self.check_complete(generation, &mut p).await?;
        let (members,): (Vec<Vec<u8>>,) = FromRedisValue::from_redis_value(values)?;
        let more = members.len() > limit;
        let records = members
            .iter()
            .take(limit)
            .map(|m| match key {
                None => decode::<ChangeRecord>(m),
                Some(_) => decode::<KeyHistoryEntry>(m)
                    .and_then(|e| e.record.ok_or_else(|| Error::Corrupt("history entry without record".into()))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((records, more))
    }

    /// The oldest revision History and point-in-time reads can answer in a
    /// namespace (0: nothing was compacted).
    pub async fn oldest_revision(&self, generation: Generation, namespace: &Namespace) -> Result<Revision, Error> {
        self.floor(&self.keys.namespace(generation, namespace)).await
    }

    /// Up to `limit` names of namespaces starting with `prefix` after
    /// `after`, in order, and whether more follow.
    pub async fn namespace_names(
        &self,
        generation: Generation,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, bool), Error> {
        let (start, end) = lex_range(prefix, after);
        let mut names: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg(self.keys.namespaces(generation))
            .arg(start)
            .arg(end)
            .arg("LIMIT")
            .arg(0)
            .arg(limit.saturating_add(1))
            .query_async(&mut self.conn())
            .await?;
        let more = names.len() > limit;
        names.truncate(limit);
        Ok((names, more))
    }

    /// The latest revision and live key count of each named namespace.
    pub async fn namespace_rows(&self, generation: Generation, names: Vec<String>) -> Result<Vec<NamespaceRow>, Error> {
        let row = |p: &mut Pipeline, name: &str| {
            let ns = self.keys.named(generation, name);
            p.hget(ns.meta(), "rev").zcard(ns.live()).hget(ns.meta(), "deleted");
        };
        let flat: Vec<redis::Value> = if self.is_cluster() {
            let pipes = names
                .iter()
                .map(|name| {
                    let mut p = Pipeline::new();
                    row(&mut p, name);
                    p
                })
                .collect();
            let rows = self.per_slot(pipes).await?;
            self.then_check_complete(generation, &Pipeline::new()).await?;
            rows.into_iter().flatten().collect()
        } else {
            let mut p = redis::pipe();
            for name in &names {
                row(&mut p, name);
            }
            let values = self.check_complete(generation, &mut p).await?;
            FromRedisValue::from_redis_value(values)?
        };
        let mut rows = Vec::with_capacity(names.len());
        for (name, row) in names.into_iter().zip(flat.chunks(3)) {
            let [revision, key_count, deleted] = row else {
                return Err(Error::Corrupt("a namespace row without its three fields".into()));
            };
            let revision: Option<String> = FromRedisValue::from_redis_value(revision.clone())?;
            let key_count: u64 = FromRedisValue::from_redis_value(key_count.clone())?;
            let deleted: Option<String> = FromRedisValue::from_redis_value(deleted.clone())?;
            let revision = revision.map_or(Ok(Revision::ZERO), |r| parse_revision(&r))?;
            let deleted = deleted.map(|d| parse_revision(&d)).transpose()?.is_some_and(|d| d == revision);
            rows.push(NamespaceRow { name, revision, key_count, deleted });
        }
        Ok(rows)
    }
}
