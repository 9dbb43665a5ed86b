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

/// Over TLS the console's cookie is `Secure`, and its own origin is the
/// `https://` one: the same host over `http://` is another origin.
#[tokio::test]
async fn over_https_the_console_cookie_is_secure_and_the_own_origin_is_https() {
    let cert = Certificate::new();
    let tls = TlsConfig::from_pem_files(&cert.path("cert.pem"), &cert.path("key.pem")).unwrap();
    let server = TestServer::with_config(HttpConfig {
        tls: Some(tls),
        token: Some("tls-console-token".into()),
        ..HttpConfig::default()
    })
    .await;
    let host = format!("localhost:{}", server.addr.port());
    let request = |head: String| {
        let connector = cert.connector();
        let addr = server.addr;
        async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let mut stream = connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            stream.write_all(head.as_bytes()).await.unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer).await;
            answer
        }
    };
    let body = r#"{"token":"tls-console-token"}"#;
    let login = request(format!(
        "POST /login HTTP/1.1\r\nHost: {host}\r\nOrigin: https://{host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    assert!(login.starts_with("HTTP/1.1 200"), "{login}");
    let cookie_line = login
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {login}"));
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(cookie_line.contains(flag), "{cookie_line}");
    }
    let cookie = cookie_line
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    for (origin, expected) in [
        (format!("https://{host}"), "HTTP/1.1 200"),
        (format!("http://{host}"), "HTTP/1.1 403"),
    ] {
        let answer = request(format!(
            "GET /capabilities HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        ))
        .await;
        assert!(answer.starts_with(expected), "{origin}: {answer}");
    }
}
