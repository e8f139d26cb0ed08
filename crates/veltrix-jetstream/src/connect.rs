//! Connecting to NATS: keep trying at start-up, reconnect forever with a
//! capped backoff, and count what happens to the connection.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::{Client, ConnectOptions, Event, ServerAddr};

use crate::Error;

pub const RECONNECTS: &str = "veltrix_nats_reconnects_total";
pub const DISCONNECTS: &str = "veltrix_nats_disconnects_total";

/// Counters of connection events, for metrics and tests.
#[derive(Debug, Default)]
pub struct ConnectionEvents {
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
}

/// Connects to `url` (comma-separated for several servers). Returns at once;
/// the client connects and reconnects in the background, and requests made
/// while disconnected fail or time out instead of hanging.
pub async fn connect(url: &str, name: &str) -> Result<(Client, Arc<ConnectionEvents>), Error> {
    metrics::describe_counter!(RECONNECTS, "Connections to NATS made again after a disconnect.");
    metrics::describe_counter!(DISCONNECTS, "Connections to NATS lost.");
    metrics::counter!(RECONNECTS).increment(0);
    metrics::counter!(DISCONNECTS).increment(0);
    let events = Arc::new(ConnectionEvents::default());
    let counters = events.clone();
    let client = ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_secs(10))
        .reconnect_delay_callback(|attempts| {
            // 0, 100 ms, 200 ms, ... capped at 2 s: a restarted server is
            // found again quickly, a dead one is not hammered.
            Duration::from_millis((attempts as u64).saturating_mul(100).min(2_000))
        })
        .event_callback(move |event| {
            let counters = counters.clone();
            async move {
                match event {
                    Event::Connected => {
                        if counters.connects.fetch_add(1, Ordering::Relaxed) > 0 {
                            metrics::counter!(RECONNECTS).increment(1);
                        }
                        tracing::info!("connected to NATS");
                    }
                    Event::Disconnected => {
                        counters.disconnects.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(DISCONNECTS).increment(1);
                        tracing::warn!("disconnected from NATS; reconnecting");
                    }
                    other => tracing::warn!(event = %other, "NATS connection event"),
                }
            }
        })
        .connect(server_addrs(url)?)
        .await
        .map_err(|e| Error::JetStream { context: "connecting to NATS", source: Box::new(e) })?;
    Ok((client, events))
}

/// `nats://a:4222,nats://b:4222` → every server, so that the client can fail
/// over between the nodes of a cluster.
fn server_addrs(url: &str) -> Result<Vec<ServerAddr>, Error> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<ServerAddr>().map_err(|e| Error::Settings(format!("invalid NATS URL '{u}' in --nats-url: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(
            |addrs| {
                if addrs.is_empty() { Err(Error::Settings("--nats-url names no server".into())) } else { Ok(addrs) }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_server_of_a_list() {
        assert_eq!(server_addrs("nats://127.0.0.1:4222, nats://127.0.0.1:4223").unwrap().len(), 2);
        assert!(matches!(server_addrs(" , "), Err(Error::Settings(_))));
        assert!(matches!(server_addrs("nats://:bad:port"), Err(Error::Settings(_))));
    }
}
