//! The gRPC server's shared parts: health, reflection, transport settings,
//! and a gate that answers UNAVAILABLE until the service's dependencies are
//! ready.

use std::{
    future::Future,
    sync::{Arc, OnceLock},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use crate::connections::PeerRateLayer;

use tonic::transport::Server;
use tonic_health::{
    ServingStatus,
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};
use tonic_reflection::server::{v1, v1alpha};

/// The health statuses of one server: the overall status ("") and each named
/// gRPC service move together.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    services: Vec<&'static str>,
}

impl Health {
    /// A health service that starts NOT_SERVING for "" and every name given
    /// (e.g. `veltrix.config.v1.ConfigCommand`).
    pub async fn new(services: Vec<&'static str>) -> (Self, HealthServer<HealthService>) {
        let reporter = HealthReporter::new();
        let server = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
        let health = Self { reporter, services };
        health.set(false).await;
        (health, server)
    }

    /// Sets one named status on its own (e.g. a part of the service that can
    /// fail while the rest serves).
    pub async fn set_service(&self, service: &str, serving: bool) {
        let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
        self.reporter.set_service_status(service, status).await;
    }

    /// Completes when `shutdown` fires, after reporting NOT_SERVING: the
    /// graceful-shutdown signal of a server.
    pub fn not_serving_on(&self, shutdown: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
        let health = self.clone();
        async move {
            shutdown.cancelled().await;
            health.set(false).await;
        }
    }

    pub async fn set(&self, serving: bool) {
        let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
        self.reporter.set_service_status("", status).await;
        for s in &self.services {
            self.reporter.set_service_status(*s, status).await;
        }
    }
}

/// Server reflection v1 and v1alpha (grpcurl, buf curl and older tools) over
/// the Veltrix and health descriptors, listing health, reflection and the
/// `served` services (fully qualified names) and no others.
#[allow(clippy::type_complexity)]
pub fn reflection_services(
    served: &[&'static str],
) -> Result<
    (
        v1::ServerReflectionServer<impl v1::ServerReflection>,
        v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        let mut b = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(veltrix_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection");
        for name in served {
            b = b.with_service_name(*name);
        }
        b
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}

/// Transport settings for long-lived HTTP/2 connections: keepalive detects
/// dead peers, a maximum connection age rebalances clients across replicas,
/// and streams per connection are bounded.
#[derive(Debug, Clone, Copy)]
pub struct TransportSettings {
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    pub max_concurrent_streams: u32,
    pub max_connection_age: Duration,
    /// How long a connection past its age may keep its streams (a watch
    /// would keep it forever) before it is closed.
    pub max_connection_age_grace: Duration,
    /// Requests per second per remote address, before authentication (0: off).
    pub peer_rate_limit: f64,
    pub peer_rate_burst: u32,
}

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_concurrent_streams: 1024,
            max_connection_age: Duration::from_secs(30 * 60),
            max_connection_age_grace: Duration::from_secs(60),
            peer_rate_limit: 0.0,
            peer_rate_burst: 200,
        }
    }
}

/// Telemetry first (it counts every call, refused ones too), then the
/// per-address rate.
type Layers = tower_layer::Stack<PeerRateLayer, tower_layer::Stack<crate::RpcTelemetryLayer, tower_layer::Identity>>;

pub fn server_builder(t: TransportSettings) -> Server<Layers> {
    crate::describe_rpc_metrics();
    crate::connections::describe_connection_metrics();
    Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(t.keepalive_interval))
        .http2_keepalive_timeout(Some(t.keepalive_timeout))
        .max_concurrent_streams(t.max_concurrent_streams)
        .max_connection_age(t.max_connection_age)
        .max_connection_age_grace(t.max_connection_age_grace)
        .layer(crate::RpcTelemetryLayer)
        .layer(PeerRateLayer::new(t.peer_rate_limit, t.peer_rate_burst))
}

/// A value that is set once the service's dependencies are ready; until
/// then calls are answered UNAVAILABLE.
pub struct ServingGate<T> {
    cell: Arc<OnceLock<T>>,
    waiting_for: &'static str,
}

impl<T> Clone for ServingGate<T> {
    fn clone(&self) -> Self {
        Self { cell: self.cell.clone(), waiting_for: self.waiting_for }
    }
}

impl<T> ServingGate<T> {
    pub fn new(waiting_for: &'static str) -> Self {
        Self { cell: Arc::new(OnceLock::new()), waiting_for }
    }

    pub fn open(&self, value: T) {
        let _ = self.cell.set(value);
    }

    pub fn get(&self) -> Result<&T, crate::NotReady> {
        self.cell.get().ok_or(crate::NotReady(self.waiting_for))
    }
}

/// Runs `server` (built with a graceful-shutdown future that watches
/// `shutdown`) until it ends; after `shutdown` fires, gives in-flight calls
/// `grace` to finish, then closes what is left.
pub async fn run_until_shutdown<F>(
    server: F,
    shutdown: CancellationToken,
    grace: Duration,
) -> Result<(), tonic::transport::Error>
where
    F: Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
{
    let mut serving = tokio::spawn(server);
    let joined = |r: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>| match r {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(error = %e, "the server task failed");
            Ok(())
        }
    };
    tokio::select! {
        result = &mut serving => return joined(result),
        () = shutdown.cancelled() => {}
    }
    match tokio::time::timeout(grace, &mut serving).await {
        Ok(result) => joined(result),
        Err(_) => {
            tracing::warn!(?grace, "in-flight calls did not finish within the grace period; closing");
            serving.abort();
            Ok(())
        }
    }
}

/// Starts the Prometheus endpoint when `listen` is set; it stops with
/// `shutdown`.
pub async fn start_metrics(
    listen: Option<std::net::SocketAddr>,
    shutdown: CancellationToken,
) -> Result<Option<std::net::SocketAddr>, std::io::Error> {
    let Some(addr) = listen else { return Ok(None) };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    // Installed now, so that the metrics described at start-up are kept.
    veltrix_telemetry::metrics::recorder();
    tokio::spawn(veltrix_telemetry::metrics::serve_metrics(listener, shutdown));
    tracing::info!(addr = %bound, "metrics endpoint listening on /metrics");
    Ok(Some(bound))
}
