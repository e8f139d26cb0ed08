//! [`TestSystem`]: NATS (one node or a cluster), Redis and both services
//! in-process on loopback, started by one builder. Each part can be stopped
//! and started again on the port it first bound, so clients keep their
//! addresses across restarts.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use tonic::transport::Channel;
use veltrix_access::LimitArgs;
use veltrix_proto::v1::{config_command_client::ConfigCommandClient, config_query_client::ConfigQueryClient};
use veltrix_query::Started;
use veltrix_server::{Running, tls::TlsArgs};
use veltrix_testkit::{NatsCluster, NatsServer, Redis, RedisCluster, RedisSentinel, RedisServer};

pub type Command = ConfigCommandClient<Channel>;
pub type Query = ConfigQueryClient<Channel>;

/// A key long enough for `--page-token-key`, for tests only.
pub const TEST_PAGE_TOKEN_KEY: &str = "a test key of thirty-two bytes or more, for tests";

/// How long a part may take to report SERVING.
const READY_WITHIN: Duration = Duration::from_secs(60);

type Adjust<C> = Box<dyn Fn(&mut C) + Send>;

/// Where the services find NATS.
enum Nats {
    Node(NatsServer),
    Cluster(NatsCluster),
}

/// What [`TestSystem::builder`] starts.
pub struct Builder {
    nats: Option<NatsServer>,
    cluster: Option<usize>,
    redis: Option<Redis>,
    commands: usize,
    queries: usize,
    auth: Option<PathBuf>,
    tls: Option<TlsArgs>,
    limits: LimitArgs,
    history_keep: Option<u64>,
    wait_ready: bool,
    redis_always: bool,
    command: Vec<Adjust<veltrix_command::Config>>,
    query: Vec<Adjust<veltrix_query::Config>>,
}

/// NATS, Redis, the command replicas and the query replicas.
pub struct TestSystem {
    nats: Nats,
    redis: Option<Redis>,
    commands: Vec<Part<Running, veltrix_command::Config>>,
    queries: Vec<Part<Started, veltrix_query::Config>>,
    tls: bool,
}

/// One service replica: its configuration (fixed port) and, while it
/// runs, its handle.
struct Part<R, C> {
    config: C,
    running: Option<R>,
}

impl Builder {
    fn new() -> Self {
        Self {
            nats: None,
            cluster: None,
            redis: None,
            commands: 1,
            queries: 1,
            auth: None,
            tls: None,
            limits: LimitArgs::default(),
            history_keep: None,
            wait_ready: true,
            redis_always: false,
            command: Vec::new(),
            query: Vec::new(),
        }
    }

    /// Command service replicas (default 1).
    pub fn commands(mut self, n: usize) -> Self {
        self.commands = n;
        self
    }

    /// Query service replicas (default 1; 0 starts neither it nor Redis).
    pub fn queries(mut self, n: usize) -> Self {
        self.queries = n;
        self
    }

    /// A JetStream cluster of `nodes`, the event stream with as many replicas.
    pub fn nats_cluster(mut self, nodes: usize) -> Self {
        self.cluster = Some(nodes);
        self
    }

    /// A NATS server started by the test (e.g. with TLS or accounts); set
    /// the matching client options with [`Builder::command`] and [`Builder::query`].
    pub fn nats(mut self, nats: NatsServer) -> Self {
        self.nats = Some(nats);
        self
    }

    /// A Redis server started by the test (e.g. with a password or TLS).
    pub fn redis(mut self, redis: RedisServer) -> Self {
        self.redis = Some(Redis::Single(redis));
        self
    }

    /// A Redis Cluster (3 masters, 3 replicas) for the read model.
    pub fn redis_cluster(mut self) -> Self {
        self.redis = Some(Redis::Cluster(RedisCluster::start()));
        self
    }

    /// A master and replica behind Sentinel for the read model.
    pub fn redis_sentinel(mut self) -> Self {
        self.redis = Some(Redis::Sentinel(RedisSentinel::start()));
        self
    }

    /// The `--auth-config` policy file of both services.
    pub fn auth(mut self, policy: impl Into<PathBuf>) -> Self {
        self.auth = Some(policy.into());
        self
    }

    /// TLS on both services (their URLs become `https://localhost:PORT`).
    pub fn tls(mut self, tls: TlsArgs) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Per-caller limits of both services.
    pub fn limits(mut self, limits: LimitArgs) -> Self {
        self.limits = limits;
        self
    }

    /// History entries the read model keeps per key (`--history-keep`).
    pub fn history_keep(mut self, n: u64) -> Self {
        self.history_keep = Some(n);
        self
    }

    /// NATS and Redis only, for tests that run the built binaries
    /// themselves ([`crate::spawn_service`]).
    pub fn servers_only(mut self) -> Self {
        self.commands = 0;
        self.queries = 0;
        self.redis_always = true;
        self
    }

    /// Do not wait for the services to report SERVING.
    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    /// Any other change to each command replica's configuration.
    pub fn command(mut self, adjust: impl Fn(&mut veltrix_command::Config) + Send + 'static) -> Self {
        self.command.push(Box::new(adjust));
        self
    }

    /// Any other change to each query replica's configuration.
    pub fn query(mut self, adjust: impl Fn(&mut veltrix_query::Config) + Send + 'static) -> Self {
        self.query.push(Box::new(adjust));
        self
    }

    pub async fn start(self) -> TestSystem {
        let nats = match (self.cluster, self.nats) {
            (Some(nodes), _) => Nats::Cluster(NatsCluster::start(nodes)),
            (None, Some(node)) => Nats::Node(node),
            (None, None) => Nats::Node(NatsServer::start()),
        };
        let redis = match self.redis {
            Some(redis) => Some(redis),
            None if self.queries > 0 || self.redis_always => Some(Redis::from_env()),
            None => None,
        };
        let nats_url = match &nats {
            Nats::Node(n) => n.url(),
            Nats::Cluster(c) => c.urls(),
        };
        let commands = (0..self.commands)
            .map(|_| {
                let mut c = veltrix_command::Config::defaults();
                c.listen = loopback();
                c.nats.nats_url = nats_url.clone();
                c.stream_replicas = self.cluster.unwrap_or(1);
                c.serve.shutdown_grace = Duration::from_millis(500);
                c.serve.auth_config = self.auth.clone();
                c.serve.tls = self.tls.clone().unwrap_or_default();
                c.serve.limits = self.limits;
                self.command.iter().for_each(|adjust| adjust(&mut c));
                Part { config: c, running: None }
            })
            .collect();
        let queries = (0..self.queries)
            .map(|_| {
                let mut c = veltrix_query::Config::defaults();
                c.listen = loopback();
                c.nats.nats_url = nats_url.clone();
                c.redis_url = redis.as_ref().map(Redis::url).unwrap_or_default();
                c.page_token_key = Some(TEST_PAGE_TOKEN_KEY.into());
                c.model_check_interval = Duration::from_millis(100);
                c.serve.shutdown_grace = Duration::from_millis(500);
                c.serve.auth_config = self.auth.clone();
                c.serve.tls = self.tls.clone().unwrap_or_default();
                c.serve.limits = self.limits;
                if let Some(n) = self.history_keep {
                    c.history_keep = n;
                }
                self.query.iter().for_each(|adjust| adjust(&mut c));
                Part { config: c, running: None }
            })
            .collect();
        let mut system = TestSystem { nats, redis, commands, queries, tls: self.tls.is_some() };
        for i in 0..self.commands {
            system.start_command_at(i, self.wait_ready).await;
        }
        for i in 0..self.queries {
            system.start_query_at(i, self.wait_ready).await;
        }
        system
    }
}

/// Loopback, on a port the first start picks (no race with other tests for
/// a port chosen in advance); restarts keep that port.
fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn lazy_channel(url: String) -> Channel {
    Channel::from_shared(url).expect("a valid URL").connect_lazy()
}

impl TestSystem {
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// One NATS node, Redis, one command and one query replica, open.
    pub async fn start() -> Self {
        Builder::new().start().await
    }

    /// A client of the first command replica (plaintext; with TLS use
    /// [`TestSystem::command_url`] with a TLS client).
    pub fn cmd(&self) -> Command {
        self.cmd_at(0)
    }

    pub fn cmd_at(&self, i: usize) -> Command {
        Command::new(lazy_channel(format!("http://{}", self.commands[i].config.listen)))
    }

    /// A client of the first query replica (plaintext).
    pub fn q(&self) -> Query {
        self.q_at(0)
    }

    pub fn q_at(&self, i: usize) -> Query {
        Query::new(lazy_channel(format!("http://{}", self.queries[i].config.listen)))
    }

    pub fn command_url(&self) -> String {
        self.url(self.commands[0].config.listen)
    }

    pub fn query_url(&self) -> String {
        self.url(self.queries[0].config.listen)
    }

    fn url(&self, addr: SocketAddr) -> String {
        match self.tls {
            true => format!("https://localhost:{}", addr.port()),
            false => format!("http://{addr}"),
        }
    }

    pub fn command_addr(&self) -> SocketAddr {
        self.commands[0].config.listen
    }

    pub fn query_addr(&self) -> SocketAddr {
        self.query_addr_at(0)
    }

    /// Where query replica `i` listens (the same port across restarts).
    pub fn query_addr_at(&self, i: usize) -> SocketAddr {
        self.queries[i].config.listen
    }

    /// The single NATS node (not in a cluster system).
    pub fn nats(&mut self) -> &mut NatsServer {
        match &mut self.nats {
            Nats::Node(n) => n,
            Nats::Cluster(_) => panic!("this system runs a NATS cluster: use nats_cluster()"),
        }
    }

    pub fn nats_cluster(&mut self) -> &mut NatsCluster {
        match &mut self.nats {
            Nats::Cluster(c) => c,
            Nats::Node(_) => panic!("this system runs one NATS node: use nats()"),
        }
    }

    /// The URL(s) the services connect to NATS with.
    pub fn nats_url(&self) -> String {
        match &self.nats {
            Nats::Node(n) => n.url(),
            Nats::Cluster(c) => c.urls(),
        }
    }

    /// The flags a `veltrix-command` binary needs to run on this system's NATS.
    pub fn command_binary_args(&self) -> Vec<String> {
        vec!["--nats-url".into(), self.nats_url()]
    }

    /// The flags a `veltrix-query` binary needs to run on this system's NATS
    /// and Redis.
    pub fn query_binary_args(&self) -> Vec<String> {
        let mut args = self.command_binary_args();
        args.extend(["--redis-url".into(), self.redis_url(), "--page-token-key".into(), TEST_PAGE_TOKEN_KEY.into()]);
        args
    }

    pub fn redis_url(&self) -> String {
        self.redis.as_ref().expect("this system runs no Redis").url()
    }

    /// Makes Redis hang (SIGSTOP) until [`TestSystem::redis_resume`].
    pub fn redis_pause(&self) {
        self.single_redis().pause();
    }

    pub fn redis_resume(&self) {
        self.single_redis().resume();
    }

    fn single_redis(&self) -> &RedisServer {
        match self.redis.as_ref().expect("this system runs no Redis") {
            Redis::Single(r) => r,
            _ => panic!("this test needs one Redis server (it ran with VELTRIX_TEST_REDIS set)"),
        }
    }

    /// The one Redis server (tests of its faults run on one server only).
    pub fn redis(&mut self) -> &mut RedisServer {
        match self.redis.as_mut().expect("this system runs no Redis") {
            Redis::Single(r) => r,
            _ => panic!("this test needs one Redis server (it ran with VELTRIX_TEST_REDIS set)"),
        }
    }

    pub fn redis_cluster(&mut self) -> &mut RedisCluster {
        match self.redis.as_mut().expect("this system runs no Redis") {
            Redis::Cluster(c) => c,
            _ => panic!("this system runs no Redis Cluster: use Builder::redis_cluster"),
        }
    }

    pub fn redis_sentinel(&mut self) -> &mut RedisSentinel {
        match self.redis.as_mut().expect("this system runs no Redis") {
            Redis::Sentinel(s) => s,
            _ => panic!("this system runs no Sentinel: use Builder::redis_sentinel"),
        }
    }

    /// The running query replica `i` (its read state, its handle).
    pub fn query_at(&self, i: usize) -> &Started {
        self.queries[i].running.as_ref().expect("the query replica is running")
    }

    pub fn query(&self) -> &Started {
        self.query_at(0)
    }

    pub fn command_at(&self, i: usize) -> &Running {
        self.commands[i].running.as_ref().expect("the command replica is running")
    }

    /// The configuration replica `i` runs with; changed, it applies from
    /// the next start.
    pub fn query_config(&mut self, i: usize) -> &mut veltrix_query::Config {
        &mut self.queries[i].config
    }

    pub fn command_config(&mut self, i: usize) -> &mut veltrix_command::Config {
        &mut self.commands[i].config
    }

    /// Stops command replica `i` gracefully and waits until it has ended.
    pub async fn stop_command(&mut self, i: usize) {
        if let Some(running) = self.commands[i].running.take() {
            running.shutdown();
            let _ = running.wait().await;
        }
    }

    /// Starts command replica `i` (again) on its port; waits for SERVING.
    pub async fn start_command(&mut self, i: usize) {
        self.start_command_at(i, true).await;
    }

    async fn start_command_at(&mut self, i: usize, wait: bool) {
        let mut running =
            veltrix_command::start(self.commands[i].config.clone()).await.expect("start the command service");
        self.commands[i].config.listen = running.addr();
        if wait {
            tokio::time::timeout(READY_WITHIN, running.ready())
                .await
                .expect("the command service is ready in time")
                .expect("the command service is ready");
        }
        self.commands[i].running = Some(running);
    }

    /// Waits until command replica `i` reports SERVING.
    pub async fn command_ready(&mut self, i: usize) {
        let running = self.commands[i].running.as_mut().expect("the command replica is running");
        tokio::time::timeout(READY_WITHIN, running.ready())
            .await
            .expect("the command service is ready in time")
            .expect("the command service is ready");
    }

    /// Starts command replica `i` without waiting for it to be ready.
    pub async fn start_command_unready(&mut self, i: usize) {
        self.start_command_at(i, false).await;
    }

    /// Whether command replica `i` reports SERVING within `within`.
    pub async fn command_ready_within(&mut self, i: usize, within: Duration) -> bool {
        let running = self.commands[i].running.as_mut().expect("the command replica is running");
        matches!(tokio::time::timeout(within, running.ready()).await, Ok(Ok(())))
    }

    /// Whether query replica `i` reports SERVING within `within`.
    pub async fn query_ready_within(&mut self, i: usize, within: Duration) -> bool {
        let started = self.queries[i].running.as_mut().expect("the query replica is running");
        matches!(tokio::time::timeout(within, started.running.ready()).await, Ok(Ok(())))
    }

    /// The handle of command replica `i`, taken out (to wait for its end).
    pub fn take_command(&mut self, i: usize) -> Running {
        self.commands[i].running.take().expect("the command replica is running")
    }

    /// The handle of query replica `i`, taken out (to wait for its end).
    pub fn take_query(&mut self, i: usize) -> Started {
        self.queries[i].running.take().expect("the query replica is running")
    }

    /// Stops query replica `i` gracefully and waits until it has ended.
    pub async fn stop_query(&mut self, i: usize) {
        if let Some(started) = self.queries[i].running.take() {
            started.running.shutdown();
            let _ = started.running.wait().await;
        }
    }

    /// Starts query replica `i` (again) on its port; waits for SERVING.
    pub async fn start_query(&mut self, i: usize) {
        self.start_query_at(i, true).await;
    }

    /// Starts query replica `i` without waiting for it to be ready.
    pub async fn start_query_unready(&mut self, i: usize) {
        self.start_query_at(i, false).await;
    }

    async fn start_query_at(&mut self, i: usize, wait: bool) {
        let mut started = veltrix_query::start(self.queries[i].config.clone()).await.expect("start the query service");
        self.queries[i].config.listen = started.running.addr();
        if wait {
            tokio::time::timeout(READY_WITHIN, started.running.ready())
                .await
                .expect("the query service is ready in time")
                .expect("the query service is ready");
        }
        self.queries[i].running = Some(started);
    }

    /// Waits until query replica `i` reports SERVING.
    pub async fn query_ready(&mut self, i: usize) {
        let started = self.queries[i].running.as_mut().expect("the query replica is running");
        tokio::time::timeout(READY_WITHIN, started.running.ready())
            .await
            .expect("the query service is ready in time")
            .expect("the query service is ready");
    }
}

/// A connected plaintext channel to `addr`.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).expect("a valid URL").connect().await.expect("connect")
}
