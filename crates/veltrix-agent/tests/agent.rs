//! Real agent processes against real servers: three agents on a namespace
//! (one reloading its app by signal), one whose --check rejects the new
//! value (REJECTED in the ledger with the check's error, last good files
//! kept) until a fixing write; a health check that fails after reload puts
//! the previous files back and NACKs with step health; a burst of writes
//! coalesced by --wait; --once; a killed agent is DISCONNECTED; a cold start
//! from the state directory with the servers down; a template output, and a
//! template with a missing key NACKed at render; an agent that stops
//! acknowledging (SIGSTOP) turns PENDING then STALE; agents behind a load
//! balancer reconnect to either query replica after every replica
//! restarted, keep their ledger entries and reload nothing; the agent's
//! /healthz and /metrics.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use veltrix_client::{Client, ClientFilter, ClientInfo, ClientState};
use veltrix_testsystem::{TestSystem, eventually};

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(sys: &TestSystem, ns: &str, id: &str, dir: &Path, extra: &[&str]) -> Command {
    agent_at(&sys.query_url(), ns, id, dir, extra)
}

fn agent_at(url: &str, ns: &str, id: &str, dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_veltrix-agent"));
    cmd.args(["--query-url", url, "--namespace", ns, "--client-id", id, "--keepalive", "300ms"])
        .arg("--dir")
        .arg(dir.join(id))
        .arg("--state-dir")
        .arg(dir.join(format!("{id}.state")))
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

fn spawn(mut cmd: Command) -> Agent {
    Agent(cmd.spawn().unwrap())
}

fn client(sys: &TestSystem) -> Client {
    Client::builder().command_url(sys.command_url()).query_url(sys.query_url()).actor("tester").build().unwrap()
}

async fn system() -> TestSystem {
    TestSystem::builder()
        .query(|c| {
            c.fleet.client_heartbeat = Duration::from_millis(500);
            c.fleet.ledger_flush_interval = Duration::from_millis(50);
            c.fleet.client_stale_after = Duration::from_secs(2);
        })
        .start()
        .await
}

/// The status code and body of `GET path` on an agent's --metrics-listen.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await else { return (0, String::new()) };
    conn.write_all(format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = conn.read_to_string(&mut out).await;
    let code = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, out)
}

fn signal(agent: &Agent, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(agent.0.id()).unwrap());
    nix::sys::signal::kill(pid, sig).unwrap();
}

async fn clients(c: &Client, ns: &str) -> Vec<ClientInfo> {
    c.clients(ns, &ClientFilter::default()).await.unwrap()
}

async fn wait_states(c: &Client, ns: &str, want: &[(&str, ClientState, u64)]) -> Vec<ClientInfo> {
    eventually(Duration::from_secs(30), &format!("states {want:?}"), || async {
        let all = clients(c, ns).await;
        let got: Vec<_> = all.iter().map(|i| (i.client_id.as_str(), i.state, i.applied_revision)).collect();
        (got == want).then_some(all)
    })
    .await
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_one_rejecting_then_a_fix_syncs_all() {
    let sys = system().await;
    let c = client(&sys);
    let tmp = tempfile::tempdir().unwrap();
    let ns = "agents/three";
    let first = c.put(ns, "port", "80").await.unwrap();
    let strict = "grep -qx '[0-9]*' \"$VELTRIX_STAGED/port\" || { echo \"invalid port: $(cat \"$VELTRIX_STAGED/port\")\" >&2; exit 1; }";
    let reloads = tmp.path().join("reloads");
    let reload = format!("echo x >> {}", reloads.display());
    // web-2 reloads its app by signal: a process that counts its SIGHUPs.
    let (pid_file, hups) = (tmp.path().join("app.pid"), tmp.path().join("hups"));
    let app = format!(
        "import os, signal, time\n\
         signal.signal(signal.SIGHUP, lambda *_: open({h:?}, 'a').write('hup\\n'))\n\
         open({p:?} + '.tmp', 'w').write(str(os.getpid()))\n\
         os.rename({p:?} + '.tmp', {p:?})\n\
         while True: time.sleep(1)\n",
        h = hups.display().to_string(),
        p = pid_file.display().to_string()
    );
    let _app = spawn({
        let mut c = Command::new("python3");
        c.args(["-c", &app]);
        c
    });
    eventually(Duration::from_secs(10), "the app wrote its pid file", || async { pid_file.exists().then_some(()) })
        .await;
    let pid_flag = pid_file.display().to_string();
    let _a = spawn(agent(&sys, ns, "web-1", tmp.path(), &["--reload", &reload]));
    let _b = spawn(agent(&sys, ns, "web-2", tmp.path(), &["--reload-signal", "HUP", "--pid-file", &pid_flag]));
    let _c = spawn(agent(&sys, ns, "web-3", tmp.path(), &["--check", strict]));
    use ClientState::*;
    wait_states(&c, ns, &[("web-1", Synced, first), ("web-2", Synced, first), ("web-3", Synced, first)]).await;
    assert_eq!(read(tmp.path().join("web-3/port")), "80");

    let bad = c.put(ns, "port", "eighty").await.unwrap();
    let all = wait_states(&c, ns, &[("web-1", Synced, bad), ("web-2", Synced, bad), ("web-3", Rejected, first)]).await;
    let e = all[2].last_error.as_ref().unwrap();
    assert_eq!((e.revision, e.step.as_str(), e.error.as_str()), (bad, "check", "invalid port: eighty"));
    assert_eq!(read(tmp.path().join("web-1/port")), "eighty");
    assert_eq!(read(tmp.path().join("web-3/port")), "80", "the rejecting agent keeps its last good files");
    let s = c.revision_status(ns, Some(bad)).await.unwrap();
    assert_eq!((s.applied, s.rejected, s.rejections[0].client_ids.clone()), (2, 1, vec!["web-3".to_owned()]));

    let fixed = c.put(ns, "port", "8080").await.unwrap();
    wait_states(&c, ns, &[("web-1", Synced, fixed), ("web-2", Synced, fixed), ("web-3", Synced, fixed)]).await;
    assert_eq!(read(tmp.path().join("web-3/port")), "8080");
    assert_eq!(read(reloads.clone()).lines().count(), 3, "one reload per new revision");

    // A write to another key with the same output for nobody... the same
    // value again: same digest, no reload.
    let same = c.put(ns, "port", "8080").await.unwrap();
    wait_states(&c, ns, &[("web-1", Synced, same), ("web-2", Synced, same), ("web-3", Synced, same)]).await;
    assert_eq!(read(reloads).lines().count(), 3, "unchanged output reloads nothing");
    eventually(Duration::from_secs(5), "the app got one SIGHUP per new revision", || async {
        (read(hups.clone()).lines().count() == 3).then_some(())
    })
    .await;

    // A killed agent is DISCONNECTED.
    drop(_b);
    wait_states(&c, ns, &[("web-1", Synced, same), ("web-2", Disconnected, same), ("web-3", Synced, same)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_health_check_restores_the_previous_files_and_bursts_are_coalesced() {
    let sys = system().await;
    let c = client(&sys);
    let tmp = tempfile::tempdir().unwrap();
    let ns = "agents/health";
    let first = c.put(ns, "mode", "good").await.unwrap();
    let dir = tmp.path().join("web-1");
    let health = format!("grep -qx good {}/mode || {{ echo 'health: mode is not good' >&2; exit 1; }}", dir.display());
    let reloads = tmp.path().join("reloads");
    let reload = format!("echo x >> {}", reloads.display());
    let _a =
        spawn(agent(&sys, ns, "web-1", tmp.path(), &["--reload", &reload, "--health", &health, "--wait", "200ms:1s"]));
    use ClientState::*;
    wait_states(&c, ns, &[("web-1", Synced, first)]).await;
    let bad = c.put(ns, "mode", "broken").await.unwrap();
    let all = wait_states(&c, ns, &[("web-1", Rejected, first)]).await;
    let e = all[0].last_error.as_ref().unwrap();
    assert_eq!((e.revision, e.step.as_str(), e.error.as_str()), (bad, "health", "health: mode is not good"));
    assert_eq!(read(dir.join("mode")), "good", "the previous files are back");
    let before = read(reloads.clone()).lines().count();

    // 200 writes in about two seconds: a handful of reloads, the last value.
    let mut last = 0;
    for i in 0..200 {
        last = c.put(ns, "mode", if i == 199 { "good".to_owned() } else { format!("good-{i}") }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Intermediate values fail the health check; only the final one passes.
    wait_states(&c, ns, &[("web-1", Synced, last)]).await;
    assert_eq!(read(dir.join("mode")), "good");
    let reloads = read(reloads).lines().count() - before;
    assert!(reloads <= 12, "{reloads} reloads for 200 writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_reports_and_exits_and_a_cold_start_serves_the_state_directory() {
    let mut sys = system().await;
    let c = client(&sys);
    let tmp = tempfile::tempdir().unwrap();
    let ns = "agents/once";
    let rev = c.put(ns, "greeting", "hello").await.unwrap();
    let file = tmp.path().join("app.env");
    let status =
        agent(&sys, ns, "init-1", tmp.path(), &["--once", "--file", file.to_str().unwrap(), "--format", "env"])
            .status()
            .unwrap();
    assert!(status.success());
    assert_eq!(read(file.clone()), "GREETING=\"hello\"\n");
    assert_eq!(read(tmp.path().join("init-1/greeting")), "hello");
    let all = clients(&c, ns).await;
    assert_eq!((all[0].client_id.as_str(), all[0].applied_revision), ("init-1", rev));

    let rejected =
        agent(&sys, ns, "init-2", tmp.path(), &["--once", "--check", "echo nope >&2; exit 1"]).status().unwrap();
    assert_eq!(rejected.code(), Some(1));
    let all = clients(&c, ns).await;
    assert_eq!(all[1].last_error.as_ref().map(|e| e.error.as_str()), Some("nope"));

    // Servers down: --once fails clearly; a daemon with a state directory
    // serves its last good files (rewriting them if they are gone).
    sys.stop_query(0).await;
    let down = agent(&sys, ns, "init-3", tmp.path(), &["--once", "--timeout", "1s"]).status().unwrap();
    assert_eq!(down.code(), Some(3));
    std::fs::remove_dir_all(tmp.path().join("init-1")).unwrap();
    let port = veltrix_testsystem::free_port();
    let _cold = spawn(agent(&sys, ns, "init-1", tmp.path(), &["--metrics-listen", &format!("127.0.0.1:{port}")]));
    eventually(Duration::from_secs(10), "files rewritten from the state directory", || async {
        (read(tmp.path().join("init-1/greeting")) == "hello").then_some(())
    })
    .await;
    // Healthy: it serves good files, though it cannot reach the servers.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    eventually(Duration::from_secs(10), "/healthz answers 200", || async {
        (http_get(addr, "/healthz").await.0 == 200).then_some(())
    })
    .await;
    let (code, text) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(veltrix_testsystem::metric(&text, "veltrix_agent_applied_revision"), Some(rev as f64), "{text}");
    // An agent with nothing applied yet and no server: not healthy.
    let port = veltrix_testsystem::free_port();
    let _new = spawn(agent(&sys, ns, "init-4", tmp.path(), &["--metrics-listen", &format!("127.0.0.1:{port}")]));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let code = eventually(Duration::from_secs(10), "/healthz answers", || async {
        Some(http_get(addr, "/healthz").await.0).filter(|c| *c != 0)
    })
    .await;
    assert_eq!(code, 503);

    // The outputs changed since the state was saved (a template is new):
    // the saved revision goes through --check before it is written.
    drop(_cold);
    let (tpl, dest) = (tmp.path().join("greeting.j2"), tmp.path().join("greeting.txt"));
    std::fs::write(&tpl, "{{ raw.greeting }}, world\n").unwrap();
    let t = format!("{}:{}", tpl.display(), dest.display());
    let port = veltrix_testsystem::free_port();
    let listen = format!("127.0.0.1:{port}");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mark = tmp.path().join("checked");
    let check = format!("touch {}; echo no >&2; exit 1", mark.display());
    let refused = spawn(agent(
        &sys,
        ns,
        "init-1",
        tmp.path(),
        &["--template", &t, "--check", &check, "--metrics-listen", &listen],
    ));
    eventually(Duration::from_secs(10), "the check ran", || async { mark.exists().then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(http_get(addr, "/healthz").await.0, 503, "a new output that fails its check is not served");
    assert!(!dest.exists());
    assert_eq!(read(tmp.path().join("init-1/greeting")), "hello", "what was in place stays");
    drop(refused);
    let _accepted = spawn(agent(&sys, ns, "init-1", tmp.path(), &["--template", &t]));
    eventually(Duration::from_secs(10), "the new output is written from the state directory", || async {
        (read(dest.clone()) == "hello, world\n").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_render_a_missing_key_is_rejected_and_a_stopped_agent_turns_pending_then_stale() {
    let sys = system().await;
    let c = client(&sys);
    let tmp = tempfile::tempdir().unwrap();
    let ns = "agents/templates";
    let first = c.put(ns, "port", "80").await.unwrap();
    let (tpl, strict) = (tmp.path().join("app.conf.j2"), tmp.path().join("upstream.j2"));
    std::fs::write(&tpl, "listen {{ config.port }}\nin {{ namespace }}\n").unwrap();
    std::fs::write(&strict, "server {{ config.host }}:{{ config.port }}\n").unwrap();
    let (out, up) = (tmp.path().join("app.conf"), tmp.path().join("upstream.conf"));
    let port = veltrix_testsystem::free_port();
    let metrics = format!("127.0.0.1:{port}");
    let t1 = format!("{}:{}", tpl.display(), out.display());
    let t2 = format!("{}:{}", strict.display(), up.display());
    let web1 = spawn(agent(&sys, ns, "web-1", tmp.path(), &["--template", &t1, "--metrics-listen", &metrics]));
    let _web2 = spawn(agent(&sys, ns, "web-2", tmp.path(), &["--template", &t2]));
    use ClientState::*;
    // A key the template needs is missing: an error at render, no file.
    let all = wait_states(&c, ns, &[("web-1", Synced, first), ("web-2", Rejected, 0)]).await;
    assert_eq!(read(out.clone()), "listen 80\nin agents/templates\n");
    let e = all[1].last_error.as_ref().unwrap();
    assert_eq!((e.revision, e.step.as_str()), (first, "render"));
    assert!(e.error.contains("undefined"), "{}", e.error);
    assert!(!up.exists(), "nothing is written for a revision that fails to render");
    let host = c.put(ns, "host", "db.internal").await.unwrap();
    wait_states(&c, ns, &[("web-1", Synced, host), ("web-2", Synced, host)]).await;
    assert_eq!(read(up), "server db.internal:80\n");
    let (code, text) = http_get(std::net::SocketAddr::from(([127, 0, 0, 1], port)), "/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(veltrix_testsystem::metric(&text, "veltrix_agent_applied_revision"), Some(host as f64), "{text}");

    // A stopped agent holds its stream open and acknowledges nothing:
    // PENDING, then STALE after --client-stale-after; resumed, SYNCED.
    signal(&web1, nix::sys::signal::Signal::SIGSTOP);
    let next = c.put(ns, "port", "81").await.unwrap();
    let all = wait_states(&c, ns, &[("web-1", Pending, host), ("web-2", Synced, next)]).await;
    assert_eq!(all[0].delivered_revision, next);
    wait_states(&c, ns, &[("web-1", Stale, host), ("web-2", Synced, next)]).await;
    signal(&web1, nix::sys::signal::Signal::SIGCONT);
    wait_states(&c, ns, &[("web-1", Synced, next), ("web-2", Synced, next)]).await;
    assert_eq!(read(out), "listen 81\nin agents/templates\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_reconnect_to_either_replica_after_every_replica_restarts_and_reload_nothing() {
    let mut sys = TestSystem::builder()
        .queries(2)
        .query(|c| {
            c.fleet.client_heartbeat = Duration::from_millis(500);
            c.fleet.ledger_flush_interval = Duration::from_millis(50);
        })
        .start()
        .await;
    let c = client(&sys);
    let tmp = tempfile::tempdir().unwrap();
    let ns = "agents/replicas";
    let balancer = veltrix_testsystem::Balancer::start(vec![sys.query_addr_at(0), sys.query_addr_at(1)]).await;
    let url = format!("http://{}", balancer.addr());
    let check = "! grep -qx bad \"$VELTRIX_STAGED/mode\" || { echo 'bad mode' >&2; exit 1; }";
    let reloads = tmp.path().join("reloads");
    let ids = ["web-1", "web-2", "web-3", "web-4"];
    let _agents: Vec<_> = ids
        .iter()
        .map(|id| {
            let reload = format!("echo {id} >> {}", reloads.display());
            spawn(agent_at(&url, ns, id, tmp.path(), &["--check", check, "--reload", &reload]))
        })
        .collect();
    use ClientState::*;
    let first = c.put(ns, "mode", "good").await.unwrap();
    let want = |state, rev| ids.iter().map(|id| (*id, state, rev)).collect::<Vec<_>>();
    wait_states(&c, ns, &want(Synced, first)).await;
    let bad = c.put(ns, "mode", "bad").await.unwrap();
    wait_states(&c, ns, &want(Rejected, first)).await;
    let fixed = c.put(ns, "mode", "better").await.unwrap();
    let before = wait_states(&c, ns, &want(Synced, fixed)).await;
    let replicas: std::collections::BTreeSet<_> = before.iter().map(|i| i.replica.clone()).collect();
    assert_eq!(replicas.len(), 2, "the balancer spreads the agents over both replicas: {replicas:?}");
    let reloaded = read(reloads.clone());

    // Every replica goes down, then comes back.
    sys.stop_query(0).await;
    sys.stop_query(1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    sys.start_query(0).await;
    sys.start_query(1).await;
    let c = client(&sys);
    let seen = before.iter().filter_map(|i| i.last_seen).max();
    let after = eventually(Duration::from_secs(30), "every agent reconnected", || async {
        let all = clients(&c, ns).await;
        let back = all.iter().all(|i| i.state == Synced && i.applied_revision == fixed && i.connected_since > seen);
        (all.len() == ids.len() && back).then_some(all)
    })
    .await;
    for info in &after {
        assert!(replicas.contains(&info.replica), "{} is on {}", info.client_id, info.replica);
        let e = info.last_error.as_ref().expect("the ledger still holds the earlier rejection");
        assert_eq!((e.revision, e.error.as_str()), (bad, "bad mode"));
    }
    assert_eq!(read(reloads.clone()), reloaded, "nothing changed: no reload");

    // And they are live: the next write reaches all four.
    let last = c.put(ns, "mode", "best").await.unwrap();
    wait_states(&c, ns, &want(Synced, last)).await;
    assert_eq!(read(reloads).lines().count(), reloaded.lines().count() + ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_follow_a_rollout_a_canary_check_aborts_it_and_the_files_come_back() {
    use veltrix_client::{Change, RolloutOptions, RolloutStep, RolloutStrategy};
    let sys = TestSystem::builder()
        .query(|c| {
            c.fleet.client_heartbeat = Duration::from_millis(500);
            c.fleet.ledger_flush_interval = Duration::from_millis(50);
            c.fleet.rollout_interval = Duration::from_millis(100);
        })
        .start()
        .await;
    let c = client(&sys);
    let tmp = tempfile::tempdir().unwrap();
    let ns = "agents/rollout";
    let first = c.put(ns, "port", "80").await.unwrap();
    // The canary's check refuses port 81; the other agent takes anything.
    let refuse_81 = "! grep -qx 81 \"$VELTRIX_STAGED/port\" || { echo 'port 81 is taken' >&2; exit 1; }";
    let reloads = tmp.path().join("reloads");
    let reload = format!("echo x >> {}", reloads.display());
    let _canary = spawn(agent(&sys, ns, "edge-canary", tmp.path(), &["--label", "canary=true", "--check", refuse_81]));
    let _edge = spawn(agent(&sys, ns, "edge-1", tmp.path(), &["--reload", &reload]));
    use ClientState::*;
    wait_states(&c, ns, &[("edge-1", Synced, first), ("edge-canary", Synced, first)]).await;
    let strategy = |canary: bool| RolloutStrategy {
        steps: vec![RolloutStep::new(50, Duration::from_secs(1)), RolloutStep::new(100, Duration::from_secs(1))],
        canary: if canary { [("canary".to_owned(), "true".to_owned())].into() } else { Default::default() },
        ack_timeout: None,
    };
    let options = |r: &str| RolloutOptions { reason: r.into(), ..Default::default() };

    let (id, _) = c.start_rollout(ns, vec![Change::set("port", "81")], &strategy(true), &options("81")).await.unwrap();
    let aborted = eventually(Duration::from_secs(30), "the canary's NACK aborts the rollout", || async {
        c.rollout(ns, Some(&id)).await.ok().filter(|r| r.state == "ABORTED")
    })
    .await;
    let last = aborted.transitions.last().unwrap();
    assert_eq!((last.kind, last.triggered_by), ("aborted", "gate"));
    assert_eq!(last.rejections[0].step, "check");
    assert_eq!(last.rejections[0].error, "port 81 is taken");
    assert_eq!(last.rejections[0].client_ids, ["edge-canary"]);
    // Both run the base: the canary kept it, and edge-1, had it taken the
    // target, got the base back; the ledger says so.
    eventually(Duration::from_secs(20), "every file holds the base", || async {
        (read(tmp.path().join("edge-1/port")) == "80" && read(tmp.path().join("edge-canary/port")) == "80")
            .then_some(())
    })
    .await;
    assert_eq!(c.get(ns, "port").await.unwrap().value, "80");
    // The canary ACKs the abort's base values; the other agent (in the
    // cohort or not) runs the base too: the transitions touch no key, so
    // nobody is behind.
    let abort_revision = last.revision;
    eventually(Duration::from_secs(20), "both agents are synced on the base", || async {
        let all = clients(&c, ns).await;
        let canary = all.iter().find(|i| i.client_id == "edge-canary")?;
        (all.iter().all(|i| i.state == Synced) && canary.applied_revision == abort_revision).then_some(())
    })
    .await;

    // A rollout both accept completes: the target is committed and in
    // every file.
    let (id, _) = c.start_rollout(ns, vec![Change::set("port", "82")], &strategy(false), &options("82")).await.unwrap();
    let done = eventually(Duration::from_secs(30), "the second rollout completes", || async {
        c.rollout(ns, Some(&id)).await.ok().filter(|r| r.state == "COMPLETED")
    })
    .await;
    wait_states(
        &c,
        ns,
        &[("edge-1", Synced, done.completed_revision), ("edge-canary", Synced, done.completed_revision)],
    )
    .await;
    assert_eq!(read(tmp.path().join("edge-1/port")), "82");
    assert_eq!(read(tmp.path().join("edge-canary/port")), "82");
}
