//! `veltrixctl`: Veltrix Config from the command line. A thin shell over
//! `veltrix-client`; exit status tells scripts what happened.

mod apply;
mod cli;
mod derived;
mod export;
mod fleet;
mod govern;
mod output;
mod read;
mod rollout;
mod watch;
mod write;

use std::{io::Read, process::ExitCode};

use clap::{CommandFactory, Parser};
use veltrix_client::{Client, Error, HistoryOptions, ReadOptions};

use crate::cli::{Cli, Command, Global, Output};

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
            // Refused input: a bad field, or a schema current values break.
            Error::Invalid { .. } | Error::FailedPrecondition { .. } => exit::INVALID,
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
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "veltrixctl", &mut std::io::stdout());
        return Ok(());
    }
    let out = cli.global.output;
    let client = connect(cli.global)?;
    let c = &client;
    match cli.command {
        Command::Put { namespace, key, value, file, content_type, write } => {
            write::put(c, out, &namespace, &key, value, file, content_type, write).await
        }
        Command::Delete { namespace, key, write } => write::delete(c, out, &namespace, &key, write).await,
        Command::Get { namespace, key, revision, min_revision, raw } => {
            read::get(c, out, &namespace, &key, ReadOptions { min_revision, at_revision: revision }, raw).await
        }
        Command::List(keys) => read::list(c, out, &keys).await,
        Command::Export(keys) => read::export(c, out, &keys).await,
        Command::Rollback { namespace, to, prefix, computed } => {
            derived::rollback(c, out, &namespace, to, prefix, computed).await
        }
        Command::Diff { from, to, prefix } => derived::diff(c, out, &from, to.as_deref(), prefix).await,
        Command::Promote { source, target, from_revision, prefix, delete_missing, keys, computed } => {
            let args = derived::PromoteArgs { from_revision, prefix, delete_missing, keys };
            derived::promote(c, out, &source, &target, args, computed).await
        }
        Command::Apply { namespace, file, dry_run, delete_missing, prefix, reason, request_id } => {
            let file = apply::read(&file, delete_missing)?;
            let options = apply::Options { dry_run, delete_missing, prefix, reason, request_id };
            apply::run(c, &namespace, file, options, out).await
        }
        Command::History { namespace, key, from, to, limit } => {
            let options = HistoryOptions { from_revision: from, to_revision: to, limit };
            read::history(c, out, &namespace, key.as_deref(), options).await
        }
        Command::Namespaces { prefix, include_deleted } => read::namespaces(c, out, &prefix, include_deleted).await,
        Command::Blame { namespace, prefix, revision } => govern::blame(c, out, &namespace, &prefix, revision).await,
        Command::Clients { namespace, state, selector } => fleet::clients(c, out, &namespace, state, selector).await,
        Command::Status { namespace, revision } => fleet::status(c, out, &namespace, revision).await,
        Command::Rollout(command) => rollout::run(c, out, command).await,
        Command::Schema(command) => govern::schema(c, out, command).await,
        Command::DeleteNamespace { namespace, computed } => {
            govern::delete_namespace(c, out, &namespace, computed).await
        }
        Command::Watch { namespace, prefix, from, snapshot, count } => {
            watch::watch(c, out, &namespace, &prefix, watch::start(from, snapshot), count).await
        }
        Command::Completions { .. } => Ok(()),
    }
}

/// The host of a plaintext `http://` URL that is not this machine.
fn plaintext_remote(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    (!loopback).then_some(host)
}

/// The client the global options describe.
fn connect(g: Global) -> Result<Client, Failure> {
    let mut builder =
        Client::builder().command_url(g.command_url.clone()).query_url(g.query_url.clone()).timeout(g.timeout);
    if let Some(actor) = g.actor {
        builder = builder.actor(actor);
    }
    if let Some(token) = g.token {
        for url in [&g.command_url, &g.query_url] {
            if let Some(host) = plaintext_remote(url) {
                eprintln!("veltrixctl: warning: the token goes to {host} unencrypted (http://); use https://");
            }
        }
        builder = builder.token(token);
    }
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| usage(format!("cannot read {}: {e}", p.display())));
    if let Some(ca) = &g.ca_cert {
        builder = builder.ca_certificate(read(ca)?);
    }
    if let (Some(cert), Some(key)) = (&g.client_cert, &g.client_key) {
        builder = builder.client_identity(read(cert)?, read(key)?);
    }
    builder.build().map_err(|e| usage(e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn plaintext_to_another_host_is_named() {
        assert_eq!(super::plaintext_remote("http://config.internal:50051"), Some("config.internal"));
        assert_eq!(super::plaintext_remote("http://10.0.0.5:50051/"), Some("10.0.0.5"));
        for local in ["http://127.0.0.1:50051", "http://localhost:1", "http://[::1]:50051", "https://config.internal"] {
            assert_eq!(super::plaintext_remote(local), None, "{local}");
        }
    }

    #[test]
    fn debug_of_the_options_shows_no_token() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["veltrixctl", "--token", "s3cret-token", "get", "ns", "k"]);
        let shown = format!("{cli:?}");
        assert!(shown.contains("redacted") && !shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn control_characters_are_escaped_for_terminals() {
        assert_eq!(crate::output::printable("plain text"), "plain text");
        assert_eq!(crate::output::printable("a\nb\u{1b}[31mred"), "a\\nb\\u{1b}[31mred");
    }
}
