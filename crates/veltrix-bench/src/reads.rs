//! Read workloads: Get and List against the gRPC floor, raw Redis and etcd.

use std::time::Duration;

use redis::AsyncCommands;
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use veltrix_proto::v1::{ApplyRequest, Change, GetRequest, ListRequest, SetValue, change};

use crate::{
    clients::{Command, Etcd, Query, etcd},
    load::{Figure, closed_loop},
    writes::{KEYS, VALUE_BYTES},
};

/// Fills `namespaces` × 100 keys with one Apply per namespace; answers the
/// last revision.
pub async fn populate(cmd: &mut Command, namespaces: usize) -> anyhow::Result<u64> {
    let mut last = 0;
    for n in 0..namespaces {
        let changes = (0..KEYS)
            .map(|k| Change {
                key: format!("k{k:03}"),
                expected_revision: None,
                op: Some(change::Op::Set(SetValue { value: vec![b'v'; VALUE_BYTES], content_type: String::new() })),
            })
            .collect();
        last = cmd
            .apply(ApplyRequest { namespace: format!("read/n{n}"), changes, ..Default::default() })
            .await?
            .into_inner()
            .revision;
    }
    Ok(last)
}

/// Fills one namespace with `keys` keys (`k0000000`, ...), 1000 per Apply;
/// answers the last revision.
pub async fn populate_keys(cmd: &mut Command, namespace: &str, keys: usize) -> anyhow::Result<u64> {
    let (mut last, mut start) = (0, 0);
    while start < keys {
        let end = (start + 1000).min(keys);
        let changes = (start..end)
            .map(|k| Change {
                key: format!("k{k:07}"),
                expected_revision: None,
                op: Some(change::Op::Set(SetValue { value: vec![b'v'; VALUE_BYTES], content_type: String::new() })),
            })
            .collect();
        let mut request =
            tonic::Request::new(ApplyRequest { namespace: namespace.into(), changes, ..Default::default() });
        request.set_timeout(Duration::from_secs(60));
        last = cmd.apply(request).await?.into_inner().revision;
        start = end;
    }
    Ok(last)
}

/// Waits until `query` has applied `revision` of `namespace` (asking again
/// while the service's own call limit answers first, for up to 10 minutes).
pub async fn caught_up_in(query: &mut Query, namespace: &str, revision: u64) -> anyhow::Result<()> {
    let give_up = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        let mut probe = tonic::Request::new(GetRequest {
            namespace: namespace.into(),
            key: "k0000000".into(),
            min_revision: Some(revision),
            ..Default::default()
        });
        probe.set_timeout(Duration::from_secs(60));
        match query.get(probe).await {
            Err(e) if e.code() == tonic::Code::DeadlineExceeded && std::time::Instant::now() < give_up => continue,
            answer => return answer.map(drop).map_err(Into::into),
        }
    }
}

/// Gets of keys spread over all `keys` keys of one namespace (a
/// multiplicative hash of the worker and its call, so every key is as
/// likely).
pub async fn gets_in(
    clients: Vec<Query>,
    concurrency: usize,
    namespace: &str,
    keys: usize,
    d: Duration,
) -> anyhow::Result<Figure> {
    let namespace = namespace.to_owned();
    closed_loop(concurrency, d, move |w, i| {
        let mut c = clients[w % clients.len()].clone();
        let spread = ((w as u64) << 40 ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16;
        let req = GetRequest {
            namespace: namespace.clone(),
            key: format!("k{:07}", spread % keys.max(1) as u64),
            ..Default::default()
        };
        async move {
            c.get(req).await?;
            Ok(())
        }
    })
    .await
}

/// Waits until the read model has applied `revision` (read-your-writes).
pub async fn caught_up(query: &mut Query, revision: u64) -> anyhow::Result<()> {
    let mut probe = tonic::Request::new(GetRequest {
        namespace: "read/n0".into(),
        key: "k000".into(),
        min_revision: Some(revision),
        ..Default::default()
    });
    probe.set_timeout(Duration::from_secs(120));
    query.get(probe).await?;
    Ok(())
}

pub async fn gets(clients: Vec<Query>, concurrency: usize, namespaces: usize, d: Duration) -> anyhow::Result<Figure> {
    closed_loop(concurrency, d, move |w, i| {
        let mut c = clients[w % clients.len()].clone();
        let req = GetRequest {
            namespace: format!("read/n{}", (w * 7919 + i as usize * 31) % namespaces),
            key: format!("k{:03}", (i as usize * 17 + w) % KEYS),
            ..Default::default()
        };
        async move {
            c.get(req).await?;
            Ok(())
        }
    })
    .await
}

/// The gRPC floor: a no-op unary RPC (health check) on the same server.
pub async fn floor(channels: Vec<Channel>, concurrency: usize, d: Duration) -> anyhow::Result<Figure> {
    closed_loop(concurrency, d, move |w, _| {
        let mut c = HealthClient::new(channels[w % channels.len()].clone());
        async move {
            c.check(HealthCheckRequest { service: String::new() }).await?;
            Ok(())
        }
    })
    .await
}

pub async fn redis_gets(url: &str, concurrency: usize, d: Duration) -> anyhow::Result<Figure> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    for k in 0..10_000 {
        let _: () = conn.set(format!("raw:{k}"), vec![b'v'; VALUE_BYTES]).await?;
    }
    closed_loop(concurrency, d, move |w, i| {
        let mut conn = conn.clone();
        async move {
            let _: Option<Vec<u8>> = conn.get(format!("raw:{}", (w * 7919 + i as usize * 31) % 10_000)).await?;
            Ok(())
        }
    })
    .await
}

/// Fills etcd with the same keys, 64 puts at a time.
pub async fn etcd_populate(clients: &[Etcd], namespaces: usize) -> anyhow::Result<()> {
    let keys: Vec<String> =
        (0..namespaces).flat_map(|n| (0..KEYS).map(move |k| format!("/read/n{n}/k{k:03}"))).collect();
    let keys = std::sync::Arc::new(keys);
    let mut tasks = Vec::new();
    for w in 0..64 {
        let (mut c, keys) = (clients[w % clients.len()].clone(), keys.clone());
        tasks.push(tokio::spawn(async move {
            for key in keys.iter().skip(w).step_by(64) {
                c.put(etcd::PutRequest { key: key.clone().into_bytes(), value: vec![b'v'; VALUE_BYTES] }).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

pub async fn etcd_gets(
    clients: Vec<Etcd>,
    concurrency: usize,
    namespaces: usize,
    d: Duration,
) -> anyhow::Result<Figure> {
    closed_loop(concurrency, d, move |w, i| {
        let mut c = clients[w % clients.len()].clone();
        let key = format!("/read/n{}/k{:03}", (w * 7919 + i as usize * 31) % namespaces, (i as usize * 17 + w) % KEYS);
        async move {
            let r =
                c.range(etcd::RangeRequest { key: key.into_bytes(), serializable: true, ..Default::default() }).await?;
            anyhow::ensure!(r.into_inner().kvs.len() == 1, "etcd key missing");
            Ok(())
        }
    })
    .await
}

pub async fn lists(clients: Vec<Query>, concurrency: usize, namespaces: usize, d: Duration) -> anyhow::Result<Figure> {
    closed_loop(concurrency, d, move |w, i| {
        let mut c = clients[w % clients.len()].clone();
        let req = ListRequest {
            namespace: format!("read/n{}", (w + i as usize) % namespaces),
            page_size: 100,
            ..Default::default()
        };
        async move {
            let page = c.list(req).await?.into_inner();
            anyhow::ensure!(page.kvs.len() == KEYS, "a full page");
            Ok(())
        }
    })
    .await
}

pub async fn etcd_lists(
    clients: Vec<Etcd>,
    concurrency: usize,
    namespaces: usize,
    d: Duration,
) -> anyhow::Result<Figure> {
    closed_loop(concurrency, d, move |w, i| {
        let mut c = clients[w % clients.len()].clone();
        let prefix = format!("/read/n{}/", (w + i as usize) % namespaces);
        let mut end = prefix.clone().into_bytes();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        async move {
            let r = c
                .range(etcd::RangeRequest {
                    key: prefix.into_bytes(),
                    range_end: end,
                    limit: 100,
                    serializable: true,
                    ..Default::default()
                })
                .await?;
            anyhow::ensure!(r.into_inner().kvs.len() == KEYS, "a full page");
            Ok(())
        }
    })
    .await
}

/// Namespaces the read workloads use (of the populated ones).
pub const READ_NAMESPACES: usize = 100;
