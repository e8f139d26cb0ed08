//! The query service of Veltrix Config. For now it serves gRPC health and
//! reflection; the Redis read model, reads and watch streams come next.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;
use veltrix_server::{
    CancellationToken, Health, TransportSettings, parse_duration, reflection_services, run_until_shutdown,
    server_builder,
};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "veltrix-query",
    version,
    about = "Veltrix Config query service: Redis read model, reads and watch streams"
)]
pub struct Config {
    /// Address of the gRPC server.
    #[arg(long, env = "VELTRIX_LISTEN", default_value = "127.0.0.1:50052")]
    pub listen: SocketAddr,

    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "VELTRIX_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// Redis URL of the read model.
    #[arg(long, env = "VELTRIX_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// How long in-flight calls may finish after a shutdown signal.
    #[arg(long, env = "VELTRIX_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: std::time::Duration,
}

pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("the service task panicked")?
    }
}

pub async fn start(config: Config) -> anyhow::Result<Running> {
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let (health, health_service) = Health::new(vec![]).await;
    let (v1, v1alpha) = reflection_services(&[])?;
    health.set(true).await;
    let stop = shutdown.clone();
    let server = server_builder(TransportSettings::default())
        .add_service(health_service)
        .add_service(v1)
        .add_service(v1alpha)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            stop.cancelled().await;
            health.set(false).await;
        });
    tracing::info!(%addr, "query service listening (health and reflection only)");
    let grace = config.shutdown_grace;
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { Ok(run_until_shutdown(server, stop, grace).await?) });
    Ok(Running { addr, shutdown, task })
}
