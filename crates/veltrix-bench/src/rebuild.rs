//! Rebuild: projecting a long stream into an empty Redis, against reading
//! the same stream with a consumer that does nothing.

use std::time::{Duration, Instant, SystemTime};

use async_nats::{
    HeaderMap,
    jetstream::{
        self,
        consumer::{AckPolicy, DeliverPolicy, pull},
        message::PublishMessage,
    },
};
use futures::StreamExt;
use veltrix_domain::{
    Actor, ChangeSetCommitted, ContentType, Key, KeyChange, KeyOp, Namespace, Reason, RequestId, TraceContext,
};
use veltrix_proto::convert::{EVENT_TYPE, encode_event};

use crate::load::{CpuMeter, Figure};

/// Publishes `count` one-key change sets over `namespaces` namespaces to the
/// event stream (created by a command service beforehand), 1024 in flight.
pub async fn fill(url: &str, count: u64, namespaces: u64) -> anyhow::Result<()> {
    fill_keys(url, "rb/n", count, namespaces, u64::MAX).await
}

/// Like [`fill`], over namespaces `{prefix}{n}`, each change set setting
/// one of `keys` keys of its namespace (cycling).
pub async fn fill_keys(url: &str, prefix: &str, count: u64, namespaces: u64, keys: u64) -> anyhow::Result<()> {
    let js = jetstream::new(async_nats::connect(url).await?);
    let mut inflight = std::collections::VecDeque::new();
    for i in 0..count {
        let ns = Namespace::parse(&format!("{prefix}{}", i % namespaces)).map_err(|e| anyhow::anyhow!("{e}"))?;
        let key = Key::parse(&format!("k{}", (i / namespaces) % keys)).map_err(|e| anyhow::anyhow!("{e}"))?;
        let event = ChangeSetCommitted {
            namespace: ns.clone(),
            changes: vec![KeyChange {
                key,
                op: KeyOp::Set {
                    value: vec![b'v'; 64],
                    content_type: ContentType::parse("").map_err(|e| anyhow::anyhow!("{e}"))?,
                },
                previous_mod_revision: veltrix_domain::Revision::ZERO,
                expected: None,
                create_revision: veltrix_domain::Revision::ZERO,
                version: 1,
            }],
            actor: Actor::anonymous(),
            reason: Reason::default(),
            request_id: RequestId::default(),
            request_digest: vec![0; 32],
            time: SystemTime::now(),
            trace: TraceContext::default(),
            origin: veltrix_domain::Origin::Write,
            schema_changes: Vec::new(),
            rollout: None,
        };
        let mut headers = HeaderMap::new();
        headers.insert("Veltrix-Event", EVENT_TYPE);
        let subject = format!("veltrix.events.{}", ns.as_str().replace('/', "."));
        let msg = PublishMessage::build().headers(headers).payload(encode_event(&event).into());
        inflight.push_back(js.send_publish(subject, msg).await?);
        if inflight.len() >= 1024
            && let Some(ack) = inflight.pop_front()
        {
            ack.await?;
        }
    }
    for ack in inflight {
        ack.await?;
    }
    Ok(())
}

/// Reads `count` events with a pull consumer and does nothing with them.
pub async fn raw_read(url: &str, count: u64) -> anyhow::Result<Figure> {
    let js = jetstream::new(async_nats::connect(url).await?);
    let stream = js.get_stream("VELTRIX_EVENTS").await?;
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await?;
    let meter = CpuMeter::start();
    let mut messages = consumer.stream().max_messages_per_batch(1000).messages().await?;
    let mut n = 0;
    while n < count {
        match messages.next().await {
            Some(Ok(_)) => n += 1,
            Some(Err(e)) => anyhow::bail!("reading the stream: {e}"),
            None => anyhow::bail!("the stream ended early"),
        }
    }
    let (wall, cores) = meter.stop();
    Ok(Figure {
        throughput: count as f64 / wall,
        ops: count,
        seconds: wall,
        generator_cores: cores,
        ..Default::default()
    })
}

/// Waits until the query service's applied revision reaches `count`;
/// answers the rate since `started`.
pub async fn projected(metrics_port: u16, count: u64, started: Instant) -> anyhow::Result<Figure> {
    let deadline = started + Duration::from_secs(3600);
    loop {
        // The endpoint may not listen yet right after the start.
        let applied = crate::clients::metric(metrics_port, "veltrix_projection_applied_revision")
            .await
            .ok()
            .flatten()
            .unwrap_or(0.0);
        if applied as u64 >= count {
            let wall = started.elapsed().as_secs_f64();
            return Ok(Figure { throughput: count as f64 / wall, ops: count, seconds: wall, ..Default::default() });
        }
        anyhow::ensure!(Instant::now() < deadline, "the rebuild did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
