//! The configuration is a function of the arguments and variables given to
//! it: the defaults tests start from ignore the process environment.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::process::Command;

#[test]
fn defaults_ignore_the_process_environment() {
    const VAR: &str = "VELTRIX_NATS_URL";
    if std::env::var_os(VAR).is_none() {
        // This same test again, in a child process that has the variable.
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["defaults_ignore_the_process_environment", "--exact", "--nocapture"])
            .env(VAR, "nats://elsewhere:1")
            .status()
            .unwrap();
        assert!(status.success(), "the child run failed");
        return;
    }
    assert_eq!(veltrix_command::Config::defaults().nats.nats_url, "nats://127.0.0.1:4222");
    assert_eq!(veltrix_query::Config::defaults().nats.nats_url, "nats://127.0.0.1:4222");
}
