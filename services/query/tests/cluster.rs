//! The NATS cluster fault test: three nats-server nodes on loopback as one
//! JetStream cluster, the event stream with three replicas, two command
//! services and a query service. The stream's leader is killed under load
//! and restarted: writes pause briefly and continue, every acknowledged
//! write is in the stream exactly once, and the read model converges.
//!
//! Needs nats-server 2.9.21 or newer (see `NatsCluster`); `just test` and
//! `just test-cluster` provide it.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tonic::Code;
use veltrix_domain::{EventStore, KeyOp, Namespace, Revision};
use veltrix_jetstream::{JetStreamEventStore, connect};
use veltrix_testsystem::*;

const WRITERS: usize = 8;
const NAMESPACES: usize = 4;

#[derive(Debug, Clone)]
struct Ack {
    revision: u64,
    namespace: String,
    key: String,
    value: String,
    request_id: String,
    at: Instant,
}

/// Writes until `stop`, retrying each request with its request id until it
/// is acknowledged (or the test ends).
async fn writer(id: usize, mut cmd: Command, stop: Arc<AtomicBool>, acks: Arc<Mutex<Vec<Ack>>>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let (namespace, key) = (format!("cluster/n{}", id % NAMESPACES), format!("k{}", n % 10));
        let (value, request_id) = (format!("w{id}-{n}"), format!("w{id}-r{n}"));
        loop {
            let mut req = tonic::Request::new(put(&namespace, &key, &value));
            req.get_mut().request_id = request_id.clone();
            req.set_timeout(Duration::from_secs(2));
            match cmd.put(req).await {
                Ok(r) => {
                    let revision = r.into_inner().revision;
                    let ack = Ack { revision, namespace, key, value, request_id, at: Instant::now() };
                    acks.lock().unwrap().push(ack);
                    break;
                }
                Err(s) if matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Aborted) => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(s) => panic!("writer {id}: unexpected {s:?}"),
            }
        }
    }
}

async fn acks_after(acks: &Mutex<Vec<Ack>>, since: Instant, at_least: usize, what: &str) {
    eventually(Duration::from_secs(60), what, || async {
        (acks.lock().unwrap().iter().filter(|a| a.at > since).count() >= at_least).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_loses_no_acknowledged_write() {
    // Creating an R3 stream waits for the cluster to elect its leaders.
    let mut env = TestSystem::builder().nats_cluster(3).commands(2).start().await;
    let (cmd1, cmd2, q) = (env.cmd_at(0), env.cmd_at(1), env.q());

    let stop = Arc::new(AtomicBool::new(false));
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let cmd = if i % 2 == 0 { cmd1.clone() } else { cmd2.clone() };
            tokio::spawn(writer(i, cmd, stop.clone(), acks.clone()))
        })
        .collect();
    let started = Instant::now();
    acks_after(&acks, started, 200, "writes before the fault").await;

    // Kill the node that leads the event stream.
    let (client, _) = connect(&veltrix_jetstream::NatsOptions::new(env.nats_url()), "cluster-test").await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js.get_stream("VELTRIX_EVENTS").await.unwrap();
    let info = stream.info().await.unwrap();
    let leader = info.cluster.as_ref().and_then(|c| c.leader.clone()).expect("the stream has a leader");
    assert_eq!(info.config.num_replicas, 3);
    let victim = env.nats_cluster().index_of(&leader).expect("the leader is one of ours");
    let killed_at = Instant::now();
    env.nats_cluster().kill(victim);
    acks_after(&acks, killed_at, 200, "writes continue without the old leader").await;
    let first_after = acks.lock().unwrap().iter().filter(|a| a.at > killed_at).map(|a| a.at).min().unwrap();
    println!("leader {leader} killed; first write acknowledged {:?} later", first_after - killed_at);

    let restarted_at = Instant::now();
    env.nats_cluster().restart(victim);
    acks_after(&acks, restarted_at, 200, "writes continue after the node is back").await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();

    // Every acknowledged write is in the stream, exactly once, as written.
    let store = JetStreamEventStore::open(
        client,
        veltrix_command::Config::defaults().stream_settings(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let mut by_revision = HashMap::new();
    let mut last = BTreeMap::new();
    let mut head = 0;
    for n in 0..NAMESPACES {
        let ns = format!("cluster/n{n}");
        // Right after the restart the cluster may still move a leader: a
        // read that answers UNAVAILABLE is retried, as any client would.
        let namespace = Namespace::parse(&ns).unwrap();
        let events = eventually(Duration::from_secs(30), "reading the stream back", || async {
            store.read(&namespace, Revision::ZERO).await.map_err(|e| println!("read {ns}: {e}")).ok()
        })
        .await;
        let mut seen_requests = std::collections::HashSet::new();
        for e in events {
            assert!(
                seen_requests.insert(e.event.request_id.to_string()),
                "request {} appended twice",
                e.event.request_id
            );
            for c in &e.event.changes {
                if let KeyOp::Set { value, .. } = &c.op {
                    last.insert((ns.clone(), c.key.to_string()), String::from_utf8(value.clone()).unwrap());
                }
            }
            head = head.max(e.revision.get());
            by_revision.insert(e.revision.get(), e.event);
        }
    }
    for a in &acks {
        let event =
            by_revision.get(&a.revision).unwrap_or_else(|| panic!("acknowledged write {a:?} is not in the stream"));
        assert_eq!(event.namespace.as_str(), a.namespace);
        assert_eq!(event.request_id.to_string(), a.request_id);
        let KeyOp::Set { value, .. } = &event.changes[0].op else { panic!("not a set") };
        assert_eq!((event.changes[0].key.to_string(), value.as_slice()), (a.key.clone(), a.value.as_bytes()));
    }
    println!("{} acknowledged writes, all in the stream (head {head})", acks.len());

    // The read model converges on the stream.
    for ((ns, key), value) in &last {
        let mut q = q.clone();
        let mut req = get(ns, key);
        req.min_revision = Some(head);
        let mut req = tonic::Request::new(req);
        req.set_timeout(Duration::from_secs(30));
        let kv = q.get(req).await.unwrap().into_inner().kv.unwrap();
        assert_eq!(kv.value, value.as_bytes(), "{ns}/{key}");
    }
}
