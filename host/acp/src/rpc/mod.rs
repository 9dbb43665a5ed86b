//! JSON-RPC 2.0 over an agent's stdio: one message per line.

mod connection;
mod error;
pub(crate) mod frame;

pub use connection::{
    CloseReason, Connection, ConnectionConfig, Incoming, IncomingReceiver, Responder,
};
pub use error::RpcError;
pub use frame::MethodName;
