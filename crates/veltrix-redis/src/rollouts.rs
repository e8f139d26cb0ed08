//! The namespace's rollouts, as their transition events: the projection
//! stores each (see `apply.rs`) and readers fold them with the domain's
//! fold, the same one the command side decides with.

use redis::FromRedisValue;
use veltrix_domain::{ChangeSetCommitted, Namespace, Revision};
use veltrix_proto::convert::{EVENT_TYPE_V3, decode_event};

use crate::{Error, Generation, ReadModel};

/// KEYS: the controller's round. ARGV: namespace, the revision of its
/// finished rollout's last event. Removes it only if no newer one came.
static FINISHED: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"#,
    )
});

impl ReadModel {
    /// The namespaces whose latest rollout may be live.
    pub async fn rollout_namespaces(&self, generation: Generation) -> Result<Vec<Namespace>, Error> {
        let names: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.rollout_namespaces(generation))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn())
            .await?;
        names.iter().map(|n| Namespace::parse(n).map_err(|e| Error::Corrupt(e.to_string()))).collect()
    }

    /// Takes `namespace` out of the controller's round: its latest rollout,
    /// whose last event is at `last`, is over. Nothing happens when a newer
    /// rollout event has been added since.
    pub async fn rollout_finished(
        &self,
        generation: Generation,
        namespace: &Namespace,
        last: Revision,
    ) -> Result<(), Error> {
        let _: i64 = FINISHED
            .key(self.keys.rollout_namespaces(generation))
            .arg(namespace.as_str())
            .arg(last.get())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
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
