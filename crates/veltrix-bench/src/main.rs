//! `veltrix-bench`: starts its own nats-server, redis-server, etcd and both
//! services (release builds), runs every workload side by side with its
//! baseline in one run, and writes docs/BENCHMARKS.md and
//! target/bench/results.json. `--quick` runs each workload for a few seconds
//! (CI runs it so the harness never rots); it fails only if a workload errors.

mod clients;
mod load;
mod procs;
mod profile;
mod reads;
mod rebuild;
mod report;
mod watches;
mod writes;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use clap::Parser;
use veltrix_testkit::free_port;

use crate::{
    clients::{Command, Etcd, Query, channels, serving},
    load::Figure,
    procs::{Env, version},
    report::{Report, Row},
};

#[derive(Debug, Parser)]
#[command(name = "veltrix-bench", about = "Benchmarks of Veltrix Config against its baselines")]
struct Args {
    /// A few seconds per workload, smaller data sets.
    #[arg(long)]
    quick: bool,
    /// Where the release binaries are.
    #[arg(long, default_value = "target/release")]
    release_dir: PathBuf,
    /// A nats-server that knows `sync_interval` (2.10 or newer), for the
    /// fsync-every-write figure; skipped (and said so) when absent.
    #[arg(long, env = "VELTRIX_BENCH_NATS_SERVER_SYNC", default_value = ".tools/venv/bin/nats-server")]
    nats_server_sync: PathBuf,
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    out: PathBuf,
    #[arg(long, default_value = "target/bench/results.json")]
    json: PathBuf,
    /// Runs only this workload (`writes` or `reads`) against its service
    /// started under `VELTRIX_BENCH_WRAP` (e.g. `valgrind --tool=callgrind`),
    /// writes no report.
    #[arg(long)]
    profile: Option<String>,
    /// Seconds the profiled workload runs.
    #[arg(long, default_value_t = 20)]
    profile_seconds: u64,
}

struct Plan {
    duration: Duration,
    watchers_fanout: usize,
    rebuild_events: u64,
    populate_namespaces: usize,
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0)))
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({cpu}), {:.0} GiB", mem as f64 / 1024.0 / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let plan = if args.quick {
        Plan {
            duration: Duration::from_secs(2),
            watchers_fanout: 1000,
            rebuild_events: 20_000,
            populate_namespaces: 100,
        }
    } else {
        Plan {
            duration: Duration::from_secs(10),
            watchers_fanout: 10_000,
            rebuild_events: 1_000_000,
            populate_namespaces: 1000,
        }
    };
    let logs = PathBuf::from("target/bench/logs");
    std::fs::create_dir_all(&logs)?;
    let wrap = std::env::var("VELTRIX_BENCH_WRAP").unwrap_or_default().split_whitespace().map(str::to_owned).collect();
    let env = Env { logs, release: args.release_dir.clone(), wrap };
    if let Some(workload) = &args.profile {
        return profile::run(&env, workload, Duration::from_secs(args.profile_seconds)).await;
    }
    let mut rows = Vec::new();
    let mut footprint = Vec::new();

    let nats = env.nats("nats", "nats-server", false)?;
    let redis = env.redis()?;
    let etcd = env.etcd()?;
    let command = env.command("veltrix-command", &nats)?;
    let metrics_port = free_port();
    let query = env.query("veltrix-query", &nats, &redis, metrics_port)?;
    serving(&command).await?;
    serving(&query).await?;
    footprint.push(("veltrix-command, idle".to_owned(), command.rss_kib()));
    footprint.push(("veltrix-query, idle".to_owned(), query.rss_kib()));

    let cmd_ch = channels(&command, 4).await?;
    let q_ch = channels(&query, 4).await?;
    let etcd_ch = channels(&etcd, 4).await?;
    let cmds: Vec<Command> = cmd_ch.iter().cloned().map(Command::new).collect();
    let queries: Vec<Query> = q_ch.iter().cloned().map(Query::new).collect();
    let etcds: Vec<Etcd> = etcd_ch.iter().cloned().map(Etcd::new).collect();
    let d = plan.duration;

    println!("1. write, spread");
    let ours_spread = writes::puts(cmds.clone(), 64, writes::NAMESPACES, d).await?;
    let raw_spread = writes::raw_publish(&nats.url("nats"), 64, 16, d).await?;
    rows.push(Row::throughput(
        "1. Write, spread (Put, c=64, 1000 ns × 100 keys)",
        ours_spread.clone(),
        "JetStream publish, expected seq, c=64",
        raw_spread,
        "≥ 0.50, p99 ≤ 2× raw",
        "",
    ));

    println!("2. write, hot namespace");
    let ours_hot = writes::puts(cmds.clone(), 16, 1, d).await?;
    let raw_seq = writes::raw_publish(&nats.url("nats"), 1, 1, d).await?;
    rows.push(Row::throughput(
        "2. Write, hot namespace (Put, c=16, 1 ns)",
        ours_hot,
        "JetStream publish, sequential (c=1)",
        raw_seq,
        "≥ 0.70",
        "one namespace's writes are serialized",
    ));

    println!("3. write vs etcd");
    let etcd_put = writes::etcd_puts(etcds.clone(), 64, d).await?;
    rows.push(Row::throughput(
        "3a. Write vs etcd, default durability",
        ours_spread,
        "etcd put, c=64",
        etcd_put.clone(),
        "report",
        "ours: NATS default (acked from page cache, fsync every 2 min or 60 s); etcd: fsync per batch before ack",
    ));
    if args.nats_server_sync.exists() {
        let program = args.nats_server_sync.display().to_string();
        let nats_sync = env.nats("nats-sync-always", &program, true)?;
        let command_sync = env.command("veltrix-command-sync-always", &nats_sync)?;
        serving(&command_sync).await?;
        let sync_cmds: Vec<Command> = channels(&command_sync, 4).await?.into_iter().map(Command::new).collect();
        let ours_sync = writes::puts(sync_cmds, 64, writes::NAMESPACES, d).await?;
        rows.push(Row::throughput(
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
        println!("   (no nats-server with sync_interval at {}: 3b skipped)", args.nats_server_sync.display());
    }

    println!("populating {} namespaces × 100 keys", plan.populate_namespaces);
    let mut cmd0 = cmds[0].clone();
    let last = reads::populate(&mut cmd0, plan.populate_namespaces).await?;
    reads::caught_up(&mut queries[0].clone(), last).await?;
    footprint.push((format!("veltrix-command, {}k keys written", plan.populate_namespaces / 10), command.rss_kib()));
    footprint.push((format!("veltrix-query, {}k keys", plan.populate_namespaces / 10), query.rss_kib()));
    reads::etcd_populate(&etcds, reads::READ_NAMESPACES).await?;

    println!("4. read");
    let ours_get = reads::gets(queries.clone(), 64, reads::READ_NAMESPACES, d).await?;
    footprint.push(("veltrix-query, under workload 4".to_owned(), query.rss_kib()));
    let floor = reads::floor(q_ch.clone(), 64, d).await?;
    let redis_get = reads::redis_gets(&redis.url("redis"), 64, d).await?;
    let etcd_get = reads::etcd_gets(etcds.clone(), 64, reads::READ_NAMESPACES, d).await?;
    rows.push(Row::throughput(
        "4a. Read (Get, c=64)",
        ours_get.clone(),
        "gRPC floor: no-op unary RPC, same server",
        floor,
        "≥ 0.80, p99 ≤ 2 ms",
        "",
    ));
    rows.push(Row::throughput(
        "4b. Read (Get, c=64)",
        ours_get.clone(),
        "raw Redis GET, c=64",
        redis_get,
        "report",
        "",
    ));
    rows.push(Row::throughput("4c. Read (Get, c=64)", ours_get, "etcd serializable range, c=64", etcd_get, "≥ 3", ""));

    println!("5. list");
    let ours_list = reads::lists(queries.clone(), 16, reads::READ_NAMESPACES, d).await?;
    let etcd_list = reads::etcd_lists(etcds.clone(), 16, reads::READ_NAMESPACES, d).await?;
    rows.push(Row::throughput(
        "5. List (page of 100, c=16)",
        ours_list,
        "etcd range, prefix, limit 100",
        etcd_list,
        "report",
        "",
    ));

    println!("6. propagation");
    let prop_ch = channels(&query, 8).await?;
    let offered = 1000 * d.as_secs() as usize * 1000;
    // Deliveries of acknowledged writes that arrived within two minutes.
    let delivered = |f: &Figure| format!("{} of {offered} offered deliveries arrived", f.ops);
    let (ours_prop, _) = watches::ours(cmds[0].clone(), &prop_ch, 1000, 1000, d, || {}).await?;
    let (raw_prop, _) = watches::raw_nats(&nats.url("nats"), 1000, 1000, d).await?;
    let etcd_writer = channels(&etcd, 1).await?.remove(0);
    let (etcd_prop, _) = watches::etcd(&etcd_ch, etcd_writer, 1000, 1000, d).await?;
    let notes = format!("ours: {}; raw: {}", delivered(&ours_prop), delivered(&raw_prop));
    rows.push(Row::latency(
        "6a. Propagation (1,000 writes/s, 1,000 watchers): commit → delivery",
        ours_prop.clone(),
        "JetStream publish → 1,000 core subscribers",
        raw_prop,
        "p99 ≤ 3 ms",
        &notes,
    ));
    let notes = format!("ours: {}; etcd: {}", delivered(&ours_prop), delivered(&etcd_prop));
    rows.push(Row::latency(
        "6b. Propagation (1,000 writes/s, 1,000 watchers): commit → delivery",
        ours_prop,
        "etcd put → 1,000 watchers",
        etcd_prop,
        "p99 ≤ 3 ms",
        &notes,
    ));
    drop(prop_ch);

    println!("7. fan-out to {} watchers", plan.watchers_fanout);
    // A fresh replica, so that its memory is not what earlier workloads left.
    let fan_metrics = free_port();
    let fan_query = env.query("veltrix-query-fanout", &nats, &redis, fan_metrics)?;
    serving(&fan_query).await?;
    let head = clients::metric(metrics_port, "veltrix_projection_applied_revision").await?.unwrap_or(0.0);
    rebuild::projected(fan_metrics, head as u64, Instant::now()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = fan_query.rss_kib();
    let fan_ch = channels(&fan_query, plan.watchers_fanout.div_ceil(500)).await?;
    let fan_started = Instant::now();
    let mut open = 0;
    let (fan, missing) =
        watches::ours(cmds[0].clone(), &fan_ch, plan.watchers_fanout, 100, d, || open = fan_query.rss_kib()).await?;
    let after = fan_query.rss_kib();
    anyhow::ensure!(missing == 0, "fan-out: {missing} deliveries missing");
    let per_kib = |rss: u64| rss.saturating_sub(before) as f64 / plan.watchers_fanout as f64;
    let (idle_per_watcher, per_watcher) = (per_kib(open), per_kib(after));
    rows.push(Row::alone(
        &format!("7. Fan-out ({} streams, 100 changes/s)", plan.watchers_fanout),
        fan,
        "every watcher gets every change; ≤ 16 KiB RSS per watcher",
        &format!(
            "all deliveries verified; RSS per watcher: {idle_per_watcher:.1} KiB open and idle, {per_watcher:.1} KiB peak under this load; {:.0} s",
            fan_started.elapsed().as_secs_f64()
        ),
    ));
    footprint.push(("veltrix-query (fresh replica), idle, caught up".to_owned(), before));
    footprint.push((format!("veltrix-query (fresh replica), {} watch streams open", plan.watchers_fanout), open));
    footprint
        .push((format!("veltrix-query (fresh replica), {} watch streams after the load", plan.watchers_fanout), after));
    drop(fan_ch);
    drop(fan_query);

    println!("8. rebuild of {} events", plan.rebuild_events);
    let nats_rb = env.nats("nats-rebuild", "nats-server", false)?;
    let command_rb = env.command("veltrix-command-rebuild", &nats_rb)?;
    serving(&command_rb).await?;
    rebuild::fill(&nats_rb.url("nats"), plan.rebuild_events, 10_000).await?;
    let raw_read = rebuild::raw_read(&nats_rb.url("nats"), plan.rebuild_events).await?;
    let redis_rb = env.redis()?;
    let rb_metrics = free_port();
    let started = Instant::now();
    let query_rb = env.query("veltrix-query-rebuild", &nats_rb, &redis_rb, rb_metrics)?;
    let projected = rebuild::projected(rb_metrics, plan.rebuild_events, started).await?;
    rows.push(Row::throughput(
        &format!("8. Rebuild ({} events, 10,000 namespaces) into empty Redis", plan.rebuild_events),
        projected,
        "reading the stream with a consumer, doing nothing",
        raw_read,
        "≥ 0.50",
        "events per second",
    ));
    drop(query_rb);

    let report = Report {
        date: chrono_like_date(),
        quick: args.quick,
        machine: machine(),
        versions: vec![
            ("nats-server".into(), version("nats-server", "--version")),
            ("redis-server".into(), version("redis-server", "--version")),
            ("etcd".into(), version("etcd", "--version")),
            ("veltrix".into(), env!("CARGO_PKG_VERSION").into()),
        ],
        rows,
        footprint,
    };
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)?;
    let markdown = report.markdown(include_str!("../PREAMBLE.md")) + "\n" + include_str!("../ANALYSIS.md");
    if args.quick {
        // Quick runs check the harness; they do not replace the recorded figures.
        let quick = args.json.with_file_name("BENCHMARKS-quick.md");
        std::fs::write(&quick, markdown)?;
        println!("quick run written to {}", quick.display());
    } else {
        std::fs::write(&args.out, markdown)?;
        println!("written to {}", args.out.display());
    }
    Ok(())
}

fn chrono_like_date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
