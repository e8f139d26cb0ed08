//! TLS for the gRPC servers: `--tls-cert` and `--tls-key` turn it on,
//! `--tls-client-ca` makes client certificates mandatory (mTLS). A client's
//! identity is its certificate's first DNS SAN, else its CN.

use std::path::PathBuf;

use clap::Args;
use tonic::{
    Request,
    transport::{Certificate, Identity, ServerTlsConfig},
};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// TLS flags both services share.
#[derive(Debug, Clone, Default, Args)]
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
}

impl TlsArgs {
    /// The server's TLS configuration, if TLS is on.
    pub fn server_config(&self) -> Result<Option<ServerTlsConfig>, std::io::Error> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else { return Ok(None) };
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| std::io::Error::new(e.kind(), format!("reading {}: {e}", p.display())))
        };
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
        if let Some(ca) = &self.tls_client_ca {
            config = config.client_ca_root(Certificate::from_pem(read(ca)?)).client_auth_optional(false);
        }
        Ok(Some(config))
    }
}

/// The identity of the client certificate a call came with, if any.
pub fn peer_identity<T>(request: &Request<T>) -> Option<String> {
    let certs = request.peer_certs()?;
    certificate_identity(certs.first()?.as_ref())
}

/// First DNS SAN, else the subject's CN.
pub fn certificate_identity(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                return Some((*dns).to_owned());
            }
        }
    }
    cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned)
}
