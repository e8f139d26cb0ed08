//! The watch hub: per watched namespace, a bounded broadcast ring of the
//! change sets the projector has applied. A change set only costs work for
//! the watchers of its own namespace; a watcher that falls more than the
//! ring's capacity behind is told it lagged and catches up from history.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::SystemTime,
};

use tokio::sync::broadcast;
use veltrix_domain::Revision;
use veltrix_proto::v1::ChangeRecord;

/// A change set as the projector applied it.
#[derive(Debug)]
pub struct HubEvent {
    pub revision: Revision,
    pub record: ChangeRecord,
    /// When the command service committed it (for delivery latency).
    pub committed_at: SystemTime,
}

#[derive(Debug)]
pub struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<HubEvent>>>>,
    capacity: usize,
}

impl Hub {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self { channels: Mutex::new(HashMap::new()), capacity: capacity.max(16) })
    }

    /// A receiver of the namespace's change sets applied from now on.
    pub fn subscribe(&self, namespace: &str) -> broadcast::Receiver<Arc<HubEvent>> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        channels.entry(namespace.to_owned()).or_insert_with(|| broadcast::channel(self.capacity).0).subscribe()
    }

    /// Hands an applied change set to its namespace's watchers, if any.
    pub fn publish(&self, namespace: &str, event: impl FnOnce() -> HubEvent) {
        let sender = {
            let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(sender) = channels.get(namespace) else { return };
            if sender.receiver_count() == 0 {
                // The last watcher of this namespace left.
                channels.remove(namespace);
                return;
            }
            sender.clone()
        };
        let _ = sender.send(Arc::new(event()));
    }
}
