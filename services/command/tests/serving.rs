//! What grpcurl and load balancers rely on: health, reflection v1 and
//! v1alpha, and a graceful stop.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::Duration;

use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tonic_reflection::pb::{v1, v1alpha};
use veltrix_testsystem::*;

async fn channel(sys: &TestSystem) -> Channel {
    Channel::from_shared(format!("http://{}", sys.command_addr())).expect("url").connect().await.expect("connect")
}

#[tokio::test]
async fn health_and_reflection_work_for_standard_tools() {
    let sys = TestSystem::builder().queries(0).start().await;
    let ch = channel(&sys).await;
    let mut health = HealthClient::new(ch.clone());
    for service in ["", "veltrix.config.v1.ConfigCommand"] {
        let status =
            health.check(HealthCheckRequest { service: service.into() }).await.expect("check").into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut responses = v1::server_reflection_client::ServerReflectionClient::new(ch.clone())
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection v1")
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        responses.message().await.expect("answer").and_then(|r| r.message_response)
    else {
        panic!("a service list")
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["veltrix.config.v1.ConfigCommand", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]
    {
        assert!(names.iter().any(|n| n == expected), "{expected} in {names:?}");
    }

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
            "veltrix.config.v1.ConfigCommand".into(),
        )),
    };
    let mut responses = v1alpha::server_reflection_client::ServerReflectionClient::new(ch)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    let answer = responses.message().await.expect("answer").and_then(|r| r.message_response);
    assert!(
        matches!(answer, Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
        "{answer:?}"
    );
}

#[tokio::test]
async fn shutdown_stops_serving_and_ends_cleanly() {
    let mut sys = TestSystem::builder().queries(0).start().await;
    let (svc, mut client) = (sys.take_command(0), sys.cmd());
    client.put(put("ns", "k", "v")).await.expect("serving");
    let addr = svc.addr();
    svc.shutdown();
    tokio::time::timeout(Duration::from_secs(10), svc.wait())
        .await
        .expect("stops within the grace period")
        .expect("clean");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the port is closed");
}
