//! The port the projection reads through: every namespace's events in
//! revision order from a position (JetStream in production, memory in
//! tests). A reader never skips: an event it cannot decode, or a revision
//! missing from the sequence, ends it with a typed error.

use std::{
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};

use crate::{Revision, store::StoredEvent};

/// One event and how many are known to follow it (0: caught up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    pub stored: StoredEvent,
    pub pending: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// There is no event stream yet (the command service creates it): a
    /// wait, not a failure.
    #[error("the event stream {0} does not exist yet")]
    NoStream(String),
    /// The store cannot be reached, or the reader lost its subscription.
    #[error("event feed unavailable: {0}")]
    Unavailable(String),
    /// A revision is missing from the sequence (a lost delivery, or an event
    /// removed behind our back). Reopen from the position to try again.
    #[error("gap in the event feed: expected revision {expected}, got {got}")]
    Gap { expected: Revision, got: Revision },
    /// The event at `revision` cannot be decoded by this version: halt.
    #[error("event at revision {revision} cannot be decoded: {message}")]
    Undecodable { revision: Revision, message: String },
}

/// Opens readers of the whole event sequence.
pub trait EventFeed: Send + Sync + 'static {
    type Reader: FeedReader;

    /// A reader of every event with a revision above `after`, in order.
    fn open(&self, after: Revision) -> impl Future<Output = Result<Self::Reader, FeedError>> + Send;
}

/// An in-order reader opened by an [`EventFeed`].
pub trait FeedReader: Send {
    /// The last revision in the store when the reader was opened.
    fn head(&self) -> Revision;

    /// The next event after the reader's position, waiting for one to be
    /// appended. Cancel-safe: dropping the future loses nothing.
    fn next(&mut self) -> impl Future<Output = Result<FeedItem, FeedError>> + Send;

    /// Gives back what the reader holds in the store (best effort).
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// Up to `max` events: waits for the first, then takes whatever has already
/// arrived, so that a consumer can apply them in one round trip. The one
/// batching rule of the projection and the rebuild. An error after the
/// first event ends the batch without losing the events before it; the
/// next call reports it.
pub async fn next_batch<R: FeedReader>(reader: &mut R, max: usize) -> Result<Vec<FeedItem>, FeedError> {
    let mut batch = vec![reader.next().await?];
    while batch.len() < max.max(1) {
        match ready_now(reader.next()) {
            Some(Ok(item)) => batch.push(item),
            Some(Err(_)) | None => break,
        }
    }
    Ok(batch)
}

/// The future's output if it is ready at the first poll (it is then
/// dropped, which a cancel-safe future allows).
fn ready_now<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}
