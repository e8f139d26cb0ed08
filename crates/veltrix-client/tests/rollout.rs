//! Gradual rollouts against real servers, with in-process Sync clients that
//! apply what they receive and ACK (or NACK) it: a rollout advances step by
//! step on the clients' ACKs and commits the target (origin ROLLOUT); a
//! canary's NACK aborts it and the cohort gets the base values back; too few
//! ACKs by the ACK timeout pause it; writes to the keys it holds are refused
//! while others reach everyone; with two query replicas (each running the
//! controller), restarts of a query and a command replica mid-rollout, every
//! transition is in the history exactly once.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use veltrix_client::{
    Change, Client, Error, Rollout, RolloutActionOptions, RolloutOptions, RolloutStep, RolloutStrategy, SyncOptions,
    SyncStep, WatchEvent, WriteOptions,
};
use veltrix_testsystem::{TestSystem, eventually};

const NS: &str = "rollout/app";

/// A real agent process, killed with the test.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client_at(sys: &TestSystem, query: usize) -> Client {
    Client::builder()
        .command_url(sys.command_url())
        .query_url(format!("http://{}", sys.query_addr_at(query)))
        .actor("tester")
        .backoff(Duration::from_millis(50))
        .build()
        .unwrap()
}

async fn system(queries: usize, commands: usize) -> TestSystem {
    system_with(queries, commands, None).await
}

async fn system_with(queries: usize, commands: usize, metrics: Option<std::net::SocketAddr>) -> TestSystem {
    TestSystem::builder()
        .queries(queries)
        .commands(commands)
        .query(move |c| {
            c.fleet.client_heartbeat = Duration::from_secs(1);
            c.fleet.ledger_flush_interval = Duration::from_millis(20);
            c.fleet.rollout_interval = Duration::from_millis(100);
            c.serve.metrics_listen = metrics;
        })
        .start()
        .await
}

/// What one in-process client runs and saw.
#[derive(Debug, Default)]
struct Seen {
    /// Everything received (what it would run).
    working: BTreeMap<String, String>,
    /// What it runs: the last working copy it accepted.
    values: BTreeMap<String, String>,
    revision: u64,
    /// (kind, revision, step) of every rollout mark received.
    marks: Vec<(String, u64, u32)>,
    /// Every value of `port` it applied, in order.
    ports: Vec<String>,
}

/// A client that applies every message and ACKs it, or, like a sidecar
/// whose health check fails, NACKs while `port` is `refuse` (and keeps
/// running what it ran).
fn spawn_client(c: &Client, id: String, labels: &[(&str, &str)], refuse: Option<&'static str>) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut o = SyncOptions::new(id);
    o.labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    o.keepalive = Duration::from_millis(500);
    let mut handle = c.sync(NS, o);
    let out = seen.clone();
    tokio::spawn(async move {
        while let Some(event) = handle.next().await {
            let Ok(event) = event else { continue };
            let mut next = out.lock().unwrap().working.clone();
            let (revision, mark) = match event {
                WatchEvent::Snapshot { entries, revision } => {
                    next =
                        entries.into_iter().map(|e| (e.key, String::from_utf8_lossy(&e.value).into_owned())).collect();
                    (revision, None)
                }
                WatchEvent::Changes(set) => {
                    for ch in set.changes {
                        match ch.value {
                            Some(v) => next.insert(ch.key, String::from_utf8_lossy(&v).into_owned()),
                            None => next.remove(&ch.key),
                        };
                    }
                    (set.revision, set.rollout.map(|m| (m.kind, m.step)))
                }
                WatchEvent::Progress(_) => continue,
            };
            let bad = refuse.is_some_and(|r| next.get("port").map(String::as_str) == Some(r));
            let mut s = out.lock().unwrap();
            s.working = next.clone();
            if let Some((kind, step)) = mark {
                s.marks.push((kind, revision, step));
            }
            if bad {
                handle.nack(revision, s.revision.min(revision.saturating_sub(1)), SyncStep::Health, "unhealthy");
                continue;
            }
            if next.get("port") != s.values.get("port")
                && let Some(p) = next.get("port")
            {
                s.ports.push(p.clone());
            }
            s.values = next;
            s.revision = revision.max(s.revision);
            handle.ack(revision, "");
        }
    });
    seen
}

fn port(seen: &Arc<Mutex<Seen>>) -> Option<String> {
    seen.lock().unwrap().values.get("port").cloned()
}

async fn all_synced(c: &Client, n: usize) {
    eventually(Duration::from_secs(30), "every client synced", || async {
        let synced =
            c.clients(NS, &Default::default()).await.unwrap().iter().filter(|i| i.state.as_str() == "SYNCED").count();
        (synced == n).then_some(())
    })
    .await;
}

async fn state_is(c: &Client, id: &str, state: &str) -> Rollout {
    eventually(Duration::from_secs(60), &format!("the rollout is {state}"), || async {
        // NOT_FOUND until the start is projected.
        c.rollout(NS, Some(id)).await.ok().filter(|r| r.state == state)
    })
    .await
}

fn strategy(steps: &[u32], bake: Duration) -> RolloutStrategy {
    RolloutStrategy { steps: steps.iter().map(|p| RolloutStep::new(*p, bake)).collect(), ..Default::default() }
}

fn reason(r: &str) -> RolloutOptions {
    RolloutOptions { reason: r.into(), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_goes_step_by_step_on_acks_and_commits_the_target() {
    let metrics = veltrix_testsystem::metrics_addr();
    let sys = system_with(1, 1, Some(metrics)).await;
    let c = client_at(&sys, 0);
    let base = c.put(NS, "port", "80").await.unwrap();
    eventually(Duration::from_secs(10), "the base is readable", || async {
        (c.revision(NS).await.unwrap() >= base).then_some(())
    })
    .await;
    let clients: Vec<_> = (0..100)
        .map(|i| {
            let labels: &[(&str, &str)] = if i < 5 { &[("canary", "true")] } else { &[] };
            spawn_client(&c, format!("web-{i:03}"), labels, None)
        })
        .collect();
    // And two real agents, one of them a canary, writing the namespace to
    // files.
    let tmp = tempfile::tempdir().unwrap();
    let agent = |id: &str, extra: &[&str]| {
        let mut cmd = std::process::Command::new(veltrix_testsystem::binary("veltrix-agent"));
        cmd.args(["--query-url", &format!("http://{}", sys.query_addr_at(0)), "--namespace", NS, "--client-id", id])
            .args(["--keepalive", "300ms"])
            .arg("--dir")
            .arg(tmp.path().join(id))
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null());
        Agent(cmd.spawn().unwrap())
    };
    let _agents = [agent("agent-canary", &["--label", "canary=true"]), agent("agent-1", &[])];
    let agent_port = |id: &str| std::fs::read_to_string(tmp.path().join(id).join("port")).unwrap_or_default();
    all_synced(&c, 102).await;

    // A plain watcher of the namespace: it sees the base until the target
    // is committed.
    let watched = Arc::new(Mutex::new(Vec::new()));
    let mut watch = c.watch(NS, "", veltrix_client::WatchStart::Now);
    let seen_by_watch = watched.clone();
    tokio::spawn(async move {
        while let Some(Ok(event)) = watch.next().await {
            if let WatchEvent::Changes(set) = event {
                seen_by_watch.lock().unwrap().push(set);
            }
        }
    });
    let steps = [10, 50, 100];
    let mut s = strategy(&steps, Duration::from_secs(1));
    s.canary.insert("canary".into(), "true".into());
    let (id, started) = c.start_rollout(NS, vec![Change::set("port", "81")], &s, &reason("new port")).await.unwrap();
    // The committed state is the base while it runs.
    assert_eq!(c.get(NS, "port").await.unwrap().value, "80");
    // The canaries are in from the first step.
    eventually(Duration::from_secs(20), "the canaries run the target", || async {
        clients[..5].iter().all(|s| port(s).as_deref() == Some("81")).then_some(())
    })
    .await;
    let running = c.rollout(NS, None).await.unwrap();
    assert_eq!((running.id.as_str(), running.base_revision), (id.as_str(), base));
    assert_eq!(running.changes[0].key, "port");
    // While it runs, an agent's file holds the target only once the step it
    // enters at has begun (its file is read before the rollout's step).
    let rollout_id = veltrix_domain::rollout::RolloutId::parse(&id).unwrap();
    let first_step_of = |client: &str, canary: bool| -> u32 {
        let bucket =
            veltrix_domain::rollout::bucket(&rollout_id, &veltrix_domain::fleet::ClientId::parse(client).unwrap());
        if canary {
            0
        } else {
            steps.iter().position(|p| veltrix_domain::rollout::covers(*p as u8, bucket)).unwrap() as u32
        }
    };
    let watch_agents = async {
        loop {
            let files = [agent_port("agent-canary"), agent_port("agent-1")];
            let Ok(r) = c.rollout(NS, Some(&id)).await else { continue };
            if r.state == "COMPLETED" {
                return;
            }
            for (file, (name, canary)) in files.iter().zip([("agent-canary", true), ("agent-1", false)]) {
                if file == "81" {
                    assert!(first_step_of(name, canary) <= r.step, "{name} ran the target before its step: {r:?}");
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), watch_agents).await.unwrap();
    let done = state_is(&c, &id, "COMPLETED").await;

    let kinds: Vec<_> = done.transitions.iter().map(|t| (t.kind, t.triggered_by, t.step)).collect();
    assert_eq!(
        kinds,
        [("started", "user", 0), ("advanced", "gate", 1), ("advanced", "gate", 2), ("completed", "gate", 2)],
        "{done:#?}"
    );
    assert_eq!(done.transitions[0].revision, started);
    // Each gate saw its whole cohort ACK; the cohort only grew.
    let cohorts: Vec<u32> = done.transitions[1..].iter().map(|t| t.inputs.unwrap().cohort).collect();
    for t in &done.transitions[1..] {
        let i = t.inputs.unwrap();
        assert_eq!((i.applied, i.rejected, i.pending), (i.cohort, 0, 0), "{t:?}");
    }
    assert!(cohorts[0] >= 6 && cohorts[0] < 50, "step 1: the canaries and about 10%: {cohorts:?}");
    assert!(cohorts.windows(2).all(|w| w[0] <= w[1]) && cohorts[2] == 102, "{cohorts:?}");
    // Committed: reads and everyone see the target; History says ROLLOUT.
    assert_eq!(c.get(NS, "port").await.unwrap().value, "81");
    eventually(Duration::from_secs(20), "both agents' files hold the target", || async {
        (agent_port("agent-canary") == "81" && agent_port("agent-1") == "81").then_some(())
    })
    .await;
    eventually(Duration::from_secs(20), "every client runs the target", || async {
        clients.iter().all(|s| port(s).as_deref() == Some("81")).then_some(())
    })
    .await;
    let history = c.history(NS, None, Default::default()).await.unwrap();
    let last = history.iter().max_by_key(|h| h.revision).unwrap();
    assert_eq!(last.revision, done.completed_revision);
    assert_eq!(last.origin.kind, veltrix_client::OriginKind::Rollout);
    assert_eq!(last.changes.len(), 1);
    // Each client got the target at exactly the first step whose
    // hash-selected cohort holds it (the canaries at the first), never
    // earlier, never twice, and never ran the base again after it: at each
    // step the clients running the target were exactly that step's cohort,
    // a superset of the step before's.
    let rollout_id = veltrix_domain::rollout::RolloutId::parse(&id).unwrap();
    for (i, seen) in clients.iter().enumerate() {
        let client = veltrix_domain::fleet::ClientId::parse(&format!("web-{i:03}")).unwrap();
        let bucket = veltrix_domain::rollout::bucket(&rollout_id, &client);
        let first_step = if i < 5 {
            0
        } else {
            steps.iter().position(|p| veltrix_domain::rollout::covers(*p as u8, bucket)).unwrap() as u32
        };
        let s = seen.lock().unwrap();
        assert_eq!(s.ports, ["80", "81"], "{s:?}");
        let targets: Vec<_> = s.marks.iter().filter(|(k, ..)| k == "started" || k == "advanced").collect();
        assert_eq!(targets.len(), 1, "client {i}: {s:?}");
        assert_eq!(targets[0].2, first_step, "client {i} (bucket {bucket}) entered at step {}: {s:?}", targets[0].2);
    }
    // The plain watcher saw no transition and the target once, committed.
    let watched = watched.lock().unwrap().clone();
    assert!(watched.iter().all(|set| set.rollout.is_none() || !set.changes.is_empty()), "{watched:?}");
    let ports: Vec<_> = watched.iter().filter(|set| set.changes.iter().any(|c| c.key == "port")).collect();
    assert_eq!(ports.len(), 1, "{watched:?}");
    assert_eq!(ports[0].revision, done.completed_revision);
    // The metrics: transitions by kind and trigger, deliveries, none live.
    let text = veltrix_testsystem::scrape(metrics).await;
    let transitions = |kind: &str| {
        veltrix_testsystem::labelled(
            &text,
            "veltrix_rollout_transitions_total",
            &[&format!("kind=\"{kind}\""), "triggered_by=\"gate\""],
        )
    };
    assert_eq!((transitions("advanced"), transitions("completed")), (2.0, 1.0), "{text}");
    let targets = veltrix_testsystem::labelled(&text, "veltrix_rollout_deliveries_total", &["kind=\"target\""]);
    assert!(targets >= 102.0, "every client was sent the target once before the completion: {targets}");
    eventually(Duration::from_secs(5), "no rollout is live", || async {
        let text = veltrix_testsystem::scrape(metrics).await;
        (veltrix_testsystem::labelled(&text, "veltrix_rollouts", &["state=\"running\""]) == 0.0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_nack_aborts_the_rollout_and_the_cohort_gets_the_base_back() {
    let sys = system(1, 1).await;
    let c = client_at(&sys, 0);
    c.put(NS, "port", "80").await.unwrap();
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let (labels, refuse): (&[(&str, &str)], _) =
                if i < 3 { (&[("canary", "true")], Some("81")) } else { (&[], None) };
            spawn_client(&c, format!("api-{i:02}"), labels, refuse)
        })
        .collect();
    all_synced(&c, 20).await;
    let mut s = strategy(&[10, 100], Duration::from_secs(30));
    s.canary.insert("canary".into(), "true".into());
    let (id, _) = c.start_rollout(NS, vec![Change::set("port", "81")], &s, &reason("try 81")).await.unwrap();
    let aborted = state_is(&c, &id, "ABORTED").await;
    let last = aborted.transitions.last().unwrap();
    assert_eq!((last.kind, last.triggered_by), ("aborted", "gate"));
    let inputs = last.inputs.unwrap();
    assert!(inputs.rejected >= 1 && inputs.cohort >= 3, "{inputs:?}");
    assert_eq!(last.rejections[0].error, "unhealthy");
    assert_eq!(last.rejections[0].step, "health");
    assert!(last.rejections[0].client_ids.iter().all(|c| c.starts_with("api-0")), "{last:?}");
    // The base is what everyone runs: the cohort got it back, marked.
    eventually(Duration::from_secs(20), "the cohort runs the base again", || async {
        clients.iter().all(|s| port(s).as_deref() == Some("80")).then_some(())
    })
    .await;
    for s in &clients {
        let s = s.lock().unwrap();
        if s.ports.contains(&"81".to_owned()) {
            assert!(s.marks.iter().any(|(k, ..)| k == "aborted"), "{s:?}");
        }
    }
    assert_eq!(c.get(NS, "port").await.unwrap().value, "80");
    // The namespace is free again: a new rollout may start.
    c.start_rollout(NS, vec![Change::set("port", "82")], &strategy(&[100], Duration::ZERO), &reason("82"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_acks_pause_it_held_keys_are_refused_and_a_person_promotes_it() {
    let sys = system(1, 1).await;
    let c = client_at(&sys, 0);
    // JSON, so that a schema over it can be set (and is refused below only
    // because the rollout holds the key).
    let json = WriteOptions { content_type: "application/json".into(), ..Default::default() };
    c.put_with(NS, "port", "80", &json).await.unwrap();
    // Clients that read but never ACK the target.
    let clients: Vec<_> = (0..10).map(|i| spawn_client(&c, format!("db-{i}"), &[], Some("81"))).collect();
    all_synced(&c, 10).await;
    let mut s = strategy(&[50, 100], Duration::ZERO);
    for step in &mut s.steps {
        step.max_rejected_percent = Some(100);
    }
    s.ack_timeout = Some(Duration::from_secs(1));
    let (id, _) = c.start_rollout(NS, vec![Change::set("port", "81")], &s, &reason("slow")).await.unwrap();

    // While it runs: a write to a held key is refused naming the rollout,
    // a write to another key reaches everyone, and no second one starts.
    let refused = c.put(NS, "port", "99").await.unwrap_err();
    assert!(matches!(&refused, Error::FailedPrecondition { message } if message.contains(&id)), "{refused:?}");
    let other = c.put(NS, "color", "blue").await.unwrap();
    // A schema over a held key would judge the target only at completion:
    // it waits for the rollout too.
    let schema = c.set_schema(NS, "port", "{}", &Default::default()).await.unwrap_err();
    assert!(matches!(&schema, Error::FailedPrecondition { message } if message.contains(&id)), "{schema:?}");
    let (one_step, second) = (strategy(&[100], Duration::ZERO), reason("2nd"));
    let second = c.start_rollout(NS, vec![Change::set("x", "1")], &one_step, &second).await;
    assert!(matches!(second.unwrap_err(), Error::FailedPrecondition { .. }));
    eventually(Duration::from_secs(20), "the other write reaches every client", || async {
        clients.iter().all(|s| s.lock().unwrap().working.get("color").map(String::as_str) == Some("blue")).then_some(())
    })
    .await;
    assert!(other > 0);

    let paused = state_is(&c, &id, "PAUSED").await;
    let last = paused.transitions.last().unwrap();
    assert_eq!((last.kind, last.triggered_by), ("paused", "timeout"));
    assert_eq!(last.inputs.unwrap().applied, 0);
    // A stale expected version is a conflict; the right one resumes it.
    let stale = RolloutActionOptions { expected_version: Some(1), reason: "go".into(), ..Default::default() };
    assert!(matches!(c.resume_rollout(NS, &id, &stale).await.unwrap_err(), Error::Conflict { .. }));
    let resume = RolloutActionOptions {
        expected_version: Some(paused.version),
        reason: "try again".into(),
        ..Default::default()
    };
    let resumed = c.resume_rollout(NS, &id, &resume).await.unwrap();
    assert_eq!((resumed.state, resumed.transitions.last().unwrap().triggered_by), ("RUNNING", "user"));
    // The ACK timeout may pause it again in between: promote works from
    // PAUSED too.
    let ship = RolloutActionOptions { reason: "ship".into(), ..Default::default() };
    let promoted = c.promote_rollout(NS, &id, &ship).await.unwrap();
    assert_eq!(promoted.state, "COMPLETED");
    assert_eq!(
        c.get_with(
            NS,
            "port",
            veltrix_client::ReadOptions { min_revision: Some(promoted.completed_revision), ..Default::default() }
        )
        .await
        .unwrap()
        .value,
        "81"
    );
    // The held key is free again.
    c.put_with(NS, "port", "82", &WriteOptions::default()).await.unwrap();
    let all = c.rollouts(NS).await.unwrap();
    assert_eq!(all.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_and_restarts_append_every_transition_once() {
    let mut sys = system(2, 2).await;
    let c = client_at(&sys, 0);
    c.put(NS, "port", "80").await.unwrap();
    let clients: Vec<_> = (0..30).map(|i| spawn_client(&c, format!("edge-{i:02}"), &[], None)).collect();
    all_synced(&c, 30).await;
    let (id, _) = c
        .start_rollout(
            NS,
            vec![Change::set("port", "81")],
            &strategy(&[20, 60, 100], Duration::from_secs(1)),
            &reason("two"),
        )
        .await
        .unwrap();
    // Restart the second query replica and the first command replica while
    // the rollout bakes; the controllers resume from the events.
    sys.stop_query(1).await;
    sys.stop_command(0).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    sys.start_query(1).await;
    sys.start_command(0).await;
    let done = state_is(&c, &id, "COMPLETED").await;
    let kinds: Vec<_> = done.transitions.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, ["started", "advanced", "advanced", "completed"], "{done:#?}");
    let mut history = c.history(NS, None, Default::default()).await.unwrap();
    history.sort_by_key(|h| h.revision);
    let marks: Vec<_> = history.iter().filter_map(|h| h.rollout.as_ref().map(|m| m.kind.clone())).collect();
    assert_eq!(marks, ["started", "advanced", "advanced", "completed"], "each transition once in History");
    eventually(Duration::from_secs(20), "every client runs the target", || async {
        clients.iter().all(|s| port(s).as_deref() == Some("81")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_connects_mid_rollout_gets_the_target_in_its_snapshot_and_the_base_on_abort() {
    let sys = system(1, 1).await;
    let c = client_at(&sys, 0);
    c.put(NS, "port", "80").await.unwrap();
    let (id, _) = c
        .start_rollout(
            NS,
            vec![Change::set("port", "81")],
            &strategy(&[100], Duration::from_secs(3600)),
            &reason("all"),
        )
        .await
        .unwrap();
    state_is(&c, &id, "RUNNING").await;
    // Connects after the start: in the cohort (100%), so its snapshot shows
    // the target, while reads show the base.
    let late = spawn_client(&c, "late-1".into(), &[], None);
    eventually(Duration::from_secs(20), "the late client runs the target", || async {
        (port(&late).as_deref() == Some("81")).then_some(())
    })
    .await;
    assert_eq!(c.get(NS, "port").await.unwrap().value, "80");
    let counted = eventually(Duration::from_secs(20), "the ledger counts its ACK", || async {
        let r = c.rollout(NS, None).await.unwrap();
        r.current.filter(|i| i.applied == 1 && i.cohort == 1)
    })
    .await;
    assert_eq!((counted.rejected, counted.pending), (0, 0));
    let abort = RolloutActionOptions { reason: "no".into(), ..Default::default() };
    c.abort_rollout(NS, &id, &abort).await.unwrap();
    eventually(Duration::from_secs(20), "the late client runs the base again", || async {
        (port(&late).as_deref() == Some("80")).then_some(())
    })
    .await;
    assert_eq!(late.lock().unwrap().ports, ["81", "80"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_configs_follow_a_rollout_and_a_refusing_canary_aborts_it() {
    use veltrix_client::{LiveConfig, LiveOptions, Validator};
    let sys = system(1, 1).await;
    let c = client_at(&sys, 0);
    c.put(NS, "port", "80").await.unwrap();
    let live = |id: &str, canary: bool, refuse: Option<&'static str>| {
        let mut sync = SyncOptions::new(id);
        sync.keepalive = Duration::from_millis(300);
        if canary {
            sync.labels.insert("canary".into(), "true".into());
        }
        let validate: Option<Validator> = refuse.map(|r| {
            Arc::new(move |s: &veltrix_client::Snapshot| match s.entries.get("port") {
                Some(e) if e.value.as_ref() == r.as_bytes() => Err(format!("port {r} is refused")),
                _ => Ok(()),
            }) as Validator
        });
        LiveConfig::start(&c, NS, LiveOptions { sync: Some(sync), validate, ..Default::default() })
    };
    let canary = live("live-canary", true, Some("81")).await.unwrap();
    let other = live("live-other", false, None).await.unwrap();
    all_synced(&c, 2).await;
    let mut s = strategy(&[50, 100], Duration::from_millis(500));
    s.canary.insert("canary".into(), "true".into());
    let (id, _) = c.start_rollout(NS, vec![Change::set("port", "81")], &s, &reason("81")).await.unwrap();
    let aborted = state_is(&c, &id, "ABORTED").await;
    let last = aborted.transitions.last().unwrap();
    assert_eq!(last.rejections[0].client_ids, ["live-canary"]);
    assert_eq!(last.rejections[0].error, "port 81 is refused");
    eventually(Duration::from_secs(20), "both live copies hold the base", || async {
        let port = |l: &LiveConfig| l.get("port").map(|e| e.value);
        (port(&canary).as_deref() == Some(b"80".as_slice()) && port(&other).as_deref() == Some(b"80".as_slice()))
            .then_some(())
    })
    .await;
    // One both take: the live copies follow it to the committed target.
    let (id, _) = c.start_rollout(NS, vec![Change::set("port", "82")], &s, &reason("82")).await.unwrap();
    let done = state_is(&c, &id, "COMPLETED").await;
    eventually(Duration::from_secs(20), "both live copies hold the target", || async {
        let at = |l: &LiveConfig| l.revision() >= done.completed_revision && l.get("port").unwrap().value == "82";
        (at(&canary) && at(&other)).then_some(())
    })
    .await;
    let acks: Vec<u32> = done.transitions[1..].iter().map(|t| t.inputs.unwrap().applied).collect();
    assert!(acks.iter().all(|a| *a >= 1), "each gate counted the live copies' ACKs: {acks:?}");
}

/// The next change set on a Sync stream (progress skipped), if one comes
/// within `within`.
async fn next_change(h: &mut veltrix_client::SyncHandle, within: Duration) -> Option<veltrix_client::ChangeSet> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, h.next()).await {
            Ok(Some(Ok(WatchEvent::Changes(set)))) => return Some(set),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_resumes_before_the_target_gets_it_again_and_one_past_it_does_not() {
    let sys = system(1, 1).await;
    let c = client_at(&sys, 0);
    let base = c.put(NS, "port", "80").await.unwrap();
    let options = |start: veltrix_client::WatchStart, applied: u64| {
        let mut o = SyncOptions::new("crashy-1");
        o.start = start;
        o.applied = applied;
        o.keepalive = Duration::from_millis(200);
        o
    };
    let mut first = c.sync(NS, options(veltrix_client::WatchStart::From(base), 0));
    let got = next_change(&mut first, Duration::from_secs(10)).await.unwrap();
    assert_eq!(got.revision, base);
    first.ack(base, "");
    all_synced(&c, 1).await;
    let (id, started) = c
        .start_rollout(NS, vec![Change::set("port", "81")], &strategy(&[100], Duration::from_secs(3600)), &reason("r"))
        .await
        .unwrap();
    let target = next_change(&mut first, Duration::from_secs(10)).await.unwrap();
    assert_eq!((target.revision, target.rollout.as_ref().unwrap().rollout_id.as_str()), (started, id.as_str()));
    // It dies before applying the target, and resumes where it was.
    drop(first);
    let mut again = c.sync(NS, options(veltrix_client::WatchStart::From(started), base));
    let resent = next_change(&mut again, Duration::from_secs(10)).await.expect("the target again");
    assert_eq!(resent.revision, started);
    assert_eq!(resent.changes[0].value.as_deref(), Some(b"81".as_slice()));
    again.ack(started, "");
    let counted = eventually(Duration::from_secs(10), "its ACK counts", || async {
        c.rollout(NS, None).await.unwrap().current.filter(|i| i.applied == 1)
    })
    .await;
    assert_eq!(counted.cohort, 1);
    drop(again);
    // Resuming past it: nothing is sent again, and it still counts.
    let mut past = c.sync(NS, options(veltrix_client::WatchStart::From(started + 1), started));
    assert!(next_change(&mut past, Duration::from_millis(1500)).await.is_none(), "nothing again");
    let still = c.rollout(NS, None).await.unwrap().current.unwrap();
    assert_eq!((still.cohort, still.applied), (1, 1));
}
