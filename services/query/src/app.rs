//! The query service as a running application: serve at once, connect to
//! NATS and Redis in the background, project, and report SERVING.

use std::{sync::Arc, time::Duration};

use veltrix_jetstream::JetStreamFeed;
use veltrix_proto::v1::config_query_server::ConfigQueryServer;
use veltrix_redis::ReadModel;
use veltrix_server::{
    BoxError, CancellationToken, Health, ReadySender, Running, Scaffold, ServingGate, auth::Auth, incoming,
    reflection_services, run_until_shutdown, server_builder,
};

use crate::{
    config::Config, grpc::QueryService, hub::Hub, projector::Projector, state::ReadState, token::TokenKey,
    watch::WatchSettings,
};

const SERVICE_NAME: &str = "veltrix.config.v1.ConfigQuery";

/// A started query service and the state it shares with its projector
/// (tests read the projection's counters from it).
pub struct Started {
    pub running: Running,
    pub state: Arc<ReadState>,
}

pub async fn start(config: Config) -> Result<Started, BoxError> {
    let Scaffold { listener, addr, shutdown, ready_tx, ready } =
        Scaffold::bind(config.listen, config.serve.metrics_listen).await?;
    crate::state::describe_metrics();
    veltrix_server::register_rpc_metrics(&[SERVICE_NAME]);
    let (health, health_service) = Health::new(vec![SERVICE_NAME]).await;
    let (reflection_v1, reflection_v1alpha) = reflection_services(&[SERVICE_NAME])?;
    let tokens = match &config.page_token_key {
        Some(key) => TokenKey::new(key.as_bytes()),
        None => {
            tracing::warn!(
                "no VELTRIX_PAGE_TOKEN_KEY: page tokens are signed with a random key and work only on this replica"
            );
            TokenKey::random()
        }
    };
    let state = ReadState::new();
    let gate = ServingGate::new("connecting to NATS and Redis");
    let hub = Hub::new(config.watch.watch_hub_capacity);
    let auth =
        Auth::load(config.serve.auth_config.as_deref(), config.serve.auth_off, "veltrix-query", config.serve.limits)?;
    auth.spawn_reloader(shutdown.clone());
    let service = QueryService {
        auth,
        state: state.clone(),
        model: gate.clone(),
        tokens,
        default_deadline: config.serve.default_deadline,
        hub: hub.clone(),
        watch: WatchSettings {
            progress_interval: config.watch.watch_progress_interval,
            stall_timeout: config.watch.watch_stall_timeout,
            queue: config.watch.watch_queue,
            snapshot_chunk: config.watch.watch_snapshot_chunk,
        },
        shutdown: shutdown.clone(),
    };

    tokio::spawn(prepare(config.clone(), gate, state.clone(), hub, health.clone(), ready_tx, shutdown.clone()));
    let mut builder = server_builder(config.serve.transport());
    if let Some(tls) = config.serve.tls.server_config()? {
        builder = builder.tls_config(tls)?;
    }
    let server = builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ConfigQueryServer::new(service).max_decoding_message_size(config.max_request_bytes))
        .serve_with_incoming_shutdown(incoming(listener), health.not_serving_on(shutdown.clone()));
    tracing::info!(%addr, "query service listening");
    let (stop, grace) = (shutdown.clone(), config.serve.shutdown_grace);
    let task = tokio::spawn(async move { Ok(run_until_shutdown(server, stop, grace).await?) });
    Ok(Started { running: Running::new(addr, shutdown, ready, task), state })
}

/// Connects to NATS and Redis (retrying while they are away), then runs the
/// projector until shutdown.
async fn prepare(
    config: Config,
    gate: ServingGate<ReadModel>,
    state: Arc<ReadState>,
    hub: Arc<Hub>,
    health: Health,
    ready: ReadySender,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    let (feed, model) = loop {
        let attempt = async {
            let (client, _) = veltrix_jetstream::connect(&config.nats.options(), "veltrix-query").await?;
            let model = ReadModel::connect_with(&config.redis_options(), &config.redis_prefix).await?;
            Ok::<_, BoxError>((JetStreamFeed::new(client, config.stream_settings()), model))
        };
        match attempt.await {
            Ok(v) => break v,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "NATS or Redis not ready");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    gate.open(model.clone());
    let projector = Projector {
        feed,
        model,
        state: state.clone(),
        hub,
        options: config.apply_options(),
        check_interval: config.model_check_interval,
        health: health.clone(),
    };
    let projection = tokio::spawn(projector.run(shutdown.clone()));
    // Serving once the model is complete: a replica that must first rebuild
    // stays out of rotation until then.
    tokio::select! {
        () = state.wait_complete() => {}
        () = shutdown.cancelled() => {}
    }
    if !shutdown.is_cancelled() {
        health.set(true).await;
        let _ = ready.send(true);
        tracing::info!("query service ready");
    }
    let _ = projection.await;
}
