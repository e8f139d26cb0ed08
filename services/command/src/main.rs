//! `veltrix-command`: parse the configuration, start telemetry, serve until
//! SIGTERM/SIGINT.

use veltrix_command::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = veltrix_server::parse_or_exit();
    let _telemetry = veltrix_telemetry::init("veltrix-command", config.telemetry_format())?;
    let running = veltrix_command::start(config).await?;
    let stop = {
        let token = running.shutdown_token();
        async move {
            veltrix_server::shutdown_signal().await;
            token.cancel();
        }
    };
    tokio::spawn(stop);
    running.wait().await
}
