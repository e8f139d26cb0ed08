//! A watch stream that survives disconnects: it remembers the last revision
//! it delivered and resumes after it; when that history is no longer kept it
//! starts again from a snapshot (which replaces what the receiver knew).

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures::Stream;
use tokio::{sync::mpsc, task::JoinHandle};
use veltrix_proto::v1::{WatchRequest, watch_response::Event};

use crate::{ChangeSet, Client, Entry, Error, Result, Revision, WatchEvent};

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// Changes committed after the call.
    Now,
    /// Changes from this revision on (history first, then live).
    From(Revision),
    /// The matching keys now, then every change after them.
    Snapshot,
}

pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The stream [`Client::watch`] returns; the background task stops when it
/// is dropped.
pub struct WatchStream {
    rx: mpsc::Receiver<Result<WatchEvent>>,
    task: JoinHandle<()>,
}

impl WatchStream {
    pub(crate) fn start(client: Client, namespace: String, prefix: String, start: WatchStart) -> Self {
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(Watcher { client, namespace, prefix, tx }.run(start));
        Self { rx, task }
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

struct Watcher {
    client: Client,
    namespace: String,
    prefix: String,
    tx: mpsc::Sender<Result<WatchEvent>>,
}

/// What to do after a stream ended.
pub(crate) enum Next {
    Reconnect,
    Resnapshot,
    Stop,
}

impl Watcher {
    async fn run(self, start: WatchStart) {
        // The next revision to receive; `None` with `snapshot` set: start
        // from a snapshot.
        let (mut next, mut snapshot) = match start {
            WatchStart::From(r) => (Some(r.max(1)), false),
            WatchStart::Snapshot => (None, true),
            WatchStart::Now => loop {
                match self.client.revision(&self.namespace).await {
                    Ok(r) => break (Some(r + 1), false),
                    Err(Error::NotFound { .. }) => break (Some(1), false),
                    Err(e) if e.is_retryable() => tokio::time::sleep(self.client.backoff()).await,
                    Err(e) => {
                        let _ = self.tx.send(Err(e)).await;
                        return;
                    }
                }
            },
        };
        let mut backoff = self.client.backoff();
        loop {
            let outcome = self.stream(&mut next, &mut snapshot, &mut backoff).await;
            match outcome {
                Next::Stop => return,
                Next::Resnapshot => {
                    (next, snapshot) = (None, true);
                }
                Next::Reconnect => {
                    tokio::time::sleep(backoff.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One watch call, until it ends.
    async fn stream(&self, next: &mut Option<Revision>, snapshot: &mut bool, backoff: &mut Duration) -> Next {
        let mut request = tonic::Request::new(WatchRequest {
            namespace: self.namespace.clone(),
            prefix: self.prefix.clone(),
            start_revision: if *snapshot { None } else { *next },
            include_snapshot: *snapshot,
        });
        self.client.add_metadata(request.metadata_mut());
        let mut stream = match self.client.query().watch(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return self.failed(Error::from(status)).await,
        };
        let mut chunks: Vec<Entry> = Vec::new();
        loop {
            let message = match stream.message().await {
                Ok(Some(message)) => message,
                // The server ended the stream without a status: reconnect.
                Ok(None) => return Next::Reconnect,
                Err(status) => return self.failed(Error::from(status)).await,
            };
            *backoff = self.client.backoff();
            let Some(event) = message.event.and_then(|e| decode(e, &mut chunks, next, snapshot)) else { continue };
            if self.tx.send(Ok(event)).await.is_err() {
                return Next::Stop;
            }
        }
    }

    async fn failed(&self, error: Error) -> Next {
        let next = after_error(&error);
        match next {
            Next::Resnapshot => {
                tracing::info!(namespace = %self.namespace, error = %error, "watch history gone; starting from a snapshot");
            }
            Next::Reconnect => {
                tracing::debug!(namespace = %self.namespace, error = %error, "watch interrupted; resuming")
            }
            Next::Stop => {
                let _ = self.tx.send(Err(error)).await;
            }
        }
        next
    }
}

/// What a resuming stream does after `error`: start over from a snapshot
/// when its history is gone, resume after what it delivered when the
/// connection or the server failed, else stop and hand the error on.
pub(crate) fn after_error(error: &Error) -> Next {
    match error {
        Error::Compacted { .. } => Next::Resnapshot,
        Error::Unavailable { .. }
        | Error::ResourceExhausted { .. }
        | Error::DeadlineExceeded { .. }
        | Error::Other { .. } => Next::Reconnect,
        _ => Next::Stop,
    }
}

/// One message of a watch (or Sync) stream as the caller sees it: snapshot
/// chunks are gathered in `chunks` until the last; `next` and `snapshot`
/// follow where a new stream must resume.
pub(crate) fn decode(
    event: Event,
    chunks: &mut Vec<Entry>,
    next: &mut Option<Revision>,
    snapshot: &mut bool,
) -> Option<WatchEvent> {
    Some(match event {
        Event::Snapshot(s) => {
            chunks.extend(s.kvs.into_iter().map(Entry::from));
            if !s.last {
                return None;
            }
            *snapshot = false;
            *next = Some(s.revision + 1);
            WatchEvent::Snapshot { entries: std::mem::take(chunks), revision: s.revision }
        }
        Event::Change(record) => {
            *next = Some(record.revision + 1);
            WatchEvent::Changes(ChangeSet::from(record))
        }
        Event::Progress(p) => {
            *next = Some(next.unwrap_or(0).max(p.revision + 1));
            WatchEvent::Progress(p.revision)
        }
    })
}
