//! The application's commands: check, reload, health. Each runs with
//! `sh -c`, within a time limit; a failure carries the tail of its stderr.

use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::{Context, anyhow};
use tokio::process::Command;

use crate::config::Reload;

/// The most bytes of a command's stderr a NACK carries (its end).
const TAIL: usize = 2048;

/// What a hook sees besides its own environment.
#[derive(Debug, Clone, Default)]
pub struct HookEnv {
    pub staged: Vec<PathBuf>,
    pub revision: u64,
}

/// Runs `cmd`; `Err` says how it failed, with its stderr's tail.
pub async fn run(cmd: &str, env: &HookEnv, timeout: Duration) -> anyhow::Result<()> {
    let mut command = Command::new("sh");
    command.arg("-c").arg(cmd).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    if let Some(first) = env.staged.first() {
        command.env("VELTRIX_STAGED", first);
    }
    let all: Vec<String> = env.staged.iter().map(|p| p.display().to_string()).collect();
    command.env("VELTRIX_STAGED_ALL", all.join("\n")).env("VELTRIX_REVISION", env.revision.to_string());
    let child = command.spawn().with_context(|| format!("cannot run `{cmd}`"))?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => output.with_context(|| format!("`{cmd}` failed to run"))?,
        Err(_) => return Err(anyhow!("`{cmd}` did not finish within {timeout:?}")),
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut start = stderr.len().saturating_sub(TAIL);
    while !stderr.is_char_boundary(start) {
        start = start.saturating_add(1);
    }
    let tail = stderr.get(start..).unwrap_or_default().trim();
    let status = output.status.code().map_or_else(|| "was killed".to_owned(), |c| format!("exited {c}"));
    Err(if tail.is_empty() { anyhow!("`{cmd}` {status}") } else { anyhow!("{tail}") })
}

/// Reloads the application.
pub async fn reload(how: &Reload, env: &HookEnv, timeout: Duration) -> anyhow::Result<()> {
    match how {
        Reload::Command(cmd) => run(cmd, env, timeout).await,
        Reload::Signal { signal, pid_file } => {
            let text = tokio::fs::read_to_string(pid_file)
                .await
                .with_context(|| format!("cannot read the pid file {}", pid_file.display()))?;
            let pid: i32 = text.trim().parse().map_err(|_| anyhow!("{}: not a process id", pid_file.display()))?;
            if pid <= 1 {
                return Err(anyhow!("{}: refusing to signal process {pid}", pid_file.display()));
            }
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), *signal)
                .map_err(|e| anyhow!("cannot send {signal} to process {pid}: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_command_reports_its_stderr_tail_and_a_slow_one_times_out() {
        let env = HookEnv { staged: vec!["/tmp/x".into()], revision: 3 };
        run("test \"$VELTRIX_STAGED\" = /tmp/x && test \"$VELTRIX_REVISION\" = 3", &env, Duration::from_secs(5))
            .await
            .expect("sees its environment");
        let e = run("echo noise >&2; echo 'invalid port' >&2; exit 3", &env, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(e.to_string(), "noise\ninvalid port");
        let e = run("exit 4", &env, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(e.to_string(), "`exit 4` exited 4");
        let e = run("sleep 5", &env, Duration::from_millis(100)).await.unwrap_err();
        assert!(e.to_string().contains("did not finish"), "{e}");
    }
}
