//! The README cannot rot: its `veltrixctl` session is run against real
//! servers and every output compared (times matched loosely), and its
//! `grpcurl` examples are run through `buf curl` (a `grpcurl` stand-in
//! translates the flags), with each `# => ` answer compared as JSON.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::{collections::HashMap, path::Path, process::Command};

use veltrix_testsystem::{Ctl, TestSystem};

const README: &str = include_str!("../../../README.md");
/// The addresses the README uses, replaced by the test's.
const README_COMMAND: &str = "127.0.0.1:50051";
const README_QUERY: &str = "127.0.0.1:50052";

/// The fenced blocks of `language`, in order.
fn blocks(language: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) if lang == language => current = Some(String::new()),
            (Some(block), Some("")) => {
                out.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

/// Replaces every RFC 3339 time (`2026-11-26T07:46:24.772363Z`, with or
/// without fractions) by `<time>`.
fn loose_times(text: &str) -> String {
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let (mut out, mut i) = (String::with_capacity(text.len()), 0);
    while i < bytes.len() {
        let fits = bytes.len() >= i + shape.len()
            && shape.iter().zip(&bytes[i..]).all(|(s, b)| if *s == b'd' { b.is_ascii_digit() } else { s == b });
        if !fits {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let mut end = i + shape.len();
        if bytes.get(end) == Some(&b'.') {
            end += 1;
            while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
        }
        if bytes.get(end) == Some(&b'Z') {
            end += 1;
        }
        out.push_str("<time>");
        i = end;
    }
    out
}

/// One `$ command` of a console block and the lines it prints.
struct Step {
    command: String,
    expected: Vec<String>,
}

fn steps(block: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for line in block.lines() {
        match line.strip_prefix("$ ") {
            Some(command) => steps.push(Step { command: command.to_owned(), expected: Vec::new() }),
            None => steps.last_mut().expect("a console block starts with a command").expected.push(line.to_owned()),
        }
    }
    steps
}

fn with_test_addresses(text: &str, env: &Ctl) -> String {
    let strip = |url: &str| url.trim_start_matches("http://").to_owned();
    text.replace(README_COMMAND, &strip(&env.command_url)).replace(README_QUERY, &strip(&env.query_url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_veltrixctl_session_prints_what_the_readme_shows() {
    let sessions = blocks("console");
    assert!(!sessions.is_empty(), "the README has a veltrixctl session");
    for session in sessions {
        let env = Ctl::new(TestSystem::start().await);
        let dir = tempfile::tempdir().unwrap();
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_veltrixctl")).parent().unwrap().to_owned();
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        let mut vars: HashMap<String, String> = HashMap::new();
        let mut status = 0;
        for step in steps(&session) {
            let command = with_test_addresses(&step.command, &env);
            if let Some(assignments) = command.strip_prefix("export ") {
                for assignment in assignments.split_whitespace() {
                    let (name, value) = assignment.split_once('=').unwrap();
                    vars.insert(name.to_owned(), value.to_owned());
                }
                continue;
            }
            // The README shows a file with `cat`: that is the file the reader has.
            if let Some(file) = command.strip_prefix("cat ")
                && !dir.path().join(file).exists()
            {
                std::fs::write(dir.path().join(file), step.expected.join("\n") + "\n").unwrap();
            }
            let script = format!("(exit {status}); {command}");
            let mut cmd = Command::new("bash");
            cmd.args(["-c", &format!("{{ {script}; }} 2>&1")])
                .current_dir(dir.path())
                .env("PATH", &path)
                .env_remove("VELTRIX_TOKEN")
                .env_remove("VELTRIX_ACTOR")
                .envs(&vars);
            let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
            status = out.status.code().unwrap_or(1);
            let printed = loose_times(&String::from_utf8_lossy(&out.stdout));
            let expected: Vec<String> = step.expected.iter().map(|l| loose_times(l)).collect();
            let printed: Vec<&str> = printed.lines().collect();
            assert_eq!(printed, expected, "`$ {}` printed something else than the README shows", step.command);
        }
    }
}

/// A `grpcurl` that runs `buf curl`: the flags the README uses, translated.
const GRPCURL: &str = r#"#!/usr/bin/env bash
set -euo pipefail
args=(curl --protocol grpc --http2-prior-knowledge)
target=""
while [ $# -gt 0 ]; do
    case "$1" in
        -plaintext) ;;
        -d) args+=(-d "$2"); shift ;;
        -H) args+=(-H "$2"); shift ;;
        list) args+=(--list-services) ;;
        -*) echo "grpcurl stand-in: unknown flag $1" >&2; exit 2 ;;
        *) if [ -z "$target" ]; then target="http://$1"; else target="$target/$1"; fi ;;
    esac
    shift
done
exec "$BUF" "${args[@]}" "$target"
"#;

/// One `grpcurl ...` command (its continued lines joined) and the answer a
/// `# => ` line after it shows, if any.
struct Example {
    command: String,
    answer: Option<String>,
}

fn examples(block: &str) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut open: Option<String> = None;
    for line in block.lines() {
        if let Some(command) = open.as_mut() {
            command.push('\n');
            command.push_str(line);
        } else if let Some(answer) = line.trim().strip_prefix("# => ") {
            out.last_mut().expect("an answer follows a command").answer = Some(answer.to_owned());
            continue;
        } else if line.starts_with("grpcurl ") {
            open = Some(line.to_owned());
        } else {
            continue;
        }
        let command = open.as_deref().unwrap_or_default();
        let quotes_balanced = command.matches('\'').count().is_multiple_of(2);
        if quotes_balanced && !command.trim_end().ends_with('\\') {
            out.push(Example { command: open.take().unwrap_or_default(), answer: None });
        }
    }
    out
}

fn buf() -> String {
    let buf = std::env::var("VELTRIX_BUF").unwrap_or_else(|_| "buf".to_owned());
    let found = Command::new(&buf).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the README test needs buf ({buf}): run `cargo xtask tools`, then set VELTRIX_BUF=.tools/bin/buf (`cargo xtask test` does both)"
    );
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpcurl_examples_work() {
    let buf = buf();
    let env = Ctl::new(TestSystem::start().await);
    let dir = tempfile::tempdir().unwrap();
    let stand_in = dir.path().join("grpcurl");
    std::fs::write(&stand_in, GRPCURL).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let all: Vec<Example> = blocks("sh").iter().flat_map(|b| examples(b)).collect();
    assert!(all.len() >= 10, "the README's grpcurl examples are found: {}", all.len());
    for example in all {
        let command = with_test_addresses(&example.command, &env);
        // A watch streams until it is stopped: its first messages are enough.
        let streaming = command.contains("/Watch");
        let script = if streaming { format!("timeout 3 {command}") } else { command.clone() };
        let mut cmd = Command::new("bash");
        cmd.args(["-c", &script]).env("PATH", &path).env("BUF", &buf);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let ok = out.status.success() || (streaming && out.status.code() == Some(124) && !stdout.trim().is_empty());
        assert!(ok, "README example failed ({}):\n{}\n{stdout}{stderr}", out.status, example.command);
        if let Some(answer) = example.answer {
            let expected: serde_json::Value = serde_json::from_str(&answer).unwrap();
            let got: serde_json::Value = serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("not JSON ({e}) from\n{}\n{stdout}", example.command));
            assert_eq!(got, expected, "the README shows another answer for\n{}", example.command);
        }
        // Each write is readable before the next example reads it.
        let written = serde_json::from_str::<serde_json::Value>(&stdout).ok().and_then(|v| {
            let revision = v.get("revision")?.as_str()?.to_owned();
            command.contains("ConfigCommand/").then_some(revision)
        });
        if let Some(revision) = written {
            env.ok(&["list", "payments/prod", "--min-revision", &revision]).await;
        }
    }
}

#[test]
fn times_are_matched_loosely() {
    assert_eq!(loose_times("at 2026-11-26T07:46:24.772363Z and 2026-11-26T07:47:02Z."), "at <time> and <time>.");
    assert_eq!(loose_times("revision 12"), "revision 12");
}
