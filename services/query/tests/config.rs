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

#[test]
fn page_token_keys_are_long_enough_and_can_come_from_a_file() {
    let parse = |args: &[&str]| {
        let args = std::iter::once("veltrix-query").chain(args.iter().copied()).map(Into::into);
        veltrix_server::parse_from::<veltrix_query::Config>(args, |_| None)
    };
    let short = parse(&["--page-token-key", "only sixteen byt"]).unwrap_err().to_string();
    assert!(short.contains("at least 32 bytes"), "{short}");
    let from_env = veltrix_server::parse_from::<veltrix_query::Config>(["veltrix-query".into()], |name| {
        (name == "VELTRIX_PAGE_TOKEN_KEY").then(|| "too short".into())
    });
    assert!(from_env.is_err(), "a short key from the environment is refused too");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    let key = "k".repeat(40);
    std::fs::write(&file, format!("{key}\n")).unwrap();
    let config = parse(&["--page-token-key-file", file.to_str().unwrap()]).unwrap();
    assert_eq!(config.page_token_key().unwrap(), Some(key.into_bytes()), "the trailing newline is not part of it");
    std::fs::write(&file, "short\n").unwrap();
    let config = parse(&["--page-token-key-file", file.to_str().unwrap()]).unwrap();
    assert!(config.page_token_key().unwrap_err().contains("at least 32 bytes"));
    assert!(parse(&["--page-token-key", &"k".repeat(32), "--page-token-key-file", "x"]).is_err(), "one or the other");
}

#[test]
fn a_short_page_token_key_stops_the_service_at_start_up() {
    let query = std::path::PathBuf::from(env!("CARGO_BIN_EXE_veltrix-query"));
    let out = Command::new(query)
        .args(["--listen", "127.0.0.1:0", "--page-token-key", "short"])
        .env_remove("VELTRIX_PAGE_TOKEN_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32 bytes"));
}

#[test]
fn the_redis_prefix_has_no_glob_characters() {
    for bad in ["vel*", "a?b", "x[1]", "back\\slash", "", "with space", "{tag}"] {
        let args = ["veltrix-query", "--redis-prefix", bad].map(std::ffi::OsString::from);
        assert!(veltrix_server::parse_from::<veltrix_query::Config>(args, |_| None).is_err(), "{bad:?} is refused");
    }
    let args = ["veltrix-query", "--redis-prefix", "veltrix-prod.v2"].map(std::ffi::OsString::from);
    assert!(veltrix_server::parse_from::<veltrix_query::Config>(args, |_| None).is_ok());
}

#[test]
fn secrets_stay_out_of_debug_and_help() {
    let key = "page-token-key-secret-0123456789abcdef";
    let args = [
        "veltrix-query",
        "--redis-url",
        "redis://reader:redis-url-secret@cache:6379",
        "--redis-password",
        "redis-password-secret",
        "--page-token-key",
        key,
        "--nats-url",
        "nats://nats-user:nats-url-secret@bus:4222,nats://bus2:4222",
        "--nats-user",
        "nats-user",
        "--nats-password",
        "nats-password-secret",
        "--nats-token",
        "nats-token-secret",
    ]
    .map(std::ffi::OsString::from);
    let config = veltrix_server::parse_from::<veltrix_query::Config>(args, |_| None).unwrap();
    let secrets = [
        key,
        "redis-url-secret",
        "redis-password-secret",
        "nats-url-secret",
        "nats-password-secret",
        "nats-token-secret",
    ];
    let debug = format!("{config:?}");
    for secret in secrets {
        assert!(!debug.contains(secret), "{secret} in Debug: {debug}");
    }
    assert!(debug.contains("bus2:4222"), "what is not secret stays: {debug}");

    // --help with the secrets in the environment shows none of them.
    let out = Command::new(env!("CARGO_BIN_EXE_veltrix-query"))
        .arg("--help")
        .env("VELTRIX_REDIS_URL", "redis://reader:redis-url-secret@cache:6379")
        .env("VELTRIX_NATS_URL", "nats://nats-user:nats-url-secret@bus:4222")
        .env("VELTRIX_PAGE_TOKEN_KEY", key)
        .env("VELTRIX_NATS_TOKEN", "nats-token-secret")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("VELTRIX_NATS_URL"), "{help}");
    for secret in secrets {
        assert!(!help.contains(secret), "{secret} in --help");
    }
}
