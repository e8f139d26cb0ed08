//! The agent's binary: flags, telemetry, /healthz and /metrics, then the
//! agent's loop (or `--once`).

use std::process::ExitCode;

use clap::Parser;
use veltrix_agent::{config::Args, run::Agent};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Args::parse().settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("veltrix-agent: {e:#}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = match veltrix_telemetry::init("veltrix-agent", veltrix_telemetry::LogFormat::Text) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("veltrix-agent: telemetry: {e}");
            None
        }
    };
    let once = settings.once;
    let listen = settings.metrics_listen;
    let agent = Agent::new(settings);
    let shutdown = tokio_util::sync::CancellationToken::new();
    if let Some(addr) = listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                tokio::spawn(veltrix_telemetry::metrics::serve_endpoints(
                    listener,
                    shutdown.clone(),
                    Some(agent.healthy()),
                ));
            }
            Err(e) => {
                eprintln!("veltrix-agent: cannot listen on {addr}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let result = if once { agent.once().await } else { agent.run().await };
    shutdown.cancel();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("veltrix-agent: {e:#}");
            ExitCode::from(veltrix_agent::run::exit::REJECTED)
        }
    }
}
