//! `veltrix-query`: parse the configuration, start telemetry, then serve
//! until SIGTERM/SIGINT, or run `rebuild`.

use veltrix_query::{Command, Config};
use veltrix_server::BoxError;
use veltrix_telemetry::LogFormat;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let config: Config = veltrix_server::parse_or_exit();
    let format = if config.serve.json_logs() { LogFormat::Json } else { LogFormat::Text };
    let _telemetry = veltrix_telemetry::init("veltrix-query", format)?;
    match config.command {
        Some(Command::Rebuild { drop_old_after }) => {
            let generation = veltrix_query::projection::rebuild::rebuild(&config, drop_old_after).await?;
            println!("the read model is rebuilt: generation {generation} is active");
            Ok(())
        }
        Some(Command::Serve) | None => {
            let started = veltrix_query::start(config).await?;
            let token = started.running.shutdown_token();
            tokio::spawn(async move {
                veltrix_server::shutdown_signal().await;
                token.cancel();
            });
            started.running.wait().await
        }
    }
}
