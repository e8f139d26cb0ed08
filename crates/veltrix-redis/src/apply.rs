//! The projection: one change set, one script, one namespace slot.

use std::sync::LazyLock;

use prost::Message;
use redis::Script;
use veltrix_domain::{ChangeSetCommitted, KeyOp, Origin, Revision};
use veltrix_proto::convert::{
    encode_event,
    read::{change_record, key_history_entry, key_value_after, schema_history_entry},
};

use crate::{Error, Generation, ReadModel};

/// KEYS: kv, mods, live, all, log, meta, schemas, rollouts, then one
/// history key per change. ARGV: revision, change record, keep, n, deletes
/// the namespace (1|0), m, then per change: key, op (s|d), key value (empty
/// for a delete), history entry; then m schema history entries; then the
/// stored event when it is a rollout's transition (else empty).
///
/// Returns the namespace's latest applied revision before this change set
/// (`meta.rev`), by which the projector sees a namespace that lost change
/// sets it had applied (a failover) before a newer one hides the gap.
///
/// Per key the change is applied only if it is newer than the last applied
/// one (`mods`), so replays and out-of-order deliveries change nothing; the
/// sorted sets are keyed by deterministic members, so re-adding is a no-op.
/// Revisions stay strings: Lua numbers would print large ones in exponent form.
static APPLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local rev = ARGV[1]
local nrev = tonumber(rev)
local keep = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local m = tonumber(ARGV[6])
local before = redis.call('HGET', KEYS[6], 'rev') or '0'
redis.call('ZADD', KEYS[5], rev, ARGV[2])
for j = 1, m do
  redis.call('ZADD', KEYS[7], rev, ARGV[6 + n * 4 + j])
end
local rollout = ARGV[7 + n * 4 + m]
if rollout ~= '' then
  redis.call('ZADD', KEYS[8], rev, rollout)
end
if ARGV[5] == '1' then
  local deleted = tonumber(redis.call('HGET', KEYS[6], 'deleted') or '0')
  if nrev > deleted then
    redis.call('HSET', KEYS[6], 'deleted', rev)
  end
end
local floor = redis.call('HGET', KEYS[6], 'floor') or '0'
if keep > 0 then
  local size = redis.call('ZCARD', KEYS[5])
  if size > keep then
    redis.call('ZREMRANGEBYRANK', KEYS[5], 0, size - keep - 1)
    local first = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
    if tonumber(first[2]) > tonumber(floor) then
      floor = first[2]
      redis.call('HSET', KEYS[6], 'floor', floor)
    end
  end
end
for i = 0, n - 1 do
  local a = 7 + i * 4
  local key, op, kv, hist = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local hkey = KEYS[9 + i]
  redis.call('ZADD', hkey, rev, hist)
  redis.call('ZADD', KEYS[4], 0, key)
  local cur = tonumber(redis.call('HGET', KEYS[2], key) or '0')
  if nrev > cur then
    redis.call('HSET', KEYS[2], key, rev)
    if op == 's' then
      redis.call('HSET', KEYS[1], key, kv)
      redis.call('ZADD', KEYS[3], 0, key)
    else
      redis.call('HDEL', KEYS[1], key)
      redis.call('ZREM', KEYS[3], key)
    end
  end
  if tonumber(floor) > 0 then
    local below = redis.call('ZREVRANGEBYSCORE', hkey, '(' .. floor, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
    if #below > 0 then
      redis.call('ZREMRANGEBYSCORE', hkey, '-inf', '(' .. below[2])
    end
  end
end
local nsrev = tonumber(redis.call('HGET', KEYS[6], 'rev') or '0')
if nrev > nsrev then
  redis.call('HSET', KEYS[6], 'rev', rev)
end
return before
"#,
    )
});

/// Raises a generation's watermark, never lowers it, and only while the
/// generation is the active one: a projector that has not yet noticed a
/// flush or a switch must not write progress into a generation that is gone.
/// KEYS: active, watermark. ARGV: generation, revision. Returns the stored
/// watermark, or -1 when the generation is not active.
static RAISE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[2]) > cur then
  redis.call('SET', KEYS[2], ARGV[2])
end
return 1
"#,
    )
});

/// How the projection treats history.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Change sets of history kept per namespace; 0 keeps all. Point-in-time
    /// reads and History before the oldest kept one are OUT_OF_RANGE.
    pub history_keep: u64,
}

impl ReadModel {
    /// Applies one committed change set to `generation`. Idempotent.
    pub async fn apply(
        &self,
        generation: Generation,
        revision: Revision,
        event: &ChangeSetCommitted,
        options: ApplyOptions,
    ) -> Result<(), Error> {
        self.apply_batch(generation, &[(revision, event)], options).await.map(|_| ())
    }

    /// Applies several committed change sets in one round trip (one
    /// pipeline, executed in order). Each is still one atomic script in its
    /// namespace's slot, and applying is idempotent and order-independent,
    /// so a batch cut short by a failure is simply applied again. Answers,
    /// per change set, its namespace's latest applied revision before it.
    pub async fn apply_batch(
        &self,
        generation: Generation,
        events: &[(Revision, &ChangeSetCommitted)],
        options: ApplyOptions,
    ) -> Result<Vec<Revision>, Error> {
        let invocations: Vec<_> =
            events.iter().map(|(revision, event)| self.invocation(generation, *revision, event, options)).collect();
        // The namespace index is another slot; adding first means a listed
        // namespace may briefly show revision 0, never that one is missing.
        let index = self.index_commands(generation, events);
        if self.is_cluster() {
            return self.apply_per_slot(generation, index, events, &invocations).await;
        }
        let mut conn = self.conn();
        let pipeline = |load: bool| {
            let mut p = index.clone();
            if load {
                p.load_script(&APPLY).ignore();
            }
            for invocation in &invocations {
                p.invoke_script(invocation);
            }
            self.wait_replicas(&mut p);
            p
        };
        let mut values: Vec<redis::Value> = match pipeline(false).query_async(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                pipeline(true).query_async(&mut conn).await?
            }
            other => other?,
        };
        if self.replica_acks > 0
            && let Some(acks) = values.pop()
        {
            self.replicated(&acks);
        }
        values.into_iter().map(before).collect()
    }

    /// The index updates of a batch, all in the prefix's slot: the
    /// namespaces it touches and, for rollout transitions, the controller's
    /// round (scored by the rollout's newest event, so the removal of a
    /// finished one cannot remove a newer start, added here before the
    /// event is applied).
    fn index_commands(&self, generation: Generation, events: &[(Revision, &ChangeSetCommitted)]) -> redis::Pipeline {
        let mut p = redis::pipe();
        let mut seen = std::collections::HashSet::new();
        for (revision, event) in events {
            if seen.insert(event.namespace.as_str()) {
                p.cmd("ZADD").arg(self.keys.namespaces(generation)).arg(0).arg(event.namespace.as_str()).ignore();
            }
            if event.rollout.is_some() {
                p.cmd("ZADD")
                    .arg(self.keys.rollout_namespaces(generation))
                    .arg("GT")
                    .arg(revision.get())
                    .arg(event.namespace.as_str())
                    .ignore();
            }
        }
        p
    }

    /// On a cluster: the index first, in its slot; then one pipeline per
    /// namespace (its slot), up to 64 at once, each routed by the client
    /// to its slot's master (MOVED and ASK handled there); then one WAIT
    /// per master that took writes.
    async fn apply_per_slot(
        &self,
        generation: Generation,
        index: redis::Pipeline,
        events: &[(Revision, &ChangeSetCommitted)],
        invocations: &[redis::ScriptInvocation<'static>],
    ) -> Result<Vec<Revision>, Error> {
        let _: Vec<redis::Value> = index.query_async(&mut self.conn()).await?;
        let mut written = vec![self.keys.namespaces(generation)];
        // Each namespace's scripts, with the positions of their change sets.
        let mut by_namespace: Vec<(&str, Vec<(usize, &redis::ScriptInvocation<'static>)>)> = Vec::new();
        for (i, ((_, event), invocation)) in events.iter().zip(invocations).enumerate() {
            match by_namespace.iter_mut().find(|(ns, _)| *ns == event.namespace.as_str()) {
                Some((_, list)) => list.push((i, invocation)),
                None => {
                    written.push(self.keys.namespace(generation, &event.namespace).kv());
                    by_namespace.push((event.namespace.as_str(), vec![(i, invocation)]));
                }
            }
        }
        let pipes = |load: bool| {
            by_namespace
                .iter()
                .map(|(_, list)| {
                    let mut p = redis::pipe();
                    if load {
                        p.load_script(&APPLY).ignore();
                    }
                    for (_, invocation) in list {
                        p.invoke_script(invocation);
                    }
                    p
                })
                .collect::<Vec<_>>()
        };
        let answers = match self.per_slot(pipes(false)).await {
            Err(Error::Redis(e)) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.per_slot(pipes(true)).await?
            }
            other => other?,
        };
        let mut befores = vec![Revision::ZERO; events.len()];
        for ((_, list), values) in by_namespace.iter().zip(answers) {
            if values.len() != list.len() {
                return Err(Error::Corrupt("a pipeline answered another number of scripts".into()));
            }
            for ((i, _), value) in list.iter().zip(values) {
                if let Some(slot) = befores.get_mut(*i) {
                    *slot = before(value)?;
                }
            }
        }
        self.wait_on_masters(&written).await?;
        Ok(befores)
    }

    fn invocation(
        &self,
        generation: Generation,
        revision: Revision,
        event: &ChangeSetCommitted,
        options: ApplyOptions,
    ) -> redis::ScriptInvocation<'static> {
        let ns = self.keys.namespace(generation, &event.namespace);
        let mut invocation = APPLY.prepare_invoke();
        invocation
            .key(ns.kv())
            .key(ns.mods())
            .key(ns.live())
            .key(ns.all())
            .key(ns.log())
            .key(ns.meta())
            .key(ns.schemas())
            .key(ns.rollouts())
            .arg(revision.get())
            .arg(change_record(revision, event).encode_to_vec())
            .arg(options.history_keep)
            .arg(event.changes.len())
            .arg(if event.origin == Origin::NamespaceDelete { "1" } else { "0" })
            .arg(event.schema_changes.len());
        for c in &event.changes {
            invocation.key(ns.history(c.key.as_str()));
            let (op, kv) = match c.op {
                KeyOp::Set { .. } => ("s", key_value_after(revision, event, c).map(|kv| kv.encode_to_vec())),
                KeyOp::Delete => ("d", None),
            };
            invocation
                .arg(c.key.as_str())
                .arg(op)
                .arg(kv.unwrap_or_default())
                .arg(key_history_entry(revision, event, c).encode_to_vec());
        }
        for c in &event.schema_changes {
            invocation.arg(schema_history_entry(revision, c).encode_to_vec());
        }
        // Rollouts are folded from their own events (the start carries the
        // target and strategy, which no change record holds); they are
        // never trimmed, like schema changes.
        invocation.arg(if event.rollout.is_some() { encode_event(event) } else { Vec::new() });
        invocation
    }

    /// Raises the active generation's watermark to `revision` (never lowers
    /// it); `false` when `generation` is no longer the active one.
    pub async fn raise_applied(&self, generation: Generation, revision: Revision) -> Result<bool, Error> {
        let done: i64 = RAISE
            .key(self.keys.active())
            .key(self.keys.applied(generation))
            .arg(generation.get())
            .arg(revision.get())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(done == 1)
    }

    /// Raises the watermark of a generation that is not active yet (a
    /// rebuild in progress).
    pub async fn raise_applied_inactive(&self, generation: Generation, revision: Revision) -> Result<(), Error> {
        let _: () = redis::cmd("SET")
            .arg(self.keys.applied(generation))
            .arg(revision.get())
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }
}

/// An apply script's answer: the namespace's revision before it.
fn before(value: redis::Value) -> Result<Revision, Error> {
    let text: String = redis::FromRedisValue::from_redis_value(value)?;
    text.parse().map(Revision::new).map_err(|_| Error::Corrupt(format!("revision {text:?}")))
}
