//! The JetStream event store against a real nats-server.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use veltrix_domain::{EventStore, Namespace, Revision, StoreError};
use veltrix_jetstream::{Error, JetStreamEventStore, JetStreamFeed, StreamSettings, connect};
use veltrix_testkit::NatsServer;

async fn open(nats: &NatsServer, settings: StreamSettings) -> Result<JetStreamEventStore, Error> {
    let (client, _) = connect(&veltrix_jetstream::NatsOptions::new(nats.url()), "test").await?;
    JetStreamEventStore::open(client, settings, Duration::from_secs(5)).await
}

#[tokio::test]
async fn conforms_to_the_event_store_contract() {
    let nats = NatsServer::start();
    let store = open(&nats, StreamSettings::default()).await.expect("open");
    veltrix_domain::conformance::run(&store).await;
}

/// Faults made with raw NATS: a payload no version decodes, and a message on
/// a subject outside the namespaces' (the stream made to take it), whose
/// revision the feed never sees.
struct RawFaults {
    js: jetstream::Context,
}

impl veltrix_domain::conformance::Faults for RawFaults {
    async fn append_undecodable(&self) -> Revision {
        let ack = self.js.publish("veltrix.events.feed.bad", "not protobuf \u{1}".into()).await.unwrap();
        Revision::new(ack.await.unwrap().sequence)
    }

    async fn lose_next_revision(&self) {
        let mut config = self.js.get_stream("VELTRIX_EVENTS").await.unwrap().info().await.unwrap().config.clone();
        if !config.subjects.iter().any(|s| s == "outside.>") {
            config.subjects.push("outside.>".into());
            self.js.update_stream(config).await.unwrap();
        }
        self.js.publish("outside.x", "elsewhere".into()).await.unwrap().await.unwrap();
    }
}

#[tokio::test]
async fn the_feed_conforms_to_the_event_feed_contract() {
    let nats = NatsServer::start();
    let (client, _) = connect(&veltrix_jetstream::NatsOptions::new(nats.url()), "feed").await.expect("connect");
    let store = JetStreamEventStore::open(client.clone(), StreamSettings::default(), Duration::from_secs(5))
        .await
        .expect("open");
    let feed = JetStreamFeed::new(client.clone(), StreamSettings::default());
    veltrix_domain::conformance::run_feed(&store, &feed, &RawFaults { js: jetstream::new(client) }).await;
}

#[tokio::test]
async fn creates_the_stream_as_configured_and_accepts_it_again() {
    let nats = NatsServer::start();
    let settings = StreamSettings { duplicate_window: Duration::from_secs(7), ..Default::default() };
    let mut store = open(&nats, settings.clone()).await.expect("create");
    let (client, _) = connect(&veltrix_jetstream::NatsOptions::new(nats.url()), "raw").await.expect("connect");
    let mut stream = jetstream::new(client).get_stream("VELTRIX_EVENTS").await.expect("stream");
    let info = stream.info().await.expect("info").config.clone();
    assert_eq!(info.subjects, vec!["veltrix.events.>".to_string()]);
    assert_eq!(info.storage, stream::StorageType::File);
    assert_eq!(info.duplicate_window, Duration::from_secs(7));
    assert!(info.deny_delete && info.deny_purge);
    drop(store);
    store = open(&nats, settings).await.expect("an existing compatible stream is accepted");
    assert_eq!(store.settings().name, "VELTRIX_EVENTS");
}

#[tokio::test]
async fn refuses_a_stream_that_would_lose_history() {
    let nats = NatsServer::start();
    let (client, _) = connect(&veltrix_jetstream::NatsOptions::new(nats.url()), "test").await.expect("connect");
    jetstream::new(client)
        .create_stream(stream::Config {
            name: "VELTRIX_EVENTS".into(),
            subjects: vec!["veltrix.events.>".into()],
            max_age: Duration::from_secs(3600),
            ..Default::default()
        })
        .await
        .expect("create a bad stream");
    match open(&nats, StreamSettings::default()).await {
        Err(e @ Error::IncompatibleStream { .. }) => assert!(e.to_string().contains("max_age"), "{e}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("an expiring stream must be refused"),
    }
}

#[tokio::test]
async fn an_undecodable_event_is_an_error_not_a_skip() {
    let nats = NatsServer::start();
    let store = open(&nats, StreamSettings::default()).await.expect("open");
    let (client, _) = connect(&veltrix_jetstream::NatsOptions::new(nats.url()), "raw").await.expect("connect");
    let js = jetstream::new(client);
    js.publish("veltrix.events.bad", "not protobuf \u{1}\u{2}".into()).await.expect("publish").await.expect("ack");
    let err = store.read(&Namespace::parse("bad").unwrap(), Revision::ZERO).await.expect_err("garbage must not decode");
    assert!(matches!(err, StoreError::Undecodable { revision, .. } if revision == 1), "{err:?}");
}
