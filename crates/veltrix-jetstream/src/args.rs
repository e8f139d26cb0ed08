//! The NATS flags both services take (each also a `VELTRIX_*` variable),
//! flattened into each service's config.

use std::path::PathBuf;

use clap::Args;

use crate::NatsOptions;

/// Where the event stream is.
#[derive(Clone, Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "VELTRIX_NATS_URL", default_value = "nats://127.0.0.1:4222", hide_env_values = true)]
    pub nats_url: String,

    /// JetStream stream that holds every change set.
    #[arg(long, env = "VELTRIX_STREAM", default_value = "VELTRIX_EVENTS")]
    pub stream: String,

    /// Subject prefix of the event stream; a namespace a/b is `{prefix}.a.b`.
    #[arg(long, env = "VELTRIX_SUBJECT_PREFIX", default_value = "veltrix.events")]
    pub subject_prefix: String,

    /// Require TLS to NATS (implied by the certificate flags and tls:// URLs).
    #[arg(long, env = "VELTRIX_NATS_TLS")]
    pub nats_tls: bool,

    /// PEM CA bundle the NATS servers' certificates must chain to.
    #[arg(long, env = "VELTRIX_NATS_CA_CERT")]
    pub nats_ca_cert: Option<PathBuf>,

    /// PEM client certificate for NATS (with --nats-client-key).
    #[arg(long, env = "VELTRIX_NATS_CLIENT_CERT", requires = "nats_client_key")]
    pub nats_client_cert: Option<PathBuf>,

    /// PEM key of the NATS client certificate.
    #[arg(long, env = "VELTRIX_NATS_CLIENT_KEY", requires = "nats_client_cert")]
    pub nats_client_key: Option<PathBuf>,

    /// NATS user (with --nats-password).
    #[arg(long, env = "VELTRIX_NATS_USER", requires = "nats_password")]
    pub nats_user: Option<String>,

    /// NATS password.
    #[arg(long, env = "VELTRIX_NATS_PASSWORD", hide_env_values = true, requires = "nats_user")]
    pub nats_password: Option<String>,

    /// NATS token.
    #[arg(long, env = "VELTRIX_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,

    /// NATS credentials file (JWT and NKey seed).
    #[arg(long, env = "VELTRIX_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
}

impl NatsArgs {
    /// Connection options for the JetStream adapter.
    pub fn options(&self) -> NatsOptions {
        NatsOptions {
            url: self.nats_url.clone(),
            require_tls: self.nats_tls,
            ca_cert: self.nats_ca_cert.clone(),
            client_cert: self.nats_client_cert.clone(),
            client_key: self.nats_client_key.clone(),
            user: self.nats_user.clone(),
            password: self.nats_password.clone(),
            token: self.nats_token.clone(),
            creds: self.nats_creds.clone(),
        }
    }
}

/// Secrets (password, token, credentials in the URL) redacted.
impl std::fmt::Debug for NatsArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsArgs")
            .field("options", &self.options())
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .finish()
    }
}
