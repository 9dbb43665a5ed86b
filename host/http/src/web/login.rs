//! `POST /login` and `POST /logout`: the token, sent in a JSON body (never a
//! URL), traded for a session cookie, and the cookie cleared.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{session_cookie, WebState, COOKIE_NAME};
use crate::auth::constant_time_eq;
use crate::body::JsonObject;
use crate::error::ApiError;

/// `{"token": TOKEN}` → 200 `{"authenticated":true}` with the cookie, or the
/// same 401 as any wrong token (no cookie). Without a configured token there
/// is nothing to trade: 200 `{"authenticated":true,"tokenRequired":false}`.
pub(super) async fn login(State(web): State<WebState>, JsonObject(body): JsonObject) -> Response {
    let Some(Value::String(given)) = body.get("token") else {
        return ApiError::bad_request("`token` must be a string").into_response();
    };
    let Some(expected) = web.console.token.as_deref() else {
        return no_store(Json(json!({"authenticated": true, "tokenRequired": false})));
    };
    if !constant_time_eq(given.trim().as_bytes(), expected) {
        return ApiError::unauthorized().into_response();
    }
    let value = match web.console.sessions.create() {
        Ok(value) => value,
        Err(error) => {
            tracing::error!(%error, "console login failed");
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
                .with_code("unavailable")
                .into_response();
        }
    };
    let max_age = super::CONSOLE_SESSION_TTL.as_secs();
    let cookie = cookie(&value, max_age, web.console.secure);
    let mut response = no_store(Json(json!({"authenticated": true, "tokenRequired": true})));
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// Ends the request's console session (if any) and clears the cookie. 204.
pub(super) async fn logout(
    State(web): State<WebState>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(value) = session_cookie(&headers) {
        web.console.sessions.remove(value);
    }
    let mut response = no_store(StatusCode::NO_CONTENT);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0, web.console.secure));
    response
}

/// `qserve_session=VALUE; HttpOnly; SameSite=Strict; Path=/; Max-Age=N[; Secure]`.
fn cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .expect("hex digits and fixed attributes make a valid header")
}

fn no_store(answer: impl IntoResponse) -> Response {
    let mut response = answer.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_tls() {
        let plain = cookie("ab", 60, false);
        assert_eq!(
            plain.to_str().unwrap(),
            "qserve_session=ab; HttpOnly; SameSite=Strict; Path=/; Max-Age=60"
        );
        assert!(cookie("ab", 60, true)
            .to_str()
            .unwrap()
            .ends_with("; Secure"));
    }
}
