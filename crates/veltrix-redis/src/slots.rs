//! What a Redis Cluster needs beyond one server: a pipeline per hash slot
//! (each goes to its slot's master, several at once), the completeness
//! check as its own command after the read, SCAN on every master, and WAIT
//! for a replica's copy before the projector calls a batch applied.

use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;

use redis::{
    Pipeline, Value,
    cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr},
};

use crate::{Error, Generation, ReadModel};

/// Pipelines in flight at once on a cluster connection.
const CONCURRENT: usize = 64;
/// How long a batch waits for its replica's copy (WAIT), in milliseconds.
pub(crate) const WAIT_MS: u64 = 200;
/// Counted when a replica did not confirm a batch within [`WAIT_MS`]: it
/// is applied on the master only, and a failover before the replica catches
/// up loses it (the projector's check finds and re-applies it).
pub const UNREPLICATED: &str = "veltrix_redis_unreplicated_batches_total";

impl ReadModel {
    /// Runs pipelines that each touch one slot, up to [`CONCURRENT`] at
    /// once, and answers each one's values in order.
    pub(crate) async fn per_slot(&self, pipes: Vec<Pipeline>) -> Result<Vec<Vec<Value>>, Error> {
        let conn = self.conn();
        futures::stream::iter(pipes)
            .map(|p| {
                let mut conn = conn.clone();
                async move { p.query_async::<Vec<Value>>(&mut conn).await.map_err(Error::from) }
            })
            .buffered(CONCURRENT)
            .try_collect()
            .await
    }

    /// Appends a WAIT for the configured replica acknowledgements; with
    /// none configured, nothing.
    pub(crate) fn wait_replicas(&self, p: &mut Pipeline) -> bool {
        if self.replica_acks == 0 {
            return false;
        }
        p.cmd("WAIT").arg(self.replica_acks).arg(WAIT_MS);
        true
    }

    /// Counts a WAIT's answer that fell short.
    pub(crate) fn replicated(&self, acks: &Value) {
        let acks = match acks {
            Value::Int(n) => *n,
            _ => 0,
        };
        if acks < i64::from(self.replica_acks) {
            metrics::counter!(UNREPLICATED).increment(1);
            tracing::debug!(acks, wanted = self.replica_acks, "a batch is not yet on a replica");
        }
    }

    /// The address (as the client knows it: the cluster's preferred
    /// endpoint) and node id of every master that serves slots.
    pub(crate) async fn masters(&self) -> Result<Vec<(String, u16, String)>, Error> {
        let mut masters: Vec<_> = self.slot_ranges().await?.into_iter().map(|r| (r.host, r.port, r.id)).collect();
        masters.sort();
        masters.dedup();
        Ok(masters)
    }

    async fn slot_ranges(&self) -> Result<Vec<SlotRange>, Error> {
        let Some(mut cluster) = self.conn.cluster() else { return Ok(Vec::new()) };
        let slots = cluster
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
            )
            .await?;
        parse_slots(slots)
    }

    /// On a cluster, after a batch's writes: one WAIT on each master that
    /// took some of them, routed by the slot of one of its keys (so on the
    /// connection that carried the writes). Which keys share a master comes
    /// from `CLUSTER SLOTS`, asked at most once a second; while that view is
    /// behind a slot's move, a key may pick a master already waited on, and
    /// its writes go without a WAIT (what a failover then loses is found by
    /// the projector's check and projected again).
    pub(crate) async fn wait_on_masters(&self, keys: &[String]) -> Result<(), Error> {
        if self.replica_acks == 0 {
            return Ok(());
        }
        let Some(cluster) = self.conn.cluster() else { return Ok(()) };
        let owners = self.owners().await?;
        let mut seen = std::collections::HashSet::new();
        let one_per_master: Vec<&String> = keys.iter().filter(|k| seen.insert(owners.of(k))).collect();
        let waits = one_per_master.into_iter().map(|key| {
            let mut cluster = cluster.clone();
            let route =
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master)));
            let wait = redis::cmd("WAIT").arg(self.replica_acks).arg(WAIT_MS).clone();
            async move { cluster.route_command(wait, route).await }
        });
        match futures::future::try_join_all(waits).await {
            Ok(acks) => {
                acks.iter().for_each(|a| self.replicated(a));
                Ok(())
            }
            Err(e) => {
                self.forget_owners();
                Err(e.into())
            }
        }
    }

    /// Which master serves each slot, as `CLUSTER SLOTS` said at most a
    /// second ago.
    async fn owners(&self) -> Result<Arc<Owners>, Error> {
        let cached = self.owners.read().ok().and_then(|o| o.clone());
        if let Some(owners) = cached.filter(|o| o.asked.elapsed() < OWNERS_FOR) {
            return Ok(owners);
        }
        let owners = Arc::new(Owners::new(self.slot_ranges().await?));
        if let Ok(mut cached) = self.owners.write() {
            *cached = Some(owners.clone());
        }
        Ok(owners)
    }

    fn forget_owners(&self) {
        if let Ok(mut cached) = self.owners.write() {
            *cached = None;
        }
    }

    /// Deletes every key matching `pattern` on every master of a cluster.
    pub(crate) async fn delete_matching_on_masters(&self, pattern: &str) -> Result<u64, Error> {
        let Some(mut cluster) = self.conn.cluster() else { return Ok(0) };
        let mut deleted = 0u64;
        for (host, port, _) in self.masters().await? {
            let mut cursor = 0u64;
            loop {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: host.clone(), port });
                let scan = redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(500).clone();
                let (next, batch): (u64, Vec<String>) =
                    redis::FromRedisValue::from_redis_value(cluster.route_command(scan, route).await?)?;
                // One key per command: keys of one node are of many slots.
                let pipes = batch
                    .iter()
                    .map(|key| {
                        let mut p = redis::pipe();
                        p.cmd("UNLINK").arg(key);
                        p
                    })
                    .collect();
                for counts in self.per_slot(pipes).await? {
                    let n = counts
                        .iter()
                        .filter_map(|v| if let Value::Int(n) = v { u64::try_from(*n).ok() } else { None })
                        .fold(0u64, u64::saturating_add);
                    deleted = deleted.saturating_add(n);
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }

    /// A read of one slot, then the completeness check in its own slot:
    /// after the read, so a read that found data in a complete generation
    /// is a read of a complete model, as on one server.
    pub(crate) async fn then_check_complete(&self, generation: Generation, p: &Pipeline) -> Result<Vec<Value>, Error> {
        let values: Vec<Value> = if p.is_empty() { Vec::new() } else { p.query_async(&mut self.conn()).await? };
        let complete: Option<String> =
            redis::cmd("GET").arg(self.keys.complete(generation)).query_async(&mut self.conn()).await?;
        if complete.is_none() {
            return Err(Error::Incomplete);
        }
        Ok(values)
    }
}

/// One range of a `CLUSTER SLOTS` reply and its master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotRange {
    start: u16,
    end: u16,
    host: String,
    port: u16,
    id: String,
}

/// How long a `CLUSTER SLOTS` answer is used to group keys by master.
const OWNERS_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The master of every slot (an index into the masters), and when the
/// cluster was asked.
pub(crate) struct Owners {
    by_slot: std::collections::HashMap<Slot, usize>,
    asked: std::time::Instant,
}

impl Owners {
    fn new(ranges: Vec<SlotRange>) -> Self {
        let mut masters: Vec<String> = Vec::new();
        let mut by_slot = std::collections::HashMap::new();
        for r in ranges {
            let i = masters.iter().position(|id| *id == r.id).unwrap_or_else(|| {
                masters.push(r.id.clone());
                masters.len() - 1
            });
            for slot in (r.start..=r.end).filter_map(Slot::new) {
                by_slot.insert(slot, i);
            }
        }
        Self { by_slot, asked: std::time::Instant::now() }
    }

    /// The master of `key`'s slot (`None`: no master serves it now).
    fn of(&self, key: &str) -> Option<usize> {
        self.by_slot.get(&Slot::for_key(key)).copied()
    }
}

/// The ranges of a `CLUSTER SLOTS` reply: `[start, end, [endpoint, port,
/// id, ...], replicas...]` each.
fn parse_slots(slots: Value) -> Result<Vec<SlotRange>, Error> {
    let ranges: Vec<Vec<Value>> = redis::FromRedisValue::from_redis_value(slots)?;
    let mut out = Vec::new();
    for range in ranges {
        let mut fields = range.into_iter();
        let (Some(start), Some(end), Some(master)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(Error::Corrupt("a CLUSTER SLOTS range without its master".into()));
        };
        let node: Vec<Value> = redis::FromRedisValue::from_redis_value(master)?;
        let mut node = node.into_iter();
        let (Some(host), Some(port), Some(id)) = (node.next(), node.next(), node.next()) else {
            return Err(Error::Corrupt("a CLUSTER SLOTS master without endpoint, port and id".into()));
        };
        out.push(SlotRange {
            start: redis::FromRedisValue::from_redis_value(start)?,
            end: redis::FromRedisValue::from_redis_value(end)?,
            host: redis::FromRedisValue::from_redis_value(host)?,
            port: redis::FromRedisValue::from_redis_value(port)?,
            id: redis::FromRedisValue::from_redis_value(id)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn masters_are_the_first_node_of_each_slot_range() {
        let node = |host: &str, port: i64, id: &str| {
            Value::Array(vec![
                Value::BulkString(host.into()),
                Value::Int(port),
                Value::BulkString(id.into()),
                Value::Array(Vec::new()),
            ])
        };
        let range = |lo: i64, hi: i64, nodes: Vec<Value>| {
            let mut v = vec![Value::Int(lo), Value::Int(hi)];
            v.extend(nodes);
            Value::Array(v)
        };
        let slots = Value::Array(vec![
            range(0, 100, vec![node("redis-1", 6379, "a1"), node("redis-4", 6379, "d4")]),
            range(101, 200, vec![node("redis-2", 6379, "b2")]),
            range(201, 300, vec![node("redis-1", 6379, "a1")]),
        ]);
        let ranges = parse_slots(slots).unwrap();
        assert_eq!(
            ranges.iter().map(|r| (r.start, r.end, r.host.as_str(), r.id.as_str())).collect::<Vec<_>>(),
            vec![(0, 100, "redis-1", "a1"), (101, 200, "redis-2", "b2"), (201, 300, "redis-1", "a1")]
        );
        let owners = Owners::new(ranges);
        let master = |n: u16| owners.by_slot.get(&Slot::new(n).unwrap()).copied();
        assert_eq!((master(0), master(150), master(300), master(301)), (Some(0), Some(1), Some(0), None));
        assert!(parse_slots(Value::Array(vec![range(0, 1, Vec::new())])).is_err());
    }
}
