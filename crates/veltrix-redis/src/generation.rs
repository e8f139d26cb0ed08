//! Generations of the read model: which one is active, which are complete,
//! and removing an old one.

use std::{
    sync::LazyLock,
    time::{SystemTime, UNIX_EPOCH},
};

use redis::{AsyncCommands, Script};
use veltrix_domain::Revision;

use crate::{Error, ReadModel};

/// KEYS: active, complete. ARGV: generation. Sets complete only while the
/// generation is active.
static MARK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], '1')
return 1
"#,
    )
});

/// What a generation looks like from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationState {
    pub complete: bool,
    pub applied: Revision,
}

impl ReadModel {
    /// The active generation, or `None` when there is none (a new or flushed
    /// Redis).
    pub async fn active_generation(&self) -> Result<Option<u64>, Error> {
        Ok(self.conn().get(self.keys.active()).await?)
    }

    /// Makes a generation active unless one already is; answers the active one.
    pub async fn activate_if_none(&self, generation: u64) -> Result<u64, Error> {
        let mut conn = self.conn();
        let _: bool = conn.set_nx(self.keys.active(), generation).await?;
        self.active_generation().await?.ok_or_else(|| Error::Corrupt("active generation vanished".into()))
    }

    /// Switches reads to `generation`.
    pub async fn activate(&self, generation: u64) -> Result<(), Error> {
        let _: () = self.conn().set(self.keys.active(), generation).await?;
        Ok(())
    }

    /// A new generation number, never one used before even if Redis lost
    /// its data (a counter in Redis would start over): milliseconds since the
    /// epoch and three random digits. Stays below 2^53, exact in Lua.
    pub fn new_generation() -> u64 {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        millis.saturating_mul(1000) + fastrand::u64(0..1000)
    }

    pub async fn generation_state(&self, generation: u64) -> Result<GenerationState, Error> {
        let (complete, applied): (Option<String>, Option<u64>) = redis::pipe()
            .get(self.keys.complete(generation))
            .get(self.keys.applied(generation))
            .query_async(&mut self.conn())
            .await?;
        Ok(GenerationState { complete: complete.is_some(), applied: applied.unwrap_or(0) })
    }

    /// Marks the active generation complete; `false` when `generation` is
    /// no longer the active one.
    pub async fn mark_complete(&self, generation: u64) -> Result<bool, Error> {
        let done: i64 = MARK
            .key(self.keys.active())
            .key(self.keys.complete(generation))
            .arg(generation)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(done == 1)
    }

    /// Marks a generation that is not active yet (a rebuild) complete.
    pub async fn mark_complete_inactive(&self, generation: u64) -> Result<(), Error> {
        let _: () = self.conn().set(self.keys.complete(generation), "1").await?;
        Ok(())
    }

    /// Deletes every key of a generation in batches. Not on a request path:
    /// it walks the keyspace with SCAN.
    pub async fn delete_generation(&self, generation: u64) -> Result<u64, Error> {
        let mut conn = self.conn();
        let mut deleted = 0u64;
        for pattern in self.keys.generation_patterns(generation) {
            let mut cursor = 0u64;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut conn)
                    .await?;
                if !batch.is_empty() {
                    // One key per command: a multi-key UNLINK must stay in one Cluster slot.
                    let mut p = redis::pipe();
                    for key in &batch {
                        p.cmd("UNLINK").arg(key);
                    }
                    let counts: Vec<u64> = p.query_async(&mut conn).await?;
                    deleted += counts.iter().sum::<u64>();
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }
}
