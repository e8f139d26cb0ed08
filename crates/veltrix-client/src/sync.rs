//! A Sync stream that survives disconnects: like [`crate::WatchStream`] it
//! resumes after the last revision it delivered (or starts from a snapshot
//! when that history is gone), and it carries the caller's reports: each
//! [`SyncHandle::ack`] / [`SyncHandle::nack`] goes to the server, the last
//! acknowledged revision is repeated every keepalive interval, and a new
//! stream subscribes with it, so the fleet ledger always knows what this
//! client runs.

use std::{
    collections::BTreeMap,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures::Stream;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_stream::wrappers::ReceiverStream;
use veltrix_proto::v1::{
    AgentInfo, SyncAck, SyncNack, SyncRequest, SyncSubscribe, sync_request::Request, sync_response::Event,
    watch_response,
};

use crate::{
    Client, Entry, Error, Result, Revision, WatchEvent, WatchStart,
    watch::{MAX_BACKOFF, Next, after_error, decode},
};

/// Where a client rejected a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStep {
    Render,
    Check,
    Reload,
    Health,
}

impl SyncStep {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Render => "render",
            Self::Check => "check",
            Self::Reload => "reload",
            Self::Health => "health",
        }
    }
}

pub(crate) fn step_wire(step: SyncStep) -> veltrix_proto::v1::SyncStep {
    match step {
        SyncStep::Render => veltrix_proto::v1::SyncStep::Render,
        SyncStep::Check => veltrix_proto::v1::SyncStep::Check,
        SyncStep::Reload => veltrix_proto::v1::SyncStep::Reload,
        SyncStep::Health => veltrix_proto::v1::SyncStep::Health,
    }
}

/// Who the client is and what it follows.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Stable per instance (a pod name, never an IP).
    pub client_id: String,
    pub prefix: String,
    pub labels: BTreeMap<String, String>,
    /// The agent's name and version (default: this library's).
    pub agent: (String, String),
    /// What the client runs already (0: nothing): reported on subscribing.
    pub applied: Revision,
    /// Where the stream starts.
    pub start: WatchStart,
    /// The applied revision is reported again at least this often.
    pub keepalive: Duration,
}

impl SyncOptions {
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            prefix: String::new(),
            labels: BTreeMap::new(),
            agent: ("veltrix-client".into(), env!("CARGO_PKG_VERSION").into()),
            applied: 0,
            start: WatchStart::Snapshot,
            keepalive: Duration::from_secs(20),
        }
    }
}

/// A report to send.
#[derive(Debug, Clone)]
enum Report {
    Ack { revision: Revision, digest: String },
    Nack { revision: Revision, applied: Revision, step: SyncStep, error: String },
}

/// Cloneable: the part of a [`SyncHandle`] that reports.
#[derive(Debug, Clone)]
pub struct Reporter {
    tx: mpsc::UnboundedSender<Report>,
}

impl Reporter {
    /// The client now runs everything up to `revision` (`digest`: optional
    /// hash of what it rendered).
    pub fn ack(&self, revision: Revision, digest: &str) {
        let _ = self.tx.send(Report::Ack { revision, digest: digest.to_owned() });
    }

    /// The client rejected `revision` at `step` and still runs `applied`.
    pub fn nack(&self, revision: Revision, applied: Revision, step: SyncStep, error: &str) {
        let _ = self.tx.send(Report::Nack { revision, applied, step, error: error.to_owned() });
    }
}

/// The stream [`Client::sync`] returns: events like a watch, and the
/// reports going back. The background task stops when it is dropped.
pub struct SyncHandle {
    rx: mpsc::Receiver<Result<WatchEvent>>,
    reporter: Reporter,
    task: JoinHandle<()>,
}

impl SyncHandle {
    pub(crate) fn start(client: Client, namespace: String, options: SyncOptions) -> Self {
        let (tx, rx) = mpsc::channel(64);
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let syncer = Syncer {
            client,
            namespace,
            applied: options.applied,
            digest: String::new(),
            rejected: None,
            options,
            tx,
            reports,
        };
        let task = tokio::spawn(syncer.run());
        Self { rx, reporter: Reporter { tx: reports_tx }, task }
    }

    pub fn ack(&self, revision: Revision, digest: &str) {
        self.reporter.ack(revision, digest);
    }

    pub fn nack(&self, revision: Revision, applied: Revision, step: SyncStep, error: &str) {
        self.reporter.nack(revision, applied, step, error);
    }

    /// A handle to report from elsewhere.
    pub fn reporter(&self) -> Reporter {
        self.reporter.clone()
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for SyncHandle {
    type Item = Result<WatchEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

struct Syncer {
    client: Client,
    namespace: String,
    options: SyncOptions,
    /// What the client last said it runs (repeated as keepalive).
    applied: Revision,
    digest: String,
    /// The last NACK not superseded by an ACK of its revision or newer:
    /// sent again after every subscribe, so that a NACK lost with a broken
    /// stream still reaches the ledger.
    rejected: Option<SyncNack>,
    tx: mpsc::Sender<Result<WatchEvent>>,
    reports: mpsc::UnboundedReceiver<Report>,
}

impl Syncer {
    async fn run(mut self) {
        let (mut next, mut snapshot) = match self.options.start {
            WatchStart::From(r) => (Some(r.max(1)), false),
            WatchStart::Snapshot => (None, true),
            WatchStart::Now => (None, false),
        };
        let mut backoff = self.client.backoff();
        loop {
            match self.stream(&mut next, &mut snapshot, &mut backoff).await {
                Next::Stop => return,
                Next::Resnapshot => (next, snapshot) = (None, true),
                Next::Reconnect => {
                    tokio::time::sleep(backoff.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn keepalive(&self) -> SyncRequest {
        SyncRequest { request: Some(Request::Ack(SyncAck { revision: self.applied, digest: self.digest.clone() })) }
    }

    async fn stream(&mut self, next: &mut Option<Revision>, snapshot: &mut bool, backoff: &mut Duration) -> Next {
        let (out, out_rx) = mpsc::channel(64);
        let subscribe = SyncSubscribe {
            client_id: self.options.client_id.clone(),
            namespace: self.namespace.clone(),
            prefix: self.options.prefix.clone(),
            start_revision: if *snapshot { None } else { *next },
            include_snapshot: *snapshot,
            labels: self.options.labels.clone().into_iter().collect(),
            agent: Some(AgentInfo { name: self.options.agent.0.clone(), version: self.options.agent.1.clone() }),
            applied_revision: self.applied,
        };
        let _ = out.try_send(SyncRequest { request: Some(Request::Subscribe(subscribe)) });
        if let Some(nack) = &self.rejected {
            let _ = out.try_send(SyncRequest { request: Some(Request::Nack(nack.clone())) });
        }
        let mut request = tonic::Request::new(ReceiverStream::new(out_rx));
        self.client.add_metadata(request.metadata_mut());
        let mut stream = match self.client.query().sync(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return self.failed(Error::from(status)).await,
        };
        let mut keepalive = tokio::time::interval(self.options.keepalive.max(Duration::from_millis(100)));
        keepalive.tick().await;
        let mut chunks: Vec<Entry> = Vec::new();
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                report = self.reports.recv() => {
                    let Some(report) = report else { return Next::Stop };
                    let _ = out.send(self.report(report)).await;
                    continue;
                }
                _ = keepalive.tick() => {
                    let _ = out.send(self.keepalive()).await;
                    continue;
                }
            };
            let message = match message {
                Ok(Some(message)) => message,
                Ok(None) => return Next::Reconnect,
                Err(status) => return self.failed(Error::from(status)).await,
            };
            *backoff = self.client.backoff();
            // The same messages as a watch's.
            let event = message.event.map(|e| match e {
                Event::Snapshot(s) => watch_response::Event::Snapshot(s),
                Event::Change(c) => watch_response::Event::Change(c),
                Event::Progress(p) => watch_response::Event::Progress(p),
            });
            let Some(event) = event.and_then(|e| decode(e, &mut chunks, next, snapshot)) else { continue };
            if self.tx.send(Ok(event)).await.is_err() {
                return Next::Stop;
            }
        }
    }

    /// Remembers what a report says the client runs, and encodes it.
    fn report(&mut self, report: Report) -> SyncRequest {
        let request = match report {
            Report::Ack { revision, digest } => {
                self.applied = revision;
                self.digest.clone_from(&digest);
                if self.rejected.as_ref().is_some_and(|n| n.revision <= revision) {
                    self.rejected = None;
                }
                Request::Ack(SyncAck { revision, digest })
            }
            Report::Nack { revision, applied, step, error } => {
                self.applied = applied;
                let nack = SyncNack { revision, applied_revision: applied, step: step_wire(step).into(), error };
                self.rejected = Some(nack.clone());
                Request::Nack(nack)
            }
        };
        SyncRequest { request: Some(request) }
    }

    async fn failed(&self, error: Error) -> Next {
        let next = after_error(&error);
        match next {
            Next::Resnapshot | Next::Reconnect => {
                tracing::debug!(namespace = %self.namespace, error = %error, "sync interrupted; resuming");
            }
            Next::Stop => {
                let _ = self.tx.send(Err(error)).await;
            }
        }
        next
    }
}

impl Client {
    /// Opens a Sync stream on `namespace`: events like [`Client::watch`],
    /// and [`SyncHandle::ack`] / [`SyncHandle::nack`] to report what this
    /// client runs to the fleet ledger.
    pub fn sync(&self, namespace: &str, options: SyncOptions) -> SyncHandle {
        SyncHandle::start(self.clone(), namespace.to_owned(), options)
    }
}
