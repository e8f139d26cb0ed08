//! Connecting to NATS: keep trying at start-up, reconnect forever with a
//! capped backoff, and count what happens to the connection.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::{Client, ConnectOptions, Event, ServerAddr};

use crate::Error;

pub const RECONNECTS: &str = "veltrix_nats_reconnects_total";
pub const DISCONNECTS: &str = "veltrix_nats_disconnects_total";

/// Counters of connection events, for metrics and tests.
#[derive(Debug, Default)]
pub struct ConnectionEvents {
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
}

/// Where NATS is and how to prove who we are to it. `Debug` hides secrets.
#[derive(Clone, Default)]
pub struct NatsOptions {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// Require TLS (implied by any certificate option or a `tls://` URL).
    pub require_tls: bool,
    /// PEM CA bundle that the server's certificate must chain to.
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate and key, for servers that verify clients.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// A `.creds` file (JWT and NKey seed).
    pub creds: Option<PathBuf>,
}

/// The URL list with any `user:password@` replaced by `<redacted>@`.
pub fn redact_userinfo(urls: &str) -> String {
    urls.split(',')
        .map(|url| match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => format!("{}<redacted>{}", &url[..scheme + 3], &url[at..]),
            (None, Some(at)) => format!("<redacted>{}", &url[at..]),
            _ => url.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl std::fmt::Debug for NatsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("NatsOptions")
            .field("url", &redact_userinfo(&self.url))
            .field("require_tls", &self.require_tls)
            .field("ca_cert", &self.ca_cert)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("user", &self.user)
            .field("password", &secret(&self.password))
            .field("token", &secret(&self.token))
            .field("creds", &self.creds)
            .finish()
    }
}

impl NatsOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }
}

/// Connects with `options`. Returns at once; the client connects and
/// reconnects in the background, and requests made while disconnected fail
/// or time out instead of hanging.
pub async fn connect(options: &NatsOptions, name: &str) -> Result<(Client, Arc<ConnectionEvents>), Error> {
    let url = options.url.as_str();
    metrics::describe_counter!(RECONNECTS, "Connections to NATS made again after a disconnect.");
    metrics::describe_counter!(DISCONNECTS, "Connections to NATS lost.");
    metrics::counter!(RECONNECTS).increment(0);
    metrics::counter!(DISCONNECTS).increment(0);
    let events = Arc::new(ConnectionEvents::default());
    let counters = events.clone();
    let client = authenticated(options)
        .await?
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_secs(10))
        .reconnect_delay_callback(|attempts| {
            // 0, 100 ms, 200 ms, ... capped at 2 s: a restarted server is
            // found again quickly, a dead one is not hammered.
            Duration::from_millis((attempts as u64).saturating_mul(100).min(2_000))
        })
        .event_callback(move |event| {
            let counters = counters.clone();
            async move {
                match event {
                    Event::Connected => {
                        if counters.connects.fetch_add(1, Ordering::Relaxed) > 0 {
                            metrics::counter!(RECONNECTS).increment(1);
                        }
                        tracing::info!("connected to NATS");
                    }
                    Event::Disconnected => {
                        counters.disconnects.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(DISCONNECTS).increment(1);
                        tracing::warn!("disconnected from NATS; reconnecting");
                    }
                    other => tracing::warn!(event = %other, "NATS connection event"),
                }
            }
        })
        .connect(server_addrs(url)?)
        .await
        .map_err(|e| Error::JetStream { context: "connecting to NATS", source: Box::new(e) })?;
    Ok((client, events))
}

/// Credentials and TLS settings; secrets are never logged.
async fn authenticated(o: &NatsOptions) -> Result<ConnectOptions, Error> {
    let mut opts = match &o.creds {
        Some(path) => ConnectOptions::with_credentials_file(path.clone())
            .await
            .map_err(|e| Error::Settings(format!("cannot use the NATS credentials file {}: {e}", path.display())))?,
        None => ConnectOptions::new(),
    };
    match (&o.user, &o.password) {
        (Some(user), Some(password)) => opts = opts.user_and_password(user.clone(), password.clone()),
        (None, None) => {}
        _ => return Err(Error::Settings("--nats-user and --nats-password go together".into())),
    }
    if let Some(token) = &o.token {
        opts = opts.token(token.clone());
    }
    if let Some(ca) = &o.ca_cert {
        opts = opts.add_root_certificates(ca.clone());
    }
    match (&o.client_cert, &o.client_key) {
        (Some(cert), Some(key)) => opts = opts.add_client_certificate(cert.clone(), key.clone()),
        (None, None) => {}
        _ => return Err(Error::Settings("--nats-client-cert and --nats-client-key go together".into())),
    }
    if o.require_tls || o.ca_cert.is_some() || o.client_cert.is_some() {
        opts = opts.require_tls(true);
    }
    Ok(opts)
}

/// `nats://a:4222,nats://b:4222` → every server, so that the client can fail
/// over between the nodes of a cluster.
fn server_addrs(url: &str) -> Result<Vec<ServerAddr>, Error> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<ServerAddr>().map_err(|e| Error::Settings(format!("invalid NATS URL '{u}' in --nats-url: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(
            |addrs| {
                if addrs.is_empty() { Err(Error::Settings("--nats-url names no server".into())) } else { Ok(addrs) }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_server_of_a_list() {
        assert_eq!(server_addrs("nats://127.0.0.1:4222, nats://127.0.0.1:4223").unwrap().len(), 2);
        assert!(matches!(server_addrs(" , "), Err(Error::Settings(_))));
        assert!(matches!(server_addrs("nats://:bad:port"), Err(Error::Settings(_))));
    }
}
