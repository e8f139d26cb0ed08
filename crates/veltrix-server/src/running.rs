//! A started service, as `main` and the tests hold it.

use std::net::SocketAddr;

use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// A service that is serving on `addr` (its dependencies may still be
/// coming up: see [`Running::ready`]).
pub struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
    ready: watch::Receiver<bool>,
    task: JoinHandle<Result<(), BoxError>>,
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Reports readiness from the task that prepares the dependencies.
pub type ReadySender = watch::Sender<bool>;

impl Running {
    pub fn new(
        addr: SocketAddr,
        shutdown: CancellationToken,
        ready: watch::Receiver<bool>,
        task: JoinHandle<Result<(), BoxError>>,
    ) -> Self {
        Self { addr, shutdown, ready, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until the service reports SERVING; an error if it stopped first.
    pub async fn ready(&mut self) -> Result<(), BoxError> {
        self.ready.wait_for(|r| *r).await.map(|_| ()).map_err(|_| "the service stopped before it was ready".into())
    }

    /// Asks the service to stop: health NOT_SERVING, drain, close.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// A token that stops the service when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits for the service to end; an error if it could not run.
    pub async fn wait(self) -> Result<(), BoxError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(format!("the service task failed: {e}").into()),
        }
    }
}

/// What every service sets up before its own parts: the bound listener,
/// the shutdown token, readiness, and the metrics endpoint.
pub struct Scaffold {
    pub listener: tokio::net::TcpListener,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub ready_tx: ReadySender,
    pub ready: watch::Receiver<bool>,
}

impl Scaffold {
    pub async fn bind(listen: SocketAddr, metrics_listen: Option<SocketAddr>) -> Result<Self, BoxError> {
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let (ready_tx, ready) = watch::channel(false);
        crate::start_metrics(metrics_listen, shutdown.clone())
            .await
            .map_err(|e| format!("cannot serve metrics: {e}"))?;
        Ok(Self { listener, addr, shutdown, ready_tx, ready })
    }
}
