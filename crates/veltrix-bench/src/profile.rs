//! `veltrix-bench --profile writes|reads`: one workload against one service
//! started under a wrapper (`VELTRIX_BENCH_WRAP`, e.g.
//! `valgrind --tool=callgrind`), then a clean stop so the profiler writes its
//! output. Instruction counts per request are repeatable on a noisy machine;
//! see docs/BENCHMARKS.md for the figures it produced.

use std::time::Duration;

use anyhow::bail;
use veltrix_testkit::free_port;

use crate::{
    clients::{Command, Query, channels, serving},
    procs::Env,
    reads, writes,
};

pub async fn run(env: &Env, workload: &str, d: Duration) -> anyhow::Result<()> {
    let nats = env.nats("nats", "nats-server", false)?;
    match workload {
        "writes" => {
            let command = env.command("veltrix-command", &nats)?;
            serving(&command).await?;
            let cmds: Vec<Command> = channels(&command, 4).await?.into_iter().map(Command::new).collect();
            let figure = writes::puts(cmds, 64, writes::NAMESPACES, d).await?;
            println!("{} puts, {:.0}/s", figure.ops, figure.throughput);
            command.stop()?;
        }
        "reads" => {
            let redis = env.redis()?;
            let command = env.command("veltrix-command", &nats)?;
            let query = env.query("veltrix-query", &nats, &redis, free_port())?;
            serving(&command).await?;
            serving(&query).await?;
            let mut cmd = channels(&command, 1).await?.into_iter().map(Command::new).next();
            let Some(cmd) = cmd.as_mut() else { bail!("no channel") };
            let last = reads::populate(cmd, reads::READ_NAMESPACES).await?;
            let queries: Vec<Query> = channels(&query, 4).await?.into_iter().map(Query::new).collect();
            reads::caught_up(&mut queries[0].clone(), last).await?;
            let figure = reads::gets(queries, 64, reads::READ_NAMESPACES, d).await?;
            println!("{} gets, {:.0}/s", figure.ops, figure.throughput);
            query.stop()?;
        }
        other => bail!("unknown profile workload '{other}' (writes, reads)"),
    }
    Ok(())
}
