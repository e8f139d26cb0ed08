//! Clients of everything measured: our services, etcd, the gRPC floor.

use std::time::Duration;

use anyhow::Context;
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use veltrix_proto::v1::{config_command_client::ConfigCommandClient, config_query_client::ConfigQueryClient};

use crate::procs::Proc;

pub mod etcd {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("etcdserverpb");
}

pub type Command = ConfigCommandClient<Channel>;
pub type Query = ConfigQueryClient<Channel>;
pub type Etcd = etcd::kv_client::KvClient<Channel>;

/// `n` HTTP/2 connections to a server (one channel each).
pub async fn channels(proc: &Proc, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Channel::from_shared(proc.url("http"))?.tcp_nodelay(true).connect().await?);
    }
    Ok(out)
}

/// Waits until a service reports SERVING.
pub async fn serving(proc: &Proc) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(ch) = Channel::from_shared(proc.url("http"))?.connect().await {
            let status = HealthClient::new(ch).check(HealthCheckRequest { service: String::new() }).await;
            if status.is_ok_and(|s| s.into_inner().status == ServingStatus::Serving as i32) {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("{} did not become SERVING", proc.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of a Prometheus endpoint.
pub async fn scrape(port: u16) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.context("metrics endpoint")?;
    conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: bench\r\n\r\n").await?;
    let mut text = String::new();
    conn.read_to_string(&mut text).await?;
    Ok(text)
}

/// The value of an unlabelled metric on a Prometheus endpoint.
pub async fn metric(port: u16, name: &str) -> anyhow::Result<Option<f64>> {
    let text = scrape(port).await?;
    Ok(text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()))
}
