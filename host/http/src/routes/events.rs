//! `GET /session/{id}/events`: the session's SSE stream.
//!
//! The subscription is made before any header is sent, so an unknown
//! session is a real 404 and the subscriber cap a real 429 + `Retry-After`
//! (EventSource treats 4xx as final; a 200 that closes at once would make
//! it reconnect in a loop).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use serde::Deserialize;

use crate::backend::Backend;
use crate::error::ApiError;
use crate::sse::{last_event_id, writer::sse_body_stream};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Resume cursor for clients that cannot set `Last-Event-ID`.
    #[serde(rename = "lastEventId")]
    last_event_id: Option<String>,
}

pub async fn events<B: Backend>(
    State(app): State<AppState<B>>,
    Path(session_id): Path<String>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let resume_after = last_event_id::from_request(&headers, query.last_event_id.as_deref());
    let subscription = app.backend.subscribe(&session_id, resume_after).await?;
    let stream = sse_body_stream(subscription, resume_after, app.heartbeat, app.stop.clone());
    let mut response = Response::new(Body::from_stream(stream));
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Keeps nginx-style proxies from holding frames back.
    response_headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
