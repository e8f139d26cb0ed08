//! Certificates made at test time: a CA and the certificates it signs, as
//! PEM, written to a temporary directory for servers that read files.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType};
use tempfile::TempDir;

/// A certificate and its key, as PEM, and where they were written.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A test certificate authority.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub ca_pem: String,
    pub ca: PathBuf,
    dir: TempDir,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let dir =
            tempfile::Builder::new().prefix("veltrix-pki-").tempdir().expect("a temporary directory for certificates");
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("a self-signed CA");
        let ca_pem = cert.pem();
        let ca = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca, &ca_pem).expect("write the CA");
        Self { issuer: Issuer::new(params, key), ca_pem, ca, dir }
    }

    /// A certificate for `dns_names` with the CN `cn` (or with only a CN
    /// when `dns_names` is empty), for servers and clients (extended key
    /// usages serverAuth and clientAuth); loopback IPs are added for servers.
    pub fn issue(&self, file_name: &str, cn: &str, dns_names: &[&str]) -> CertFiles {
        self.issue_for(
            file_name,
            cn,
            dns_names,
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        )
    }

    /// Like [`TestCa::issue`], without any extended key usage: TLS takes it
    /// from a client, but it is not meant for clients.
    pub fn issue_without_key_usage(&self, file_name: &str, cn: &str, dns_names: &[&str]) -> CertFiles {
        self.issue_for(file_name, cn, dns_names, Vec::new())
    }

    fn issue_for(
        &self,
        file_name: &str,
        cn: &str,
        dns_names: &[&str],
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> CertFiles {
        let key = KeyPair::generate().expect("a key");
        let mut params =
            CertificateParams::new(dns_names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).expect("parameters");
        if !dns_names.is_empty() {
            params.subject_alt_names.push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = usages;
        let cert = params.signed_by(&key, &self.issuer).expect("a signed certificate");
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        let cert = self.dir.path().join(format!("{file_name}.pem"));
        let key = self.dir.path().join(format!("{file_name}-key.pem"));
        std::fs::write(&cert, &cert_pem).expect("write a certificate");
        std::fs::write(&key, &key_pem).expect("write a key");
        CertFiles { cert_pem, key_pem, cert, key }
    }
}
