//! Every answered request: counted by method, matched route and status
//! (`qserve_http_requests_total`), and run inside one `http.request` span —
//! exported with `--otlp-endpoint`, with `qserve.session_id` on the
//! session's routes so a trace backend links it to the agent requests and
//! policy decisions it caused.
//!
//! The route is axum's matched template (`/session/{id}`), never the raw
//! path, and an unknown method is `OTHER`: a client cannot grow the label
//! set. Requests no route matched are counted as `unmatched`.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

pub async fn count_requests(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let span = tracing::info_span!(
        target: qserve_metrics::SPAN_TARGET,
        "http.request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        qserve.session_id = tracing::field::Empty,
    );
    if let Some(session_id) = session_of(&route, request.uri().path()) {
        span.record("qserve.session_id", session_id);
    }
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    qserve_metrics::get().http_request(method, &route, status);
    response
}

/// The `{id}` of a `/session/{id}…` route, from the request's path.
fn session_of<'a>(route: &str, path: &'a str) -> Option<&'a str> {
    route
        .starts_with("/session/{id}")
        .then(|| path.split('/').nth(2))
        .flatten()
        .filter(|id| !id.is_empty())
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::session_of;

    #[test]
    fn the_session_id_comes_from_session_routes_only() {
        assert_eq!(
            session_of("/session/{id}/prompt", "/session/abc/prompt"),
            Some("abc")
        );
        assert_eq!(session_of("/session/{id}", "/session/abc"), Some("abc"));
        assert_eq!(session_of("/session", "/session"), None);
        assert_eq!(
            session_of("/permission/{requestId}", "/permission/r1"),
            None
        );
    }
}
