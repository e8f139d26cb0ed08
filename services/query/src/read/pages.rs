//! A page of a listing as of a revision: from the live index while the
//! namespace has not changed since, else from history. Shared by List and
//! Watch snapshots.

use veltrix_domain::{Namespace, Revision};
use veltrix_redis::{Generation, ListPage, ReadModel};

/// Keys with `prefix` after `after`, as of `revision` (which must be applied).
pub async fn page_as_of(
    model: &ReadModel,
    generation: Generation,
    namespace: &Namespace,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    revision: Revision,
) -> Result<ListPage, veltrix_redis::Error> {
    let current = model.list(generation, namespace, prefix, after, limit).await?;
    if current.namespace_revision <= revision {
        return Ok(current);
    }
    model.list_at(generation, namespace, prefix, after, limit, revision).await
}
