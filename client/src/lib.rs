//! A typed client for the qserve HTTP + SSE API (the `qwen serve` protocol).
//!
//! * [`Client`] has one method per route, with typed requests and answers;
//!   every non-2xx answer is a [`ClientError::Http`] carrying the daemon's
//!   `error` message and machine-readable `code`.
//! * [`EventStream`] follows a session's events and survives disconnects: it
//!   reconnects with `Last-Event-ID` set to the last id it delivered, and drops
//!   any frame at or below that id, so across reconnects no event is lost
//!   (while the daemon's ring still holds it) and none is delivered twice.
//!
//! Layers: [`types`] is the wire format (serde only), [`sse`] parses frames
//! from bytes (no IO), [`client`] and [`events`] do the HTTP.
//!
//! ```no_run
//! # async fn demo() -> Result<(), qserve_client::ClientError> {
//! use qserve_client::{Client, CreateSession};
//! let client = Client::new("http://127.0.0.1:4170")?;
//! let session = client.create_session(&CreateSession::new("/path/to/repo")).await?;
//! let mut events = client.events(&session.session_id, Some(0));
//! while let Some(event) = events.next().await {
//!     println!("{} {}", event?.kind, "…");
//! }
//! # Ok(()) }
//! ```

pub mod client;
pub mod error;
pub mod events;
pub mod sse;
pub mod types;

pub use client::Client;
pub use error::ClientError;
pub use events::{EventStream, ReconnectPolicy};
pub use types::*;
