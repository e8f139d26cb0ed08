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

/// The leading items whose encoding fits in `budget` bytes (the first one
/// always, so that paging moves on), and whether any were cut.
pub fn fit<T: prost::Message>(mut items: Vec<T>, budget: usize) -> (Vec<T>, bool) {
    let mut used = 0usize;
    let over = items.iter().position(|item| {
        // Each entry also costs its tag and length prefix.
        used = used.saturating_add(item.encoded_len().saturating_add(8));
        used > budget
    });
    let keep = over.map_or(items.len(), |i| i.max(1));
    let cut = keep < items.len();
    items.truncate(keep);
    (items, cut)
}

#[cfg(test)]
mod tests {
    use veltrix_proto::v1::KeyValue;

    use super::fit;

    fn kv(bytes: usize) -> KeyValue {
        KeyValue { key: "k".into(), value: vec![b'x'; bytes].into(), ..Default::default() }
    }

    #[test]
    fn a_page_stops_at_its_byte_budget_but_always_moves_on() {
        let (kept, cut) = fit(vec![kv(400), kv(400), kv(400)], 1000);
        assert_eq!((kept.len(), cut), (2, true));
        let (kept, cut) = fit(vec![kv(5000), kv(1)], 1000);
        assert_eq!((kept.len(), cut), (1, true), "one entry larger than the budget still comes, alone");
        let (kept, cut) = fit(vec![kv(10), kv(10)], 1000);
        assert_eq!((kept.len(), cut), (2, false));
        assert_eq!(fit(Vec::<KeyValue>::new(), 10).0.len(), 0);
    }
}
