//! Finding what a failover lost. Redis replicates asynchronously: a master
//! that dies before its replica got a write takes the write with it, and
//! the promoted replica answers as if it never happened. Each namespace's
//! latest applied revision lives in the namespace's own slot (`meta.rev`,
//! written by the same script as its data), so the projector compares it
//! with what it knows it applied whenever the masters change.

use redis::{FromRedisValue, Value};
use veltrix_domain::Revision;

use crate::{Error, Generation, ReadModel};

impl ReadModel {
    /// Who the masters are: the ids of a cluster's masters that serve
    /// slots, or the run id of the one server (a new one after a restart or
    /// a Sentinel failover). A change means data may have been lost.
    pub async fn masters_fingerprint(&self) -> Result<String, Error> {
        if self.conn.is_cluster() {
            let masters = self.masters().await?;
            return Ok(masters.into_iter().map(|(_, _, id)| id).collect::<Vec<_>>().join(","));
        }
        let info: String = redis::cmd("INFO").arg("server").query_async(&mut self.conn()).await?;
        Ok(info.lines().find_map(|l| l.strip_prefix("run_id:")).map(|id| id.trim().to_owned()).unwrap_or_default())
    }

    /// The latest revision applied to each named namespace, as the
    /// namespace's slot holds it (0 for one it does not know).
    pub async fn namespace_revisions(&self, generation: Generation, names: &[&str]) -> Result<Vec<Revision>, Error> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Value> = if self.conn.is_cluster() {
            let pipes = names
                .iter()
                .map(|name| {
                    let mut p = redis::pipe();
                    p.hget(self.keys.named(generation, name).meta(), "rev");
                    p
                })
                .collect();
            self.per_slot(pipes).await?.into_iter().flatten().collect()
        } else {
            let mut p = redis::pipe();
            for name in names {
                p.hget(self.keys.named(generation, name).meta(), "rev");
            }
            p.query_async(&mut self.conn()).await?
        };
        values
            .into_iter()
            .map(|v| {
                let rev: Option<String> = FromRedisValue::from_redis_value(v)?;
                rev.map_or(Ok(Revision::ZERO), |r| {
                    r.parse().map(Revision::new).map_err(|_| Error::Corrupt(format!("revision {r:?}")))
                })
            })
            .collect()
    }

    /// Adds the named namespaces to the namespace index again (a no-op for
    /// those it holds): after a failover of the index's own master, which
    /// may have lost the newest ones.
    pub async fn reindex(&self, generation: Generation, names: &[&str]) -> Result<(), Error> {
        for chunk in names.chunks(1000) {
            let mut p = redis::pipe();
            for name in chunk {
                p.cmd("ZADD").arg(self.keys.namespaces(generation)).arg("NX").arg(0).arg(*name).ignore();
            }
            p.query_async::<()>(&mut self.conn()).await?;
        }
        Ok(())
    }
}
