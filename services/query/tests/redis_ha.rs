//! The read model on the Redis setups people deploy for availability: a
//! Redis Cluster whose master is killed under load, and a master behind
//! Sentinel killed under load. Reads keep their promises throughout (a read
//! at a revision never answers from an older model), what a failover lost
//! is found and projected again, and the model ends equal to a fresh replay
//! of the stream.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tonic::Code;
use veltrix_proto::v1::{GetRequest, ListRequest};
use veltrix_server::CancellationToken;
use veltrix_testkit::{RedisServer, redis_cli};
use veltrix_testsystem::*;

/// What the writers saw: the last value of each key and every read that
/// broke a promise.
#[derive(Default)]
struct Seen {
    last: BTreeMap<(String, String), (u64, String)>,
    violations: Vec<String>,
}

/// Four writers, each on its own namespace (so on different slots): every
/// acknowledged Put is read back at its revision through the query service
/// (Get and List), retrying only answers that promise nothing
/// (UNAVAILABLE, DEADLINE_EXCEEDED), until `stop`.
fn load(env: &TestSystem, stop: CancellationToken, reads_ok: Arc<AtomicU64>) -> Vec<tokio::task::JoinHandle<Seen>> {
    (0..4)
        .map(|w| {
            let (mut cmd, mut q, stop, reads_ok) = (env.cmd(), env.q(), stop.clone(), reads_ok.clone());
            tokio::spawn(async move {
                let mut seen = Seen::default();
                let ns = format!("load/n{w}");
                for i in 0u64.. {
                    if stop.is_cancelled() {
                        break;
                    }
                    let (key, value) = (format!("k{}", i % 5), format!("v{i}"));
                    let revision = cmd.put(put(&ns, &key, &value)).await.unwrap().into_inner().revision;
                    seen.last.insert((ns.clone(), key.clone()), (revision, value.clone()));
                    read_back(&mut q, &ns, &key, &value, revision, &mut seen.violations).await;
                    reads_ok.fetch_add(1, Ordering::Relaxed);
                }
                seen
            })
        })
        .collect()
}

/// Reads `key` at `revision` with Get and List until an answer comes that
/// is not "retry"; an answer older than the write is a broken promise.
async fn read_back(q: &mut Query, ns: &str, key: &str, value: &str, revision: u64, violations: &mut Vec<String>) {
    let retry = |code: Code| matches!(code, Code::Unavailable | Code::DeadlineExceeded);
    loop {
        match q.get(GetRequest { min_revision: Some(revision), ..get(ns, key) }).await {
            Ok(r) => {
                let kv = r.into_inner().kv;
                if kv.as_ref().map(|kv| (kv.mod_revision, &kv.value[..])) != Some((revision, value.as_bytes())) {
                    violations.push(format!("Get {ns}/{key} at {revision} answered {kv:?}"));
                }
                break;
            }
            Err(s) if retry(s.code()) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(s) => panic!("Get {ns}/{key}: {s}"),
        }
    }
    loop {
        let list = ListRequest { namespace: ns.into(), min_revision: Some(revision), ..Default::default() };
        match q.list(list).await {
            Ok(r) => {
                let page = r.into_inner();
                let found = page.kvs.iter().find(|kv| kv.key == key).map(|kv| kv.mod_revision);
                if found != Some(revision) {
                    violations.push(format!("List {ns} at {revision} has {key} at {found:?}"));
                }
                break;
            }
            Err(s) if retry(s.code()) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(s) => panic!("List {ns}: {s}"),
        }
    }
}

async fn finish(load: Vec<tokio::task::JoinHandle<Seen>>) -> Seen {
    let mut all = Seen::default();
    for task in load {
        let seen = task.await.unwrap();
        all.last.extend(seen.last);
        all.violations.extend(seen.violations);
    }
    all
}

/// Query replica 1 (stopped at the start) projects the whole stream into
/// a fresh Redis; its model must equal replica 0's.
async fn assert_equal_to_a_fresh_replay(env: &mut TestSystem, seen: &Seen) {
    let last = seen.last.values().map(|(r, _)| *r).max().unwrap();
    let fresh = RedisServer::start();
    env.query_config(1).redis_url = fresh.url();
    env.start_query(1).await;
    let (mut q0, mut q1) = (env.q_at(0), env.q_at(1));
    let ours = dump(&mut q0, last).await;
    assert_eq!(ours, dump(&mut q1, last).await, "the model equals a fresh replay of the stream");
    for ((ns, key), (revision, value)) in &seen.last {
        let kv =
            q0.get(GetRequest { min_revision: Some(last), ..get(ns, key) }).await.unwrap().into_inner().kv.unwrap();
        assert_eq!((kv.mod_revision, &kv.value[..]), (*revision, value.as_bytes()), "{ns}/{key}");
    }
    env.stop_query(1).await;
}

/// Load before, during and after `fail` (which kills a master and waits
/// for its replica's promotion): no read breaks its promise, and the model
/// ends equal to a fresh replay.
async fn a_master_killed_under_load(mut env: TestSystem, fail: impl FnOnce(&mut TestSystem)) -> TestSystem {
    env.stop_query(1).await;
    let (stop, reads) = (CancellationToken::new(), Arc::new(AtomicU64::new(0)));
    let writers = load(&env, stop.clone(), reads.clone());
    eventually(Duration::from_secs(30), "load under way", || async {
        (reads.load(Ordering::Relaxed) > 100).then_some(())
    })
    .await;
    fail(&mut env);
    let after = reads.load(Ordering::Relaxed);
    eventually(Duration::from_secs(60), "load goes on after the failover", || async {
        (reads.load(Ordering::Relaxed) > after + 100).then_some(())
    })
    .await;
    stop.cancel();
    let seen = finish(writers).await;
    assert!(seen.violations.is_empty(), "reads broke their promise: {:#?}", seen.violations);
    assert_equal_to_a_fresh_replay(&mut env, &seen).await;
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_killed_under_load_breaks_no_promise_and_the_model_ends_equal_to_a_replay() {
    let env = TestSystem::builder().redis_cluster().queries(2).start().await;
    let _ = a_master_killed_under_load(env, |env| {
        let victim = env.redis_cluster().master_of("{load/n0}");
        env.redis_cluster().kill(victim);
        env.redis_cluster().wait_failover(victim, "{load/n0}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_a_failover_left_behind_is_found_and_projected_again() {
    let mut env = TestSystem::builder().redis_cluster().queries(2).start().await;
    env.stop_query(1).await;
    let mut cmd = env.cmd();
    let mut last = 0;
    for i in 0..20 {
        last = cmd.put(put("lost/a", &format!("k{}", i % 4), &format!("v{i}"))).await.unwrap().into_inner().revision;
    }
    env.q().get(GetRequest { min_revision: Some(last), ..get("lost/a", "k0") }).await.unwrap();
    // What a master that died before its replica got the writes leaves
    // behind: the namespace's slot without them (here: without anything),
    // and the replica promoted.
    let node = env.redis_cluster().master_of("{lost/a}");
    let port = env.redis_cluster().port(node);
    let generation = env.query().state.generation().unwrap();
    for suffix in ["kv", "mods", "idx", "all", "log", "meta"] {
        let key = format!("veltrix:g{generation}:{{lost/a}}:{suffix}");
        redis_cli(port, &["del", &key]);
    }
    env.redis_cluster().fail_over_gracefully(node, "{lost/a}");
    let mut q = env.q();
    let kv = eventually(Duration::from_secs(30), "the lost namespace is projected again", || {
        let mut q = q.clone();
        async move { q.get(get("lost/a", "k3")).await.ok()?.into_inner().kv }
    })
    .await;
    assert_eq!(&kv.value[..], b"v19");
    assert!(env.query().state.stats.lost_namespaces.load(Ordering::Relaxed) >= 1, "the loss was noticed");
    let page = q.list(ListRequest { namespace: "lost/a".into(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(page.kvs.len(), 4);
    let seen = Seen {
        last: (16..20)
            .map(|i| (("lost/a".to_string(), format!("k{}", i % 4)), (last - 19 + i, format!("v{i}"))))
            .collect(),
        violations: Vec::new(),
    };
    assert_equal_to_a_fresh_replay(&mut env, &seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_master_killed_under_load_is_followed_and_the_model_ends_equal_to_a_replay() {
    let env = TestSystem::builder().redis_sentinel().queries(2).start().await;
    // A namespace whose writes the old master will take with it: removed
    // from the master (and so from its replica) just before it dies.
    let mut last = 0;
    for i in 0..10 {
        last = env.cmd().put(put("lost/s", &format!("k{i}"), "v")).await.unwrap().into_inner().revision;
    }
    env.q().get(GetRequest { min_revision: Some(last), ..get("lost/s", "k9") }).await.unwrap();
    let env = a_master_killed_under_load(env, |env| {
        let generation = env.query().state.generation().unwrap();
        let master = env.redis_sentinel().master();
        let port = env.redis_sentinel().port(master);
        for suffix in ["kv", "mods", "idx", "all", "log", "meta"] {
            redis_cli(port, &["del", &format!("veltrix:g{generation}:{{lost/s}}:{suffix}")]);
        }
        let old = env.redis_sentinel().kill_master();
        assert_ne!(env.redis_sentinel().master(), old);
    })
    .await;
    let kv = env.q().get(get("lost/s", "k9")).await.unwrap().into_inner().kv;
    assert!(kv.is_some(), "what the old master lost is projected again");
    assert!(env.query().state.stats.lost_namespaces.load(Ordering::Relaxed) >= 1, "the loss was noticed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_that_lost_change_sets_is_found_by_its_next_write_and_projected_again() {
    let mut env = TestSystem::builder().redis(RedisServer::start()).start().await;
    let mut cmd = env.cmd();
    let mut last = 0;
    for i in 0..10 {
        last = cmd.put(put("lost/w", &format!("k{i}"), &format!("v{i}"))).await.unwrap().into_inner().revision;
    }
    env.q().get(GetRequest { min_revision: Some(last), ..get("lost/w", "k9") }).await.unwrap();
    // What a failover that nobody saw would leave: the namespace without
    // its change sets, the masters unchanged.
    let generation = env.query().state.generation().unwrap();
    let port = env.redis().port();
    for suffix in ["kv", "mods", "idx", "all", "log", "meta"] {
        redis_cli(port, &["del", &format!("veltrix:g{generation}:{{lost/w}}:{suffix}")]);
    }
    // The next write finds the namespace behind what was applied there
    // (before a later revision could hide it) and the rest comes back.
    let next = cmd.put(put("lost/w", "k10", "v10")).await.unwrap().into_inner().revision;
    let page = eventually(Duration::from_secs(30), "the namespace is projected again", || {
        let mut q = env.q();
        async move {
            let page = q
                .list(ListRequest { namespace: "lost/w".into(), min_revision: Some(next), ..Default::default() })
                .await
                .ok()?
                .into_inner();
            (page.kvs.len() == 11).then_some(page)
        }
    })
    .await;
    assert_eq!(page.kvs.iter().find(|kv| kv.key == "k3").map(|kv| kv.value.to_vec()), Some(b"v3".to_vec()));
    assert!(env.query().state.stats.lost_namespaces.load(Ordering::Relaxed) >= 1, "the loss was noticed");
}
