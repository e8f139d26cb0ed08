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

/// A generation of the read model: a number no earlier generation of this
/// Redis had, even if Redis lost its data (a counter in Redis would start
/// over): milliseconds since the epoch and three random digits, below 2^53
/// so that Lua holds it exactly. Its own type, so that it is never taken
/// for a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Generation(u64);

impl Generation {
    /// A generation never used before.
    pub fn new() -> Self {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Self(millis.saturating_mul(1000).saturating_add(fastrand::u64(0..1000)))
    }

    /// The generation with this number (as stored in Redis or a metric).
    pub const fn from_u64(n: u64) -> Self {
        Self(n)
    }

    pub const fn get(self) -> u64 {
        self.0
    }
}

impl Default for Generation {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a generation looks like from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationState {
    pub complete: bool,
    pub applied: Revision,
}

impl ReadModel {
    /// The active generation, or `None` when there is none (a new or flushed
    /// Redis).
    pub async fn active_generation(&self) -> Result<Option<Generation>, Error> {
        let active: Option<u64> = self.conn().get(self.keys.active()).await?;
        Ok(active.map(Generation))
    }

    /// Makes a generation active unless one already is; answers the active one.
    pub async fn activate_if_none(&self, generation: Generation) -> Result<Generation, Error> {
        let mut conn = self.conn();
        let _: bool = conn.set_nx(self.keys.active(), generation.0).await?;
        self.active_generation().await?.ok_or_else(|| Error::Corrupt("active generation vanished".into()))
    }

    /// Switches reads to `generation`.
    pub async fn activate(&self, generation: Generation) -> Result<(), Error> {
        let _: () = self.conn().set(self.keys.active(), generation.0).await?;
        Ok(())
    }

    pub async fn generation_state(&self, generation: Generation) -> Result<GenerationState, Error> {
        let (complete, applied): (Option<String>, Option<u64>) = redis::pipe()
            .get(self.keys.complete(generation))
            .get(self.keys.applied(generation))
            .query_async(&mut self.conn())
            .await?;
        Ok(GenerationState { complete: complete.is_some(), applied: applied.map_or(Revision::ZERO, Revision::new) })
    }

    /// Marks the active generation complete; `false` when `generation` is
    /// no longer the active one.
    pub async fn mark_complete(&self, generation: Generation) -> Result<bool, Error> {
        let done: i64 = MARK
            .key(self.keys.active())
            .key(self.keys.complete(generation))
            .arg(generation.0)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(done == 1)
    }

    /// Marks a generation that is not active yet (a rebuild) complete.
    pub async fn mark_complete_inactive(&self, generation: Generation) -> Result<(), Error> {
        let _: () = self.conn().set(self.keys.complete(generation), "1").await?;
        Ok(())
    }

    /// Deletes every key of a generation in batches. Not on a request path:
    /// it walks the keyspace with SCAN.
    pub async fn delete_generation(&self, generation: Generation) -> Result<u64, Error> {
        let mut conn = self.conn();
        let mut deleted = 0u64;
        if self.is_cluster() {
            for pattern in self.keys.generation_patterns(generation) {
                deleted = deleted.saturating_add(self.delete_matching_on_masters(&pattern).await?);
            }
            return Ok(deleted);
        }
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
                    deleted = deleted.saturating_add(counts.iter().sum::<u64>());
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
