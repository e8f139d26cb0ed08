//! What a stranger can hold before any call is authorized: connections
//! (a cap per process), TLS handshakes that never finish, connections kept
//! past their age by a stream, and requests from one address (counted
//! before authentication, bad tokens and made-up methods included).
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tonic::{Code, metadata::MetadataValue, transport::Channel};
use veltrix_proto::v1::{ListNamespacesRequest, WatchRequest};
use veltrix_testkit::pki::TestCa;
use veltrix_testsystem::*;

async fn list(channel: &Channel) -> Result<(), tonic::Status> {
    Query::new(channel.clone()).list_namespaces(ListNamespacesRequest::default()).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_and_a_place_frees_when_one_ends() {
    let env = TestSystem::builder().query(|c| c.serve.max_connections = 2).start().await;
    let (a, b) = (channel(env.query_addr()).await, channel(env.query_addr()).await);
    list(&a).await.unwrap();
    list(&b).await.unwrap();
    // A third connection is closed at once: its call fails.
    let third = Channel::from_shared(format!("http://{}", env.query_addr())).unwrap().connect_lazy();
    let refused = list(&third).await.unwrap_err();
    assert!(matches!(refused.code(), Code::Unavailable | Code::Unknown | Code::Cancelled), "{refused:?}");
    drop((a, third));
    eventually(Duration::from_secs(10), "a place frees when a connection ends", || async {
        let c = Channel::from_shared(format!("http://{}", env.query_addr())).unwrap().connect().await.ok()?;
        list(&c).await.ok()
    })
    .await;
    list(&b).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_finishes_is_cut() {
    let ca = TestCa::new("handshake");
    let server = ca.issue("server", "localhost", &["localhost"]);
    let tls = veltrix_server::tls::TlsArgs {
        tls_cert: Some(server.cert.clone()),
        tls_key: Some(server.key.clone()),
        tls_handshake_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let env = TestSystem::builder().tls(tls).start().await;
    // Connects and says nothing: the server closes the connection.
    let mut silent = tokio::net::TcpStream::connect(env.query_addr()).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the silent connection is closed, not kept: {read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_does_not_keep_its_connection_past_the_age_and_grace() {
    let env = TestSystem::builder()
        .query(|c| {
            c.serve.max_connection_age = Duration::from_secs(1);
            c.serve.max_connection_age_grace = Duration::from_secs(1);
        })
        .start()
        .await;
    let request = WatchRequest { namespace: "aged/app".into(), ..Default::default() };
    let mut stream = env.q().watch(request).await.unwrap().into_inner();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the watch ends once its connection is past age and grace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_per_address_applies_before_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.yaml");
    let digest = veltrix_auth::token_digest("good-token-1234567890");
    std::fs::write(&auth, format!("tokens: [{{identity: ci, sha256: \"{digest}\"}}]\n")).unwrap();
    let env = TestSystem::builder()
        .auth(&auth)
        .query(|c| {
            c.serve.peer_rate_limit = 0.5;
            c.serve.peer_rate_burst = 3;
        })
        .start()
        .await;
    let q = env.q();
    let with_token = |token: &str| {
        let mut r = tonic::Request::new(ListNamespacesRequest::default());
        r.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {token}")).unwrap());
        r
    };
    // Bad tokens use up the address's burst...
    for _ in 0..2 {
        let code = q.clone().list_namespaces(with_token("bad-token")).await.unwrap_err().code();
        assert_eq!(code, Code::Unauthenticated);
    }
    // ...and so does a made-up method.
    let mut grpc = tonic::client::Grpc::new(channel(env.query_addr()).await);
    grpc.ready().await.unwrap();
    let path: http::uri::PathAndQuery = "/veltrix.config.v1.ConfigQuery/MadeUp".parse().unwrap();
    let made_up = grpc.unary(tonic::Request::new(()), path, tonic_prost::ProstCodec::<(), ()>::default()).await;
    assert_eq!(made_up.map(drop).unwrap_err().code(), Code::Unimplemented);
    // The burst is spent: refused before authentication, good token or not.
    for token in ["bad-token", "good-token-1234567890"] {
        let status = q.clone().list_namespaces(with_token(token)).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{token}: {status:?}");
    }
}
