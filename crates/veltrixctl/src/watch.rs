//! `watch`: change sets as they are committed, until Ctrl-C or `--count`.

use futures::StreamExt;
use veltrix_client::{Client, WatchEvent, WatchStart};

use crate::{Failure, cli::Output, other, output};

pub async fn watch(
    client: &Client,
    out: Output,
    ns: &str,
    prefix: &str,
    start: WatchStart,
    count: Option<usize>,
) -> Result<(), Failure> {
    let mut stream = client.watch(ns, prefix, start);
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

/// Where `--from` and `--snapshot` start.
pub fn start(from: Option<u64>, snapshot: bool) -> WatchStart {
    match (from, snapshot) {
        (Some(r), _) => WatchStart::From(r),
        (None, true) => WatchStart::Snapshot,
        (None, false) => WatchStart::Now,
    }
}
