//! TLS for the listener (`--tls-cert` / `--tls-key`), with rustls, and optionally mutual TLS
//! (`--tls-client-ca`): every client must present a certificate issued by that CA bundle, and
//! its subject reaches the guests as the caller's identity.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// PEM files for the listener's certificate chain and private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates client certificates must chain to (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// A TLS acceptor that offers HTTP/2 and HTTP/1.1 over ALPN.
pub fn acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect())
        .with_context(|| format!("cannot read the certificate chain {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read the private key {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(bundle) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_file_iter(bundle)
                .with_context(|| format!("cannot read the client CA bundle {}", bundle.display()))?
            {
                roots
                    .add(ca.with_context(|| format!("a bad certificate in {}", bundle.display()))?)
                    .with_context(|| format!("a bad CA certificate in {}", bundle.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .context("cannot verify client certificates with this CA bundle")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not make a usable pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The subject of the verified client certificate of a connection (`CN=..., O=...`).
pub fn client_subject(connection: &rustls::ServerConnection) -> Option<String> {
    let leaf = connection.peer_certificates()?.first()?;
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(certificate.subject().to_string())
}
