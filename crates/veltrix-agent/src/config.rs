//! The agent's configuration: flags (each also a `VELTRIX_AGENT_*`
//! variable) and, for several outputs, a YAML file (`--config`) whose
//! fields have the flags' names; flags win over the file.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use serde::Deserialize;

/// How `--file` writes the whole prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Yaml,
    Env,
    Properties,
}

/// Where rendered config goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// One file per key, swapped as one set behind `DIR/..data`.
    Dir(PathBuf),
    /// The whole prefix as one document.
    File { path: PathBuf, format: Format },
    /// A minijinja template rendered to `dest`.
    Template { src: PathBuf, dest: PathBuf },
}

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "veltrix-agent",
    version,
    about = "Keeps a Veltrix Config namespace applied to local files, checks and reloads the application, and reports each revision's outcome (ACK/NACK) to the fleet ledger."
)]
pub struct Args {
    /// The query service (also read from VELTRIX_QUERY_URL).
    #[arg(long, env = "VELTRIX_AGENT_QUERY_URL")]
    pub query_url: Option<String>,
    #[arg(long, env = "VELTRIX_AGENT_NAMESPACE")]
    pub namespace: Option<String>,
    /// Only keys under this prefix (stripped from file names and document keys).
    #[arg(long, env = "VELTRIX_AGENT_PREFIX")]
    pub prefix: Option<String>,
    /// Stable per instance (default: the host name).
    #[arg(long, env = "VELTRIX_AGENT_CLIENT_ID")]
    pub client_id: Option<String>,
    /// A label `k=v` of this client (repeatable).
    #[arg(long = "label", env = "VELTRIX_AGENT_LABEL", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Write one file per key under DIR (swapped atomically as one set).
    #[arg(long, env = "VELTRIX_AGENT_DIR")]
    pub dir: Option<PathBuf>,
    /// Write the whole prefix as one document.
    #[arg(long, env = "VELTRIX_AGENT_FILE")]
    pub file: Option<PathBuf>,
    #[arg(long, env = "VELTRIX_AGENT_FORMAT", value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Render a minijinja template SRC to DEST (repeatable).
    #[arg(long = "template", env = "VELTRIX_AGENT_TEMPLATE", value_name = "SRC:DEST")]
    pub templates: Vec<String>,
    /// Run against the staged output (VELTRIX_STAGED names it); failing rejects the revision.
    #[arg(long, env = "VELTRIX_AGENT_CHECK")]
    pub check: Option<String>,
    /// Run after the files are swapped in.
    #[arg(long, env = "VELTRIX_AGENT_RELOAD")]
    pub reload: Option<String>,
    /// Send this signal (HUP, USR1, ...) to the process in --pid-file instead.
    #[arg(long, env = "VELTRIX_AGENT_RELOAD_SIGNAL", requires = "pid_file", conflicts_with = "reload")]
    pub reload_signal: Option<String>,
    #[arg(long, env = "VELTRIX_AGENT_PID_FILE")]
    pub pid_file: Option<PathBuf>,
    /// Run after the reload; failing puts the last good files back.
    #[arg(long, env = "VELTRIX_AGENT_HEALTH")]
    pub health: Option<String>,
    /// Coalesce bursts: wait MIN after the last change, at most MAX after the first.
    #[arg(long, env = "VELTRIX_AGENT_WAIT", value_name = "MIN[:MAX]")]
    pub wait: Option<String>,
    /// Where the last good revision is kept (to start from while the servers are away).
    #[arg(long, env = "VELTRIX_AGENT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Render, check and write once, report, and exit.
    #[arg(long, env = "VELTRIX_AGENT_ONCE")]
    pub once: bool,
    /// Serve /healthz and /metrics here.
    #[arg(long, env = "VELTRIX_AGENT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Report the applied revision at least this often.
    #[arg(long, env = "VELTRIX_AGENT_KEEPALIVE", value_parser = parse_duration)]
    pub keepalive: Option<Duration>,
    /// How long --check, --reload and --health may run.
    #[arg(long, env = "VELTRIX_AGENT_COMMAND_TIMEOUT", value_parser = parse_duration)]
    pub command_timeout: Option<Duration>,
    /// With --once: how long to try reaching the servers.
    #[arg(long, env = "VELTRIX_AGENT_TIMEOUT", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    #[arg(long, env = "VELTRIX_AGENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[arg(long, env = "VELTRIX_AGENT_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    #[arg(long, env = "VELTRIX_AGENT_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    #[arg(long, env = "VELTRIX_AGENT_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// A YAML file with these settings (and `outputs:` for several).
    #[arg(long, env = "VELTRIX_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The YAML file: the flags' names, and a list of outputs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    query_url: Option<String>,
    namespace: Option<String>,
    prefix: Option<String>,
    client_id: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    outputs: Vec<FileOutput>,
    check: Option<String>,
    reload: Option<String>,
    reload_signal: Option<String>,
    pid_file: Option<PathBuf>,
    health: Option<String>,
    wait: Option<String>,
    state_dir: Option<PathBuf>,
    keepalive: Option<String>,
    command_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOutput {
    dir: Option<PathBuf>,
    file: Option<PathBuf>,
    format: Option<Format>,
    template: Option<PathBuf>,
    dest: Option<PathBuf>,
}

/// How a reload is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    Command(String),
    Signal { signal: nix::sys::signal::Signal, pid_file: PathBuf },
}

/// Everything the agent runs with, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub query_url: String,
    pub namespace: String,
    pub prefix: String,
    pub client_id: String,
    pub labels: BTreeMap<String, String>,
    pub outputs: Vec<Output>,
    pub check: Option<String>,
    pub reload: Option<Reload>,
    pub health: Option<String>,
    pub wait: Option<(Duration, Duration)>,
    pub state_dir: Option<PathBuf>,
    pub once: bool,
    pub metrics_listen: Option<SocketAddr>,
    pub keepalive: Duration,
    pub command_timeout: Duration,
    pub timeout: Duration,
    pub token: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration such as 200ms, 5s, 2m or 1h"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("{s:?}: the unit must be ms, s, m or h")),
    })
}

/// `MIN[:MAX]`; MAX defaults to 4 x MIN.
pub fn parse_wait(s: &str) -> anyhow::Result<(Duration, Duration)> {
    let (min, max) = match s.split_once(':') {
        Some((min, max)) => {
            (parse_duration(min).map_err(anyhow::Error::msg)?, parse_duration(max).map_err(anyhow::Error::msg)?)
        }
        None => {
            let min = parse_duration(s).map_err(anyhow::Error::msg)?;
            (min, min.saturating_mul(4))
        }
    };
    if max < min {
        bail!("--wait {s}: MAX must not be less than MIN");
    }
    Ok((min, max))
}

fn parse_signal(s: &str) -> anyhow::Result<nix::sys::signal::Signal> {
    let name = s.trim().to_ascii_uppercase();
    let name = if name.starts_with("SIG") { name } else { format!("SIG{name}") };
    name.parse().map_err(|_| anyhow::anyhow!("--reload-signal {s}: not a signal name such as HUP or USR1"))
}

fn host_name() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "veltrix-agent".into())
}

impl Args {
    /// Merges the YAML file (if any) under the flags and checks the result.
    pub fn settings(self) -> anyhow::Result<Settings> {
        let file: File = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                yaml_serde::from_str(&text)
                    .with_context(|| format!("{}: not a valid agent configuration", path.display()))?
            }
            None => File::default(),
        };
        let query_url = self
            .query_url
            .or(file.query_url)
            .or_else(|| std::env::var("VELTRIX_QUERY_URL").ok())
            .unwrap_or_else(|| "http://127.0.0.1:50052".into());
        let Some(namespace) = self.namespace.or(file.namespace) else {
            bail!("--namespace is required (or `namespace:` in --config)");
        };
        let mut labels = file.labels;
        for label in &self.labels {
            let Some((k, v)) = label.split_once('=') else { bail!("--label {label}: must be k=v") };
            labels.insert(k.trim().to_owned(), v.trim().to_owned());
        }
        let mut outputs = Vec::new();
        for o in file.outputs {
            outputs.push(match (o.dir, o.file, o.template, o.dest) {
                (Some(dir), None, None, None) => Output::Dir(dir),
                (None, Some(path), None, None) => Output::File { path, format: o.format.unwrap_or(Format::Json) },
                (None, None, Some(src), Some(dest)) => Output::Template { src, dest },
                _ => {
                    bail!("each output needs exactly one of `dir`, `file` (with `format`) or `template` (with `dest`)")
                }
            });
        }
        outputs.extend(self.dir.map(Output::Dir));
        outputs.extend(self.file.map(|path| Output::File { path, format: self.format }));
        for t in &self.templates {
            let Some((src, dest)) = t.split_once(':') else { bail!("--template {t}: must be SRC:DEST") };
            outputs.push(Output::Template { src: src.into(), dest: dest.into() });
        }
        if outputs.is_empty() {
            bail!("nothing to write: give --dir, --file or --template (or `outputs:` in --config)");
        }
        let reload = match (self.reload.or(file.reload), self.reload_signal.or(file.reload_signal)) {
            (Some(_), Some(_)) => bail!("--reload and --reload-signal exclude each other"),
            (Some(cmd), None) => Some(Reload::Command(cmd)),
            (None, Some(sig)) => {
                let Some(pid_file) = self.pid_file.or(file.pid_file) else { bail!("--reload-signal needs --pid-file") };
                Some(Reload::Signal { signal: parse_signal(&sig)?, pid_file })
            }
            (None, None) => None,
        };
        let duration = |flag: Option<Duration>, file: Option<String>, default: Duration| -> anyhow::Result<Duration> {
            match (flag, file) {
                (Some(d), _) => Ok(d),
                (None, Some(s)) => parse_duration(&s).map_err(anyhow::Error::msg),
                (None, None) => Ok(default),
            }
        };
        Ok(Settings {
            query_url,
            namespace,
            prefix: self.prefix.or(file.prefix).unwrap_or_default(),
            client_id: self.client_id.or(file.client_id).unwrap_or_else(host_name),
            labels,
            outputs,
            check: self.check.or(file.check),
            reload,
            health: self.health.or(file.health),
            wait: self.wait.or(file.wait).map(|w| parse_wait(&w)).transpose()?,
            state_dir: self.state_dir.or(file.state_dir),
            once: self.once,
            metrics_listen: self.metrics_listen,
            keepalive: duration(self.keepalive, file.keepalive, Duration::from_secs(20))?,
            command_timeout: duration(self.command_timeout, file.command_timeout, Duration::from_secs(30))?,
            timeout: self.timeout.unwrap_or(Duration::from_secs(30)),
            token: self.token,
            ca_cert: self.ca_cert,
            client_identity: self.client_cert.zip(self.client_key),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("veltrix-agent").chain(list.iter().copied())).expect("parses")
    }

    #[test]
    fn a_yaml_file_gives_several_outputs_and_flags_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("agent.yaml");
        std::fs::write(
            &file,
            "namespace: web\nprefix: app/\nlabels: {zone: a}\nwait: 100ms:1s\nreload-signal: hup\npid-file: /run/app.pid\noutputs:\n  - dir: /config/current\n  - file: /etc/app.yaml\n    format: yaml\n  - template: app.conf.j2\n    dest: /etc/app.conf\n",
        )
        .expect("write");
        let s = args(&["--config", file.to_str().expect("utf-8"), "--namespace", "web2", "--label", "canary=true"])
            .settings()
            .expect("valid");
        assert_eq!((s.namespace.as_str(), s.prefix.as_str()), ("web2", "app/"));
        assert_eq!(s.labels.get("zone").map(String::as_str), Some("a"));
        assert_eq!(s.labels.get("canary").map(String::as_str), Some("true"));
        assert_eq!(s.outputs.len(), 3);
        assert_eq!(s.outputs[1], Output::File { path: "/etc/app.yaml".into(), format: Format::Yaml });
        assert_eq!(s.wait, Some((Duration::from_millis(100), Duration::from_secs(1))));
        assert!(matches!(s.reload, Some(Reload::Signal { signal: nix::sys::signal::Signal::SIGHUP, .. })));

        std::fs::write(&file, "namespace: web\nbogus: 1\n").expect("write");
        assert!(
            args(&["--config", file.to_str().expect("utf-8"), "--dir", "d"]).settings().is_err(),
            "unknown fields are refused"
        );
        assert!(args(&["--namespace", "web"]).settings().is_err(), "an output is required");
        assert!(args(&["--namespace", "web", "--dir", "d", "--wait", "2s:1s"]).settings().is_err());
        assert_eq!(parse_wait("250ms").expect("valid"), (Duration::from_millis(250), Duration::from_secs(1)));
    }
}
