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
    /// While the web console is served: its session cookie is an
    /// alternative to the bearer token (an `EventSource` cannot send one).
    console: Option<Arc<crate::web::Console>>,
}

impl BearerAuth {
    /// `health_exempt`: `/health` passes without the token (loopback binds
    /// without `--require-auth`).
    pub fn new(token: Option<String>, health_exempt: bool) -> Self {
        Self {
            token: token.map(String::into_bytes),
            health_exempt,
            console: None,
        }
    }

    /// Accepts the console's session cookie too.
    pub fn with_console(mut self, console: Option<Arc<crate::web::Console>>) -> Self {
        self.console = console;
        self
    }
}

/// 403 for a state-changing request authenticated by the console cookie
/// but sent from a page that is not the console.
pub const COOKIE_WITHOUT_OWN_ORIGIN: &str =
    "Request denied: a request authenticated by the console cookie must come from the console's own origin";

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
        return next.run(request).await;
    }
    match auth
        .console
        .as_ref()
        .map(|console| console.cookie_auth(&request))
    {
        Some(crate::web::CookieAuth::Passes) => next.run(request).await,
        Some(crate::web::CookieAuth::WrongOrigin) => {
            ApiError::forbidden(COOKIE_WITHOUT_OWN_ORIGIN).into_response()
        }
        _ => ApiError::unauthorized().into_response(),
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
pub(crate) fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
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

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// A token as an operator would configure it: visible ASCII.
    fn token() -> impl Strategy<Value = String> {
        "[!-~]{1,40}"
    }

    /// Near misses of `token`: one byte changed, dropped or added, a case
    /// flip, a prefix or a suffix.
    fn near_miss(token: String) -> impl Strategy<Value = String> {
        let len = token.len();
        (0..len, any::<u8>(), 0u8..5).prop_map(move |(at, byte, how)| {
            let mut bytes = token.clone().into_bytes();
            let visible = b'!' + byte % 94;
            match how {
                0 => {
                    bytes[at] = if bytes[at] == visible {
                        b'!' + (visible - b'!' + 1) % 94
                    } else {
                        visible
                    }
                }
                1 => {
                    bytes.remove(at);
                }
                2 => bytes.insert(at, visible),
                3 => bytes.truncate(at),
                _ => bytes.push(visible),
            }
            if bytes == token.as_bytes() || bytes.is_empty() {
                bytes.push(b'x');
            }
            String::from_utf8(bytes).unwrap()
        })
    }

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap()
    }

    proptest! {
        #[test]
        fn any_header_bytes_are_judged_without_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            expected in token(),
        ) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                let passed = bearer_matches(Some(&value), expected.as_bytes());
                // Whatever passed carries the exact token after the scheme.
                if passed {
                    let text = value.to_str().unwrap();
                    let (scheme, credentials) = text.split_once(' ').unwrap();
                    prop_assert!(scheme.eq_ignore_ascii_case("bearer"));
                    prop_assert_eq!(credentials.trim_matches([' ', '\t']), expected.as_str());
                }
            }
        }

        #[test]
        fn the_exact_token_passes_under_any_scheme_case(
            expected in token(),
            upper in proptest::collection::vec(any::<bool>(), 6),
            gap in "[ \t]{0,3}",
        ) {
            let scheme: String = "bearer"
                .chars()
                .zip(upper)
                .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            let value = header(&format!("{scheme} {gap}{expected}"));
            prop_assert!(bearer_matches(Some(&value), expected.as_bytes()));
        }

        #[test]
        fn only_the_exact_token_passes(
            (expected, other) in token().prop_flat_map(|t| (Just(t.clone()), prop_oneof![near_miss(t), "[!-~]{0,41}"])),
        ) {
            prop_assume!(other != expected);
            let value = header(&format!("Bearer {other}"));
            prop_assert!(!bearer_matches(Some(&value), expected.as_bytes()));
            prop_assert!(!constant_time_eq(other.as_bytes(), expected.as_bytes()));
        }
    }
}
