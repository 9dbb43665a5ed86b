//! Where the bearer token is checked.
//!
//! Runs as middleware before any handler, so an unauthenticated request
//! never gets its body read or parsed. Every failure gets the same 401 body
//! and `WWW-Authenticate: Bearer`, and the comparison takes the same time
//! wherever the given token first differs.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// What the bearer middleware needs to know.
#[derive(Debug)]
pub struct BearerAuth {
    /// `None` = authentication is off.
    token: Option<Vec<u8>>,
    /// On loopback binds `/health` is exempt so liveness probes need no
    /// secret; elsewhere it is not, so a stranger cannot confirm a daemon
    /// is listening.
    health_exempt: bool,
}

impl BearerAuth {
    pub fn new(token: Option<String>, loopback: bool) -> Self {
        Self {
            token: token.map(String::into_bytes),
            health_exempt: loopback,
        }
    }
}

/// Middleware: 401 unless the request carries the token (or needs none).
pub async fn require_bearer(
    State(auth): State<Arc<BearerAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = auth.token.as_deref() else {
        return next.run(request).await;
    };
    if auth.health_exempt && request.uri().path() == "/health" {
        return next.run(request).await;
    }
    if bearer_matches(request.headers().get(header::AUTHORIZATION), token) {
        next.run(request).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

/// `Authorization: <scheme> 1*SP [SP/HTAB…] <token>` with a case-insensitive
/// `Bearer` scheme (RFC 9110 §11.1); the token itself is case-sensitive.
pub(crate) fn bearer_matches(header: Option<&HeaderValue>, expected: &[u8]) -> bool {
    let Some(value) = header else {
        return false;
    };
    let value = value.as_bytes();
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return false;
    }
    let credentials = trim_whitespace(rest);
    !credentials.is_empty() && constant_time_eq(credentials, expected)
}

fn trim_whitespace(bytes: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ws(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Time depends on the expected token's length only, not on where (or
/// whether) the given bytes differ, nor on the given length.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut same = (given.len() as u64).ct_eq(&(expected.len() as u64));
    for (index, byte) in expected.iter().enumerate() {
        let other = given.get(index).copied().unwrap_or(!*byte);
        same &= other.ct_eq(byte);
    }
    same.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(header: &str) -> bool {
        bearer_matches(Some(&HeaderValue::from_str(header).unwrap()), b"s3cret")
    }

    #[test]
    fn scheme_is_case_insensitive_and_token_is_not() {
        assert!(check("Bearer s3cret"));
        assert!(check("bearer s3cret"));
        assert!(check("BEARER s3cret"));
        assert!(!check("Bearer S3CRET"));
    }

    #[test]
    fn extra_whitespace_after_the_first_space_is_tolerated() {
        assert!(check("Bearer  \t s3cret"));
    }

    #[test]
    fn malformed_headers_fail() {
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Bearer\ts3cret",
            "Basic s3cret",
            "s3cret",
            "Bearer s3cre",
            "Bearer s3cretX",
            "Bearer s3cret extra",
        ] {
            assert!(!check(bad), "{bad:?}");
        }
        assert!(!bearer_matches(None, b"s3cret"));
    }

    #[test]
    fn comparison_checks_every_byte_and_the_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
    }
}
