//! The console's files, compiled into the binary (`host/http/assets/console/`):
//! plain ES modules and CSS, no build step, nothing fetched from elsewhere,
//! so the console works offline and is exactly what this daemon was built with.

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// (name under `/console/`, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/console/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/console/api.js"),
    ),
    (
        "render.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/console/render.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/console/style.css"),
    ),
];

const INDEX: &[u8] = include_bytes!("../../assets/console/index.html");

/// Only this daemon's own files run, nothing inline, no framing: agent text
/// shown on the page can never become script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub(super) async fn index() -> Response {
    serve("text/html; charset=utf-8", INDEX)
}

pub(super) async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, bytes)) => serve(content_type, bytes),
        None => ApiError::not_found(format!("no console file {name:?}")).into_response(),
    }
}

fn serve(content_type: &'static str, bytes: &'static [u8]) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
