//! Honest size limits against real nats-servers: the value limit is fitted
//! to the server's `max_payload` (a stock server's 1 MB) and reachable; an
//! explicit limit that does not fit refuses to start, naming both numbers
//! and the server setting; a change set whose event would not fit is
//! INVALID_ARGUMENT naming the limit, and nothing is appended; a server
//! with a larger `max_payload` takes a value of exactly 1 MiB.
#![allow(clippy::unwrap_used)] // tests may unwrap

use tonic::Code;
use veltrix_proto::v1::{ApplyRequest, Change, PutRequest, SetValue, change};
use veltrix_testkit::NatsServer;
use veltrix_testsystem::*;

/// A stock nats-server's max_payload.
const STOCK_MAX_PAYLOAD: usize = 1024 * 1024;
const OVERHEAD: usize = veltrix_domain::EVENT_OVERHEAD;

fn put_bytes(ns: &str, key: &str, len: usize) -> PutRequest {
    PutRequest { namespace: ns.into(), key: key.into(), value: vec![b'x'; len], ..Default::default() }
}

fn set(key: &str, len: usize) -> Change {
    Change {
        key: key.into(),
        expected_revision: None,
        op: Some(change::Op::Set(SetValue { value: vec![b'y'; len], content_type: String::new() })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_stock_server_the_default_value_limit_fits_and_is_reachable() {
    let sys = TestSystem::builder().queries(0).start().await;
    let mut cmd = sys.cmd();
    let mut reader = StreamReader::new(&sys.nats_url()).await;
    let limit = STOCK_MAX_PAYLOAD - OVERHEAD;
    // Exactly the limit is stored; one byte more is refused, naming it.
    cmd.put(put_bytes("big/ns", "at-limit", limit)).await.unwrap();
    let over = assert_code(cmd.put(put_bytes("big/ns", "over", limit + 1)).await, Code::InvalidArgument);
    assert!(over.message().starts_with(&format!("value: must be at most {limit} bytes")), "{}", over.message());
    // Values under the limit that together would not fit in one message:
    // refused before anything is sent, naming the message limit.
    let apply = ApplyRequest {
        namespace: "big/ns".into(),
        changes: vec![set("a", 530_000), set("b", 530_000)],
        ..Default::default()
    };
    let status = assert_code(cmd.apply(apply).await, Code::InvalidArgument);
    assert!(
        status.message().starts_with(&format!("changes: must fit in one event of at most {STOCK_MAX_PAYLOAD} bytes")),
        "{}",
        status.message()
    );
    assert_eq!(reader.count().await, 1, "only the value at the limit was appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_limit_the_server_cannot_take_refuses_to_start_naming_both_numbers() {
    let mut sys =
        TestSystem::builder().queries(0).no_wait().command(|c| c.max_value_bytes = Some(1024 * 1024)).start().await;
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), sys.take_command(0).wait()).await.unwrap();
    let message = ended.unwrap_err().to_string();
    assert!(message.contains("--max-value-bytes 1048576"), "{message}");
    assert!(message.contains(&format!("max_payload of {STOCK_MAX_PAYLOAD} bytes")), "{message}");
    assert!(
        message.contains(&format!("at least {}", 1024 * 1024 + OVERHEAD)),
        "names the setting to change: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_larger_max_payload_takes_a_value_of_exactly_one_mebibyte() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nats.conf");
    std::fs::write(&conf, "max_payload: 8MB\n").unwrap();
    let nats = NatsServer::start_with_args(&["-c", conf.to_str().unwrap()]);
    let sys =
        TestSystem::builder().nats(nats).queries(0).command(|c| c.max_value_bytes = Some(1024 * 1024)).start().await;
    let mut cmd = sys.cmd();
    cmd.put(put_bytes("big/ns", "mib", 1024 * 1024)).await.unwrap();
    let over = assert_code(cmd.put(put_bytes("big/ns", "over", 1024 * 1024 + 1)).await, Code::InvalidArgument);
    assert!(over.message().starts_with("value: must be at most 1048576 bytes"), "{}", over.message());
}
