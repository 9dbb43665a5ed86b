//! qserve's HTTP + SSE surface, wire-compatible with `qwen serve` (see
//! PROTOCOL.md): routes, authentication and browser guards, JSON error
//! envelopes, and the SSE writer. The daemon plugs in through [`Backend`].
//!
//! Where things are: `router` (route table and check order), `auth` (bearer
//! token), `guard` (Host allowlist, Origin denial), `net` (bind validation),
//! `body` (JSON body reading), `error` (envelope and status mapping),
//! `fallback` (404/405 and non-JSON error rewriting), `listener`
//! (connection cap and its 503), `conn` (one connection: header-read, idle
//! and stalled-write deadlines, lingering close), `sse` (frames, resume
//! cursor, stream writer), `routes` (one module per resource; the API is
//! described by `openapi.json`, served at `/openapi.json`), `server`
//! (`serve`: the accept loop), `web` (the console page, its login and cookie).

pub mod backend;
pub mod config;
pub mod error;
pub mod net;
pub mod origin;
pub mod sse;
pub mod tls;

mod auth;
mod body;
mod conn;
mod fallback;
mod fields;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod listener;
mod rate_limit;
mod request_metrics;
mod router;
mod routes;
mod server;
mod state;
mod web;

pub use backend::{
    Backend, BackendError, ComponentSource, ConfigSource, CreateSession, DeepHealth, EventFrame,
    PolicyHealth, PolicyInfo, PolicyReload, SessionCreated, SessionInfo, SessionScope,
    SessionSummary, Subscription, VoteOutcome,
};
pub use config::{HttpConfig, DEFAULT_MAX_BODY_BYTES};
pub use net::{validate_bind, validate_bind_with, BindError, BindPlan};
pub use rate_limit::RateLimits;
pub use router::{Route, ROUTE_TABLE};
pub use routes::capabilities::{policy_json, BASE_FEATURES};
pub use server::serve;
pub use sse::frame::{client_evicted_frame, encode_event, stream_error_frame};
