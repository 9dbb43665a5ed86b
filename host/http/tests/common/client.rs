//! A raw HTTP/1.1 client over TcpStream, so tests see the exact bytes the
//! server writes (headers, chunked SSE bodies) with no client library
//! normalizing them.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A request under construction. `Host` defaults to the server's own
/// `127.0.0.1:port`; `Connection: close` makes the response end at EOF.
pub struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    host: Option<String>,
}

impl Req {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: None,
            host: None,
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    pub fn delete(path: &str) -> Self {
        Self::new("DELETE", path)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Overrides the Host header; `""` sends none at all.
    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(host.into());
        self
    }

    pub fn json(self, body: &Value) -> Self {
        self.raw_body("application/json", body.to_string().into_bytes())
    }

    pub fn raw_body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        if !content_type.is_empty() {
            self.headers
                .push(("Content-Type".into(), content_type.into()));
        }
        self.body = Some(body);
        self
    }

    /// The request head (and body) as bytes.
    pub fn to_bytes(&self, addr: SocketAddr) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        let host = self.host.clone().unwrap_or_else(|| addr.to_string());
        if !host.is_empty() {
            head.push_str(&format!("Host: {host}\r\n"));
        }
        head.push_str("Connection: close\r\n");
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let has_length = self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-length"));
        if let (Some(body), false) = (&self.body, has_length) {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if let Some(body) = &self.body {
            bytes.extend_from_slice(body);
        }
        bytes
    }

    /// Sends the request and reads the whole response.
    pub async fn send(&self, addr: SocketAddr) -> Resp {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(&self.to_bytes(addr))
            .await
            .expect("write request");
        read_response(&mut stream).await
    }
}

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    /// Lowercase names, in order.
    pub headers: Vec<(String, String)>,
    /// De-chunked body.
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Whether the whole body announced by Content-Length has arrived.
    pub fn json_complete(&self) -> bool {
        self.header("content-length")
            .and_then(|length| length.parse::<usize>().ok())
            .is_some_and(|length| self.body.len() >= length)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not JSON ({error}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a JSON error envelope with this status; returns the body.
    pub fn expect_error(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert!(
            self.header("content-type")
                .is_some_and(|value| value.starts_with("application/json")),
            "error content-type: {:?}",
            self.header("content-type")
        );
        let body = self.json();
        assert!(body["error"].is_string(), "no error message in {body}");
        body
    }
}

/// Reads a full response (until EOF, which `Connection: close` guarantees).
pub async fn read_response(stream: &mut TcpStream) -> Resp {
    let mut raw = Vec::new();
    timeout(IO_TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("response within 5 s")
        .expect("read response");
    parse_response(&raw)
        .unwrap_or_else(|| panic!("incomplete response: {:?}", String::from_utf8_lossy(&raw)))
}

/// Splits `raw` into head and de-chunked body; `None` if the head is incomplete.
pub fn parse_response(raw: &[u8]) -> Option<Resp> {
    let (head, rest) = split_head(raw)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
    let body = if chunked {
        dechunk(rest).0
    } else {
        rest.to_vec()
    };
    Some(Resp {
        status,
        headers,
        body,
    })
}

pub fn split_head(raw: &[u8]) -> Option<(String, &[u8])> {
    let end = raw.windows(4).position(|window| window == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    Some((head, &raw[end + 4..]))
}

/// Decodes every complete chunk; returns the data and whether the last
/// (zero-size) chunk was seen.
pub fn dechunk(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = raw.windows(2).position(|window| window == b"\r\n") else {
            return (out, false);
        };
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
        else {
            return (out, false);
        };
        if size == 0 {
            return (out, true);
        }
        let data_start = line_end + 2;
        if raw.len() < data_start + size + 2 {
            return (out, false);
        }
        out.extend_from_slice(&raw[data_start..data_start + size]);
        raw = &raw[data_start + size + 2..];
    }
}

/// An open SSE response read incrementally.
pub struct SseConn {
    pub stream: TcpStream,
    raw: Vec<u8>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl SseConn {
    /// Sends `req` and reads up to the end of the response head.
    pub async fn open(addr: SocketAddr, req: Req) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(&req.to_bytes(addr)).await.expect("write");
        let mut conn = Self {
            stream,
            raw: Vec::new(),
            status: 0,
            headers: Vec::new(),
        };
        while split_head(&conn.raw).is_none() {
            assert!(conn.read_more(IO_TIMEOUT).await, "EOF before response head");
        }
        let resp = parse_response(&conn.raw).unwrap();
        conn.status = resp.status;
        conn.headers = resp.headers;
        conn
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Body bytes received so far, de-chunked, as text; and whether the
    /// stream ended (terminal chunk seen).
    pub fn body(&self) -> (String, bool) {
        let (_, rest) = split_head(&self.raw).expect("head");
        let (data, ended) = dechunk(rest);
        (String::from_utf8(data).expect("utf-8 body"), ended)
    }

    /// Reads one batch of bytes; false on EOF or timeout.
    pub async fn read_more(&mut self, wait: Duration) -> bool {
        let mut buffer = [0u8; 8192];
        match timeout(wait, self.stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => false,
            Ok(Ok(n)) => {
                self.raw.extend_from_slice(&buffer[..n]);
                true
            }
        }
    }

    /// Reads until the body contains `needle`; returns the body so far.
    pub async fn read_until(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
        loop {
            let (body, _) = self.body();
            if body.contains(needle) {
                return body;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                self.read_more(left).await,
                "stream ended or stalled before {needle:?}; body so far: {body:?}"
            );
        }
    }

    /// Reads until the terminal chunk; returns the whole body.
    pub async fn read_to_end(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
        loop {
            let (body, ended) = self.body();
            if ended {
                return body;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                self.read_more(left).await,
                "stream did not end; body so far: {body:?}"
            );
        }
    }
}
