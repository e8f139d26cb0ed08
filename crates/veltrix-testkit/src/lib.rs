//! Test helpers: real `nats-server -js`, `redis-server` and `prometheus` child processes on
//! free loopback ports with their own temporary directories, killed on drop,
//! and able to be killed and restarted to test faults. A missing server
//! binary fails the test with a message that says how to install it; nothing
//! is skipped.

mod balancer;
pub mod creds;
pub mod pki;
mod process;
mod prometheus;
mod redis_ha;

use std::{future::Future, time::Duration};

pub use balancer::Balancer;
pub use process::{NatsCluster, NatsServer, RedisServer};
pub use prometheus::PrometheusServer;
pub use redis_ha::{Redis, RedisCluster, RedisSentinel, redis_cli};

/// Polls `check` until it returns `Some`, for at most `within`; panics with
/// `what` when the time runs out. For bounded waits on asynchronous effects
/// (projection lag, reconnects), never for timing assertions.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("not reached within {within:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A free port below the kernel's ephemeral range (32768 and up on Linux),
/// for a listener a service binds later by number (`--metrics-listen`):
/// ports the kernel hands to `bind(0)` and outgoing connections in other
/// tests meanwhile cannot take it.
pub fn free_fixed_port() -> u16 {
    for _ in 0..1000 {
        let port = fastrand::u16(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("cannot find a free port in 20000..32000 on 127.0.0.1")
}

/// A free TCP port on 127.0.0.1 (bound and released at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port on 127.0.0.1: {e}"))
}
