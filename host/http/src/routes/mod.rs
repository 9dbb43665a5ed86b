//! The route handlers, one module per resource of PROTOCOL.md's route table.

pub mod admin;
pub mod capabilities;
pub mod events;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod permission;
pub mod session;
pub mod workspace;
