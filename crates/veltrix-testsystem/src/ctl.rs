//! `veltrixctl` run as a child process against a [`TestSystem`], as a user
//! types it.

use std::process::{Command, Output};

use crate::{TestSystem, binary};

/// Runs the built `veltrixctl` with the system's URLs in its environment
/// (and no token or actor from the test's own environment). Holds the
/// system it runs against.
pub struct Ctl {
    pub system: TestSystem,
    program: std::path::PathBuf,
    pub command_url: String,
    pub query_url: String,
}

impl Ctl {
    pub fn new(system: TestSystem) -> Self {
        let (command_url, query_url) = (system.command_url(), system.query_url());
        Self { system, program: binary("veltrixctl"), command_url, query_url }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .env("VELTRIX_COMMAND_URL", &self.command_url)
            .env("VELTRIX_QUERY_URL", &self.query_url)
            .env_remove("VELTRIX_TOKEN")
            .env_remove("VELTRIX_ACTOR");
        cmd
    }

    /// Runs `cmd` off the async runtime's threads.
    pub async fn output(mut cmd: Command) -> Output {
        tokio::task::spawn_blocking(move || cmd.output().expect("run veltrixctl")).await.expect("the runner")
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        Self::output(self.cmd(args)).await
    }

    /// Standard output of a run that must succeed.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.status.success(), "veltrixctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// Standard error of a run that must exit with `code` and say why.
    pub async fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "veltrixctl {args:?}: {stderr}");
        assert!(!stderr.is_empty(), "a message on stderr");
        stderr
    }
}
