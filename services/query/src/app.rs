//! The query service as a running application: serve at once, connect to
//! NATS and Redis in the background, project, and report SERVING.

use std::sync::Arc;

use veltrix_jetstream::{JetStreamEventStore, JetStreamFeed};
use veltrix_proto::v1::config_query_server::ConfigQueryServer;
use veltrix_redis::{ReadModel, RedisLedger};
use veltrix_server::{
    Attempt, BoxError, CancellationToken, Health, ReadySender, Running, ServiceServer, ServingGate, retry_until_ready,
};

use crate::{
    config::Config,
    fleet::Fleet,
    grpc::QueryService,
    projection::{PROJECTION_HEALTH, Projector},
    read::token::TokenKey,
    state::ReadState,
    watch::WatchSettings,
    watch::hub::Hub,
};

const SERVICE_NAME: &str = "veltrix.config.v1.ConfigQuery";

/// A started query service and the state it shares with its projector
/// (tests read the projection's counters from it).
pub struct Started {
    pub running: Running,
    pub state: Arc<ReadState>,
}

pub async fn start(config: Config) -> Result<Started, BoxError> {
    let mut server = ServiceServer::bind(SERVICE_NAME, "veltrix-query", config.listen, &config.serve).await?;
    crate::state::describe_metrics();
    let tokens = match config.page_token_key()? {
        Some(key) => TokenKey::new(&key).map_err(|e| format!("no secure random source for page-token nonces: {e}"))?,
        None => {
            tracing::warn!(
                "no VELTRIX_PAGE_TOKEN_KEY: page tokens are protected with a random key and work only on this replica"
            );
            TokenKey::random().map_err(|e| format!("no secure random source for the page-token key: {e}"))?
        }
    };
    let state = ReadState::with_read_cache(config.read_cache_bytes);
    let gate = ServingGate::new("connecting to NATS and Redis");
    let hub = Hub::new(config.watch.watch_hub_capacity, config.watch.watch_max_namespaces);
    let shutdown = server.shutdown();
    let ledger = ServingGate::new("connecting to Redis");
    let fleet = Fleet::new(ledger.clone(), config.fleet_timing(), config.replica_name(server.addr()));
    tokio::spawn(fleet.writer.clone().run(
        ledger.clone(),
        config.fleet.ledger_flush_interval.max(std::time::Duration::from_millis(10)),
        shutdown.clone(),
    ));
    tokio::spawn(fleet.clone().export_gauge(
        gate.clone(),
        state.clone(),
        config.fleet.clients_gauge_interval.max(std::time::Duration::from_millis(100)),
        shutdown.clone(),
    ));
    let store = ServingGate::new("attaching to the event stream");
    let controller = crate::rollout::controller::Controller {
        store: store.clone(),
        model: gate.clone(),
        state: state.clone(),
        fleet: fleet.clone(),
        interval: config.fleet.rollout_interval.max(std::time::Duration::from_millis(50)),
        actor: veltrix_domain::Actor::parse("rollout-controller")
            .unwrap_or_else(|_| veltrix_domain::Actor::anonymous()),
    };
    tokio::spawn(controller.run(shutdown.clone()));
    let service = QueryService {
        auth: server.auth.clone(),
        state: state.clone(),
        model: gate.clone(),
        tokens,
        call_time: config.serve.call_time(),
        max_response_bytes: config.max_response_bytes,
        hub: hub.clone(),
        watch: WatchSettings {
            progress_interval: config.watch.watch_progress_interval,
            stall_timeout: config.watch.watch_stall_timeout,
            queue: config.watch.watch_queue,
            snapshot_chunk: config.watch.watch_snapshot_chunk,
        },
        shutdown: shutdown.clone(),
        fleet,
    };
    let ready = server.ready_tx.take().ok_or("readiness already taken")?;
    let gates = Gates { model: gate, ledger, store };
    tokio::spawn(prepare(config.clone(), gates, state.clone(), hub, server.health.clone(), ready, shutdown));
    let api = ConfigQueryServer::new(service).max_decoding_message_size(config.max_request_bytes);
    let running = server.serve(api, &config.serve, async { Ok(()) })?;
    Ok(Started { running, state })
}

/// What opens once NATS and Redis are reached.
struct Gates {
    model: ServingGate<ReadModel>,
    ledger: ServingGate<RedisLedger>,
    /// Where the rollout controller appends (once the stream exists).
    store: ServingGate<JetStreamEventStore>,
}

/// Connects to NATS and Redis (retrying while they are away), then runs the
/// projector until shutdown.
async fn prepare(
    config: Config,
    gates: Gates,
    state: Arc<ReadState>,
    hub: Arc<Hub>,
    health: Health,
    ready: ReadySender,
    shutdown: CancellationToken,
) {
    let connected = retry_until_ready("NATS or Redis", &shutdown, || async {
        let retry = |e: BoxError| Attempt::Retry(e);
        let (client, _) =
            veltrix_jetstream::connect(&config.nats.options(), "veltrix-query").await.map_err(|e| retry(e.into()))?;
        let model = ReadModel::connect_with(&config.redis_options(), &config.redis_prefix)
            .await
            .map_err(|e| retry(e.into()))?;
        // The ledger's own connection: reports never queue behind reads.
        let ledger = RedisLedger::connect_with(&config.redis_options(), &config.redis_prefix)
            .await
            .map_err(|e| retry(e.into()))?;
        // And the projector's: its WAIT for a replica's copy blocks the
        // connection it is sent on, so reads never queue behind it.
        let projecting = ReadModel::connect_with(&config.redis_options(), &config.redis_prefix)
            .await
            .map_err(|e| retry(e.into()))?;
        Ok((client, model, ledger, projecting))
    })
    .await;
    let Ok(Some((client, model, ledger_store, projecting))) = connected else { return };
    let feed = JetStreamFeed::new(client.clone(), config.stream_settings());
    gates.model.open(model.clone());
    gates.ledger.open(ledger_store);
    tokio::spawn(attach_store(client, config.clone(), gates.store, shutdown.clone()));
    let projector = Projector {
        feed,
        model: projecting,
        state: state.clone(),
        hub,
        options: config.apply_options(),
        check_interval: config.model_check_interval,
        health: health.clone(),
    };
    let mut projection = tokio::spawn(projector.run(shutdown.clone()));
    // Serving once the model is complete: a replica that must first rebuild
    // stays out of rotation until then.
    let ended = tokio::select! {
        () = state.wait_complete() => None,
        () = shutdown.cancelled() => None,
        ended = &mut projection => Some(ended),
    };
    if ended.is_none() && !shutdown.is_cancelled() {
        health.set(true).await;
        let _ = ready.send(true);
        tracing::info!("query service ready");
    }
    let ended = match ended {
        Some(ended) => ended,
        None => projection.await,
    };
    supervise(ended, &state, &health, &shutdown).await;
}

/// Attaches the rollout controller to the event stream, waiting quietly
/// while it does not exist yet (the command service creates it; the
/// projection already says so once).
async fn attach_store(
    client: veltrix_jetstream::NatsClient,
    config: Config,
    gate: ServingGate<JetStreamEventStore>,
    shutdown: CancellationToken,
) {
    let mut pause = std::time::Duration::from_millis(100);
    loop {
        match JetStreamEventStore::attach(client.clone(), config.stream_settings(), config.serve.default_deadline).await
        {
            Ok(store) => {
                gate.open(store);
                return;
            }
            Err(e) => tracing::debug!(error = %e, "the rollout controller waits for the event stream"),
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.cancelled() => return,
        }
        pause = (pause * 2).min(std::time::Duration::from_secs(5));
    }
}

/// The projection runs until shutdown; if it ends otherwise (a panic, a
/// bug), the replica says so: health `...projection` NOT_SERVING, halted,
/// and an ERROR line with why.
async fn supervise(
    ended: Result<(), tokio::task::JoinError>,
    state: &ReadState,
    health: &Health,
    shutdown: &CancellationToken,
) {
    if shutdown.is_cancelled() {
        return;
    }
    match ended {
        Ok(()) => tracing::error!("the projection stopped; reads no longer follow the event stream"),
        Err(e) => tracing::error!(error = %e, "the projection failed; reads no longer follow the event stream"),
    }
    state.set_halted(true);
    health.set_service(PROJECTION_HEALTH, false).await;
}
