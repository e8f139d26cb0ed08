//! The fleet ledger in Redis, next to the read model but on its own
//! connection (a flood of reports never queues behind reads): one hash per
//! namespace, client id → `LedgerEntry`.

use std::time::SystemTime;

use prost::Message;
use veltrix_domain::{
    Namespace, Revision,
    fleet::{Agent, ClientError, ClientId, ClientRecord, LedgerError, LedgerStore, RolloutTarget},
    rollout::RolloutId,
};
use veltrix_proto::v1::{self as pb, LedgerEntry};

use crate::{Error, Keys, RedisOptions};
pub use veltrix_proto::convert::{step_from_wire, step_to_wire};

#[derive(Clone)]
pub struct RedisLedger {
    conn: crate::Conn,
    keys: Keys,
}

impl RedisLedger {
    pub async fn connect_with(options: &RedisOptions, prefix: &str) -> Result<Self, Error> {
        Ok(Self { conn: crate::Conn::open(options).await?, keys: Keys::new(prefix) })
    }
}

fn unavailable(e: redis::RedisError) -> LedgerError {
    let _ = Error::from(e);
    LedgerError::Unavailable("redis".into())
}

impl LedgerStore for RedisLedger {
    async fn put(&self, records: &[ClientRecord]) -> Result<(), LedgerError> {
        if records.is_empty() {
            return Ok(());
        }
        let hset = |p: &mut redis::Pipeline, r: &ClientRecord| {
            p.cmd("HSET").arg(self.keys.ledger(&r.namespace)).arg(r.client_id.as_str()).arg(encode(r)).ignore();
        };
        if !self.conn.is_cluster() {
            let mut p = redis::pipe();
            for r in records {
                hset(&mut p, r);
            }
            return p.query_async::<()>(&mut self.conn.clone()).await.map_err(unavailable);
        }
        // On a cluster each namespace's hash is its own slot.
        let mut by_namespace: Vec<(&Namespace, redis::Pipeline)> = Vec::new();
        for r in records {
            match by_namespace.iter_mut().find(|(ns, _)| **ns == r.namespace) {
                Some((_, p)) => hset(p, r),
                None => {
                    let mut p = redis::pipe();
                    hset(&mut p, r);
                    by_namespace.push((&r.namespace, p));
                }
            }
        }
        for (_, p) in by_namespace {
            p.query_async::<()>(&mut self.conn.clone()).await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn records(&self, namespace: &Namespace) -> Result<Vec<ClientRecord>, LedgerError> {
        let entries: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(self.keys.ledger(namespace))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        // An entry that does not decode (written by a newer version, or
        // damaged) is skipped with a warning, not allowed to hide the rest.
        let mut records: Vec<ClientRecord> = entries
            .iter()
            .filter_map(|(id, bytes)| match decode(namespace, id, bytes) {
                Ok(record) => Some(record),
                Err(e) => {
                    tracing::warn!(namespace = %namespace, client_id = %id, error = %e, "skipping a ledger entry that does not decode");
                    None
                }
            })
            .collect();
        records.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(records)
    }

    async fn record(&self, namespace: &Namespace, client_id: &ClientId) -> Result<Option<ClientRecord>, LedgerError> {
        let bytes: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(self.keys.ledger(namespace))
            .arg(client_id.as_str())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        bytes.map(|b| decode(namespace, client_id.as_str(), &b)).transpose()
    }

    async fn remove(&self, namespace: &Namespace, ids: &[ClientId]) -> Result<(), LedgerError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(self.keys.ledger(namespace));
        for id in ids {
            cmd.arg(id.as_str());
        }
        cmd.query_async::<()>(&mut self.conn.clone()).await.map_err(unavailable)
    }
}

fn time(t: SystemTime) -> Option<prost_types::Timestamp> {
    Some(t.into())
}

fn from_time(t: Option<&prost_types::Timestamp>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok()).unwrap_or(SystemTime::UNIX_EPOCH)
}

fn encode(r: &ClientRecord) -> Vec<u8> {
    LedgerEntry {
        client_id: r.client_id.as_str().to_owned(),
        prefix: r.prefix.clone(),
        labels: r.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        agent: Some(pb::AgentInfo { name: r.agent.name.clone(), version: r.agent.version.clone() }),
        applied_revision: r.applied.get(),
        digest: r.digest.clone(),
        delivered_revision: r.delivered.get(),
        delivered_at: r.delivered_at.and_then(time),
        rejected_revision: r.rejected.map_or(0, Revision::get),
        last_error: r.last_error.as_ref().map(|e| pb::ClientError {
            revision: e.revision.get(),
            step: step_to_wire(e.step).into(),
            error: e.error.clone(),
            time: time(e.at),
        }),
        connected_since: time(r.connected_since),
        last_seen: time(r.last_seen),
        replica: r.replica.clone(),
        connected: r.connected,
        replica_seen: time(r.replica_seen),
        rollout_id: r.rollout.as_ref().map(|t| t.id.to_string()).unwrap_or_default(),
        rollout_revision: r.rollout.as_ref().map_or(0, |t| t.revision.get()),
    }
    .encode_to_vec()
}

fn decode(namespace: &Namespace, id: &str, bytes: &[u8]) -> Result<ClientRecord, LedgerError> {
    let corrupt = |what: &str| LedgerError::Corrupt(format!("{}/{id}: {what}", namespace.as_str()));
    let e = LedgerEntry::decode(bytes).map_err(|_| corrupt("undecodable"))?;
    let client_id = ClientId::parse(&e.client_id).map_err(|_| corrupt("client id"))?;
    let agent = e.agent.map(|a| Agent { name: a.name, version: a.version }).unwrap_or_default();
    let last_error = match e.last_error {
        Some(err) => Some(ClientError {
            revision: Revision::new(err.revision),
            step: pb::SyncStep::try_from(err.step).ok().and_then(step_from_wire).ok_or_else(|| corrupt("step"))?,
            error: err.error,
            at: from_time(err.time.as_ref()),
        }),
        None => None,
    };
    Ok(ClientRecord {
        client_id,
        namespace: namespace.clone(),
        prefix: e.prefix,
        labels: e.labels.into_iter().collect(),
        agent,
        applied: Revision::new(e.applied_revision),
        digest: e.digest,
        delivered: Revision::new(e.delivered_revision),
        delivered_at: e.delivered_at.as_ref().map(|t| from_time(Some(t))),
        rejected: Some(Revision::new(e.rejected_revision)).filter(|r| !r.is_zero()),
        last_error,
        connected_since: from_time(e.connected_since.as_ref()),
        last_seen: from_time(e.last_seen.as_ref()),
        replica: e.replica,
        connected: e.connected,
        replica_seen: from_time(e.replica_seen.as_ref()),
        rollout: match e.rollout_id.as_str() {
            "" => None,
            id => Some(RolloutTarget {
                id: RolloutId::parse(id).map_err(|_| corrupt("rollout id"))?,
                revision: Revision::new(e.rollout_revision),
            }),
        },
    })
}
