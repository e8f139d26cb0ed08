//! Write workloads: Put against raw JetStream publishes, and against etcd.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{self, message::PublishMessage, stream};
use bytes::Bytes;
use veltrix_proto::v1::PutRequest;

use crate::{
    clients::{Command, Etcd, etcd},
    load::{Figure, closed_loop},
};

pub const VALUE_BYTES: usize = 256;
pub const NAMESPACES: usize = 1000;
pub const KEYS: usize = 100;

fn value() -> Vec<u8> {
    vec![b'v'; VALUE_BYTES]
}

/// `Put` of 256-byte values over `namespaces` × 100 keys.
pub async fn puts(clients: Vec<Command>, concurrency: usize, namespaces: usize, d: Duration) -> anyhow::Result<Figure> {
    closed_loop(concurrency, d, move |w, i| {
        let mut c = clients[w % clients.len()].clone();
        let req = PutRequest {
            namespace: format!("bench/n{}", fastrand_index(w, i, namespaces)),
            key: format!("k{}", fastrand_index(i as usize, w as u64, KEYS)),
            value: value(),
            ..Default::default()
        };
        async move {
            c.put(req).await?;
            Ok(())
        }
    })
    .await
}

/// Deterministic spread without a shared RNG.
fn fastrand_index(a: usize, b: u64, n: usize) -> usize {
    let x = (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    ((x ^ (x >> 29)) % n as u64) as usize
}

/// Raw JetStream: publish with `Nats-Expected-Last-Subject-Sequence` and wait
/// for the ack, each worker on its own subjects (as one namespace's writes
/// would be).
pub async fn raw_publish(
    nats_url: &str,
    concurrency: usize,
    subjects_per_worker: usize,
    d: Duration,
) -> anyhow::Result<Figure> {
    let client = async_nats::connect(nats_url).await?;
    let js = jetstream::new(client);
    let name = format!("RAW{concurrency}x{subjects_per_worker}");
    let _ = js.delete_stream(&name).await;
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.>")],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let last: Arc<Vec<Mutex<HashMap<usize, u64>>>> =
        Arc::new((0..concurrency).map(|_| Mutex::new(HashMap::new())).collect());
    let payload = Bytes::from(value());
    closed_loop(concurrency, d, move |w, i| {
        let (js, last, payload, name) = (js.clone(), last.clone(), payload.clone(), name.clone());
        async move {
            let s = (i as usize) % subjects_per_worker;
            let expected = last[w].lock().map_err(|_| anyhow::anyhow!("poisoned"))?.get(&s).copied().unwrap_or(0);
            let msg = PublishMessage::build().payload(payload).expected_last_subject_sequence(expected);
            let ack = js.send_publish(format!("{name}.w{w}.s{s}"), msg).await?.await?;
            last[w].lock().map_err(|_| anyhow::anyhow!("poisoned"))?.insert(s, ack.sequence);
            Ok(())
        }
    })
    .await
}

/// etcd `put` of 256-byte values over the same key space.
pub async fn etcd_puts(clients: Vec<Etcd>, concurrency: usize, d: Duration) -> anyhow::Result<Figure> {
    closed_loop(concurrency, d, move |w, i| {
        let mut c = clients[w % clients.len()].clone();
        let key =
            format!("/bench/n{}/k{}", fastrand_index(w, i, NAMESPACES), fastrand_index(i as usize, w as u64, KEYS));
        async move {
            c.put(etcd::PutRequest { key: key.into_bytes(), value: value() }).await?;
            Ok(())
        }
    })
    .await
}
