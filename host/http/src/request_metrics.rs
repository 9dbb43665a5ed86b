//! Counts every answered request by method, matched route and status
//! (`qserve_http_requests_total`).
//!
//! The route is axum's matched template (`/session/{id}`), never the raw
//! path, and an unknown method is `OTHER`: a client cannot grow the label
//! set. Requests no route matched are counted as `unmatched`.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

pub async fn count_requests(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let response = next.run(request).await;
    qserve_metrics::get().http_request(method, &route, response.status().as_u16());
    response
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
