//! `GET /openapi.json`: the OpenAPI 3 description of this HTTP API.
//!
//! The document is checked in (`host/http/openapi.json`) and compiled into
//! the binary; `tests/openapi.rs` fails when it and [`crate::ROUTE_TABLE`]
//! disagree, so it cannot silently fall behind the router.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// The checked-in document.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

pub async fn document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON,
    )
        .into_response()
}
