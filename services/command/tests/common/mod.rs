//! Shared fixtures: a real nats-server, the command service in-process on a
//! free port, a gRPC client, and a reader of the raw event stream.
#![allow(dead_code)]

use std::time::Duration;

use async_nats::jetstream;
use prost::Message;
use tonic::{Code, Request, Status, transport::Channel};
use veltrix_command::{Config, Running};
use veltrix_proto::v1::{ChangeSetCommitted, PutRequest, config_command_client::ConfigCommandClient};
use veltrix_testkit::NatsServer;

pub type Client = ConfigCommandClient<Channel>;

pub fn config(nats: &NatsServer) -> Config {
    let mut c = Config::defaults();
    c.listen = "127.0.0.1:0".parse().expect("addr");
    c.nats.nats_url = nats.url();
    c.serve.shutdown_grace = Duration::from_secs(2);
    c
}

pub async fn start(config: Config) -> Running {
    let mut running = veltrix_command::start(config).await.expect("start the command service");
    tokio::time::timeout(Duration::from_secs(20), running.ready()).await.expect("ready in time").expect("ready");
    running
}

pub async fn client(running: &Running) -> Client {
    let url = format!("http://{}", running.addr());
    ConfigCommandClient::new(Channel::from_shared(url).expect("url").connect().await.expect("connect"))
}

/// A service on a fresh nats-server, with a client.
pub async fn setup() -> (NatsServer, Running, Client) {
    let nats = NatsServer::start();
    let running = start(config(&nats)).await;
    let client = client(&running).await;
    (nats, running, client)
}

pub fn put(ns: &str, key: &str, value: &str) -> PutRequest {
    PutRequest { namespace: ns.into(), key: key.into(), value: value.as_bytes().to_vec(), ..Default::default() }
}

pub fn with_actor<T>(msg: T, actor: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("x-veltrix-actor", actor.parse().expect("ascii"));
    r
}

pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Err(s) if s.code() == code => s,
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

/// Reads the raw event stream as a client outside the service would.
pub struct StreamReader {
    stream: jetstream::stream::Stream,
}

impl StreamReader {
    pub async fn new(nats: &NatsServer) -> Self {
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let stream = jetstream::new(client).get_stream("VELTRIX_EVENTS").await.expect("stream exists");
        Self { stream }
    }

    pub async fn count(&mut self) -> u64 {
        self.stream.info().await.expect("info").state.messages
    }

    /// The event at `revision`: subject, `Veltrix-Event` header, decoded payload.
    pub async fn event(&self, revision: u64) -> (String, Option<String>, ChangeSetCommitted) {
        let msg = self.stream.get_raw_message(revision).await.expect("message at revision");
        let event_type = msg.headers.get("Veltrix-Event").map(|v| v.as_str().to_owned());
        let decoded = ChangeSetCommitted::decode(msg.payload.as_ref()).expect("decodes with the proto types");
        (msg.subject.to_string(), event_type, decoded)
    }

    /// Every event in order, decoded.
    pub async fn all(&mut self) -> Vec<(u64, ChangeSetCommitted)> {
        let last = self.stream.info().await.expect("info").state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            out.push((seq, self.event(seq).await.2));
        }
        out
    }
}
