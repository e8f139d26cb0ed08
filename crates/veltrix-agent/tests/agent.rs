//! Real agent processes against real servers: three agents on a namespace,
//! one whose --check rejects the new value (REJECTED in the ledger with the
//! check's error, last good files kept) until a fixing write; a health check
//! that fails after reload puts the previous files back and NACKs with step
//! health; a burst of writes coalesced by --wait; --once; a killed agent is
//! DISCONNECTED; a cold start from the state directory with the servers down.
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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_veltrix-agent"));
    cmd.args(["--query-url", &sys.query_url(), "--namespace", ns, "--client-id", id, "--keepalive", "300ms"])
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
        })
        .start()
        .await
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
    let _a = spawn(agent(&sys, ns, "web-1", tmp.path(), &["--reload", &reload]));
    let _b = spawn(agent(&sys, ns, "web-2", tmp.path(), &[]));
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
}
