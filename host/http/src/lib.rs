//! qserve's HTTP + SSE surface, wire-compatible with `qwen serve` (see
//! PROTOCOL.md): routes, authentication and browser guards, JSON error
//! envelopes, and the SSE writer. The daemon plugs in through [`Backend`].
//!
//! Where things are: `router` (route table and check order), `auth` (bearer
//! token), `guard` (Host allowlist, Origin denial), `net` (bind validation),
//! `body` (JSON body reading), `error` (envelope and status mapping),
//! `fallback` (404/405 and non-JSON error rewriting), `listener`
//! (connection cap), `sse` (frames, resume cursor, stream writer),
//! `routes` (one module per resource), `server` (`serve`).

pub mod backend;
pub mod config;
pub mod error;
pub mod net;
pub mod sse;

mod auth;
mod body;
mod fallback;
mod fields;
mod guard;
mod listener;
mod router;
mod routes;
mod server;
mod state;

pub use backend::{
    Backend, BackendError, ComponentSource, ConfigSource, CreateSession, DeepHealth, EventFrame,
    PolicyHealth, PolicyInfo, PolicyReload, SessionCreated, SessionScope, SessionSummary,
    Subscription, VoteOutcome,
};
pub use config::{HttpConfig, DEFAULT_MAX_BODY_BYTES};
pub use net::{validate_bind, BindError, BindPlan};
pub use routes::capabilities::BASE_FEATURES;
pub use server::serve;
pub use sse::frame::{client_evicted_frame, encode_event, stream_error_frame};
