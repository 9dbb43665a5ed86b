//! HTTPS served directly (`--tls-cert`, `--tls-key`), with rustls.
//!
//! The certificate chain and key are read once, at start-up, so a wrong file
//! stops the daemon with the path and the reason instead of failing every
//! handshake. The handshake runs inside the connection's header-read
//! deadline (see `conn.rs`): a client that opens a socket and never
//! completes it holds its connection slot no longer than a silent
//! plain-text one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate chain {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("cannot read the TLS private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the TLS certificate and key do not make a server configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A loaded server certificate; cheap to clone.
#[derive(Clone)]
pub struct TlsConfig {
    acceptor: TlsAcceptor,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsConfig { .. }")
    }
}

impl TlsConfig {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key
    /// (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
        let certificate_error = |reason: String| TlsError::Certificate {
            path: cert.to_owned(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|err| certificate_error(err.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| certificate_error(err.to_string()))?;
        if chain.is_empty() {
            return Err(certificate_error("no PEM CERTIFICATE block in it".into()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|err| TlsError::Key {
            path: key.to_owned(),
            reason: err.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        // The server speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}
