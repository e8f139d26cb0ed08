//! The command service as a running application: bind, serve health and
//! reflection at once, connect to NATS and prepare the stream in the
//! background, then report SERVING; stop on request.

use std::sync::{Arc, Mutex, PoisonError};

use veltrix_jetstream::{Error as StoreSetupError, JetStreamEventStore, connect};
use veltrix_proto::v1::config_command_server::ConfigCommandServer;
use veltrix_server::{
    Attempt, BoxError, CancellationToken, Health, ReadySender, Running, ServiceServer, ServingGate, retry_until_ready,
};

use crate::{config::Config, grpc::CommandService, handler::CommandHandler};

const SERVICE_NAME: &str = "veltrix.config.v1.ConfigCommand";
/// Room for the rest of a request besides its values.
const MESSAGE_OVERHEAD: usize = 64 * 1024;

/// Binds and starts serving; the store is prepared in the background.
pub async fn start(config: Config) -> Result<Running, BoxError> {
    let mut server = ServiceServer::bind(SERVICE_NAME, "veltrix-command", config.listen, &config.serve).await?;
    crate::metric::describe();
    let gate = ServingGate::new("connecting to NATS and preparing the event stream");
    let service =
        ConfigCommandServer::new(CommandService::new(gate.clone(), config.serve.call_time(), server.auth.clone()))
            .max_decoding_message_size(config.max_value_bytes_asked().saturating_add(MESSAGE_OVERHEAD));
    let fatal: Arc<Mutex<Option<BoxError>>> = Arc::default();
    let ready = server.ready_tx.take().ok_or("readiness already taken")?;
    let prepare = tokio::spawn(prepare_store(
        config.clone(),
        gate,
        server.health.clone(),
        ready,
        server.shutdown(),
        fatal.clone(),
    ));
    let after = async move {
        prepare.abort();
        match fatal.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    };
    server.serve(service, &config.serve, after)
}

/// Connects to NATS and opens the store, retrying while NATS is away; an
/// incompatible stream is fatal (the operator must act).
async fn prepare_store(
    config: Config,
    gate: ServingGate<Arc<CommandHandler<JetStreamEventStore>>>,
    health: Health,
    ready: ReadySender,
    shutdown: CancellationToken,
    fatal: Arc<Mutex<Option<BoxError>>>,
) {
    let opened = retry_until_ready("event store", &shutdown, || async {
        let (client, _events) = connect(&config.nats.options(), "veltrix-command").await.map_err(Attempt::Retry)?;
        JetStreamEventStore::open(client, config.stream_settings(), config.serve.default_deadline).await.map_err(|e| {
            match e {
                StoreSetupError::IncompatibleStream { .. } | StoreSetupError::Settings(_) => Attempt::Fatal(e),
                e => Attempt::Retry(e),
            }
        })
    })
    .await;
    let store = match opened {
        Ok(Some(store)) => store,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the event stream");
            *fatal.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.into());
            shutdown.cancel();
            return;
        }
    };
    // What a command may hold follows from the largest message the server
    // takes: a value limit that cannot be reached is refused at start-up.
    let max_payload = store.max_payload();
    let limits = match config.limits(max_payload) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::error!(error = %e, "the value limit does not fit the NATS server");
            *fatal.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.into());
            shutdown.cancel();
            return;
        }
    };
    tracing::info!(max_value_bytes = limits.max_value_bytes, max_payload, "limits fitted to the NATS server");
    tokio::spawn(crate::metric::report_stream_usage(store.clone(), shutdown.clone()));
    let snapshots = crate::snapshots::SnapshotPolicy { every: config.snapshot_every, bytes: config.snapshot_bytes };
    let handler = CommandHandler::new(store, config.idempotency_window, config.namespace_cache)
        .with_limits(limits)
        .with_snapshots(snapshots);
    gate.open(Arc::new(handler));
    health.set(true).await;
    let _ = ready.send(true);
    tracing::info!("command service ready");
}
