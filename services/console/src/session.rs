//! Sessions: the caller's credentials kept here, never in the browser.
//!
//! Sign-in trades a bearer token (or, when the console has a client
//! certificate, nothing) for a random session id in an HttpOnly,
//! SameSite=Strict cookie. Each session holds a gRPC client carrying the
//! caller's own credentials, and a CSRF token that every write must send
//! back in `X-CSRF-Token` (the browser app gets it from `GET
//! /api/session`; a page on another origin can read neither). A session
//! ends on sign-out, after `--session-idle` unused, or `--session-max`
//! after sign-in.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use base64::Engine;
use tokio::time::Instant;
use veltrix_client::Client;
use veltrix_server::CancellationToken;

/// The session cookie's name.
pub const COOKIE: &str = "veltrix_session";

/// One signed-in caller.
#[derive(Clone)]
pub struct Session {
    pub client: Client,
    pub csrf: String,
    /// As the query service named the caller; empty with authentication off.
    pub identity: String,
    pub authentication_enabled: bool,
    /// Signed in with the console's client certificate, not a token.
    pub via_certificate: bool,
    /// The name recorded on changes when authentication is off.
    pub actor: String,
    /// The newest revision this session wrote, and where: its reads wait
    /// until the read model has applied it (read-your-writes across the
    /// console's calls).
    written: Arc<AtomicU64>,
    written_in: Arc<Mutex<String>>,
    /// Cancelled when the session ends (sign-out, expiry, eviction): its
    /// live streams stop with it.
    pub ended: CancellationToken,
    created: Instant,
    last_used: Instant,
}

impl Session {
    /// Notes a revision this session's write committed in `namespace`.
    pub fn wrote(&self, revision: u64, namespace: &str) {
        if self.written.fetch_max(revision, Ordering::Relaxed) < revision {
            namespace.clone_into(&mut self.written_in.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }

    /// The namespace of this session's newest write.
    pub fn written_in(&self) -> String {
        self.written_in.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The revision this session's reads must reflect (`None`: no write yet).
    pub fn min_revision(&self) -> Option<u64> {
        Some(self.written.load(Ordering::Relaxed)).filter(|r| *r > 0)
    }
}

/// What sign-in found out about a caller.
pub struct NewSession {
    pub client: Client,
    pub identity: String,
    pub authentication_enabled: bool,
    pub via_certificate: bool,
    pub actor: String,
}

pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
    idle: Duration,
    max_age: Duration,
    limit: usize,
}

impl Sessions {
    pub fn new(idle: Duration, max_age: Duration, limit: usize) -> Self {
        Self { by_id: Mutex::new(HashMap::new()), idle, max_age, limit: limit.max(1) }
    }

    /// Starts a session; answers its id. At the limit, the least recently
    /// used session ends first.
    pub fn create(&self, new: NewSession) -> Result<(String, Session), getrandom::Error> {
        let (id, csrf) = (secret()?, secret()?);
        let now = Instant::now();
        let session = Session {
            client: new.client,
            csrf,
            identity: new.identity,
            authentication_enabled: new.authentication_enabled,
            via_certificate: new.via_certificate,
            actor: new.actor,
            written: Arc::new(AtomicU64::new(0)),
            written_in: Arc::new(Mutex::new(String::new())),
            ended: CancellationToken::new(),
            created: now,
            last_used: now,
        };
        let mut by_id = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        // One caller cannot push everyone else out: past its own share, its
        // own least recently used session goes; past the limit, anyone's.
        // A caller is its identity (the actor name it sends is its own
        // word); with authentication off, the name is all there is. Sessions
        // on the console's certificate are all one identity: no share.
        let own = |s: &Session| match session.authentication_enabled {
            true => !s.via_certificate && s.identity == session.identity,
            false => s.actor == session.actor,
        };
        if !session.via_certificate && by_id.values().filter(|s| own(s)).count() >= PER_CALLER {
            evict_oldest(&mut by_id, own);
        }
        while by_id.len() >= self.limit {
            if !evict_oldest(&mut by_id, |_| true) {
                break;
            }
        }
        by_id.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The live session of `id`, marked as used now; an expired one ends here.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut by_id = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        let session = by_id.get_mut(id)?;
        if self.expired(session, now) {
            session.ended.cancel();
            by_id.remove(id);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    pub fn remove(&self, id: &str) {
        if let Some(session) = self.by_id.lock().unwrap_or_else(PoisonError::into_inner).remove(id) {
            session.ended.cancel();
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends every expired session.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, s| {
            let expired = self.expired(s, now);
            if expired {
                s.ended.cancel();
            }
            !expired
        });
    }

    fn expired(&self, session: &Session, now: Instant) -> bool {
        now.saturating_duration_since(session.last_used) >= self.idle
            || now.saturating_duration_since(session.created) >= self.max_age
    }

    /// Seconds the cookie may live: no longer than the session can.
    pub fn cookie_max_age(&self) -> u64 {
        self.max_age.as_secs()
    }
}

/// The most sessions one identity (and actor name) holds at once.
const PER_CALLER: usize = 64;

/// Ends the least recently used session of those `chosen` picks; false when
/// there is none.
fn evict_oldest(by_id: &mut HashMap<String, Session>, chosen: impl Fn(&Session) -> bool) -> bool {
    let oldest = by_id.iter().filter(|(_, s)| chosen(s)).min_by_key(|(_, s)| s.last_used).map(|(id, _)| id.clone());
    match oldest.and_then(|id| by_id.remove(&id)) {
        Some(session) => {
            session.ended.cancel();
            true
        }
        None => false,
    }
}

/// Ends expired sessions every few seconds until `shutdown`.
pub fn spawn_sweeper(sessions: Arc<Sessions>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => sessions.sweep(),
            }
        }
    });
}

/// 256 random bits, URL-safe base64.
fn secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The session id in a request's `Cookie` headers, if any.
pub fn cookie_id(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` value that carries a session id.
pub fn set_cookie(id: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", 0, secure)
}

/// Whether two secrets are equal, in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(axum::http::header::COOKIE, "a=1; veltrix_session=abc; b=2".parse().expect("header"));
        assert_eq!(cookie_id(&headers).as_deref(), Some("abc"));
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        let cookie = set_cookie("x", 60, true);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.ends_with("Secure"));
    }
}
