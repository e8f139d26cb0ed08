//! The built service binaries, started as child processes.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use tonic::transport::Channel;

/// The path of the workspace binary `name` (`veltrix-query`,
/// `veltrix-command`, `veltrixctl`) beside the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("the test runs from a target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` (`cargo xtask test` builds it)",
        path.display()
    );
    path
}

/// Starts a service binary on `port` with `env` and waits for SERVING.
pub async fn spawn_service(
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    port: u16,
    service: &str,
) -> tokio::process::Child {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let child = tokio::process::Command::new(program)
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .envs(env.iter().copied())
        // Log lines at warn: what is tested must not depend on the log filter.
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the service");
    veltrix_testkit::eventually(Duration::from_secs(30), "the service reports SERVING", || async {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).ok()?.connect().await.ok()?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest { service: service.into() })
            .await
            .ok()?
            .into_inner()
            .status;
        (status == ServingStatus::Serving as i32).then_some(())
    })
    .await;
    child
}
