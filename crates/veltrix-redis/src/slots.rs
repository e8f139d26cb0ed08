//! What a Redis Cluster needs beyond one server: a pipeline per hash slot
//! (each goes to its slot's master, several at once), the completeness
//! check as its own command after the read, SCAN on every master, and WAIT
//! for a replica's copy before the projector calls a batch applied.

use futures::{StreamExt, TryStreamExt};
use redis::{Pipeline, Value, cluster_routing::RoutingInfo, cluster_routing::SingleNodeRoutingInfo};

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
        let Some(mut cluster) = self.conn.cluster() else { return Ok(Vec::new()) };
        let slots = cluster
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
            )
            .await?;
        parse_masters(slots)
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
                    deleted += counts
                        .iter()
                        .filter_map(|v| if let Value::Int(n) = v { u64::try_from(*n).ok() } else { None })
                        .sum::<u64>();
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

/// The masters in a `CLUSTER SLOTS` reply: per slot range `[start, end,
/// [endpoint, port, id, ...], replicas...]`.
fn parse_masters(slots: Value) -> Result<Vec<(String, u16, String)>, Error> {
    let ranges: Vec<Vec<Value>> = redis::FromRedisValue::from_redis_value(slots)?;
    let mut masters = Vec::new();
    for range in ranges {
        let Some(master) = range.into_iter().nth(2) else {
            return Err(Error::Corrupt("a CLUSTER SLOTS range without its master".into()));
        };
        let node: Vec<Value> = redis::FromRedisValue::from_redis_value(master)?;
        let mut fields = node.into_iter();
        let (Some(host), Some(port), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(Error::Corrupt("a CLUSTER SLOTS master without endpoint, port and id".into()));
        };
        let host: String = redis::FromRedisValue::from_redis_value(host)?;
        let port: u16 = redis::FromRedisValue::from_redis_value(port)?;
        let id: String = redis::FromRedisValue::from_redis_value(id)?;
        masters.push((host, port, id));
    }
    masters.sort();
    masters.dedup();
    Ok(masters)
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
        assert_eq!(
            parse_masters(slots).unwrap(),
            vec![("redis-1".into(), 6379, "a1".into()), ("redis-2".into(), 6379, "b2".into())]
        );
        assert!(parse_masters(Value::Array(vec![range(0, 1, Vec::new())])).is_err());
    }
}
