//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`, never enabled by
//! the daemon): the request checks that are private to this crate, reachable without
//! widening its public API. The SSE encoder, `Last-Event-ID` and `--allow-origin` are
//! public already.

use axum::http::HeaderValue;

/// Whether an `Authorization` header with these bytes carries `expected` as a bearer token
/// (`false` when the bytes are not a valid header value at all).
pub fn bearer_matches(header: &[u8], expected: &[u8]) -> bool {
    match HeaderValue::from_bytes(header) {
        Ok(value) => crate::auth::bearer_matches(Some(&value), expected),
        Err(_) => false,
    }
}

/// Whether a daemon bound on loopback at `port` accepts this `Host` header.
pub fn host_accepted(port: u16, host: &str) -> bool {
    crate::guard::HostAllowlist::for_port(port).accepts(host)
}
