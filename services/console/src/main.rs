//! `veltrix-console`: parse the configuration, start telemetry, then serve
//! the web console until SIGTERM/SIGINT.

use veltrix_console::Config;
use veltrix_server::BoxError;
use veltrix_telemetry::LogFormat;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let config: Config = veltrix_server::parse_or_exit();
    let format = if config.log_format == veltrix_server::LogFormat::Json { LogFormat::Json } else { LogFormat::Text };
    let _telemetry = veltrix_telemetry::init("veltrix-console", format)?;
    let running = veltrix_console::start(config).await?;
    println!("veltrix-console on http://{}", running.addr);
    let token = running.shutdown.clone();
    tokio::spawn(async move {
        veltrix_server::shutdown_signal().await;
        token.cancel();
    });
    running.wait().await
}
