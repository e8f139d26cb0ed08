//! Sign-in and sign-out: a bearer token (or the console's client
//! certificate) traded for a session cookie.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::{ApiError, Caller, Shared, Writer, extract::Body, same_origin};
use crate::session::{NewSession, Session, clear_cookie, set_cookie};

#[derive(Deserialize)]
pub struct SignIn {
    /// Empty: sign in with the console's client certificate (mTLS), or
    /// without credentials when the services run without authentication.
    #[serde(default)]
    token: String,
    /// The name recorded on changes when authentication is off.
    #[serde(default)]
    actor: String,
}

/// What the web app knows of its session (never the token).
#[derive(Serialize)]
pub struct SessionView<'a> {
    identity: &'a str,
    authentication_enabled: bool,
    via_certificate: bool,
    actor: &'a str,
    /// To send back in `X-CSRF-Token` with every write.
    csrf: &'a str,
}

fn view(session: &Session) -> SessionView<'_> {
    SessionView {
        identity: &session.identity,
        authentication_enabled: session.authentication_enabled,
        via_certificate: session.via_certificate,
        actor: &session.actor,
        csrf: &session.csrf,
    }
}

pub async fn current(caller: Caller) -> Json<serde_json::Value> {
    Json(serde_json::to_value(view(&caller.session)).unwrap_or_default())
}

pub async fn sign_in(
    State(state): State<Shared>,
    headers: HeaderMap,
    Body(form): Body<SignIn>,
) -> Result<Response, ApiError> {
    same_origin(&headers)?;
    let token = form.token.trim();
    let actor = form.actor.trim();
    if token.len() > 4096 {
        return Err(ApiError::invalid("token", "must be at most 4096 bytes"));
    }
    if actor.len() > 256 {
        return Err(ApiError::invalid("actor", "must be at most 256 bytes"));
    }
    let client = state.upstream.client((!token.is_empty()).then_some(token), (!actor.is_empty()).then_some(actor))?;
    // The query service says whether it knows the caller: a bad token ends here.
    let me = client.who_am_i(&[]).await?;
    let new = NewSession {
        client,
        identity: me.identity,
        authentication_enabled: me.authentication_enabled,
        via_certificate: token.is_empty() && state.upstream.has_certificate(),
        actor: actor.to_owned(),
    };
    let (id, session) = state.sessions.create(new).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    tracing::info!(identity = %session.identity, "console sign-in");
    let cookie = set_cookie(&id, state.sessions.cookie_max_age(), state.secure_cookies);
    Ok(([(header::SET_COOKIE, cookie)], Json(serde_json::to_value(view(&session)).unwrap_or_default())).into_response())
}

pub async fn sign_out(State(state): State<Shared>, Writer(caller): Writer) -> Response {
    state.sessions.remove(&caller.id);
    ([(header::SET_COOKIE, clear_cookie(state.secure_cookies))], Json(serde_json::json!({"signed_out": true})))
        .into_response()
}
