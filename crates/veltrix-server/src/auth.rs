//! Authentication and authorization for both services: the `--auth-config`
//! policy (see `veltrix-auth`), loaded at start-up and reloaded on SIGHUP or
//! when the file changes, without dropping connections. An invalid new file
//! is refused with a log line and the old policy stays.
//!
//! Without `--auth-config` the service is open (every call allowed, actors
//! from `x-veltrix-actor`), as etcd and Consul are by default.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use tokio_util::sync::CancellationToken;
use tonic::{Request, metadata::MetadataMap};
pub use veltrix_auth::Role;
use veltrix_auth::{Policy, PolicyError};

use crate::{
    AccessError,
    admission::{Admission, LimitArgs, WatcherPermit, caller_key},
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
    modified: RwLock<Option<SystemTime>>,
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

fn read(path: &Path) -> Result<(Policy, Option<SystemTime>), AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read { path: path.to_owned(), source })?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let policy = Policy::parse(&text).map_err(|source| AuthError::Policy { path: path.to_owned(), source })?;
    Ok((policy, modified))
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
        let (policy, modified) = read(path)?;
        tracing::info!(path = %path.display(), identities = policy.identities(), "authentication on");
        Ok(Self {
            loaded: Some(Arc::new(Loaded {
                path: path.to_owned(),
                policy: RwLock::new(Arc::new(policy)),
                modified: RwLock::new(modified),
            })),
            admission,
        })
    }

    pub fn enabled(&self) -> bool {
        self.loaded.is_some()
    }

    /// Reloads on SIGHUP and when the file changes, until `shutdown`.
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
                let modified = std::fs::metadata(&loaded.path).and_then(|m| m.modified()).ok();
                let unchanged = *loaded.modified.read().unwrap_or_else(std::sync::PoisonError::into_inner) == modified;
                if !forced && unchanged {
                    continue;
                }
                match read(&loaded.path) {
                    Ok((policy, modified)) => {
                        tracing::info!(path = %loaded.path.display(), identities = policy.identities(), "auth config reloaded");
                        *loaded.policy.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(policy);
                        *loaded.modified.write().unwrap_or_else(std::sync::PoisonError::into_inner) = modified;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "auth config refused; the previous policy stays in force");
                        // Do not retry the same broken file every second.
                        *loaded.modified.write().unwrap_or_else(std::sync::PoisonError::into_inner) = modified;
                    }
                }
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
                let policy = loaded.policy.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                let identity = match bearer(request.metadata())? {
                    Some(token) => match policy.identify(token) {
                        Some(identity) => identity.to_owned(),
                        None => return Err(AccessError::UnknownToken),
                    },
                    None => crate::tls::peer_identity(request).ok_or(AccessError::AuthenticationRequired)?,
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
