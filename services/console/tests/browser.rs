//! The console end to end in a real browser: Playwright (`playwright-core`)
//! driving Debian's Chromium against `veltrix-console` and both services on
//! real NATS and Redis. The steps are in `web/e2e/console.mjs`; this test
//! seeds the data, starts everything and runs them. Screenshots of the main
//! screens land in `target/console-screenshots/`.
//!
//! Needs Node.js, `web/node_modules` (`npm ci` in `services/console/web`)
//! and Chromium (`VELTRIX_CHROMIUM`, default `/usr/bin/chromium`); `just
//! test` installs all three when missing. Missing any is a failure.

mod common;

use std::path::{Path, PathBuf};

use common::{ADMIN, READER, start};
use veltrix_client::{AdminOptions, Client, WriteOptions};

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// target/ (the test runs from target/<profile>/deps/).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    exe.ancestors().nth(3).expect("a target directory").to_path_buf()
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("VELTRIX_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    assert!(
        path.exists(),
        "Chromium is missing at {}: install Debian's `chromium` package (`just test` does), or set VELTRIX_CHROMIUM",
        path.display()
    );
    path
}

fn node_ready() {
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "Node.js is missing: install it (Debian's `nodejs` package; `just test` does)"
    );
    assert!(
        web_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci` in services/console/web (`just test` does)"
    );
}

async fn seed(client: &Client) {
    let write = |reason: &str| WriteOptions { reason: reason.into(), ..Default::default() };
    for ns in ["pay/staging", "pay/prod"] {
        client
            .put_with(
                ns,
                "limits",
                "{\"rps\": 100}",
                &WriteOptions { content_type: "application/json".into(), ..write("seed") },
            )
            .await
            .expect("seed");
        client.put_with(ns, "db/url", "postgres://primary", &write("seed")).await.expect("seed");
    }
    client.put_with("pay/staging", "db/pool", "20", &write("bigger pool")).await.expect("seed");
    client.put_with("pay/staging", "feature/new", "true", &write("try it")).await.expect("seed");
    client.put_with("ops/dns", "ttl", "30", &write("seed")).await.expect("seed");
    let schema = r#"{"type": "object", "properties": {"rps": {"type": "integer", "minimum": 1}}, "required": ["rps"]}"#;
    let options = AdminOptions { reason: "limits are checked".into(), ..Default::default() };
    client.set_schema("pay/prod", "limits", schema, &options).await.expect("a schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    node_ready();
    let chromium = chromium();
    let env = start(|_| {}).await;
    let client = Client::builder()
        .command_url(env.system.command_url())
        .query_url(env.system.query_url())
        .token(ADMIN)
        .build()
        .expect("a client");
    seed(&client).await;
    let shots = target_dir().join("console-screenshots");
    let ctl = veltrix_testsystem::binary("veltrixctl");
    let mut node = tokio::process::Command::new("node");
    node.arg(web_dir().join("e2e/console.mjs"))
        .current_dir(web_dir())
        .env("CONSOLE_URL", format!("http://{}", env.console.addr))
        .env("ADMIN_TOKEN", ADMIN)
        .env("READER_TOKEN", READER)
        .env("VELTRIXCTL", ctl)
        .env("VELTRIX_COMMAND_URL", env.system.command_url())
        .env("VELTRIX_QUERY_URL", env.system.query_url())
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", chromium)
        .env_remove("VELTRIX_TOKEN")
        .kill_on_drop(true);
    // The steps print as they go (the test's output shows them on failure).
    let status = tokio::time::timeout(std::time::Duration::from_secs(240), node.status())
        .await
        .expect("the browser steps finish within 4 minutes")
        .expect("node runs");
    assert!(
        status.success(),
        "the browser steps failed; see their output above and the screenshots in {}",
        shots.display()
    );
    for screen in ["namespaces", "explorer", "key", "history", "compare", "schemas", "fleet", "conflict"] {
        assert!(shots.join(format!("{screen}.png")).exists(), "a screenshot of {screen}");
    }
}
