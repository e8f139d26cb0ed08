//! The raw event stream, read as a client outside the services would.

use async_nats::jetstream;
use prost::Message;
use veltrix_proto::v1::ChangeSetCommitted;

pub struct StreamReader {
    stream: jetstream::stream::Stream,
}

impl StreamReader {
    pub async fn new(nats_url: &str) -> Self {
        let client = async_nats::connect(nats_url).await.expect("connect to NATS");
        let stream = jetstream::new(client).get_stream("VELTRIX_EVENTS").await.expect("the event stream exists");
        Self { stream }
    }

    pub async fn count(&mut self) -> u64 {
        self.stream.info().await.expect("stream info").state.messages
    }

    /// The event at `revision`: subject, `Veltrix-Event` header, decoded payload.
    pub async fn event(&self, revision: u64) -> (String, Option<String>, ChangeSetCommitted) {
        let msg = self.stream.get_raw_message(revision).await.expect("a message at the revision");
        let event_type = msg.headers.get("Veltrix-Event").map(|v| v.as_str().to_owned());
        let decoded = ChangeSetCommitted::decode(msg.payload.as_ref()).expect("decodes with the proto types");
        (msg.subject.to_string(), event_type, decoded)
    }

    /// Every event in order, decoded.
    pub async fn all(&mut self) -> Vec<(u64, ChangeSetCommitted)> {
        let last = self.stream.info().await.expect("stream info").state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            out.push((seq, self.event(seq).await.2));
        }
        out
    }
}

/// Appends `change_sets` events to `namespace` straight to the stream (as
/// the command service would have written them over time, one a second up
/// to now), each setting `keys_per_change` keys: the key `k{n}` for
/// `n = (i * keys_per_change + j) % key_space`. Answers the last revision.
/// Much faster than going through the service, for histories of millions.
pub async fn fill_history(
    nats_url: &str,
    namespace: &str,
    change_sets: u64,
    keys_per_change: u64,
    key_space: u64,
) -> u64 {
    use async_nats::{HeaderMap, jetstream::message::PublishMessage};
    use veltrix_proto::v1::{EventKeyChange, EventSetValue, event_key_change};
    let client = async_nats::connect(nats_url).await.expect("connect to NATS");
    let js = jetstream::new(client);
    let subject = format!("veltrix.events.{}", namespace.replace('/', "."));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("a clock after 1970").as_secs();
    let mut inflight = std::collections::VecDeque::new();
    let mut last = 0;
    for i in 0..change_sets {
        let changes = (0..keys_per_change)
            .map(|j| EventKeyChange {
                key: format!("k{}", (i * keys_per_change + j) % key_space),
                op: Some(event_key_change::Op::Set(EventSetValue {
                    value: format!("v{i}").into_bytes(),
                    content_type: "text/plain".into(),
                })),
                ..Default::default()
            })
            .collect();
        let event = ChangeSetCommitted {
            namespace: namespace.into(),
            changes,
            actor: "filler".into(),
            reason: "history".into(),
            request_id: format!("fill-{i}"),
            request_digest: vec![0; 32],
            time: Some(prost_types::Timestamp {
                seconds: i64::try_from(now - (change_sets - i)).expect("a time in range"),
                nanos: 0,
            }),
            ..Default::default()
        };
        let mut headers = HeaderMap::new();
        headers.insert("Veltrix-Event", veltrix_proto::convert::EVENT_TYPE);
        let message = PublishMessage::build().headers(headers).payload(event.encode_to_vec().into());
        inflight.push_back(js.send_publish(subject.clone(), message).await.expect("publish"));
        if inflight.len() >= 1024 {
            last = inflight.pop_front().expect("one in flight").await.expect("ack").sequence;
        }
    }
    while let Some(ack) = inflight.pop_front() {
        last = ack.await.expect("ack").sequence;
    }
    last
}
