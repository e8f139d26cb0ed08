//! Generations of the read model: which one is active, which are complete,
//! and removing an old one.

use redis::AsyncCommands;
use veltrix_domain::Revision;

use crate::{Error, ReadModel};

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

    /// A new, unused generation number.
    pub async fn next_generation(&self) -> Result<u64, Error> {
        Ok(self.conn().incr(self.keys.generation_counter(), 1).await?)
    }

    pub async fn generation_state(&self, generation: u64) -> Result<GenerationState, Error> {
        let (complete, applied): (Option<String>, Option<u64>) = redis::pipe()
            .get(self.keys.complete(generation))
            .get(self.keys.applied(generation))
            .query_async(&mut self.conn())
            .await?;
        Ok(GenerationState { complete: complete.is_some(), applied: applied.unwrap_or(0) })
    }

    pub async fn mark_complete(&self, generation: u64) -> Result<(), Error> {
        let _: () = self.conn().set(self.keys.complete(generation), "1").await?;
        Ok(())
    }

    /// Deletes every key of a generation in batches. Not on a request path:
    /// it walks the keyspace with SCAN.
    pub async fn delete_generation(&self, generation: u64) -> Result<u64, Error> {
        let mut conn = self.conn();
        let pattern = self.keys.generation_pattern(generation);
        let (mut cursor, mut deleted) = (0u64, 0u64);
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
                deleted += redis::cmd("UNLINK").arg(&batch).query_async::<u64>(&mut conn).await?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}
