//! The JSON API under `/api/`: the router, who calls (the session), the
//! CSRF check of writes, and the one mapping of errors to HTTP statuses.

mod error;
mod extract;
mod read;
mod signin;
mod watch;
mod write;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
    routing::{get, post},
};
pub use error::ApiError;
use veltrix_client::Client;
use veltrix_server::{BoxError, CancellationToken};

use crate::{
    Config,
    session::{Session, Sessions, cookie_id, same_secret},
};

/// How the console reaches the services on a caller's behalf.
pub struct Upstream {
    command_url: String,
    query_url: String,
    timeout: Duration,
    ca_pem: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl Upstream {
    /// A client with the caller's token (`None`: the console's own client
    /// certificate, or nothing) and, with authentication off, the actor
    /// name the changes record.
    pub fn client(&self, token: Option<&str>, actor: Option<&str>) -> Result<Client, ApiError> {
        let mut builder = Client::builder()
            .command_url(&self.command_url)
            .query_url(&self.query_url)
            .timeout(self.timeout)
            .retries(2);
        if let Some(token) = token {
            builder = builder.token(token);
        }
        if let Some(actor) = actor {
            builder = builder.actor(actor);
        }
        if let Some(ca) = &self.ca_pem {
            builder = builder.ca_certificate(ca.clone());
        }
        if let Some((cert, key)) = &self.identity {
            builder = builder.client_identity(cert.clone(), key.clone());
        }
        builder.build().map_err(ApiError::from)
    }

    pub fn has_certificate(&self) -> bool {
        self.identity.is_some()
    }
}

pub struct State {
    pub sessions: Arc<Sessions>,
    pub upstream: Upstream,
    pub secure_cookies: bool,
    /// The `Host` values served (lower case).
    pub allowed_hosts: Vec<String>,
    /// Ends the live streams when the console stops.
    pub shutdown: CancellationToken,
}

impl State {
    pub fn new(config: &Config, addr: std::net::SocketAddr, shutdown: CancellationToken) -> Result<Self, BoxError> {
        let read =
            |path: &std::path::Path| std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
        let ca_pem = config.ca_cert.as_deref().map(read).transpose()?;
        let identity = match (&config.client_cert, &config.client_key) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            _ => None,
        };
        Ok(Self {
            sessions: Arc::new(Sessions::new(config.session_idle, config.session_max, config.max_sessions)),
            upstream: Upstream {
                command_url: config.command_url.clone(),
                query_url: config.query_url.clone(),
                timeout: config.call_timeout,
                ca_pem,
                identity,
            },
            secure_cookies: !config.insecure_cookies,
            allowed_hosts: allowed_hosts(config, addr),
            shutdown,
        })
    }
}

/// The hosts of `--allowed-hosts`, else the listen address and the loopback
/// names on its port.
fn allowed_hosts(config: &Config, addr: std::net::SocketAddr) -> Vec<String> {
    if !config.allowed_hosts.is_empty() {
        return config.allowed_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect();
    }
    let port = addr.port();
    let mut hosts =
        vec![addr.to_string(), format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")];
    hosts.dedup();
    hosts
}

pub type Shared = Arc<State>;

pub fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/session", get(signin::current).post(signin::sign_in).delete(signin::sign_out))
        .route("/namespaces", get(read::namespaces))
        .route("/roles", get(read::roles))
        .route("/keys", get(read::keys))
        .route("/key", get(read::key).put(write::put).delete(write::delete))
        .route("/history", get(read::history))
        .route("/diff", get(read::diff))
        .route("/schemas", get(read::schemas).put(write::set_schema).delete(write::delete_schema))
        .route("/clients", get(read::clients))
        .route("/rollouts", get(read::rollouts))
        .route("/rollback", post(write::rollback))
        .route("/promote", post(write::promote))
        .route("/rollout-action", post(write::rollout_action))
        .route("/watch", get(watch::watch))
        .fallback(|| async { ApiError::NoSuchEndpoint });
    Router::new()
        .nest("/api", api)
        .fallback(crate::assets::serve)
        .layer(axum::middleware::from_fn_with_state(state.clone(), allowed_host))
        // Probes come by the pod's address: health is served to any host.
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Refuses a request whose `Host` is not one of the console's names (421).
async fn allowed_host(
    axum::extract::State(state): axum::extract::State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    if !state.allowed_hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host)) {
        return ApiError::Host.into_response();
    }
    next.run(request).await
}

/// Headers every answer carries: no framing by other sites, no sniffing, a
/// content security policy that allows only the console's own scripts.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.entry(name).or_insert(header::HeaderValue::from_static(value));
    };
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
    );
    response
}

/// A signed-in caller: the session its cookie names.
pub struct Caller {
    pub id: String,
    pub session: Session,
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let id = cookie_id(&parts.headers).ok_or(ApiError::SignedOut)?;
        let session = state.sessions.get(&id).ok_or(ApiError::SignedOut)?;
        Ok(Self { id, session })
    }
}

/// A signed-in caller whose request may change something: it carries the
/// session's CSRF token, and comes from the console's own origin.
pub struct Writer(pub Caller);

impl FromRequestParts<Shared> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        same_origin(&parts.headers)?;
        let caller = Caller::from_request_parts(parts, state).await?;
        let sent = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !same_secret(sent, &caller.session.csrf) {
            return Err(ApiError::Csrf("the X-CSRF-Token header must carry this session's token"));
        }
        Ok(Self(caller))
    }
}

/// Refuses a request whose `Origin` names another host than the one it was
/// sent to (a browser sends Origin on every cross-site POST, PUT, DELETE).
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let origin = origin.to_str().unwrap_or_default();
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
    if host.is_empty() || origin_host != host {
        return Err(ApiError::Csrf("the request comes from another origin"));
    }
    Ok(())
}
