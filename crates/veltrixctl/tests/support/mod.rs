//! The services under test for `veltrixctl`: real NATS and Redis, both
//! services in-process, and the CLI run as a child process against them.
#![allow(clippy::unwrap_used, dead_code)] // tests may unwrap; each test file uses part of it

use std::{
    net::SocketAddr,
    process::{Command, Output},
    time::Duration,
};

use veltrix_server::Running;
use veltrix_testkit::{NatsServer, RedisServer};

pub struct Env {
    _nats: NatsServer,
    _redis: RedisServer,
    _command: Running,
    _query: Running,
    pub command_url: String,
    pub query_url: String,
}

pub async fn env() -> Env {
    env_with(None, None).await
}

/// Both services, optionally with a policy file and TLS (then `https://`).
pub async fn env_with(auth: Option<std::path::PathBuf>, tls: Option<veltrix_server::tls::TlsArgs>) -> Env {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let mut c = veltrix_command::Config::defaults();
    c.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.nats.nats_url = nats.url();
    c.serve.auth_config = auth.clone();
    c.serve.tls = tls.clone().unwrap_or_default();
    let mut command = veltrix_command::start(c).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), command.ready()).await.unwrap().unwrap();
    let mut q = veltrix_query::Config::defaults();
    q.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    q.nats.nats_url = nats.url();
    q.redis_url = redis.url();
    q.page_token_key = Some("a test key of sixteen bytes or more".into());
    q.serve.auth_config = auth;
    let url = |port: u16| match &tls {
        Some(_) => format!("https://localhost:{port}"),
        None => format!("http://127.0.0.1:{port}"),
    };
    q.serve.tls = tls.clone().unwrap_or_default();
    let mut query = veltrix_query::start(q).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), query.running.ready()).await.unwrap().unwrap();
    Env {
        command_url: url(command.addr().port()),
        query_url: url(query.running.addr().port()),
        _nats: nats,
        _redis: redis,
        _command: command,
        _query: query.running,
    }
}

impl Env {
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_veltrixctl"));
        cmd.args(args)
            .env("VELTRIX_COMMAND_URL", &self.command_url)
            .env("VELTRIX_QUERY_URL", &self.query_url)
            .env_remove("VELTRIX_TOKEN")
            .env_remove("VELTRIX_ACTOR");
        cmd
    }

    /// Runs veltrixctl off the async runtime's threads.
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.cmd(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
    }

    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.status.success(), "veltrixctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    pub async fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "veltrixctl {args:?}: {stderr}");
        assert!(!stderr.is_empty(), "a message on stderr");
        stderr
    }
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}
