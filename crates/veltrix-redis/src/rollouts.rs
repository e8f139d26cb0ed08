//! The namespace's rollouts, as their transition events: the projection
//! stores each (see `apply.rs`) and readers fold them with the domain's
//! fold, the same one the command side decides with.

use redis::FromRedisValue;
use veltrix_domain::{ChangeSetCommitted, Namespace, Revision};
use veltrix_proto::convert::{EVENT_TYPE_V3, decode_event};

use crate::{Error, Generation, ReadModel};

impl ReadModel {
    /// The namespaces that have had a rollout.
    pub async fn rollout_namespaces(&self, generation: Generation) -> Result<Vec<Namespace>, Error> {
        let names: Vec<String> =
            redis::cmd("SMEMBERS").arg(self.keys.rollout_namespaces(generation)).query_async(&mut self.conn()).await?;
        names.iter().map(|n| Namespace::parse(n).map_err(|e| Error::Corrupt(e.to_string()))).collect()
    }

    /// Every rollout transition of `namespace`, oldest first.
    pub async fn rollout_events(
        &self,
        generation: Generation,
        namespace: &Namespace,
    ) -> Result<Vec<(Revision, ChangeSetCommitted)>, Error> {
        let ns = self.keys.namespace(generation, namespace);
        let mut p = redis::pipe();
        p.cmd("ZRANGE").arg(ns.rollouts()).arg(0).arg(-1).arg("WITHSCORES");
        let values = self.check_complete(generation, &mut p).await?;
        let (members,): (Vec<(Vec<u8>, String)>,) = FromRedisValue::from_redis_value(values)?;
        let mut out = members
            .into_iter()
            .map(|(bytes, score)| {
                let revision = score.parse::<u64>().map_err(|_| Error::Corrupt(format!("rollout score {score}")))?;
                let event = decode_event(Some(EVENT_TYPE_V3), &bytes)?;
                Ok((Revision::new(revision), event))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        out.sort_by_key(|(r, _)| *r);
        Ok(out)
    }
}
