//! Faults with real servers: a killed query service, a flushed or restarted
//! Redis, NATS down, a rebuild under load, two replicas, an undecodable event.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{process::Stdio, sync::atomic::Ordering, time::Duration};

use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use veltrix_proto::v1::{DeleteRequest, GetRequest, ListRequest, config_query_client::ConfigQueryClient};
use veltrix_testsystem::*;

/// One command on whichever Redis the URL names: on a cluster a keyed one
/// goes to its slot's master, FLUSHALL and KEYS to every master; behind
/// Sentinel to the master.
async fn redis_cmd(redis_url: &str, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    if let Some(hosts) = redis_url.strip_prefix("redis+cluster://") {
        let nodes: Vec<String> = hosts.split(',').map(|h| format!("redis://{h}")).collect();
        let mut conn = redis::cluster::ClusterClient::new(nodes).unwrap().get_async_connection().await.unwrap();
        return cmd.query_async(&mut conn).await.unwrap();
    }
    if let Some(rest) = redis_url.strip_prefix("redis+sentinel://") {
        let (hosts, master) = rest.split_once('/').unwrap();
        let sentinels: Vec<String> = hosts.split(',').map(|h| format!("redis://{h}")).collect();
        let mut client = redis::sentinel::SentinelClient::build(
            sentinels,
            master,
            None,
            redis::sentinel::SentinelServerType::Master,
        )
        .unwrap();
        let mut conn = client.get_async_connection().await.unwrap();
        return cmd.query_async(&mut conn).await.unwrap();
    }
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    cmd.query_async(&mut conn).await.unwrap()
}

/// Waits until the query service answers as of `revision`.
async fn caught_up(q: &Query, revision: u64) {
    eventually(Duration::from_secs(60), "the query service catches up", || {
        let mut q = q.clone();
        async move {
            let r = ListRequest { namespace: "probe".into(), min_revision: Some(revision), ..Default::default() };
            q.list(r).await.ok()
        }
    })
    .await;
}

#[tokio::test]
async fn killed_while_projecting_a_burst_then_restarted_equals_a_fresh_replay() {
    // A query service binary to kill, and an in-process one with a prefix
    // of its own for the fresh replay, started at the end.
    let mut env = TestSystem::builder().query(|c| c.redis_prefix = "fresh".into()).start().await;
    env.stop_query(0).await;
    let (cmd, nats, redis) = (env.cmd(), env.nats_url(), env.redis_url());
    let port = free_port();
    let spawn = || {
        tokio::process::Command::new(binary("veltrix-query"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--nats-url", &nats, "--redis-url", &redis])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    let writer = {
        let cmd = cmd.clone();
        tokio::spawn(async move { burst(&cmd, 10_000, 200, 64).await })
    };
    // Kill it while it is projecting the burst.
    eventually(Duration::from_secs(60), "projection under way", || async {
        let redis::Value::BulkString(active) = redis_cmd(&redis, &["GET", "{veltrix}:active"]).await else {
            return None;
        };
        let key = format!("{{veltrix}}:g{}:applied", String::from_utf8_lossy(&active));
        match redis_cmd(&redis, &["GET", &key]).await {
            redis::Value::BulkString(b) if String::from_utf8_lossy(&b).parse::<u64>().unwrap_or(0) > 500 => Some(()),
            _ => None,
        }
    })
    .await;
    child.kill().await.unwrap();
    let last = writer.await.unwrap();
    let _restarted = spawn();
    let q = eventually(Duration::from_secs(30), "restarted query service answers", || async {
        let ch =
            tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).ok()?.connect().await.ok()?;
        Some(ConfigQueryClient::new(ch))
    })
    .await;
    caught_up(&q, last).await;

    env.start_query(0).await;
    let fresh = env.q();
    caught_up(&fresh, last).await;
    let a = dump(&mut q.clone(), last).await;
    let b = dump(&mut fresh.clone(), last).await;
    assert_eq!(a.len(), 200);
    assert_eq!(a.iter().map(|n| n.3.len()).sum::<usize>(), 10_000, "every change set once in history");
    assert!(a == b, "the restarted read model equals a fresh replay");
}

/// Every answer is either complete and right, or UNAVAILABLE.
async fn check_reads(mut q: Query, keys: usize, stop: veltrix_server::CancellationToken) -> (u64, u64) {
    let (mut ok, mut unavailable) = (0, 0);
    while !stop.is_cancelled() {
        let i = fastrand::usize(..keys);
        match q.get(get("stable", &format!("k{i:03}"))).await {
            Ok(r) => {
                assert_eq!(r.into_inner().kv.unwrap().value.to_vec(), format!("v{i}").into_bytes(), "a right value");
                ok += 1;
            }
            Err(s) => {
                assert_eq!(s.code(), Code::Unavailable, "never a wrong answer: {s:?}");
                unavailable += 1;
            }
        }
        match q.list(ListRequest { namespace: "stable".into(), page_size: 1000, ..Default::default() }).await {
            Ok(r) => assert_eq!(r.into_inner().kvs.len(), keys, "never a partial listing"),
            Err(s) => {
                assert_eq!(s.code(), Code::Unavailable, "never a wrong answer: {s:?}");
                unavailable += 1;
            }
        }
    }
    (ok, unavailable)
}

async fn stable_keys(env: &mut TestSystem, keys: usize) -> u64 {
    let mut last = 0;
    for i in 0..keys {
        last = env.cmd().put(put("stable", &format!("k{i:03}"), &format!("v{i}"))).await.unwrap().into_inner().revision;
    }
    caught_up(&env.q(), last).await;
    last
}

#[tokio::test]
async fn flushall_during_operation_rebuilds_without_partial_answers() {
    let mut env = TestSystem::start().await;
    stable_keys(&mut env, 200).await;
    let stop = veltrix_server::CancellationToken::new();
    let readers: Vec<_> = (0..4).map(|_| tokio::spawn(check_reads(env.q(), 200, stop.clone()))).collect();
    // Writes go on in another namespace during the loss.
    let writer = {
        let (mut cmd, stop) = (env.cmd(), stop.clone());
        tokio::spawn(async move {
            let mut last = 0;
            for i in 0.. {
                if stop.is_cancelled() {
                    break;
                }
                last = cmd.put(put("busy", "k", &i.to_string())).await.unwrap().into_inner().revision;
            }
            last
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis_cmd(&env.redis_url(), &["FLUSHALL"]).await;
    eventually(Duration::from_secs(30), "the model is rebuilt", || {
        let mut q = env.q();
        async move { q.get(get("stable", "k199")).await.ok() }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let last = writer.await.unwrap();
    let (mut ok, mut unavailable) = (0, 0);
    for r in readers {
        let (o, u) = r.await.unwrap();
        ok += o;
        unavailable += u;
    }
    assert!(
        ok > 0 && unavailable > 0,
        "reads went on, and waited out the rebuild ({ok} ok, {unavailable} unavailable)"
    );
    assert!(env.query().state.stats.model_losses.load(Ordering::Relaxed) >= 1, "the loss was noticed");
    let kv = env
        .q()
        .get(GetRequest { min_revision: Some(last), ..get("busy", "k") })
        .await
        .unwrap()
        .into_inner()
        .kv
        .unwrap();
    assert_eq!(kv.mod_revision, last, "writes during the loss are in the rebuilt model");
}

#[tokio::test]
async fn rebuild_while_reads_run_fails_no_read() {
    let mut env = TestSystem::start().await;
    let last = stable_keys(&mut env, 100).await;
    let stop = veltrix_server::CancellationToken::new();
    let readers: Vec<_> = (0..4).map(|_| tokio::spawn(check_reads(env.q(), 100, stop.clone()))).collect();
    let config = env.query_config(0).clone();
    let old = env.query().state.generation().unwrap();
    let generation = veltrix_query::projection::rebuild::rebuild(&config, Duration::from_millis(1500)).await.unwrap();
    assert_ne!(generation, old);
    // The service follows the switch; new writes are read from the new generation.
    let r = env.cmd().put(put("stable", "k000", "v0")).await.unwrap().into_inner().revision;
    env.q().get(GetRequest { min_revision: Some(r), ..get("stable", "k000") }).await.unwrap();
    eventually(Duration::from_secs(10), "reads use the new generation", || async {
        (env.query().state.generation() == Some(generation)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    for r in readers {
        let (ok, unavailable) = r.await.unwrap();
        assert!(ok > 0);
        assert_eq!(unavailable, 0, "no read failed during the rebuild");
    }
    for pattern in [format!("veltrix:g{old}:*"), format!("{{veltrix}}:g{old}:*")] {
        let old_keys = redis_cmd(&env.redis_url(), &["KEYS", &pattern]).await;
        assert_eq!(old_keys, redis::Value::Array(vec![]), "the old generation is removed");
    }
    assert!(r > last);
}

#[tokio::test]
async fn two_replicas_on_one_redis_keep_the_model_exact_and_leave_no_consumers() {
    let mut env = TestSystem::builder().queries(2).start().await;
    let (mut cmd, qa, qb) = (env.cmd(), env.q_at(0), env.q_at(1));
    let mut last = burst(&cmd, 2000, 20, 32).await;
    for i in 0..20 {
        let del = DeleteRequest { namespace: format!("burst/n{i}"), key: "k3".into(), ..Default::default() };
        last = cmd.delete(del).await.unwrap().into_inner().revision;
    }
    caught_up(&qa, last).await;
    caught_up(&qb, last).await;
    // A fresh replay: replica 1 again, with a prefix of its own.
    env.stop_query(1).await;
    env.query_config(1).redis_prefix = "fresh".into();
    env.start_query(1).await;
    let fresh = env.q_at(1);
    caught_up(&fresh, last).await;
    let (da, db, df) =
        (dump(&mut qa.clone(), last).await, dump(&mut qb.clone(), last).await, dump(&mut fresh.clone(), last).await);
    assert_eq!(da.iter().map(|n| n.3.len()).sum::<usize>(), 2020);
    assert!(da.iter().all(|n| n.2.iter().all(|kv| kv.key != "k3")), "nothing resurrected");
    assert!(da == db && da == df, "both replicas serve exactly the fresh replay");

    // A replica that leaves removes its consumer.
    let consumers = |url: String| async move {
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        js.get_stream("VELTRIX_EVENTS").await.unwrap().info().await.unwrap().state.consumer_count
    };
    let before = consumers(env.nats_url()).await;
    env.stop_query(1).await;
    let after = consumers(env.nats_url()).await;
    assert_eq!(after + 1, before, "the stopped replica's consumer is gone");
}

#[tokio::test]
async fn redis_or_nats_down_then_back() {
    let mut env = TestSystem::start().await;
    let last = stable_keys(&mut env, 10).await;
    // Redis down: UNAVAILABLE within the deadline, never a hang.
    env.redis().kill();
    let mut req = tonic::Request::new(get("stable", "k001"));
    req.set_timeout(Duration::from_secs(3));
    let started = std::time::Instant::now();
    let status = assert_code(env.q().get(req).await, Code::Unavailable);
    assert!(started.elapsed() < Duration::from_secs(3));
    // In our words: no Redis or OS error text reaches the client.
    let message = status.message().to_lowercase();
    for backend in ["refused", "os error", "broken pipe", "io error", "connection"] {
        assert!(!message.contains(backend), "backend text in {:?}", status.message());
    }
    // Back, empty (it keeps nothing on disk): rebuilt from the stream.
    env.redis().restart();
    eventually(Duration::from_secs(30), "reads work again after Redis restarts", || {
        let mut q = env.q();
        async move { q.get(GetRequest { min_revision: Some(last), ..get("stable", "k001") }).await.ok() }
    })
    .await;
    // NATS down: reads go on from the model; writes after it returns are projected.
    env.nats().kill();
    env.q().get(get("stable", "k002")).await.expect("reads go on without NATS");
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.nats().restart();
    let r = eventually(Duration::from_secs(30), "writes work again", || {
        let mut cmd = env.cmd();
        async move { cmd.put(put("stable", "k003", "after")).await.ok() }
    })
    .await
    .into_inner()
    .revision;
    let kv = eventually(Duration::from_secs(20), "the projection resumes after NATS restarts", || {
        let mut q = env.q();
        async move { q.get(GetRequest { min_revision: Some(r), ..get("stable", "k003") }).await.ok() }
    })
    .await
    .into_inner()
    .kv
    .unwrap();
    assert_eq!(&kv.value[..], b"after");
}

#[tokio::test]
async fn an_undecodable_event_halts_the_projection_visibly() {
    let metrics_addr = metrics_addr();
    let env = TestSystem::builder().query(move |c| c.serve.metrics_listen = Some(metrics_addr)).start().await;
    let good = env.cmd().put(put("ok", "k", "v")).await.unwrap().into_inner().revision;
    caught_up(&env.q(), good).await;
    let js = async_nats::jetstream::new(async_nats::connect(env.nats_url()).await.unwrap());
    js.publish("veltrix.events.bad", "\u{ff}not an event".into()).await.unwrap().await.unwrap();
    let after = env.cmd().put(put("ok", "k2", "v")).await.unwrap().into_inner().revision;

    let mut health = HealthClient::new(channel(env.query_addr()).await);
    eventually(Duration::from_secs(10), "the projection reports NOT_SERVING", || {
        let mut health = health.clone();
        async move {
            let r = health
                .check(HealthCheckRequest { service: veltrix_query::projection::PROJECTION_HEALTH.into() })
                .await
                .ok()?;
            (r.into_inner().status == ServingStatus::NotServing as i32).then_some(())
        }
    })
    .await;
    assert!(env.query().state.stats.undecodable_events.load(Ordering::Relaxed) >= 1, "counted");
    let text = scrape(metrics_addr).await;
    assert!(metric(&text, "veltrix_projection_undecodable_events_total").is_some_and(|v| v >= 1.0), "{text}");
    assert_eq!(metric(&text, "veltrix_projection_halted"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "veltrix_projection_applied_revision"), Some(good as f64), "{text}");
    let overall = health.check(HealthCheckRequest { service: "veltrix.config.v1.ConfigQuery".into() }).await.unwrap();
    assert_eq!(overall.into_inner().status, ServingStatus::Serving as i32, "reads still serve");
    env.q().get(get("ok", "k")).await.expect("earlier data is served");
    let mut req = tonic::Request::new(GetRequest { min_revision: Some(after), ..get("ok", "k2") });
    req.set_timeout(Duration::from_millis(700));
    let status = assert_code(env.q().get(req).await, Code::DeadlineExceeded);
    assert!(status.message().contains("halted"), "{}", status.message());
    assert_eq!(env.query().state.watermark(), after - 2, "nothing after the bad event is applied: no gap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crafted_time_halts_the_projection_and_refuses_writes_without_a_panic() {
    let env = TestSystem::start().await;
    let good = env.cmd().put(put("ok", "k", "v")).await.unwrap().into_inner().revision;
    caught_up(&env.q(), good).await;
    // A well-formed event whose time no SystemTime can hold.
    let crafted = veltrix_proto::v1::ChangeSetCommitted {
        namespace: "crafted".into(),
        changes: vec![veltrix_proto::v1::EventKeyChange {
            key: "k".into(),
            op: Some(veltrix_proto::v1::event_key_change::Op::Set(veltrix_proto::v1::EventSetValue {
                value: b"v".to_vec(),
                content_type: String::new(),
            })),
            ..Default::default()
        }],
        actor: "mallory".into(),
        time: Some(prost_types::Timestamp { seconds: i64::MAX, nanos: 2_000_000_000 }),
        ..Default::default()
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(veltrix_jetstream::EVENT_TYPE_HEADER, veltrix_proto::convert::EVENT_TYPE);
    let js = async_nats::jetstream::new(async_nats::connect(env.nats_url()).await.unwrap());
    let payload = prost::Message::encode_to_vec(&crafted);
    js.publish_with_headers("veltrix.events.crafted", headers, payload.into()).await.unwrap().await.unwrap();

    // The projection halts visibly; the services stay up.
    let state = env.query().state.clone();
    eventually(Duration::from_secs(10), "the projection halts", || async { state.is_halted().then_some(()) }).await;
    let mut health = HealthClient::new(channel(env.query_addr()).await);
    let status = health
        .check(HealthCheckRequest { service: veltrix_query::projection::PROJECTION_HEALTH.into() })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::NotServing as i32);
    // A write to that namespace is refused with a reason; others go on.
    let refused = assert_code(env.cmd().put(put("crafted", "k2", "v")).await, Code::FailedPrecondition);
    assert!(refused.message().contains("cannot be decoded"), "{}", refused.message());
    env.cmd().put(put("ok", "k3", "v")).await.expect("other namespaces are written");
    env.q().get(get("ok", "k")).await.expect("reads still serve");
}
