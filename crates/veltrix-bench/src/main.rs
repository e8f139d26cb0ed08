//! `veltrix-bench`: starts its own nats-server, redis-server, etcd and both
//! services (release builds), runs every workload side by side with its
//! baseline in one run, and writes docs/BENCHMARKS.md and
//! target/bench/results.json. `--quick` runs each workload for a few seconds
//! (CI runs it so the harness never rots); it fails only if a workload errors.

mod clients;
mod first_write;
mod fleet;
mod load;
mod plots;
mod procs;
mod profile;
mod reads;
mod rebuild;
mod report;
mod watches;
mod workloads;
mod writes;

use std::{path::PathBuf, time::Duration};

use clap::Parser;

use crate::{
    procs::{Env, version},
    report::Report,
    workloads::{Bench, WORKLOADS, Workload},
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
    /// Runs only the workloads whose names contain this (e.g. `fleet`),
    /// and writes the report under target/bench/ only.
    #[arg(long)]
    only: Option<String>,
    /// Runs nothing: writes the report of an earlier full run's
    /// results.json again (after editing ANALYSIS.md, say).
    #[arg(long)]
    from_json: Option<PathBuf>,
    /// Seconds the profiled workload runs.
    #[arg(long, default_value_t = 20)]
    profile_seconds: u64,
}

pub struct Plan {
    pub duration: Duration,
    pub watchers_fanout: usize,
    pub rebuild_events: u64,
    pub populate_namespaces: usize,
    pub fleet_clients: usize,
    /// History lengths of the first-write-after-a-restart workload.
    pub first_write_events: Vec<u64>,
    /// Keys per namespace of the Get curve.
    pub curve_keys: Vec<usize>,
    /// Where plots go: docs/ for a full run, beside the quick report else.
    pub plots: PathBuf,
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
            fleet_clients: 1000,
            first_write_events: vec![1_000, 10_000],
            curve_keys: vec![1_000, 10_000],
            plots: PathBuf::from("target/bench"),
        }
    } else {
        Plan {
            duration: Duration::from_secs(10),
            watchers_fanout: 10_000,
            rebuild_events: 1_000_000,
            populate_namespaces: 1000,
            fleet_clients: 10_000,
            first_write_events: vec![10_000, 100_000, 1_000_000],
            curve_keys: vec![1_000, 100_000, 1_000_000],
            plots: PathBuf::from(if args.only.is_some() { "target/bench" } else { "docs" }),
        }
    };
    let logs = PathBuf::from("target/bench/logs");
    std::fs::create_dir_all(&logs)?;
    let wrap = std::env::var("VELTRIX_BENCH_WRAP").unwrap_or_default().split_whitespace().map(str::to_owned).collect();
    let env = Env { logs, release: args.release_dir.clone(), wrap };
    if let Some(workload) = &args.profile {
        return profile::run(&env, workload, Duration::from_secs(args.profile_seconds)).await;
    }
    if let Some(path) = &args.from_json {
        let report: Report = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        anyhow::ensure!(!report.quick, "{} holds a quick run: only a full run's figures are recorded", path.display());
        std::fs::write(&args.out, markdown(&report))?;
        println!("written to {} from {}", args.out.display(), path.display());
        return Ok(());
    }
    let mut bench = Bench::start(env, plan, args.nats_server_sync.clone()).await?;
    let only = args.only.as_deref().map(str::to_lowercase);
    let chosen = |w: Workload, plan: &Plan| only.as_ref().is_none_or(|o| w.name(plan).to_lowercase().contains(o));
    // The reads need their data set, whichever of them is chosen.
    let reads_chosen =
        WORKLOADS.iter().any(|w| matches!(w, Workload::Read | Workload::List) && chosen(*w, bench.plan()));
    for workload in WORKLOADS {
        let name = workload.name(bench.plan());
        let needed = matches!(workload, Workload::Populate) && reads_chosen;
        if !needed && !chosen(workload, bench.plan()) {
            continue;
        }
        println!("{name}");
        workload.run(&mut bench).await?;
    }
    let Bench { rows, footprint, .. } = bench;

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
    let markdown = markdown(&report);
    if args.quick || only.is_some() {
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

fn markdown(report: &Report) -> String {
    report.markdown(include_str!("../PREAMBLE.md")) + "\n" + include_str!("../ANALYSIS.md")
}

fn chrono_like_date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
