//! Certificates for TLS tests: a certificate authority of the test's own and a server
//! certificate for 127.0.0.1 it signed (made in-process with rcgen; no `openssl` needed).

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A CA and a server certificate for 127.0.0.1.
pub struct TestCa {
    /// The CA's certificate (PEM): what a client is told to trust.
    pub ca_pem: String,
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    /// A new CA, and a certificate for 127.0.0.1 it signed.
    pub fn new() -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "dss test CA");
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("cert");
        Self {
            ca_pem: ca.pem(),
            cert,
            key,
        }
    }

    /// A rustls server configuration presenting the server certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(self.key.serialize_der())
                    .expect("key der"),
            )
            .expect("server config");
        Arc::new(config)
    }

    /// Writes `ca.pem`, `server.pem` and `server.key` into `dir` (for servers that read files).
    pub fn write(&self, dir: &Path) {
        std::fs::write(dir.join("ca.pem"), &self.ca_pem).expect("ca.pem");
        std::fs::write(dir.join("server.pem"), self.cert.pem()).expect("server.pem");
        std::fs::write(dir.join("server.key"), self.key.serialize_pem()).expect("server.key");
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
