//! The servers a benchmark run starts and stops: nats-server, redis-server,
//! etcd, and the two services in release mode.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tempfile::TempDir;
use veltrix_testkit::free_port;

/// A child process killed on drop.
pub struct Proc {
    pub name: String,
    pub port: u16,
    child: Child,
    _dir: Option<TempDir>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// CPU seconds the process has used (user + system).
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        crate::load::stat_cpu_seconds(&stat)
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Stops the process with SIGTERM and waits for it (a profiler wrapping
    /// it writes its output then).
    pub fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill").args(["-TERM", &self.pid().to_string()]).status()?;
        let status = self.child.wait()?;
        println!("{} stopped: {status}", self.name);
        Ok(())
    }
}

fn spawn(
    name: &str,
    wrap: &[String],
    program: &str,
    args: &[String],
    port: u16,
    dir: Option<TempDir>,
    log: &Path,
) -> anyhow::Result<Proc> {
    let out = std::fs::File::create(log)?;
    let (exe, args): (&str, Vec<&str>) = match wrap.split_first() {
        Some((first, rest)) => {
            (first, rest.iter().map(String::as_str).chain([program]).chain(args.iter().map(String::as_str)).collect())
        }
        None => (program, args.iter().map(String::as_str).collect()),
    };
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("cannot start {program}: is it installed?"))?;
    let mut proc = Proc { name: name.to_owned(), port, child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = proc.child.try_wait() {
            bail!("{name} exited with {status}; see {}", log.display());
        }
        if Instant::now() > deadline {
            bail!("{name} did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(proc)
}

pub struct Env {
    pub logs: PathBuf,
    pub release: PathBuf,
    /// A command the services (not the baselines) run under, e.g. a profiler.
    pub wrap: Vec<String>,
}

impl Env {
    fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// A JetStream nats-server with file storage; `sync_always` fsyncs every
    /// write (needs a server that knows `sync_interval`).
    pub fn nats(&self, name: &str, program: &str, sync_always: bool) -> anyhow::Result<Proc> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let sync = if sync_always { "\n  sync_interval: always" } else { "" };
        let conf = dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "host: 127.0.0.1\nport: {port}\njetstream {{\n  store_dir: \"{}\"{sync}\n}}\n",
                dir.path().display()
            ),
        )?;
        let args = vec!["-c".to_owned(), conf.display().to_string()];
        spawn(name, &[], program, &args, port, Some(dir), &self.log(name))
    }

    pub fn redis(&self) -> anyhow::Result<Proc> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let args: Vec<String> =
            ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
                .iter()
                .map(|s| (*s).to_owned())
                .chain(["--dir".to_owned(), dir.path().display().to_string()])
                .collect();
        spawn("redis-server", &[], "redis-server", &args, port, Some(dir), &self.log("redis"))
    }

    /// etcd with its defaults (fsync on every commit, batched).
    pub fn etcd(&self) -> anyhow::Result<Proc> {
        let dir = tempfile::tempdir()?;
        let (port, peer) = (free_port(), free_port());
        let args = vec![
            "--data-dir".to_owned(),
            dir.path().join("etcd").display().to_string(),
            "--listen-client-urls".to_owned(),
            format!("http://127.0.0.1:{port}"),
            "--advertise-client-urls".to_owned(),
            format!("http://127.0.0.1:{port}"),
            "--listen-peer-urls".to_owned(),
            format!("http://127.0.0.1:{peer}"),
            "--initial-advertise-peer-urls".to_owned(),
            format!("http://127.0.0.1:{peer}"),
            "--initial-cluster".to_owned(),
            format!("default=http://127.0.0.1:{peer}"),
        ];
        spawn("etcd", &[], "etcd", &args, port, Some(dir), &self.log("etcd"))
    }

    pub fn command(&self, name: &str, nats: &Proc) -> anyhow::Result<Proc> {
        self.command_with(name, nats, &[])
    }

    /// A command service with extra flags.
    pub fn command_with(&self, name: &str, nats: &Proc, extra: &[String]) -> anyhow::Result<Proc> {
        let port = free_port();
        let mut args =
            vec!["--listen".to_owned(), format!("127.0.0.1:{port}"), "--nats-url".to_owned(), nats.url("nats")];
        args.extend(extra.iter().cloned());
        spawn(
            name,
            &self.wrap,
            &self.release.join("veltrix-command").display().to_string(),
            &args,
            port,
            None,
            &self.log(name),
        )
    }

    pub fn query(&self, name: &str, nats: &Proc, redis: &Proc, metrics_port: u16) -> anyhow::Result<Proc> {
        self.query_on(name, nats, &redis.url("redis"), metrics_port)
    }

    /// A query service on any Redis URL (a `redis+cluster://` one too).
    pub fn query_on(&self, name: &str, nats: &Proc, redis_url: &str, metrics_port: u16) -> anyhow::Result<Proc> {
        self.query_with(name, nats, redis_url, metrics_port, &[])
    }

    /// A query service with extra flags.
    pub fn query_with(
        &self,
        name: &str,
        nats: &Proc,
        redis_url: &str,
        metrics_port: u16,
        extra: &[&str],
    ) -> anyhow::Result<Proc> {
        let port = free_port();
        let mut args = vec![
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
            "--nats-url".to_owned(),
            nats.url("nats"),
            "--redis-url".to_owned(),
            redis_url.to_owned(),
            "--metrics-listen".to_owned(),
            format!("127.0.0.1:{metrics_port}"),
            "--max-concurrent-streams".to_owned(),
            "20000".to_owned(),
            "--max-watchers-per-caller".to_owned(),
            "20000".to_owned(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        spawn(
            name,
            &self.wrap,
            &self.release.join("veltrix-query").display().to_string(),
            &args,
            port,
            None,
            &self.log(name),
        )
    }
}

/// The first line a program prints for `arg` (its version).
pub fn version(program: &str, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text).lines().next().unwrap_or_default().trim().to_owned()
        })
        .unwrap_or_else(|_| "not installed".to_owned())
}
