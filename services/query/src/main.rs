//! `veltrix-query`: parse the configuration, start telemetry, serve until
//! SIGTERM/SIGINT.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: veltrix_query::Config = veltrix_server::parse_or_exit();
    let _telemetry = veltrix_telemetry::init("veltrix-query", veltrix_telemetry::LogFormat::Text)?;
    let running = veltrix_query::start(config).await?;
    let token = running.shutdown.clone();
    tokio::spawn(async move {
        veltrix_server::shutdown_signal().await;
        token.cancel();
    });
    running.wait().await
}
