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
use veltrix_domain::{Namespace, Revision};
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
    max_namespaces: usize,
}

/// Every namespace the hub may hold a channel for has watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at most {0} namespaces can be watched at once on this replica")]
pub struct HubFull(pub usize);

impl Hub {
    pub fn new(capacity: usize, max_namespaces: usize) -> Arc<Self> {
        Arc::new(Self { channels: Mutex::new(HashMap::new()), capacity: capacity.max(16), max_namespaces })
    }

    /// A receiver of the namespace's change sets applied from now on. The
    /// namespace's channel is freed when its last subscription is dropped.
    pub fn subscribe(self: &Arc<Self>, namespace: &Namespace) -> Result<Subscription, HubFull> {
        let namespace = namespace.as_str();
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if !channels.contains_key(namespace) && channels.len() >= self.max_namespaces {
            return Err(HubFull(self.max_namespaces));
        }
        let rx =
            channels.entry(namespace.to_owned()).or_insert_with(|| broadcast::channel(self.capacity).0).subscribe();
        Ok(Subscription { rx, hub: self.clone(), namespace: namespace.to_owned() })
    }

    /// Namespaces with a channel now.
    pub fn channels(&self) -> usize {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Hands an applied change set to its namespace's watchers, if any.
    pub fn publish(&self, namespace: &Namespace, event: impl FnOnce() -> HubEvent) {
        let namespace = namespace.as_str();
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

/// One watcher's receiver of a namespace's change sets (a broadcast
/// receiver); the last one of a namespace frees its channel when dropped,
/// so that made-up namespaces cost nothing once their watchers are gone.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<HubEvent>>,
    hub: Arc<Hub>,
    namespace: String,
}

impl std::ops::Deref for Subscription {
    type Target = broadcast::Receiver<Arc<HubEvent>>;

    fn deref(&self) -> &Self::Target {
        &self.rx
    }
}

impl std::ops::DerefMut for Subscription {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.rx
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut channels = self.hub.channels.lock().unwrap_or_else(PoisonError::into_inner);
        // Counted under the lock that subscribing takes: this receiver is
        // the last one when it is the only one left.
        if channels.get(&self.namespace).is_some_and(|sender| sender.receiver_count() <= 1) {
            channels.remove(&self.namespace);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ns(name: &str) -> Namespace {
        Namespace::parse(name).unwrap()
    }

    #[test]
    fn the_last_subscription_frees_its_namespace() {
        let hub = Hub::new(16, 2);
        let (a, b) = (hub.subscribe(&ns("ns/a")).unwrap(), hub.subscribe(&ns("ns/a")).unwrap());
        let other = hub.subscribe(&ns("ns/b")).unwrap();
        assert_eq!(hub.channels(), 2);
        assert_eq!(hub.subscribe(&ns("ns/c")).err(), Some(HubFull(2)), "bounded");
        assert!(hub.subscribe(&ns("ns/a")).is_ok(), "a watched namespace takes more watchers");
        drop(a);
        assert_eq!(hub.channels(), 2, "one watcher of ns/a is left");
        drop(b);
        assert_eq!(hub.channels(), 1);
        drop(other);
        assert_eq!(hub.channels(), 0);
    }
}
