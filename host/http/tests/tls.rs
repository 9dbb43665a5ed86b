//! `--tls-cert`/`--tls-key`: the same API over HTTPS, with a throwaway
//! self-signed certificate; bad files refused with their path.

mod common;

use std::sync::Arc;

use common::TestServer;
use qserve_http::tls::{TlsConfig, TlsError};
use qserve_http::HttpConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

struct Certificate {
    dir: tempfile::TempDir,
    der: CertificateDer<'static>,
}

impl Certificate {
    fn new() -> Certificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        Certificate {
            dir,
            der: cert.der().clone(),
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn connector(&self) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }
}

#[tokio::test]
async fn the_api_answers_over_https_and_plain_http_gets_no_answer() {
    let cert = Certificate::new();
    let tls = TlsConfig::from_pem_files(&cert.path("cert.pem"), &cert.path("key.pem")).unwrap();
    let server = TestServer::with_config(HttpConfig {
        tls: Some(tls),
        ..HttpConfig::default()
    })
    .await;

    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut stream = cert
        .connector()
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("a TLS handshake with the daemon's certificate");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"status":"ok"}"#), "{answer}");

    // Plain HTTP on the HTTPS port: no HTTP answer, the connection closes.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut bytes = Vec::new();
    let _ = plain.read_to_end(&mut bytes).await;
    assert!(!bytes.starts_with(b"HTTP/1.1 200"), "plain HTTP was served");
}

#[test]
fn missing_or_wrong_files_are_refused_naming_the_file() {
    let cert = Certificate::new();
    let missing = cert.path("nope.pem");
    match TlsConfig::from_pem_files(&missing, &cert.path("key.pem")) {
        Err(err @ TlsError::Certificate { .. }) => {
            assert!(err.to_string().contains("nope.pem"), "{err}")
        }
        other => panic!("{other:?}"),
    }
    // A key file given as the certificate has no CERTIFICATE block.
    match TlsConfig::from_pem_files(&cert.path("key.pem"), &cert.path("key.pem")) {
        Err(err @ TlsError::Certificate { .. }) => {
            assert!(err.to_string().contains("key.pem"), "{err}")
        }
        other => panic!("{other:?}"),
    }
    match TlsConfig::from_pem_files(&cert.path("cert.pem"), &cert.path("cert.pem")) {
        Err(err @ TlsError::Key { .. }) => assert!(err.to_string().contains("cert.pem"), "{err}"),
        other => panic!("{other:?}"),
    }
    // A key that does not belong to the certificate.
    let other_key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(cert.path("other.pem"), other_key.serialize_pem()).unwrap();
    assert!(matches!(
        TlsConfig::from_pem_files(&cert.path("cert.pem"), &cert.path("other.pem")),
        Err(TlsError::Config(_))
    ));
}
