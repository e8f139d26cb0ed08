//! `veltrixctl`: Veltrix Config from the command line. A thin shell over
//! `veltrix-client`; exit status tells scripts what happened.

mod apply;
mod cli;
mod export;
mod output;

use std::{io::Read, process::ExitCode};

use clap::{CommandFactory, Parser};
use futures::StreamExt;
use veltrix_client::{Client, Error, HistoryOptions, ReadOptions, WatchEvent, WatchStart, WriteOptions};

use crate::cli::{Cli, Command, Output, WriteArgs};

/// Exit statuses scripts can rely on.
pub(crate) mod exit {
    pub const OTHER: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const CONFLICT: u8 = 4;
    pub const INVALID: u8 = 5;
    pub const UNAVAILABLE: u8 = 6;
}

/// A failure and its exit status.
pub(crate) struct Failure {
    pub code: u8,
    pub message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::NotFound { .. } => exit::NOT_FOUND,
            Error::Conflict { .. } => exit::CONFLICT,
            Error::Invalid { .. } => exit::INVALID,
            Error::Unavailable { .. } | Error::DeadlineExceeded { .. } => exit::UNAVAILABLE,
            _ => exit::OTHER,
        };
        Self { code, message: e.to_string() }
    }
}

pub(crate) fn usage(message: impl Into<String>) -> Failure {
    Failure { code: exit::USAGE, message: message.into() }
}

pub(crate) fn other(message: impl Into<String>) -> Failure {
    Failure { code: exit::OTHER, message: message.into() }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("veltrixctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn write_options(w: WriteArgs, content_type: String) -> WriteOptions {
    WriteOptions {
        expected_revision: w.expect_revision,
        reason: w.reason.unwrap_or_default(),
        request_id: w.request_id,
        content_type,
    }
}

pub(crate) fn revision(format: Output, revision: u64) -> Result<(), Failure> {
    match format {
        Output::Table => {
            println!("revision {revision}");
            Ok(())
        }
        f => output::structured(f, &serde_json::json!({ "revision": revision })).map_err(other),
    }
}

pub(crate) fn read_input(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(|e| other(format!("reading standard input: {e}")))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let g = cli.global;
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "veltrixctl", &mut std::io::stdout());
        return Ok(());
    }
    let mut builder = Client::builder().command_url(g.command_url).query_url(g.query_url).timeout(g.timeout);
    if let Some(actor) = g.actor {
        builder = builder.actor(actor);
    }
    if let Some(token) = g.token {
        builder = builder.token(token);
    }
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| usage(format!("cannot read {}: {e}", p.display())));
    if let Some(ca) = &g.ca_cert {
        builder = builder.ca_certificate(read(ca)?);
    }
    if let (Some(cert), Some(key)) = (&g.client_cert, &g.client_key) {
        builder = builder.client_identity(read(cert)?, read(key)?);
    }
    let client = builder.build().map_err(|e| usage(e.to_string()))?;
    let out = g.output;
    match cli.command {
        Command::Put { namespace, key, value, file, content_type, write } => {
            let value = match (value, file) {
                (Some(v), None) if v == "-" => read_input(std::path::Path::new("-"))?,
                (Some(v), None) => v.into_bytes(),
                (None, Some(path)) => read_input(&path)?,
                _ => return Err(usage("put needs a VALUE or --file PATH")),
            };
            let r = client.put_with(&namespace, &key, value, &write_options(write, content_type)).await?;
            revision(out, r)
        }
        Command::Delete { namespace, key, write } => {
            let r = client.delete_with(&namespace, &key, &write_options(write, String::new())).await?;
            revision(out, r)
        }
        Command::Get { namespace, key, revision, min_revision, raw } => {
            let entry = client.get_with(&namespace, &key, ReadOptions { min_revision, at_revision: revision }).await?;
            if raw {
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                return stdout.write_all(&entry.value).and_then(|()| stdout.flush()).map_err(|e| other(e.to_string()));
            }
            match out {
                Output::Table => {
                    output::entry(&entry);
                    Ok(())
                }
                f => output::structured(f, &entry).map_err(other),
            }
        }
        Command::List(keys) => {
            let listing = client.list_with(&keys.namespace, &keys.prefix, keys.options()).await?;
            match out {
                Output::Table => {
                    output::entries(&listing.entries);
                    Ok(())
                }
                f => output::structured(
                    f,
                    &serde_json::json!({ "revision": listing.revision, "entries": listing.entries }),
                )
                .map_err(other),
            }
        }
        Command::Apply { namespace, file, dry_run, delete_missing, prefix, reason, request_id } => {
            let file = apply::read(&file, delete_missing)?;
            let options = apply::Options { dry_run, delete_missing, prefix, reason, request_id };
            apply::run(&client, &namespace, file, options, out).await
        }
        Command::Export(keys) => {
            let listing = client.list_with(&keys.namespace, &keys.prefix, keys.options()).await?;
            print!("{}", export::render(out, &keys.namespace, &listing).map_err(other)?);
            Ok(())
        }
        Command::History { namespace, key, from, to, limit } => {
            let options = HistoryOptions { from_revision: from, to_revision: to, limit };
            let sets = client.history(&namespace, key.as_deref(), options).await?;
            match out {
                Output::Table => {
                    output::change_sets(&sets);
                    Ok(())
                }
                f => output::structured(f, &sets).map_err(other),
            }
        }
        Command::Namespaces { prefix } => {
            let list = client.namespaces(&prefix).await?;
            match out {
                Output::Table => {
                    output::namespaces(&list);
                    Ok(())
                }
                f => output::structured(f, &list).map_err(other),
            }
        }
        Command::Watch { namespace, prefix, from, snapshot, count } => {
            let start = match (from, snapshot) {
                (Some(r), _) => WatchStart::From(r),
                (None, true) => WatchStart::Snapshot,
                (None, false) => WatchStart::Now,
            };
            let mut stream = client.watch(&namespace, &prefix, start);
            let mut seen = 0usize;
            loop {
                let event = tokio::select! {
                    event = stream.next() => event,
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                };
                let Some(event) = event else { return Ok(()) };
                let event = event?;
                output::watch_event(out, &event).map_err(other)?;
                if matches!(event, WatchEvent::Changes(_)) {
                    seen += 1;
                    if count.is_some_and(|c| seen >= c) {
                        return Ok(());
                    }
                }
            }
        }
        Command::Completions { .. } => Ok(()),
    }
}
