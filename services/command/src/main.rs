//! `veltrix-command`: parse the configuration, start telemetry, serve until
//! SIGTERM/SIGINT.

/// mimalloc: the request paths allocate many small, short-lived buffers
/// (see docs/BENCHMARKS.md, "Improvements").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use veltrix_command::Config;
use veltrix_telemetry::LogFormat;

#[tokio::main]
async fn main() -> Result<(), veltrix_server::BoxError> {
    let config: Config = veltrix_server::parse_or_exit();
    let format = if config.serve.json_logs() { LogFormat::Json } else { LogFormat::Text };
    let _telemetry = veltrix_telemetry::init("veltrix-command", format)?;
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
