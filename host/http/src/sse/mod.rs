//! Server-sent events: frame encoding, the resume cursor, and the writer
//! that turns a [`crate::backend::Subscription`] into a response body.

pub mod frame;
pub mod last_event_id;
pub mod writer;
