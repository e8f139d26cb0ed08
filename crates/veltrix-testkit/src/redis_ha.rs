//! Redis as people deploy it for availability: a Redis Cluster of six
//! nodes (three masters, three replicas) and a master with a replica
//! watched by `redis-sentinel`, on free loopback ports, each node in its own
//! temporary directory, killed on drop.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    RedisServer, free_fixed_port,
    process::{Server, temp_dir},
};

const ENV: &str = "VELTRIX_REDIS_SERVER";
const HINT: &str = "Install it (Debian: apt-get install redis-server)";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn program() -> String {
    std::env::var(ENV).unwrap_or_else(|_| "redis-server".to_owned())
}

/// Runs `redis-cli` against `port` and answers its output.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let cli = std::env::var("VELTRIX_REDIS_CLI").unwrap_or_else(|_| "redis-cli".to_owned());
    let out = Command::new(&cli)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cli} ({e}): {HINT}, or set VELTRIX_REDIS_CLI"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + READY_TIMEOUT;
    while !ready() {
        assert!(Instant::now() < deadline, "not reached within {READY_TIMEOUT:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn node(extra: &[String]) -> Server {
    let mut args: Vec<String> =
        ["--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", "{dir}"]
            .map(String::from)
            .to_vec();
    args.extend(extra.iter().cloned());
    Server::in_dir(temp_dir("redis-server"), "redis-server", program(), ENV, HINT, free_fixed_port(), args)
}

/// A Redis Cluster: 3 masters with one replica each. A node's failure is
/// noticed after a 2 s node timeout, then its replica takes over.
pub struct RedisCluster {
    nodes: Vec<Server>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<Server> = (0..6)
            .map(|_| {
                let bus = free_fixed_port().to_string();
                node(&[
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    "{dir}/nodes.conf".into(),
                    "--cluster-node-timeout".into(),
                    "2000".into(),
                    "--cluster-port".into(),
                    bus,
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addrs.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = redis_cli(nodes[0].port, &create);
        assert!(out.contains("[OK] All 16384 slots covered"), "redis-cli --cluster create failed:\n{out}");
        let cluster = Self { nodes };
        cluster.wait_healthy();
        cluster
    }

    /// Waits until every running node sees the cluster as ok with three
    /// masters, each with a connected replica.
    pub fn wait_healthy(&self) {
        wait_until("a healthy cluster (3 masters, 3 replicas)", || {
            self.running().all(|n| redis_cli(n.port, &["cluster", "info"]).contains("cluster_state:ok"))
                && self.running().next().is_some_and(|n| {
                    let nodes = redis_cli(n.port, &["cluster", "nodes"]);
                    let up = |role: &str| {
                        nodes
                            .lines()
                            .filter(|l| l.contains(role) && !l.contains("fail") && l.contains("connected"))
                            .count()
                    };
                    up("master") == 3 && up("slave") == 3
                })
                // Every replica has finished its initial sync (a WAIT on a
                // master answers at once only then).
                && self.running().all(|n| {
                    let replication = redis_cli(n.port, &["info", "replication"]);
                    replication.contains("role:master") || replication.contains("master_link_status:up")
                })
        });
    }

    fn running(&self) -> impl Iterator<Item = &Server> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The index of the node that is master of `key`'s slot.
    pub fn master_of(&self, key: &str) -> usize {
        self.serving(key).unwrap_or_else(|| panic!("no master serves the slot of {key}"))
    }

    /// The master of `key`'s slot, if one serves it now.
    fn serving(&self, key: &str) -> Option<usize> {
        let any = self.running().next().unwrap_or_else(|| panic!("no node is running"));
        let slot = redis_cli(any.port, &["cluster", "keyslot", key]).trim().to_owned();
        let slots = redis_cli(any.port, &["cluster", "nodes"]);
        let slot: u16 = slot.parse().unwrap_or_else(|_| panic!("cluster keyslot answered {slot:?}"));
        for line in slots.lines().filter(|l| l.contains("master") && !l.contains("fail")) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let serves = fields.iter().skip(8).any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if (lo..=hi).contains(&slot))
            });
            if serves {
                let port = fields.get(1).and_then(|a| a.split('@').next()).and_then(|a| a.rsplit_once(':'));
                let port: u16 = port.and_then(|(_, p)| p.parse().ok()).unwrap_or_else(|| panic!("bad line {line}"));
                return self.nodes.iter().position(|n| n.port == port);
            }
        }
        None
    }

    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// Kills node `i` with SIGKILL: what it had not yet sent its replica is
    /// lost when the replica takes over.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// The index of the replica of master `i`.
    pub fn replica_of(&self, i: usize) -> usize {
        let master_id = redis_cli(self.nodes[i].port, &["cluster", "myid"]).trim().to_owned();
        self.nodes
            .iter()
            .position(|n| {
                n.is_running()
                    && redis_cli(n.port, &["cluster", "nodes"])
                        .lines()
                        .any(|l| l.contains("myself") && l.contains("slave") && l.contains(&master_id))
            })
            .unwrap_or_else(|| panic!("node {i} has no running replica"))
    }

    /// Makes node `i` hang (SIGSTOP): it keeps its connections, answers
    /// nothing and takes in no replication, until [`RedisCluster::resume`].
    pub fn pause(&self, i: usize) {
        self.nodes[i].signal("-STOP");
    }

    pub fn resume(&self, i: usize) {
        self.nodes[i].signal("-CONT");
    }

    /// Waits until a node other than `i` is master of `key`'s slot.
    pub fn wait_failover(&self, i: usize, key: &str) {
        wait_until("a replica promoted in place of the killed master", || {
            self.serving(key).is_some_and(|m| m != i)
                && self.running().all(|n| redis_cli(n.port, &["cluster", "info"]).contains("cluster_state:ok"))
        });
    }

    /// Starts node `i` again (empty: it keeps nothing on disk but its
    /// cluster configuration, so it rejoins, as a replica).
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        self.nodes[i].start(ENV, HINT);
    }

    /// A graceful failover: the replica of node `i` (a master) takes over
    /// after catching up, so nothing is lost.
    pub fn fail_over_gracefully(&self, i: usize, key: &str) {
        let replica = &self.nodes[self.replica_of(i)];
        let out = redis_cli(replica.port, &["cluster", "failover"]);
        assert!(out.contains("OK"), "cluster failover answered {out}");
        self.wait_failover(i, key);
    }
}

/// A master, its replica and one `redis-sentinel` watching them under the
/// name `veltrix` (quorum 1; down after 1 s).
pub struct RedisSentinel {
    redis: Vec<Server>,
    sentinel: Server,
}

impl RedisSentinel {
    pub const MASTER: &str = "veltrix";
    const ENV: &str = "VELTRIX_REDIS_SENTINEL";
    const HINT: &str = "Install it (Debian: apt-get install redis-sentinel)";

    pub fn start() -> Self {
        let master = node(&[]);
        let replica = node(&["--replicaof".into(), "127.0.0.1".into(), master.port.to_string()]);
        wait_until("the replica in sync with the master", || {
            redis_cli(replica.port, &["info", "replication"]).contains("master_link_status:up")
        });
        let dir = temp_dir("redis-sentinel");
        let conf = dir.path().join("sentinel.conf");
        let text = format!(
            "bind 127.0.0.1\ndir {dir}\nsentinel monitor {name} 127.0.0.1 {port} 1\n\
             sentinel down-after-milliseconds {name} 1000\nsentinel failover-timeout {name} 5000\n\
             sentinel parallel-syncs {name} 1\n",
            dir = dir.path().display(),
            name = Self::MASTER,
            port = master.port,
        );
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
        let program = std::env::var(Self::ENV).unwrap_or_else(|_| "redis-sentinel".to_owned());
        let args = vec!["{dir}/sentinel.conf".to_owned(), "--port".to_owned(), "{port}".to_owned()];
        let sentinel = Server::in_dir(dir, "redis-sentinel", program, Self::ENV, Self::HINT, free_fixed_port(), args);
        let set = Self { redis: vec![master, replica], sentinel };
        wait_until("the Sentinel sees the replica", || {
            redis_cli(set.sentinel.port, &["sentinel", "replicas", Self::MASTER]).contains("127.0.0.1")
        });
        set
    }

    pub fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/{}", self.sentinel.port, Self::MASTER)
    }

    /// The index (0 or 1) of the server Sentinel names as master.
    pub fn master(&self) -> usize {
        let out = redis_cli(self.sentinel.port, &["sentinel", "get-master-addr-by-name", Self::MASTER]);
        let port: u16 = out.lines().nth(1).and_then(|p| p.trim().parse().ok()).unwrap_or_else(|| panic!("{out}"));
        self.redis.iter().position(|r| r.port == port).unwrap_or_else(|| panic!("unknown master port {port}"))
    }

    pub fn port(&self, i: usize) -> u16 {
        self.redis[i].port
    }

    /// Kills the master with SIGKILL and waits until Sentinel has promoted
    /// the replica.
    pub fn kill_master(&mut self) -> usize {
        let old = self.master();
        self.redis[old].kill();
        wait_until("Sentinel promoting the replica", || {
            self.master() != old && redis_cli(self.redis[1 - old].port, &["role"]).starts_with("master")
        });
        old
    }
}

/// Any of the three shapes, as the read-model tests start it: one server,
/// a Redis Cluster, or a master and replica behind Sentinel.
pub enum Redis {
    Single(RedisServer),
    Cluster(RedisCluster),
    Sentinel(RedisSentinel),
}

impl Redis {
    /// The shape `VELTRIX_TEST_REDIS` names (`single`, the default,
    /// `cluster` or `sentinel`): the read-side tests run on each.
    pub fn from_env() -> Self {
        match std::env::var("VELTRIX_TEST_REDIS").as_deref() {
            Ok("cluster") => Self::Cluster(RedisCluster::start()),
            Ok("sentinel") => Self::Sentinel(RedisSentinel::start()),
            Ok("single") | Ok("") | Err(_) => Self::Single(RedisServer::start()),
            Ok(other) => panic!("VELTRIX_TEST_REDIS={other}: expected single, cluster or sentinel"),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Single(r) => r.url(),
            Self::Cluster(c) => c.url(),
            Self::Sentinel(s) => s.url(),
        }
    }
}
