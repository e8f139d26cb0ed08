//! The serving scaffold both services start with: bind the listener and the
//! metrics endpoint, health (NOT_SERVING until the service says otherwise),
//! reflection, the per-RPC metrics, the access policy with its reloader;
//! then serve the service's API beside them (TLS from the flags) until
//! shutdown. And the one retry loop for connecting to dependencies.

use std::{convert::Infallible, fmt::Display, future::Future, net::SocketAddr, time::Duration};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::{body::Body, server::NamedService};
use veltrix_access::Auth;

use crate::{
    BoxError, Health, ReadySender, Running, Scaffold, ServeArgs, connections::incoming, reflection_services,
    run_until_shutdown, server_builder,
};

/// A service's server, bound and with its shared parts, before its API is added.
pub struct ServiceServer {
    name: &'static str,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    shutdown: CancellationToken,
    ready: watch::Receiver<bool>,
    /// For the task that prepares the dependencies: `true` once serving.
    pub ready_tx: Option<ReadySender>,
    pub health: Health,
    pub auth: Auth,
    health_service: tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>,
}

impl ServiceServer {
    /// Binds `listen` for the gRPC service `name` (e.g.
    /// `veltrix.config.v1.ConfigQuery`) of `program`.
    pub async fn bind(
        name: &'static str,
        program: &'static str,
        listen: SocketAddr,
        serve: &ServeArgs,
    ) -> Result<Self, BoxError> {
        let Scaffold { listener, addr, shutdown, ready_tx, ready } =
            Scaffold::bind(listen, serve.metrics_listen).await?;
        crate::register_rpc_metrics(&[name]);
        let (health, health_service) = Health::new(vec![name]).await;
        let auth = Auth::load(serve.auth_config.as_deref(), serve.auth_off, program, serve.limits)?;
        auth.spawn_reloader(shutdown.clone());
        Ok(Self { name, listener, addr, shutdown, ready, ready_tx: Some(ready_tx), health, auth, health_service })
    }

    /// Where the service listens (the bound port, also when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves health, reflection and `api` until shutdown, then drains for
    /// the grace period. `after` runs when the server has stopped and gives
    /// the service's result (e.g. a fatal error found while preparing).
    pub fn serve<S, A>(self, api: S, serve: &ServeArgs, after: A) -> Result<Running, BoxError>
    where
        S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        A: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let (reflection_v1, reflection_v1alpha) = reflection_services(&[self.name])?;
        let mut builder = server_builder(serve.transport());
        if let Some(tls) = serve.tls.server_config()? {
            builder = builder.tls_config(tls)?;
        }
        let server = builder
            .add_service(self.health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(api)
            .serve_with_incoming_shutdown(
                incoming(self.listener, serve.max_connections),
                self.health.not_serving_on(self.shutdown.clone()),
            );
        tracing::info!(addr = %self.addr, service = self.name, "listening");
        let (stop, grace) = (self.shutdown.clone(), serve.shutdown_grace);
        let task = tokio::spawn(async move {
            run_until_shutdown(server, stop, grace).await?;
            after.await
        });
        Ok(Running::new(self.addr, self.shutdown, self.ready, task))
    }
}

/// How one attempt to reach a dependency failed.
pub enum Attempt<E> {
    /// Try again after a backoff (the dependency is not up yet).
    Retry(E),
    /// Give up: an operator must act.
    Fatal(E),
}

/// Runs `attempt` until it succeeds (with a backoff from 100 ms to 5 s and a
/// WARN line per failure naming `what`), a fatal error, or `shutdown`
/// (`Ok(None)`).
pub async fn retry_until_ready<T, E: Display, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Result<Option<T>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt<E>>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(v) => return Ok(Some(v)),
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Retry(e)) => {
                tracing::warn!(error = %e, retry_in = ?delay, "{what} not ready");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return Ok(None),
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
