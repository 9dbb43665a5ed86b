//! A minimal HTTP/1.1 client over tokio's TcpStream: one connection per request
//! (`Connection: close`), bodies read to EOF. It does only what the benchmark needs, so the
//! measuring client spends its CPU on reading events, not on a general-purpose HTTP stack.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::chunked;

/// A response read to its end.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Fails with the body in the message unless the status is `expected`.
    pub fn expect(self, expected: u16, what: &str) -> Result<Response> {
        if self.status != expected {
            bail!(
                "{what}: HTTP {} (expected {expected}): {}",
                self.status,
                self.text()
            );
        }
        Ok(self)
    }
}

/// The head of a response: status and the headers the benchmark looks at.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub chunked: bool,
    pub content_type: String,
}

/// Sends one request and reads the whole response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json_body: Option<&str>,
) -> Result<Response> {
    request_with_headers(addr, method, path, json_body, &[]).await
}

/// [`request`] with extra request headers (e.g. `Authorization`).
pub async fn request_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json_body: Option<&str>,
    extra_headers: &[(&str, &str)],
) -> Result<Response> {
    let mut stream = connect(addr).await?;
    send_head(&mut stream, addr, method, path, json_body, extra_headers).await?;
    let mut raw = Vec::with_capacity(1024);
    stream
        .read_to_end(&mut raw)
        .await
        .with_context(|| format!("{method} {path}: reading the response"))?;
    let Some(head_end) = memmem::find(&raw, b"\r\n\r\n") else {
        bail!(
            "{method} {path}: incomplete response {:?}",
            String::from_utf8_lossy(&raw)
        );
    };
    let head = parse_head(&raw[..head_end])?;
    let body = &raw[head_end + 4..];
    let body = if head.chunked {
        chunked::decode_all(body)?
    } else {
        body.to_vec()
    };
    Ok(Response {
        status: head.status,
        body,
    })
}

/// Opens a request whose response is read incrementally (SSE): returns the stream positioned
/// after the head, the head, and whatever body bytes came with it.
pub async fn open_streaming(
    addr: SocketAddr,
    path: &str,
    extra_headers: &[(&str, &str)],
) -> Result<(TcpStream, Head, Vec<u8>)> {
    let mut stream = connect(addr).await?;
    send_head(&mut stream, addr, "GET", path, None, extra_headers).await?;
    let mut raw = Vec::with_capacity(4096);
    loop {
        let mut buf = [0u8; 4096];
        let n = stream
            .read(&mut buf)
            .await
            .with_context(|| format!("GET {path}: reading the head"))?;
        if n == 0 {
            bail!(
                "GET {path}: connection closed before the head ended: {:?}",
                String::from_utf8_lossy(&raw)
            );
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = memmem::find(&raw, b"\r\n\r\n") {
            let head = parse_head(&raw[..end])?;
            let rest = raw[end + 4..].to_vec();
            return Ok((stream, head, rest));
        }
        if raw.len() > 64 * 1024 {
            bail!("GET {path}: response head over 64 KiB");
        }
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn send_head(
    stream: &mut TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    json_body: Option<&str>,
    extra_headers: &[(&str, &str)],
) -> Result<()> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = json_body.unwrap_or_default();
    if json_body.is_some() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body);
    stream
        .write_all(head.as_bytes())
        .await
        .with_context(|| format!("{method} {path}: sending the request"))
}

fn parse_head(head: &[u8]) -> Result<Head> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut parsed = Head {
        status,
        chunked: false,
        content_type: String::new(),
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-type") {
            parsed.content_type = value.to_ascii_lowercase();
        }
    }
    Ok(parsed)
}

/// The string value of `"field":"…"` in a compact JSON text (both daemons answer compact
/// JSON; ids contain no escapes). Avoids parsing whole documents in the hot paths.
pub fn json_string_field<'a>(json: &'a [u8], field: &str) -> Option<&'a str> {
    let key = format!("\"{field}\":");
    let start = memmem::find(json, key.as_bytes())? + key.len();
    let rest = &json[start..];
    let open = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    if rest[open] != b'"' {
        return None;
    }
    let value = &rest[open + 1..];
    let close = memchr::memchr(b'"', value)?;
    std::str::from_utf8(&value[..close]).ok()
}

/// `text` as a JSON string literal.
pub fn json_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if (c as u32) < 0x20 => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_string_fields_in_compact_and_spaced_json() {
        let json = br#"{"sessionId":"fake-session-1","requestId": "abc-1","n":3}"#;
        assert_eq!(json_string_field(json, "sessionId"), Some("fake-session-1"));
        assert_eq!(json_string_field(json, "requestId"), Some("abc-1"));
        assert_eq!(json_string_field(json, "n"), None);
        assert_eq!(json_string_field(json, "missing"), None);
    }

    #[test]
    fn quotes_json_strings() {
        assert_eq!(json_quote("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
    }

    #[test]
    fn parses_status_and_the_headers_that_matter() {
        let head = parse_head(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked",
        )
        .unwrap();
        assert_eq!(head.status, 200);
        assert!(head.chunked);
        assert_eq!(head.content_type, "text/event-stream");
        assert!(parse_head(b"garbage").is_err());
    }
}
