//! Live updates as Server-Sent Events: `GET /api/watch?namespace=..&prefix=..&from=REV`.
//!
//! Each event's id is its revision: a `changes` event per committed change
//! set (its JSON), a `snapshot` when the history to resume from is gone
//! (the matching keys as of its id), and `progress` when idle (everything
//! up to its id was sent). A browser that reconnects sends `Last-Event-ID`,
//! and the stream resumes right after it, so nothing is missed or repeated.
//! Behind it is the client's resuming watch: a lost connection to the query
//! service resumes by itself too. The stream ends with its session
//! (sign-out, expiry) and with the console; while it runs it keeps its
//! session in use, as a page that shows it is.

use std::convert::Infallible;

use axum::{
    extract::State,
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use veltrix_client::{Revision, WatchEvent, WatchStart};

use super::{ApiError, Caller, Shared, extract::Params};

#[derive(Deserialize)]
pub struct WatchQuery {
    namespace: String,
    #[serde(default)]
    prefix: String,
    /// The first revision to send (absent: changes from now on).
    from: Option<Revision>,
}

pub async fn watch(
    State(state): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    Params(q): Params<WatchQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let start = match last_event_id(&headers)? {
        Some(last) => WatchStart::From(last.saturating_add(1)),
        None => match q.from {
            Some(0) => return Err(ApiError::invalid("from", "must be at least 1")),
            Some(from) => WatchStart::From(from),
            None => WatchStart::Now,
        },
    };
    let events = caller.session.client.watch(&q.namespace, &q.prefix, start);
    let (stop, ended) = (state.shutdown.clone(), caller.session.ended.clone());
    let (sessions, id) = (state.sessions.clone(), caller.id);
    let stream = events
        // Each event marks the session used; one that has ended stops here.
        .take_while(move |_| std::future::ready(sessions.get(&id).is_some()))
        .map(|event| Ok(to_sse(event)))
        .take_until(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = ended.cancelled() => {}
            }
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<Revision>, ApiError> {
    let Some(value) = headers.get("last-event-id") else { return Ok(None) };
    let text = value.to_str().unwrap_or_default().trim();
    text.parse::<Revision>()
        .map(Some)
        .map_err(|_| ApiError::invalid("Last-Event-ID", "must be a revision (a whole number)"))
}

fn to_sse(event: veltrix_client::Result<WatchEvent>) -> Event {
    let json = |kind: &str, id: Revision, data: &dyn erased::Json| {
        Event::default().event(kind).id(id.to_string()).data(data.to_json())
    };
    match event {
        Ok(WatchEvent::Changes(set)) => json("changes", set.revision, &set),
        Ok(WatchEvent::Snapshot { entries, revision }) => {
            json("snapshot", revision, &serde_json::json!({ "revision": revision, "entries": entries }))
        }
        Ok(WatchEvent::Progress(revision)) => json("progress", revision, &serde_json::json!({ "revision": revision })),
        Err(e) => {
            // The services' own refusals pass; transport and local text stays in the log.
            let message = match &e {
                veltrix_client::Error::Unavailable { .. } => "the query service is unavailable".to_owned(),
                veltrix_client::Error::Local(_) | veltrix_client::Error::Other { .. } => {
                    tracing::warn!(error = %e, "a console watch ended");
                    "the live stream ended".to_owned()
                }
                other => other.to_string(),
            };
            Event::default().event("error").data(serde_json::json!({ "message": message }).to_string())
        }
    }
}

mod erased {
    /// Serializes any of the event payloads.
    pub trait Json {
        fn to_json(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).unwrap_or_else(|_| "null".into())
        }
    }
}
