//! The workloads, as a table: each runs beside its baseline against the
//! servers of one [`Bench`] and adds its rows (and memory figures) to the
//! report, in order.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use veltrix_testkit::free_port;

use crate::{
    Plan,
    clients::{self, Command, Etcd, Query, channels, serving},
    fleet,
    load::Figure,
    plots,
    procs::{Env, Proc, version},
    reads, rebuild,
    report::Row,
    watches, writes,
};

/// The workloads in the order they run (and are reported).
pub const WORKLOADS: [Workload; 12] = [
    Workload::WriteSpread,
    Workload::WriteHot,
    Workload::WriteVsEtcd,
    Workload::Populate,
    Workload::Read,
    Workload::ReadCurve,
    Workload::List,
    Workload::Propagation,
    Workload::FanOut,
    Workload::Rebuild,
    Workload::Fleet,
    Workload::FirstWrite,
];

#[derive(Debug, Clone, Copy)]
pub enum Workload {
    WriteSpread,
    WriteHot,
    WriteVsEtcd,
    /// Not measured: fills the data set the reads run on.
    Populate,
    Read,
    /// Get against keys per namespace, read cache on and off (a plot).
    ReadCurve,
    List,
    Propagation,
    FanOut,
    Rebuild,
    Fleet,
    FirstWrite,
}

impl Workload {
    pub fn name(self, plan: &Plan) -> String {
        match self {
            Self::WriteSpread => "1. write, spread".into(),
            Self::WriteHot => "2. write, hot namespace".into(),
            Self::WriteVsEtcd => "3. write vs etcd".into(),
            Self::Populate => format!("populating {} namespaces × 100 keys", plan.populate_namespaces),
            Self::Read => "4. read".into(),
            Self::ReadCurve => "4e. read vs keys per namespace".into(),
            Self::List => "5. list".into(),
            Self::Propagation => "6. propagation".into(),
            Self::FanOut => format!("7. fan-out to {} watchers", plan.watchers_fanout),
            Self::Rebuild => format!("8. rebuild of {} events", plan.rebuild_events),
            Self::Fleet => format!("9. fleet ledger with {} Sync clients", plan.fleet_clients),
            Self::FirstWrite => "10. first write after a restart".into(),
        }
    }

    pub async fn run(self, bench: &mut Bench) -> anyhow::Result<()> {
        match self {
            Self::WriteSpread => bench.write_spread().await,
            Self::WriteHot => bench.write_hot().await,
            Self::WriteVsEtcd => bench.write_vs_etcd().await,
            Self::Populate => bench.populate().await,
            Self::Read => bench.read().await,
            Self::ReadCurve => bench.read_curve().await,
            Self::List => bench.list().await,
            Self::Propagation => bench.propagation().await,
            Self::FanOut => bench.fan_out().await,
            Self::Rebuild => bench.rebuild().await,
            Self::Fleet => bench.fleet().await,
            Self::FirstWrite => bench.first_write().await,
        }
    }
}

/// The servers and clients every workload uses, and what they report.
pub struct Bench {
    env: Env,
    plan: Plan,
    d: Duration,
    nats_server_sync: PathBuf,
    nats: Proc,
    redis: Proc,
    etcd: Proc,
    command: Proc,
    query: Proc,
    metrics_port: u16,
    cmds: Vec<Command>,
    queries: Vec<Query>,
    etcds: Vec<Etcd>,
    q_ch: Vec<tonic::transport::Channel>,
    etcd_ch: Vec<tonic::transport::Channel>,
    /// Workload 1's figure, compared with etcd in workload 3.
    spread: Option<Figure>,
    /// The revision the populated data set ends at.
    populated: u64,
    pub rows: Vec<Row>,
    pub footprint: Vec<(String, u64)>,
}

impl Bench {
    /// Starts NATS, Redis, etcd and both services, and connects to them.
    pub async fn start(env: Env, plan: Plan, nats_server_sync: PathBuf) -> anyhow::Result<Self> {
        let nats = env.nats("nats", "nats-server", false)?;
        let redis = env.redis()?;
        let etcd = env.etcd()?;
        let command = env.command("veltrix-command", &nats)?;
        let metrics_port = free_port();
        let query = env.query("veltrix-query", &nats, &redis, metrics_port)?;
        serving(&command).await?;
        serving(&query).await?;
        let footprint = vec![
            ("veltrix-command, idle".to_owned(), command.rss_kib()),
            ("veltrix-query, idle".to_owned(), query.rss_kib()),
        ];
        let cmds = channels(&command, 4).await?.into_iter().map(Command::new).collect();
        let q_ch = channels(&query, 4).await?;
        let etcd_ch = channels(&etcd, 4).await?;
        let queries = q_ch.iter().cloned().map(Query::new).collect();
        let etcds = etcd_ch.iter().cloned().map(Etcd::new).collect();
        let d = plan.duration;
        Ok(Self {
            env,
            plan,
            d,
            nats_server_sync,
            nats,
            redis,
            etcd,
            command,
            query,
            metrics_port,
            cmds,
            queries,
            etcds,
            q_ch,
            etcd_ch,
            spread: None,
            populated: 0,
            rows: Vec::new(),
            footprint,
        })
    }

    async fn write_spread(&mut self) -> anyhow::Result<()> {
        let ours_spread = writes::puts(self.cmds.clone(), 64, writes::NAMESPACES, self.d).await?;
        let raw_spread = writes::raw_publish(&self.nats.url("nats"), 64, 16, self.d).await?;
        self.rows.push(Row::throughput(
            "1. Write, spread (Put, c=64, 1000 ns × 100 keys)",
            ours_spread.clone(),
            "JetStream publish, expected seq, c=64",
            raw_spread,
            "≥ 0.50, p99 ≤ 2× raw",
            "",
        ));
        self.spread = Some(ours_spread);
        self.write_spread_alone().await
    }

    /// The same writes to a command service whose stream no query service
    /// projects (its own NATS), beside raw publishes to that NATS: the
    /// command path's own ratio, without the projector's reads competing
    /// for the machine.
    async fn write_spread_alone(&mut self) -> anyhow::Result<()> {
        let nats = self.env.nats("nats-command-alone", "nats-server", false)?;
        let command = self.env.command("veltrix-command-alone", &nats)?;
        serving(&command).await?;
        let cmds: Vec<Command> = channels(&command, 4).await?.into_iter().map(Command::new).collect();
        let ours = writes::puts(cmds, 64, writes::NAMESPACES, self.d).await?;
        let raw = writes::raw_publish(&nats.url("nats"), 64, 16, self.d).await?;
        self.rows.push(Row::throughput(
            "1b. Write, spread, command path alone (no projection)",
            ours,
            "JetStream publish, expected seq, c=64, same NATS",
            raw,
            "≥ 0.50",
            "its own NATS, no query service reading the stream",
        ));
        Ok(())
    }

    async fn write_hot(&mut self) -> anyhow::Result<()> {
        let ours_hot = writes::puts(self.cmds.clone(), 16, 1, self.d).await?;
        let raw_seq = writes::raw_publish(&self.nats.url("nats"), 1, 1, self.d).await?;
        self.rows.push(Row::throughput(
            "2. Write, hot namespace (Put, c=16, 1 ns)",
            ours_hot,
            "JetStream publish, sequential (c=1)",
            raw_seq,
            "≥ 0.70",
            "one namespace's writes are serialized",
        ));
        Ok(())
    }

    async fn write_vs_etcd(&mut self) -> anyhow::Result<()> {
        let ours_spread = self.spread.clone().unwrap_or_default();
        let etcd_put = writes::etcd_puts(self.etcds.clone(), 64, self.d).await?;
        self.rows.push(Row::throughput(
            "3a. Write vs etcd, default durability",
            ours_spread,
            "etcd put, c=64",
            etcd_put.clone(),
            "report",
            "ours: NATS default (acked from page cache, fsync every 2 min or 60 s); etcd: fsync per batch before ack",
        ));
        if self.nats_server_sync.exists() {
            let program = self.nats_server_sync.display().to_string();
            let nats_sync = self.env.nats("nats-sync-always", &program, true)?;
            let command_sync = self.env.command("veltrix-command-sync-always", &nats_sync)?;
            serving(&command_sync).await?;
            let sync_cmds: Vec<Command> = channels(&command_sync, 4).await?.into_iter().map(Command::new).collect();
            let ours_sync = writes::puts(sync_cmds, 64, writes::NAMESPACES, self.d).await?;
            self.rows.push(Row::throughput(
                "3b. Write vs etcd, fsync every write",
                ours_sync,
                "etcd put, c=64",
                etcd_put,
                "report",
                &format!(
                    "ours on {} with sync_interval: always (fsync per message, no group commit); etcd: fsync per batch",
                    version(&program, "--version")
                ),
            ));
        } else {
            println!("   (no nats-server with sync_interval at {}: 3b skipped)", self.nats_server_sync.display());
        }
        Ok(())
    }

    async fn populate(&mut self) -> anyhow::Result<()> {
        let mut cmd0 = self.cmds[0].clone();
        let last = reads::populate(&mut cmd0, self.plan.populate_namespaces).await?;
        self.populated = last;
        reads::caught_up(&mut self.queries[0].clone(), last).await?;
        let thousands = self.plan.populate_namespaces / 10;
        self.footprint.push((format!("veltrix-command, {thousands}k keys written"), self.command.rss_kib()));
        self.footprint.push((format!("veltrix-query, {thousands}k keys"), self.query.rss_kib()));
        reads::etcd_populate(&self.etcds, reads::READ_NAMESPACES).await?;
        Ok(())
    }

    async fn read(&mut self) -> anyhow::Result<()> {
        let ours_get = reads::gets(self.queries.clone(), 64, reads::READ_NAMESPACES, self.d).await?;
        self.footprint.push(("veltrix-query, under workload 4".to_owned(), self.query.rss_kib()));
        let floor = reads::floor(self.q_ch.clone(), 64, self.d).await?;
        let floor_again = floor.clone();
        let redis_get = reads::redis_gets(&self.redis.url("redis"), 64, self.d).await?;
        let etcd_get = reads::etcd_gets(self.etcds.clone(), 64, reads::READ_NAMESPACES, self.d).await?;
        self.rows.push(Row::throughput(
            "4a. Read (Get, c=64)",
            ours_get.clone(),
            "gRPC floor: no-op unary RPC, same server",
            floor,
            "≥ 0.80, p99 ≤ 2 ms",
            "",
        ));
        self.rows.push(Row::throughput(
            "4b. Read (Get, c=64)",
            ours_get.clone(),
            "raw Redis GET, c=64",
            redis_get,
            "report",
            "",
        ));
        self.rows.push(Row::throughput(
            "4c. Read (Get, c=64)",
            ours_get,
            "etcd serializable range, c=64",
            etcd_get,
            "≥ 3",
            "",
        ));
        let uncached = self.read_uncached().await?;
        self.rows.push(Row::throughput(
            "4d. Read (Get, c=64), read cache off",
            uncached,
            "gRPC floor: no-op unary RPC (4a's figure)",
            floor_again,
            "report (before: every Get reads Redis)",
            "another query replica on the same NATS and Redis, --read-cache-bytes 0",
        ));
        Ok(())
    }

    /// Gets over the whole of one namespace of 1k, 100k and 1M keys (the
    /// quick run: 1k, 10k), against the replica with its read cache and one
    /// without, side by side; drawn as `get-vs-keys.png`.
    async fn read_curve(&mut self) -> anyhow::Result<()> {
        let redis = self.redis.url("redis");
        let args = ["--read-cache-bytes", "0"];
        let uncached = self.env.query_with("veltrix-query-no-cache-curve", &self.nats, &redis, free_port(), &args)?;
        serving(&uncached).await?;
        let off: Vec<Query> = channels(&uncached, 4).await?.into_iter().map(Query::new).collect();
        let (mut with_cache, mut without) = (Vec::new(), Vec::new());
        for &keys in &self.plan.curve_keys.clone() {
            let namespace = format!("curve/k{keys}");
            let started = Instant::now();
            let last = reads::populate_keys(&mut self.cmds[0].clone(), &namespace, keys).await?;
            reads::caught_up_in(&mut self.queries[0].clone(), &namespace, last).await?;
            reads::caught_up_in(&mut off[0].clone(), &namespace, last).await?;
            println!("   {keys} keys written and projected in {:.1} s", started.elapsed().as_secs_f64());
            let on = reads::gets_in(self.queries.clone(), 64, &namespace, keys, self.d).await?;
            let cold = reads::gets_in(off.clone(), 64, &namespace, keys, self.d).await?;
            self.rows.push(Row::throughput(
                &format!("4e. Get vs keys per namespace ({keys} keys, c=64)"),
                on.clone(),
                "the same Gets, read cache off (another replica)",
                cold.clone(),
                "report",
                "keys drawn uniformly over the namespace; the cache starts cold (default 64 MiB)",
            ));
            with_cache.push((keys as f64, on));
            without.push((keys as f64, cold));
        }
        let series = [
            plots::Series { label: "read cache on (64 MiB)".into(), points: with_cache },
            plots::Series { label: "read cache off (every Get reads Redis)".into(), points: without },
        ];
        let path = self.plan.plots.join("get-vs-keys.png");
        plots::growth(&path, "Get (c=64) against keys per namespace", "keys per namespace", &series)?;
        println!("   plot written to {}", path.display());
        Ok(())
    }

    /// The same Gets against a second replica whose read cache is off:
    /// what 4a was before the cache, in the same run.
    async fn read_uncached(&mut self) -> anyhow::Result<Figure> {
        let redis = self.redis.url("redis");
        let args = ["--read-cache-bytes", "0"];
        let query = self.env.query_with("veltrix-query-no-cache", &self.nats, &redis, free_port(), &args)?;
        serving(&query).await?;
        let queries: Vec<Query> = channels(&query, 4).await?.into_iter().map(Query::new).collect();
        reads::caught_up(&mut queries[0].clone(), self.populated).await?;
        reads::gets(queries, 64, reads::READ_NAMESPACES, self.d).await
    }

    async fn list(&mut self) -> anyhow::Result<()> {
        let ours_list = reads::lists(self.queries.clone(), 16, reads::READ_NAMESPACES, self.d).await?;
        let etcd_list = reads::etcd_lists(self.etcds.clone(), 16, reads::READ_NAMESPACES, self.d).await?;
        self.rows.push(Row::throughput(
            "5. List (page of 100, c=16)",
            ours_list,
            "etcd range, prefix, limit 100",
            etcd_list,
            "report",
            "",
        ));
        Ok(())
    }

    async fn propagation(&mut self) -> anyhow::Result<()> {
        let prop_ch = channels(&self.query, 8).await?;
        let offered = 1000 * self.d.as_secs() as usize * 1000;
        // Deliveries of acknowledged writes that arrived within two minutes.
        let delivered = |f: &Figure| format!("{} of {offered} offered deliveries arrived", f.ops);
        let (ours_prop, _) = watches::ours(self.cmds[0].clone(), &prop_ch, 1000, 1000, self.d, || {}).await?;
        let (raw_prop, _) = watches::raw_nats(&self.nats.url("nats"), 1000, 1000, self.d).await?;
        let etcd_writer = channels(&self.etcd, 1).await?.remove(0);
        let (etcd_prop, _) = watches::etcd(&self.etcd_ch, etcd_writer, 1000, 1000, self.d).await?;
        let notes = format!("ours: {}; raw: {}", delivered(&ours_prop), delivered(&raw_prop));
        self.rows.push(Row::latency(
            "6a. Propagation (1,000 writes/s, 1,000 watchers): commit → delivery",
            ours_prop.clone(),
            "JetStream publish → 1,000 core subscribers",
            raw_prop,
            "p99 ≤ 3 ms",
            &notes,
        ));
        let notes = format!("ours: {}; etcd: {}", delivered(&ours_prop), delivered(&etcd_prop));
        self.rows.push(Row::latency(
            "6b. Propagation (1,000 writes/s, 1,000 watchers): commit → delivery",
            ours_prop,
            "etcd put → 1,000 watchers",
            etcd_prop,
            "p99 ≤ 3 ms",
            &notes,
        ));
        drop(prop_ch);
        Ok(())
    }

    async fn fan_out(&mut self) -> anyhow::Result<()> {
        // A fresh replica, so that its memory is not what earlier workloads left.
        let fan_metrics = free_port();
        let fan_query = self.env.query("veltrix-query-fanout", &self.nats, &self.redis, fan_metrics)?;
        serving(&fan_query).await?;
        let head = clients::metric(self.metrics_port, "veltrix_projection_applied_revision").await?.unwrap_or(0.0);
        rebuild::projected(fan_metrics, head as u64, Instant::now()).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = fan_query.rss_kib();
        let fan_ch = channels(&fan_query, self.plan.watchers_fanout.div_ceil(500)).await?;
        let fan_started = Instant::now();
        let mut open = 0;
        let (fan, missing) =
            watches::ours(self.cmds[0].clone(), &fan_ch, self.plan.watchers_fanout, 100, self.d, || {
                open = fan_query.rss_kib()
            })
            .await?;
        let after = fan_query.rss_kib();
        anyhow::ensure!(missing == 0, "fan-out: {missing} deliveries missing");
        let per_kib = |rss: u64| rss.saturating_sub(before) as f64 / self.plan.watchers_fanout as f64;
        let (idle_per_watcher, per_watcher) = (per_kib(open), per_kib(after));
        self.rows.push(Row::alone(
            &format!("7. Fan-out ({} streams, 100 changes/s)", self.plan.watchers_fanout),
            fan,
            "every watcher gets every change; ≤ 16 KiB RSS per watcher",
            &format!(
                "all deliveries verified; RSS per watcher: {idle_per_watcher:.1} KiB open and idle, {per_watcher:.1} KiB peak under this load; {:.0} s",
                fan_started.elapsed().as_secs_f64()
            ),
        ));
        self.footprint.push(("veltrix-query (fresh replica), idle, caught up".to_owned(), before));
        self.footprint
            .push((format!("veltrix-query (fresh replica), {} watch streams open", self.plan.watchers_fanout), open));
        self.footprint.push((
            format!("veltrix-query (fresh replica), {} watch streams after the load", self.plan.watchers_fanout),
            after,
        ));
        drop(fan_ch);
        drop(fan_query);
        Ok(())
    }

    async fn rebuild(&mut self) -> anyhow::Result<()> {
        let nats_rb = self.env.nats("nats-rebuild", "nats-server", false)?;
        let command_rb = self.env.command("veltrix-command-rebuild", &nats_rb)?;
        serving(&command_rb).await?;
        rebuild::fill(&nats_rb.url("nats"), self.plan.rebuild_events, 10_000).await?;
        let raw_read = rebuild::raw_read(&nats_rb.url("nats"), self.plan.rebuild_events).await?;
        let redis_rb = self.env.redis()?;
        let rb_metrics = free_port();
        let started = Instant::now();
        let query_rb = self.env.query("veltrix-query-rebuild", &nats_rb, &redis_rb, rb_metrics)?;
        let projected = rebuild::projected(rb_metrics, self.plan.rebuild_events, started).await?;
        self.rows.push(Row::throughput(
            &format!("8. Rebuild ({} events, 10,000 namespaces) into empty Redis", self.plan.rebuild_events),
            projected,
            "reading the stream with a consumer, doing nothing",
            raw_read.clone(),
            "≥ 0.50",
            "events per second",
        ));
        drop(query_rb);
        // The same stream into a Redis Cluster (3 masters, 3 replicas):
        // a pipeline per namespace slot, spread over the masters, each
        // batch waiting for its replica's copy (WAIT 1).
        let cluster = veltrix_testkit::RedisCluster::start();
        let rb_metrics = free_port();
        let started = Instant::now();
        let query_rb = self.env.query_on("veltrix-query-rebuild-cluster", &nats_rb, &cluster.url(), rb_metrics)?;
        let projected = rebuild::projected(rb_metrics, self.plan.rebuild_events, started).await?;
        self.rows.push(Row::throughput(
            &format!(
                "8b. Rebuild ({} events, 10,000 namespaces) into an empty Redis Cluster",
                self.plan.rebuild_events
            ),
            projected,
            "reading the stream with a consumer, doing nothing",
            raw_read,
            "report (3 masters and 3 replicas on the same 2 cores)",
            "events per second; a pipeline per namespace slot, then one WAIT 1 per master",
        ));
        drop(query_rb);
        Ok(())
    }
}

impl Bench {
    async fn first_write(&mut self) -> anyhow::Result<()> {
        for events in self.plan.first_write_events.clone() {
            let (ours, folding) = crate::first_write::measure(&self.env, events).await?;
            self.rows.push(Row::latency(
                &format!("10. First write after a restart ({events} change sets in the namespace)"),
                ours,
                "the same, folding the whole history (--snapshot-every 0)",
                folding,
                "within the 5 s default deadline at every length",
                "one Put, timed from the call; its namespace's state is loaded first",
            ));
        }
        Ok(())
    }

    async fn fleet(&mut self) -> anyhow::Result<()> {
        // A fresh replica with the default ledger settings, so that its
        // counters and histogram are this workload's alone.
        let metrics = free_port();
        let query = self.env.query("veltrix-query-fleet", &self.nats, &self.redis, metrics)?;
        serving(&query).await?;
        let n = self.plan.fleet_clients;
        let ch = channels(&query, n.div_ceil(500)).await?;
        let started = Instant::now();
        let load = fleet::Load { clients: n, rate: 10, d: self.d };
        let o = fleet::run(self.cmds[0].clone(), (&query, &self.redis, metrics), &ch, load).await?;
        anyhow::ensure!(o.missing == 0, "fleet: {} deliveries missing", o.missing);
        let note = format!(
            "{:.0} acks ({:.0}/s) became {:.0} ledger writes (coalesced per client); CPU per report: {:.1} µs in veltrix-query, {:.1} µs in Redis; commit → Sync delivery p99 {:.1} ms; the ledger counted all {n} clients on the last change {:.2} s after its commit; every delivery verified; {:.0} s",
            o.reports,
            o.reports / self.d.as_secs_f64(),
            o.ledger_writes,
            o.query_us_per_report,
            o.redis_us_per_report,
            o.delivery.p99_us as f64 / 1000.0,
            o.converged.as_secs_f64(),
            started.elapsed().as_secs_f64(),
        );
        self.rows.push(Row::alone(
            &format!("9. Fleet ledger ({n} Sync clients acking every change, 10 changes/s): report → ledger"),
            o.lag,
            "keeps up: report → ledger p99 ≤ 1 s, all clients counted within 1 s of the last change",
            &note,
        ));
        self.footprint
            .push((format!("veltrix-query (fresh replica), {n} Sync streams after the load"), query.rss_kib()));
        drop(ch);
        Ok(())
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }
}
