//! Who a caller proved to be. Bearer tokens and client certificates name
//! identities in separate spaces, so a certificate whose CN happens to equal
//! a token identity's name never gets that identity's grants: a token
//! identity is its plain name (`deployer`), a certificate identity carries
//! its kind (`dns:deployer.example` for the first DNS SAN, else
//! `cn:deployer`). The policy file writes them the same way.

use tonic::Request;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Why a client certificate names no identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateRefusal {
    /// Not a parsable X.509 certificate.
    Unreadable,
    /// No extended key usage with clientAuth: a server or CA certificate
    /// presented as a client's.
    NotForClients,
    /// Neither a DNS SAN nor a CN.
    Nameless,
}

/// The identity of the client certificate a call came with: `None` without
/// one, else the identity or why it is refused.
pub fn peer_identity<T>(request: &Request<T>) -> Option<Result<String, CertificateRefusal>> {
    let certs = request.peer_certs()?;
    Some(certificate_identity(certs.first()?.as_ref()))
}

/// `dns:` and the first DNS SAN, else `cn:` and the subject's CN, of a
/// certificate meant for clients (extended key usage clientAuth).
pub fn certificate_identity(der: &[u8]) -> Result<String, CertificateRefusal> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| CertificateRefusal::Unreadable)?;
    match cert.extended_key_usage() {
        Ok(Some(eku)) if eku.value.client_auth => {}
        Ok(_) => return Err(CertificateRefusal::NotForClients),
        Err(_) => return Err(CertificateRefusal::Unreadable),
    }
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                return Ok(format!("dns:{dns}"));
            }
        }
    }
    let cn = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok());
    cn.map(|cn| format!("cn:{cn}")).ok_or(CertificateRefusal::Nameless)
}
