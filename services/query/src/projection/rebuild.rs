//! `veltrix-query rebuild`: a new generation of the read model, built from
//! the event stream while the running services keep serving the old one,
//! then switched to atomically (one SET of the active pointer); running
//! services follow once they have caught the new one up. The old generation
//! is removed after a grace period.

use std::time::Duration;

use veltrix_domain::{EventFeed, FeedReader, Revision, next_batch};
use veltrix_jetstream::JetStreamFeed;
use veltrix_redis::{Generation, ReadModel};
use veltrix_server::BoxError;

use crate::{config::Config, projection::BATCH};

/// Rebuilds and switches; answers the new generation.
pub async fn rebuild(config: &Config, drop_old_after: Duration) -> Result<Generation, BoxError> {
    let (client, _) = veltrix_jetstream::connect(&config.nats.options(), "veltrix-query-rebuild").await?;
    let feed = JetStreamFeed::new(client, config.stream_settings());
    let model = ReadModel::connect_with(&config.redis_options(), &config.redis_prefix).await?;
    let old = model.active_generation().await?;
    let generation = Generation::new();
    tracing::info!(%generation, ?old, "rebuilding the read model");

    let mut reader = feed.open(Revision::ZERO).await?;
    let mut applied = Revision::ZERO;
    loop {
        // At least as far as the stream was when we began and as the old
        // generation is now, so that switching never goes back in time.
        let old_applied = match old {
            Some(g) => model.generation_state(g).await?.applied,
            None => Revision::ZERO,
        };
        if applied >= reader.head().max(old_applied) {
            break;
        }
        let batch = next_batch(&mut reader, BATCH).await?;
        let events: Vec<_> = batch.iter().map(|n| (n.stored.revision, &n.stored.event)).collect();
        model.apply_batch(generation, &events, config.apply_options()).await?;
        if let Some(last) = batch.last() {
            applied = last.stored.revision;
            model.raise_applied_inactive(generation, applied).await?;
        }
    }
    reader.close().await;
    model.raise_applied_inactive(generation, applied).await?;
    model.mark_complete_inactive(generation).await?;
    model.activate(generation).await?;
    tracing::info!(%generation, %applied, "switched reads to the new generation");

    if let Some(old) = old.filter(|g| *g != generation) {
        tokio::time::sleep(drop_old_after).await;
        let deleted = model.delete_generation(old).await?;
        tracing::info!(generation = %old, keys = deleted, "removed the old generation");
    }
    Ok(generation)
}
