//! The command service as a running application: bind, serve health and
//! reflection at once, connect to NATS and prepare the stream in the
//! background, then report SERVING; stop on request.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use veltrix_jetstream::{Error as StoreSetupError, JetStreamEventStore, connect};
use veltrix_proto::v1::config_command_server::ConfigCommandServer;
use veltrix_server::{
    BoxError, CancellationToken, Health, ReadySender, Running, Scaffold, ServingGate, auth::Auth, incoming,
    reflection_services, run_until_shutdown, server_builder,
};

use crate::{config::Config, grpc::CommandService, handler::CommandHandler};

const SERVICE_NAME: &str = "veltrix.config.v1.ConfigCommand";
/// Room for the rest of a request besides its values.
const MESSAGE_OVERHEAD: usize = 64 * 1024;

/// Binds and starts serving; the store is prepared in the background.
pub async fn start(config: Config) -> Result<Running, BoxError> {
    let Scaffold { listener, addr, shutdown, ready_tx, ready } =
        Scaffold::bind(config.listen, config.serve.metrics_listen).await?;
    crate::metric::describe();
    veltrix_server::register_rpc_metrics(&[SERVICE_NAME]);
    let (health, health_service) = Health::new(vec![SERVICE_NAME]).await;
    let (reflection_v1, reflection_v1alpha) = reflection_services(&[SERVICE_NAME])?;
    let gate = ServingGate::new("connecting to NATS and preparing the event stream");
    let limits = config.limits();
    let auth =
        Auth::load(config.serve.auth_config.as_deref(), config.serve.auth_off, "veltrix-command", config.serve.limits)?;
    auth.spawn_reloader(shutdown.clone());
    let service =
        ConfigCommandServer::new(CommandService::new(gate.clone(), limits, config.serve.default_deadline, auth))
            .max_decoding_message_size(limits.max_value_bytes.saturating_add(MESSAGE_OVERHEAD));
    let fatal: Arc<Mutex<Option<BoxError>>> = Arc::default();

    let prepare =
        tokio::spawn(prepare_store(config.clone(), gate, health.clone(), ready_tx, shutdown.clone(), fatal.clone()));
    let mut builder = server_builder(config.serve.transport());
    if let Some(tls) = config.serve.tls.server_config()? {
        builder = builder.tls_config(tls)?;
    }
    let server = builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming(listener), health.not_serving_on(shutdown.clone()));
    tracing::info!(%addr, "command service listening");
    let grace = config.serve.shutdown_grace;
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        run_until_shutdown(server, stop, grace).await?;
        prepare.abort();
        match fatal.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    });
    Ok(Running::new(addr, shutdown, ready, task))
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
    let mut delay = Duration::from_millis(100);
    let store = loop {
        let attempt = async {
            let (client, _events) = connect(&config.nats.options(), "veltrix-command").await?;
            JetStreamEventStore::open(client, config.stream_settings(), config.serve.default_deadline).await
        };
        match attempt.await {
            Ok(store) => break store,
            Err(e @ (StoreSetupError::IncompatibleStream { .. } | StoreSetupError::Settings(_))) => {
                tracing::error!(error = %e, "cannot use the event stream");
                *fatal.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.into());
                shutdown.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "event store not ready");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    tokio::spawn(crate::metric::report_stream_usage(store.clone(), shutdown.clone()));
    gate.open(Arc::new(CommandHandler::new(store, config.idempotency_window, config.namespace_cache)));
    health.set(true).await;
    let _ = ready.send(true);
    tracing::info!("command service ready");
}
