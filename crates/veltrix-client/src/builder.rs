//! [`ClientBuilder`]: the services' URLs, deadlines, retries, the actor,
//! credentials and TLS; `Debug` never shows a token or a private key.

use std::{sync::Arc, time::Duration};

use tonic::{
    metadata::AsciiMetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use veltrix_proto::v1::{config_command_client::ConfigCommandClient, config_query_client::ConfigQueryClient};

use crate::{Client, Error, Result};

/// Builds a [`Client`]. `Debug` shows no token and no private key.
#[derive(Clone)]
pub struct ClientBuilder {
    command_url: String,
    query_url: String,
    timeout: Duration,
    connect_timeout: Duration,
    retries: u32,
    backoff: Duration,
    actor: Option<String>,
    token: Option<String>,
    tls: Option<TlsSettings>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("command_url", &self.command_url)
            .field("query_url", &self.query_url)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("actor", &self.actor)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// TLS to the services (use `https://` URLs). `Debug` shows whether a
/// client identity is set, never its key.
#[derive(Clone, Default)]
struct TlsSettings {
    ca_pem: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    domain: Option<String>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca_pem", &self.ca_pem.as_ref().map(|pem| format!("{} bytes", pem.len())))
            .field("identity", &self.identity.as_ref().map(|_| "<certificate and redacted key>"))
            .field("domain", &self.domain)
            .finish()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            command_url: "http://127.0.0.1:50051".into(),
            query_url: "http://127.0.0.1:50052".into(),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            retries: 4,
            backoff: Duration::from_millis(100),
            actor: None,
            token: None,
            tls: None,
        }
    }
}

impl ClientBuilder {
    pub fn command_url(mut self, url: impl Into<String>) -> Self {
        self.command_url = url.into();
        self
    }

    pub fn query_url(mut self, url: impl Into<String>) -> Self {
        self.query_url = url.into();
        self
    }

    /// Deadline of each call (each attempt of a retried call).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Retries of a call that failed with UNAVAILABLE (0: none).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// First pause between retries; it doubles, with jitter.
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Who makes the changes (`x-veltrix-actor`), when the servers run
    /// without authentication.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// A bearer token sent as `authorization: Bearer <token>`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Trust servers whose certificates chain to this PEM CA bundle
    /// (instead of the system's roots).
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.get_or_insert_with(TlsSettings::default).ca_pem = Some(pem.into());
        self
    }

    /// Present this PEM certificate and key to the servers (mutual TLS).
    pub fn client_identity(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.tls.get_or_insert_with(TlsSettings::default).identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// The name the servers' certificates must carry, when it is not the
    /// URL's host.
    pub fn tls_domain(mut self, domain: impl Into<String>) -> Self {
        self.tls.get_or_insert_with(TlsSettings::default).domain = Some(domain.into());
        self
    }

    /// Builds the client; connections are made on first use (call inside a
    /// tokio runtime).
    pub fn build(self) -> Result<Client> {
        let tls = self.tls.as_ref().map(|t| {
            let mut config = ClientTlsConfig::new().with_enabled_roots();
            if let Some(ca) = &t.ca_pem {
                config = config.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &t.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            if let Some(domain) = &t.domain {
                config = config.domain_name(domain.clone());
            }
            config
        });
        let channel = |url: &str| -> Result<Channel> {
            let mut endpoint =
                Endpoint::from_shared(url.to_owned()).map_err(|e| Error::Local(format!("invalid URL '{url}': {e}")))?;
            if let Some(tls) = &tls {
                endpoint = endpoint.tls_config(tls.clone()).map_err(|e| Error::Local(format!("TLS settings: {e}")))?;
            }
            let endpoint = endpoint
                .connect_timeout(self.connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_while_idle(true);
            Ok(endpoint.connect_lazy())
        };
        let metadata_value = |what: &str, v: String| {
            AsciiMetadataValue::try_from(v).map_err(|_| Error::Local(format!("the {what} must be printable ASCII")))
        };
        let settings = Settings {
            timeout: self.timeout,
            retries: self.retries,
            backoff: self.backoff,
            actor: self.actor.map(|a| metadata_value("actor", a)).transpose()?,
            authorization: self
                .token
                .map(|t| {
                    // Sensitive: never indexed by HPACK, never printed.
                    metadata_value("token", format!("Bearer {t}")).map(|mut v| {
                        v.set_sensitive(true);
                        v
                    })
                })
                .transpose()?,
        };
        Ok(Client {
            command: ConfigCommandClient::new(channel(&self.command_url)?),
            query: ConfigQueryClient::new(channel(&self.query_url)?),
            settings: Arc::new(settings),
        })
    }
}

/// What every call of a built client carries.
pub(crate) struct Settings {
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) backoff: Duration,
    pub(crate) actor: Option<AsciiMetadataValue>,
    pub(crate) authorization: Option<AsciiMetadataValue>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("actor", &self.actor)
            .field("authorization", &self.authorization.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn debug_shows_no_token_and_no_key() {
        let builder = ClientBuilder::default().token("s3cret-token").actor("ci");
        let with_key = builder.clone().client_identity("-----CERT-----", "-----PRIVATE KEY material-----");
        let shown = format!("{with_key:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("PRIVATE"), "{shown}");
        assert!(shown.contains("ci") && shown.contains("redacted"), "{shown}");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = rt.block_on(async { builder.build() }).unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
