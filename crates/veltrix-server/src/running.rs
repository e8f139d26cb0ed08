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
