//! `GET /metrics`: the daemon's Prometheus metrics (see docs/operations.md).
//!
//! An ordinary route: behind the bearer token and the Host/Origin checks
//! like every other, because sessions, agents and decision counts say what
//! the daemon is doing.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

pub async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(qserve_metrics::CONTENT_TYPE),
        )],
        qserve_metrics::get().encode(),
    )
        .into_response()
}
