//! TLS for the gRPC servers: `--tls-cert` and `--tls-key` turn it on,
//! `--tls-client-ca` makes client certificates mandatory (mTLS). What a
//! client certificate identifies is `veltrix_access::identity`.

use std::{path::PathBuf, time::Duration};

use clap::Args;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// TLS flags both services share.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// PEM certificate chain of the gRPC server (turns TLS on, with --tls-key).
    #[arg(long, env = "VELTRIX_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the gRPC server.
    #[arg(long, env = "VELTRIX_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle that client certificates must chain to (mutual TLS:
    /// clients without a trusted certificate are refused).
    #[arg(long, env = "VELTRIX_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// How long a client may take to complete the TLS handshake before its
    /// connection is closed (a connection that never starts holds nothing).
    #[arg(long, env = "VELTRIX_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = crate::parse_duration)]
    pub tls_handshake_timeout: Duration,
}

impl Default for TlsArgs {
    fn default() -> Self {
        Self { tls_cert: None, tls_key: None, tls_client_ca: None, tls_handshake_timeout: Duration::from_secs(10) }
    }
}

impl TlsArgs {
    /// The server's TLS configuration, if TLS is on.
    pub fn server_config(&self) -> Result<Option<ServerTlsConfig>, std::io::Error> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else { return Ok(None) };
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| std::io::Error::new(e.kind(), format!("reading {}: {e}", p.display())))
        };
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(read(cert)?, read(key)?))
            .timeout(self.tls_handshake_timeout);
        if let Some(ca) = &self.tls_client_ca {
            config = config.client_ca_root(Certificate::from_pem(read(ca)?)).client_auth_optional(false);
        }
        Ok(Some(config))
    }
}
