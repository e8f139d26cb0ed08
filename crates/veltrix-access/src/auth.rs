//! Authentication and authorization for both services: the `--auth-config`
//! policy (see `veltrix-auth`), loaded at start-up and reloaded on SIGHUP or
//! when the file's content changes, without dropping connections. An invalid new file
//! is refused with a log line and the old policy stays.
//!
//! Without `--auth-config` the service is open (every call allowed, actors
//! from `x-veltrix-actor`), as etcd and Consul are by default.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use sha2::{Digest, Sha256};

use tokio_util::sync::CancellationToken;
use tonic::{Request, metadata::MetadataMap};
pub use veltrix_auth::Role;
use veltrix_auth::{Policy, PolicyError};

use crate::{
    AccessError,
    admission::{Admission, LimitArgs, WatcherPermit, caller_key},
    identity::{CertificateRefusal, peer_identity},
};

/// How often the file's modification time is checked.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the auth config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Policy { path: PathBuf, source: PolicyError },
}

struct Loaded {
    path: PathBuf,
    policy: RwLock<Arc<Policy>>,
    /// The digest of the content last read (loaded or refused).
    seen: RwLock<[u8; 32]>,
}

/// The service's authentication (open, or a reloading policy) and its
/// per-caller admission limits.
#[derive(Clone)]
pub struct Auth {
    loaded: Option<Arc<Loaded>>,
    admission: Arc<Admission>,
}

/// Who is calling, as far as authorization and limits are concerned.
#[derive(Clone)]
pub struct Caller {
    identity: Option<String>,
    policy: Option<Arc<Policy>>,
    remote: Option<std::net::IpAddr>,
    admission: Arc<Admission>,
}

/// The file's content and its digest.
fn read_file(path: &Path) -> Result<(String, [u8; 32]), AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read { path: path.to_owned(), source })?;
    let digest = Sha256::digest(text.as_bytes()).into();
    Ok((text, digest))
}

fn parse(path: &Path, text: &str) -> Result<Policy, AuthError> {
    Policy::parse(text).map_err(|source| AuthError::Policy { path: path.to_owned(), source })
}

impl Auth {
    /// Loads the policy at `path`, or none: open, with a warning unless
    /// `deliberately_off` (`--auth-off`) says it is meant.
    pub fn load(
        path: Option<&Path>,
        deliberately_off: bool,
        service: &str,
        limits: LimitArgs,
    ) -> Result<Self, AuthError> {
        let admission = Arc::new(Admission::new(limits));
        let Some(path) = path else {
            if deliberately_off {
                tracing::info!(service, "authentication off (--auth-off): every caller may read and change everything");
            } else {
                tracing::warn!(
                    service,
                    "authentication is OFF: every caller may read and change every namespace; set --auth-config (VELTRIX_AUTH_CONFIG) in production"
                );
            }
            return Ok(Self { loaded: None, admission });
        };
        let (text, digest) = read_file(path)?;
        let policy = parse(path, &text)?;
        tracing::info!(path = %path.display(), identities = policy.identities(), "authentication on");
        Ok(Self {
            loaded: Some(Arc::new(Loaded {
                path: path.to_owned(),
                policy: RwLock::new(Arc::new(policy)),
                seen: RwLock::new(digest),
            })),
            admission,
        })
    }

    pub fn enabled(&self) -> bool {
        self.loaded.is_some()
    }

    /// Reloads on SIGHUP and when the file's content changes, until
    /// `shutdown`. The content is compared by digest every second, not by
    /// modification time, so two changes within the file system's time
    /// granularity, or one made while a reload reads, are never missed.
    pub fn spawn_reloader(&self, shutdown: CancellationToken) {
        let Some(loaded) = self.loaded.clone() else { return };
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(POLL);
            loop {
                #[cfg(unix)]
                let hup = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hup = std::future::pending::<Option<()>>();
                let forced = tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = hup => true,
                    _ = tick.tick() => false,
                };
                loaded.reload(forced);
            }
        });
    }

    /// Authenticates a call (its bearer token, else its client
    /// certificate's identity; UNAUTHENTICATED when neither names a known
    /// caller) and takes one request from the caller's rate.
    pub fn caller<T>(&self, request: &Request<T>) -> Result<Caller, AccessError> {
        let (identity, policy) = match &self.loaded {
            None => (None, None),
            Some(loaded) => {
                let policy = loaded.policy.read().unwrap_or_else(PoisonError::into_inner).clone();
                let identity = match bearer(request.metadata())? {
                    Some(token) => match policy.identify(token) {
                        Some(identity) => identity.to_owned(),
                        None => return Err(AccessError::UnknownToken),
                    },
                    None => match peer_identity(request) {
                        Some(Ok(identity)) => identity,
                        Some(Err(refusal)) => return Err(AccessError::Certificate(refusal_text(refusal))),
                        None => return Err(AccessError::AuthenticationRequired),
                    },
                };
                (Some(identity), Some(policy))
            }
        };
        let remote = request.remote_addr().map(|a| a.ip());
        if self.admission.limits_rate() {
            self.admission.admit(&caller_key(identity.as_deref(), remote))?;
        }
        Ok(Caller { identity, policy, remote, admission: self.admission.clone() })
    }
}

fn refusal_text(refusal: CertificateRefusal) -> &'static str {
    match refusal {
        CertificateRefusal::Unreadable => "not a readable X.509 certificate",
        CertificateRefusal::NotForClients => "it lacks the clientAuth extended key usage",
        CertificateRefusal::Nameless => "it names neither a DNS SAN nor a CN",
    }
}

impl Loaded {
    /// Reads the file and swaps the policy in if its content changed (or
    /// when `forced`). A broken file is refused once, and the previous
    /// policy stays in force.
    fn reload(&self, forced: bool) {
        let (text, digest) = match read_file(&self.path) {
            Ok(read) => read,
            Err(e) => {
                tracing::debug!(error = %e, "auth config unreadable; the previous policy stays in force");
                return;
            }
        };
        let seen = std::mem::replace(&mut *self.seen.write().unwrap_or_else(PoisonError::into_inner), digest);
        if !forced && seen == digest {
            return;
        }
        match parse(&self.path, &text) {
            Ok(policy) => {
                tracing::info!(path = %self.path.display(), identities = policy.identities(), "auth config reloaded");
                *self.policy.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
            }
            Err(e) => tracing::error!(error = %e, "auth config refused; the previous policy stays in force"),
        }
    }
}

/// The token of an `authorization: Bearer <token>` header, if any.
fn bearer(md: &MetadataMap) -> Result<Option<&str>, AccessError> {
    let Some(value) = md.get("authorization") else { return Ok(None) };
    let value = value.to_str().map_err(|_| AccessError::MalformedAuthorization("not printable ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(AccessError::MalformedAuthorization("expected `Bearer <token>`")),
    }
}

impl Caller {
    /// A place for one more open watch stream of this caller.
    pub fn watcher(&self) -> Result<WatcherPermit, AccessError> {
        self.admission.watcher(&caller_key(self.identity.as_deref(), self.remote))
    }

    /// The authenticated identity; `None` when authentication is off.
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    pub fn can(&self, role: Role, namespace: &str) -> bool {
        match (&self.policy, &self.identity) {
            (Some(policy), Some(identity)) => policy.allows(identity, role, namespace),
            _ => true,
        }
    }

    /// PERMISSION_DENIED unless the caller holds `role` on `namespace`.
    pub fn require(&self, role: Role, namespace: &str) -> Result<(), AccessError> {
        if self.can(role, namespace) {
            return Ok(());
        }
        Err(AccessError::PermissionDenied {
            identity: self.identity.clone().unwrap_or_default(),
            role,
            namespace: namespace.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn policy(token: &str, identity: &str) -> String {
        let digest = veltrix_auth::token_digest(token);
        format!(
            "tokens: [{{identity: {identity}, sha256: \"{digest}\"}}]\ngrants: [{{identity: {identity}, namespaces: [\"**\"], roles: [read]}}]\n"
        )
    }

    fn identity(auth: &Auth, token: &str) -> Result<Option<String>, AccessError> {
        let mut request = Request::new(());
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        auth.caller(&request).map(|c| c.identity().map(str::to_owned))
    }

    #[tokio::test]
    async fn a_change_that_keeps_the_modification_time_is_still_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.yaml");
        std::fs::write(&path, policy("token-a", "alpha")).unwrap();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        let auth = Auth::load(Some(&path), false, "test", LimitArgs::default()).unwrap();
        let shutdown = CancellationToken::new();
        auth.spawn_reloader(shutdown.clone());
        assert_eq!(identity(&auth, "token-a").unwrap().as_deref(), Some("alpha"));

        // Rewritten with the very same modification time (two changes in
        // one tick of a coarse file-system clock).
        std::fs::write(&path, policy("token-b", "beta")).unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(modified).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while identity(&auth, "token-b").is_err() {
            assert!(tokio::time::Instant::now() < deadline, "the new policy is never loaded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(identity(&auth, "token-b").unwrap().as_deref(), Some("beta"));
        assert_eq!(identity(&auth, "token-a"), Err(AccessError::UnknownToken));

        // A broken file leaves the policy in force.
        std::fs::write(&path, "grants: [").unwrap();
        tokio::time::sleep(POLL * 2).await;
        assert_eq!(identity(&auth, "token-b").unwrap().as_deref(), Some("beta"));
        shutdown.cancel();
    }
}
