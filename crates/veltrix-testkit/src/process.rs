//! Server child processes.

use std::{
    fs::File,
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::free_port;

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A server process that can be killed and started again on the same port
/// and data directory.
pub(crate) struct Server {
    name: &'static str,
    program: String,
    args: Vec<String>,
    pub(crate) port: u16,
    pub(crate) dir: TempDir,
    child: Option<Child>,
    starts: u32,
}

impl Server {
    fn new(name: &'static str, env_override: &str, install_hint: &str, port: u16, args: Vec<String>) -> Self {
        let program = std::env::var(env_override).unwrap_or_else(|_| name.to_owned());
        Self::in_dir(temp_dir(name), name, program, env_override, install_hint, port, args)
    }

    /// Starts `program` with `dir` as its `{dir}` (files written there
    /// beforehand, such as a configuration, are its to read).
    pub(crate) fn in_dir(
        dir: TempDir,
        name: &'static str,
        program: String,
        env_override: &str,
        install_hint: &str,
        port: u16,
        args: Vec<String>,
    ) -> Self {
        let mut server = Self { name, program, args, port, dir, child: None, starts: 0 };
        server.start(env_override, install_hint);
        server
    }

    /// Stops (`SIGSTOP`) or continues (`SIGCONT`) the process: it keeps its
    /// connections but answers nothing, as a server that hangs.
    pub(crate) fn signal(&self, signal: &str) {
        let Some(child) = &self.child else { panic!("{} is not running", self.name) };
        let status = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill {signal} {}", self.name);
    }

    pub(crate) fn start(&mut self, env_override: &str, install_hint: &str) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.starts += 1;
        let log_path = self.dir.path().join(format!("{}-{}.log", self.name, self.starts));
        let log = File::create(&log_path).unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let err = log.try_clone().unwrap_or_else(|e| panic!("cannot clone log handle: {e}"));
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| {
                a.replace("{dir}", &self.dir.path().display().to_string()).replace("{port}", &self.port.to_string())
            })
            .collect();
        let child = Command::new(&self.program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): the tests need a real {}. {install_hint}, or set {env_override} to its path",
                    self.program, self.name
                )
            });
        self.child = Some(child);
        self.wait_ready(&log_path);
    }

    fn wait_ready(&mut self, log_path: &PathBuf) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                panic!("{} exited at start-up with {status} on port {}:\n{log}", self.name, self.port);
            }
            if Instant::now() > deadline {
                panic!("{} did not accept connections on port {} within {START_TIMEOUT:?}", self.name, self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A temporary directory for one server's data, configuration and logs.
pub(crate) fn temp_dir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("veltrix-{name}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temporary directory for {name}: {e}"))
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `nats-server -js` with file storage in a temporary directory.
pub struct NatsServer(Server);

impl NatsServer {
    const ENV: &str = "VELTRIX_NATS_SERVER";
    const HINT: &str = "Install it (Debian: apt-get install nats-server)";

    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts with extra command-line arguments (e.g. `--config FILE`).
    pub fn start_with_args(extra: &[&str]) -> Self {
        let mut args: Vec<String> =
            ["-js", "-a", "127.0.0.1", "-p", "{port}", "-sd", "{dir}/jetstream"].map(String::from).to_vec();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Self(Server::new("nats-server", Self::ENV, Self::HINT, free_port(), args))
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.0.port)
    }

    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// Kills the server with SIGKILL: no graceful shutdown, no flush.
    pub fn kill(&mut self) {
        self.0.kill();
    }

    /// Starts the server again on the same port with the same data.
    pub fn restart(&mut self) {
        self.0.kill();
        self.0.start(Self::ENV, Self::HINT);
    }
}

/// A `redis-server` without persistence on a free port.
pub struct RedisServer(Server);

impl RedisServer {
    const ENV: &str = "VELTRIX_REDIS_SERVER";
    const HINT: &str = "Install it (Debian: apt-get install redis-server)";

    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts with extra arguments (e.g. `--requirepass`).
    pub fn start_with_args(extra: &[&str]) -> Self {
        let mut args: Vec<String> =
            ["--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", "{dir}"]
                .map(String::from)
                .to_vec();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Self(Server::new("redis-server", Self::ENV, Self::HINT, free_port(), args))
    }

    /// A redis-server that speaks only TLS (`rediss://`), with `extra`
    /// arguments (certificates, `--tls-auth-clients`, `--user ...`).
    pub fn start_tls(extra: &[String]) -> Self {
        // The later `--port 0` overrides the plaintext port.
        let mut args = vec!["--port", "0", "--tls-port", "{port}"];
        args.extend(extra.iter().map(String::as_str));
        Self::start_with_args(&args)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.0.port)
    }

    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.0.port)
    }

    pub fn port(&self) -> u16 {
        self.0.port
    }

    pub fn kill(&mut self) {
        self.0.kill();
    }

    /// Starts the server again on the same port (its data is gone: it keeps
    /// nothing on disk).
    pub fn restart(&mut self) {
        self.0.kill();
        self.0.start(Self::ENV, Self::HINT);
    }

    /// Makes the server hang: connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.0.signal("-STOP");
    }

    pub fn resume(&self) {
        self.0.signal("-CONT");
    }
}

/// A JetStream cluster of `nats-server` processes on loopback. Clustered
/// expected-sequence checks are serializable only from nats-server 2.9.21
/// (nats-server #4320), so the program comes from
/// `VELTRIX_NATS_CLUSTER_SERVER` (`just test` sets it to the pinned server
/// `cargo xtask tools` installs); without it the test fails and says so.
pub struct NatsCluster {
    nodes: Vec<Server>,
    _config: TempDir,
}

impl NatsCluster {
    const ENV: &str = "VELTRIX_NATS_CLUSTER_SERVER";
    const HINT: &str = "The cluster tests need nats-server 2.9.21 or newer: run `cargo xtask tools`";

    /// Starts `size` nodes named `n1`, `n2`, ... routed to each other.
    pub fn start(size: usize) -> Self {
        let program = std::env::var(Self::ENV).unwrap_or_else(|_| {
            panic!("{}, then set {}=.tools/venv/bin/nats-server (`cargo xtask test` does both)", Self::HINT, Self::ENV)
        });
        let config = tempfile::Builder::new()
            .prefix("veltrix-nats-cluster-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let routes: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let route_list = routes.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(", ");
        let mut nodes = Vec::with_capacity(size);
        for (i, route) in routes.iter().enumerate() {
            let path = config.path().join(format!("n{}.conf", i + 1));
            let conf = format!(
                "server_name: n{n}\ncluster {{\n  name: veltrix-test\n  listen: 127.0.0.1:{route}\n  routes: [{route_list}]\n}}\n",
                n = i + 1
            );
            std::fs::write(&path, conf).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            let args =
                ["-c", &path.display().to_string(), "-js", "-a", "127.0.0.1", "-p", "{port}", "-sd", "{dir}/jetstream"]
                    .map(String::from)
                    .to_vec();
            let dir = temp_dir("nats-server");
            nodes.push(Server::in_dir(dir, "nats-server", program.clone(), Self::ENV, Self::HINT, free_port(), args));
        }
        Self { nodes, _config: config }
    }

    /// Client URLs of every node, comma-separated.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }

    /// The index of the node named `name` (`n1` is 0).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        name.strip_prefix('n')?.parse::<usize>().ok()?.checked_sub(1).filter(|i| *i < self.nodes.len())
    }

    /// Kills node `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again with its data.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        self.nodes[i].start(Self::ENV, Self::HINT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_start_restart_and_stop() {
        let mut nats = NatsServer::start();
        let mut redis = RedisServer::start();
        assert!(TcpStream::connect(("127.0.0.1", nats.port())).is_ok());
        assert!(TcpStream::connect(("127.0.0.1", redis.port())).is_ok());
        nats.kill();
        redis.kill();
        assert!(TcpStream::connect(("127.0.0.1", nats.port())).is_err());
        nats.restart();
        redis.restart();
        assert!(TcpStream::connect(("127.0.0.1", nats.port())).is_ok());
        assert!(TcpStream::connect(("127.0.0.1", redis.port())).is_ok());
    }
}
