//! The measurements, one module each.

pub mod agent_alone;
pub mod burst;
pub mod permission;
pub mod sessions;
