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
