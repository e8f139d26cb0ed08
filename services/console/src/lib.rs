//! The web console of Veltrix Config: a backend for the browser. It serves
//! the web app (built from `web/`, embedded from `assets/`) and a JSON API
//! under `/api/`, and calls `veltrix-command` and `veltrix-query` over gRPC
//! with each signed-in caller's own credentials, so that the services'
//! authorization applies unchanged. The caller's token stays here, behind
//! an HttpOnly, SameSite=Strict session cookie; writes also need the
//! session's CSRF token.
//!
//! - [`config`]: flags and `VELTRIX_*` variables;
//! - [`session`]: sessions, their cookie and CSRF token, expiry;
//! - [`api`]: the JSON endpoints and the live updates (Server-Sent Events);
//! - [`assets`]: the embedded web app.

pub mod api;
pub mod assets;
pub mod config;
pub mod session;

use std::{net::SocketAddr, sync::Arc};

pub use config::Config;
use veltrix_server::{BoxError, CancellationToken};

/// A console that serves until `shutdown` is cancelled.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Waits until the server stops (after `shutdown`).
    pub async fn wait(self) -> Result<(), BoxError> {
        self.task.await??;
        Ok(())
    }
}

/// Binds `config.listen` and serves the console.
pub async fn start(config: Config) -> Result<Running, BoxError> {
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(api::State::new(&config, addr, shutdown.clone())?);
    session::spawn_sweeper(state.sessions.clone(), shutdown.clone());
    let app = api::router(state);
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await
    });
    tracing::info!(%addr, "veltrix-console serving");
    Ok(Running { addr, shutdown, task })
}
