//! The command line: global options and subcommands.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "veltrixctl",
    version,
    about = "Veltrix Config from the command line: read, change, watch and audit configuration",
    after_help = "Exit status: 0 ok, 1 other error, 2 usage error, 3 not found, 4 revision conflict, 5 invalid input, 6 unavailable."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags of every subcommand. `Debug` shows no token.
#[derive(Args)]
pub struct Global {
    /// URL of the command service.
    #[arg(long, global = true, env = "VELTRIX_COMMAND_URL", default_value = "http://127.0.0.1:50051")]
    pub command_url: String,
    /// URL of the query service.
    #[arg(long, global = true, env = "VELTRIX_QUERY_URL", default_value = "http://127.0.0.1:50052")]
    pub query_url: String,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Deadline of each call.
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Who makes the change (when the servers run without authentication).
    #[arg(long, global = true, env = "VELTRIX_ACTOR")]
    pub actor: Option<String>,
    /// Bearer token.
    #[arg(long, global = true, env = "VELTRIX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA bundle to trust for the services' certificates (https:// URLs).
    #[arg(long, global = true, env = "VELTRIX_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate (mutual TLS), with --client-key.
    #[arg(long, global = true, env = "VELTRIX_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM key of the client certificate.
    #[arg(long, global = true, env = "VELTRIX_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

impl std::fmt::Debug for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Global")
            .field("command_url", &self.command_url)
            .field("query_url", &self.query_url)
            .field("output", &self.output)
            .field("timeout", &self.timeout)
            .field("actor", &self.actor)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_cert", &self.ca_cert)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Compare-and-set: the key's expected revision (0: it must not exist).
    #[arg(long)]
    pub expect_revision: Option<u64>,
    /// Why the change is made (recorded in the history).
    #[arg(long)]
    pub reason: Option<String>,
    /// Idempotency key: a retry with the same id is applied once.
    #[arg(long)]
    pub request_id: Option<String>,
}

/// Flags of the calls whose change set the service computes (rollback,
/// promote, schema, delete-namespace).
#[derive(Debug, Args)]
pub struct ComputedArgs {
    /// Print what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The (target) namespace's current revision must be this.
    #[arg(long)]
    pub expect_revision: Option<u64>,
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long)]
    pub request_id: Option<String>,
}

/// The keys of a namespace under a prefix, now or as of a revision.
#[derive(Debug, Args)]
pub struct ReadKeys {
    pub namespace: String,
    #[arg(default_value = "")]
    pub prefix: String,
    /// Read as of this revision.
    #[arg(long)]
    pub revision: Option<u64>,
    /// Wait until the read model has applied this revision.
    #[arg(long)]
    pub min_revision: Option<u64>,
}

impl ReadKeys {
    pub fn options(&self) -> veltrix_client::ReadOptions {
        veltrix_client::ReadOptions { at_revision: self.revision, min_revision: self.min_revision }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set a key's value (from VALUE, standard input, or --file).
    Put {
        namespace: String,
        key: String,
        /// The value ("-": read it from standard input; or use --file).
        value: Option<String>,
        /// Read the value from this file ("-": standard input).
        #[arg(long, conflicts_with = "value")]
        file: Option<PathBuf>,
        #[arg(long, default_value = "")]
        content_type: String,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Show a key with its revisions.
    Get {
        namespace: String,
        key: String,
        /// Read as of this revision.
        #[arg(long)]
        revision: Option<u64>,
        /// Wait until the read model has applied this revision.
        #[arg(long)]
        min_revision: Option<u64>,
        /// Print only the value's bytes, as stored (for `$(...)` in scripts).
        #[arg(long)]
        raw: bool,
    },
    /// Delete a key.
    Delete {
        namespace: String,
        key: String,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// List keys (under PREFIX).
    List(ReadKeys),
    /// Apply a change set, or a desired state (a map of key -> value as `export` writes it), atomically.
    Apply {
        namespace: String,
        /// The YAML or JSON file ("-": standard input).
        file: PathBuf,
        /// Show what would change against the current state; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Desired state: also delete the keys (under --prefix) the file lacks.
        #[arg(long)]
        delete_missing: bool,
        /// Desired state: the part of the namespace the file describes.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Why (overrides the file's `reason`).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Make every key (under --prefix) as it was right after revision --to, in one change set.
    Rollback {
        namespace: String,
        /// The revision whose state comes back.
        #[arg(long)]
        to: u64,
        #[arg(long, default_value = "")]
        prefix: String,
        #[command(flatten)]
        computed: ComputedArgs,
    },
    /// Make TARGET's keys (under --prefix) equal to SOURCE's, in one change set of TARGET.
    Promote {
        source: String,
        target: String,
        /// The source as of this revision (default: its latest).
        #[arg(long)]
        from_revision: Option<u64>,
        #[arg(long, default_value = "")]
        prefix: String,
        /// Also delete TARGET's keys (under --prefix) that SOURCE lacks.
        #[arg(long)]
        delete_missing: bool,
        /// Only this key (repeatable; default: every key under --prefix).
        #[arg(long = "key")]
        keys: Vec<String>,
        #[command(flatten)]
        computed: ComputedArgs,
    },
    /// The keys that differ between NS[@REV] and NS2[@REV2] (default: NS now): + added, - removed, ~ changed.
    Diff {
        from: String,
        to: Option<String>,
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Print the keys (under PREFIX) as a map of key -> value that `apply` reads back (YAML; `-o json`).
    Export(ReadKeys),
    /// The change history of a namespace (or of one key).
    History {
        namespace: String,
        key: Option<String>,
        #[arg(long)]
        from: Option<u64>,
        #[arg(long)]
        to: Option<u64>,
        /// Most change sets shown.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print changes as they are committed.
    Watch {
        namespace: String,
        #[arg(default_value = "")]
        prefix: String,
        /// Start from this revision (history first).
        #[arg(long, conflicts_with = "snapshot")]
        from: Option<u64>,
        /// Print the matching keys first.
        #[arg(long)]
        snapshot: bool,
        /// Exit after this many change sets.
        #[arg(long)]
        count: Option<usize>,
    },
    /// List namespaces (under PREFIX).
    Namespaces {
        #[arg(default_value = "")]
        prefix: String,
        /// Also list namespaces deleted by delete-namespace.
        #[arg(long)]
        include_deleted: bool,
    },
    /// Who last set each key (under PREFIX): revision, time, actor, origin and reason.
    Blame {
        namespace: String,
        #[arg(default_value = "")]
        prefix: String,
        /// As of this revision.
        #[arg(long)]
        revision: Option<u64>,
    },
    /// The clients of a namespace (sidecar agents, live copies) and what each runs.
    Clients {
        namespace: String,
        /// Only clients in this state: synced, pending, stale, rejected, disconnected.
        #[arg(long)]
        state: Option<String>,
        /// Only clients with these labels: k=v[,k2=v2].
        #[arg(long, default_value = "")]
        selector: String,
    },
    /// How the fleet stands on REVISION (default: the latest): applied, pending, rejected and why.
    Status { namespace: String, revision: Option<u64> },
    /// The JSON Schemas (draft 2020-12) that values of matching keys must satisfy.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Gradual rollouts: a change set to a growing share of the Sync clients, gated on their ACKs.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Delete every key and schema of a namespace in one change set (its history stays).
    DeleteNamespace {
        namespace: String,
        #[command(flatten)]
        computed: ComputedArgs,
    },
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Set the schema for keys matching PATTERN ('*' within a segment, '**' across) from FILE ("-": stdin).
    Set {
        namespace: String,
        pattern: String,
        file: PathBuf,
        #[command(flatten)]
        computed: ComputedArgs,
    },
    /// The patterns and schemas in force.
    List {
        namespace: String,
        /// As of this revision.
        #[arg(long)]
        revision: Option<u64>,
    },
    /// Delete the schema for PATTERN.
    Delete {
        namespace: String,
        pattern: String,
        #[command(flatten)]
        computed: ComputedArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Start a rollout of the change set in FILE (as `apply` reads it; "-": stdin).
    Start {
        namespace: String,
        file: PathBuf,
        /// Cumulative shares of the Sync clients, the last 100: e.g. 10,50,100.
        #[arg(long, value_delimiter = ',', required = true)]
        steps: Vec<u32>,
        /// Each step runs at least this long (e.g. 30s, 5m, 1h).
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        bake: Duration,
        /// Share of a step's cohort that must ACK before it advances (default 100%).
        #[arg(long, value_parser = parse_percent)]
        min_applied: Option<u32>,
        /// Above this share of NACKs the rollout aborts (default 0%).
        #[arg(long, value_parser = parse_percent)]
        max_rejected: Option<u32>,
        /// Clients with this label are in from the first step (k=v; repeatable).
        #[arg(long)]
        canary: Vec<String>,
        /// Not enough ACKs this long after a step began: the rollout pauses.
        #[arg(long, value_parser = parse_duration)]
        ack_timeout: Option<Duration>,
        /// The namespace's current revision must be this.
        #[arg(long)]
        expect_revision: Option<u64>,
        /// Why (overrides the file's `reason`).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// The running rollout (or --id): step, cohort, applied/rejected/pending, the next gate.
    Status {
        namespace: String,
        #[arg(long)]
        id: Option<String>,
    },
    /// Pause the running rollout (or --id): no step advances until resumed.
    Pause(RolloutAction),
    /// Resume a paused rollout.
    Resume(RolloutAction),
    /// Abort it: the cohort gets the base values back.
    Abort(RolloutAction),
    /// Straight to 100%: commit the target for every client.
    Promote(RolloutAction),
    /// Every rollout of a namespace, newest first.
    List { namespace: String },
}

#[derive(Debug, Args)]
pub struct RolloutAction {
    pub namespace: String,
    /// The rollout (default: the namespace's running one).
    #[arg(long)]
    pub id: Option<String>,
    /// The rollout's version must be this (see `rollout status -o json`).
    #[arg(long)]
    pub expect_version: Option<u64>,
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long)]
    pub request_id: Option<String>,
}

/// `95%` or `95`: 0 to 100.
fn parse_percent(s: &str) -> Result<u32, String> {
    let n: u32 = s.trim_end_matches('%').parse().map_err(|_| format!("invalid percentage '{s}' (e.g. 95%)"))?;
    if n > 100 { Err(format!("invalid percentage '{s}': at most 100%")) } else { Ok(n) }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = number.parse().map_err(|_| format!("invalid duration '{s}' (e.g. 500ms, 5s, 1m)"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in '{s}' (ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration '{s}': {e}"))
}
