//! The port the fleet ledger is kept behind (Redis in production, memory in
//! tests), and the memory implementation.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::Mutex,
};

use super::{ClientId, ClientRecord};
use crate::Namespace;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    #[error("corrupt ledger entry: {0}")]
    Corrupt(String),
}

/// Where client records are kept: one entry per (namespace, client id), the
/// last write wins.
pub trait LedgerStore: Send + Sync + 'static {
    /// Writes every record (replacing the same clients' entries).
    fn put(&self, records: &[ClientRecord]) -> impl Future<Output = Result<(), LedgerError>> + Send;

    /// Every record of `namespace`, in client id order.
    fn records(&self, namespace: &Namespace) -> impl Future<Output = Result<Vec<ClientRecord>, LedgerError>> + Send;

    /// One client's record.
    fn record(
        &self,
        namespace: &Namespace,
        client_id: &ClientId,
    ) -> impl Future<Output = Result<Option<ClientRecord>, LedgerError>> + Send;

    /// Drops these clients' entries.
    fn remove(&self, namespace: &Namespace, ids: &[ClientId]) -> impl Future<Output = Result<(), LedgerError>> + Send;
}

/// The ledger in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    inner: Mutex<HashMap<Namespace, BTreeMap<ClientId, ClientRecord>>>,
}

impl MemoryLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Namespace, BTreeMap<ClientId, ClientRecord>>> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl LedgerStore for MemoryLedger {
    async fn put(&self, records: &[ClientRecord]) -> Result<(), LedgerError> {
        let mut inner = self.lock();
        for r in records {
            inner.entry(r.namespace.clone()).or_default().insert(r.client_id.clone(), r.clone());
        }
        Ok(())
    }

    async fn records(&self, namespace: &Namespace) -> Result<Vec<ClientRecord>, LedgerError> {
        Ok(self.lock().get(namespace).map(|m| m.values().cloned().collect()).unwrap_or_default())
    }

    async fn record(&self, namespace: &Namespace, client_id: &ClientId) -> Result<Option<ClientRecord>, LedgerError> {
        Ok(self.lock().get(namespace).and_then(|m| m.get(client_id).cloned()))
    }

    async fn remove(&self, namespace: &Namespace, ids: &[ClientId]) -> Result<(), LedgerError> {
        if let Some(m) = self.lock().get_mut(namespace) {
            for id in ids {
                m.remove(id);
            }
        }
        Ok(())
    }
}
