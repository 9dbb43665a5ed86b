//! The agent side of qserve: ACP coding agents as child processes.
//!
//! - [`command`]: the agent command line (`--agent "qwen --acp"`).
//! - [`process`]: spawning a child in its own process group and stopping
//!   the whole group.
//! - [`rpc`]: JSON-RPC 2.0 over the child's stdio, both directions at once.
//! - [`fs`]: the agent's `fs/read_text_file` / `fs/write_text_file` requests.
//! - [`methods`]: the typed ACP messages the daemon acts on.
//! - [`quirks`]: per-agent differences.
//!
//! A typical start, as the bridge does it:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use qserve_acp::{methods, AgentCommand, AgentProcess, Connection, ConnectionConfig, Incoming};
//! let command = AgentCommand::parse("qwen --acp")?;
//! let (process, stdin, stdout) = AgentProcess::spawn(&command, "/repo".as_ref(), &["QSERVE_TOKEN"])?;
//! let config = ConnectionConfig { label: format!("pid={}", process.pid()), ..Default::default() };
//! let (conn, mut incoming) = Connection::start(stdin, stdout, config);
//! tokio::spawn(async move {
//!     while let Some(message) = incoming.recv().await {
//!         match message {
//!             Incoming::Notification { method, params } => { /* forward raw */ }
//!             Incoming::Request { method, params, responder } => {
//!                 responder.respond(Err(qserve_acp::RpcError::method_not_found(&method)));
//!             }
//!             Incoming::Closed { reason } => break,
//!         }
//!     }
//! });
//! let init = methods::InitializeInfo::parse(&conn.request(methods::method::INITIALIZE, methods::initialize_params()).await?)?;
//! let session = methods::NewSessionInfo::parse(
//!     &conn.request(methods::method::SESSION_NEW, methods::new_session_params("/repo".as_ref())).await?,
//! )?;
//! # let _ = (init, session); Ok(()) }
//! ```

pub mod command;
pub mod fs;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod lines;
pub mod methods;
pub mod process;
pub mod quirks;
pub mod rpc;

pub use command::{AgentCommand, CommandError};
pub use fs::FsError;
pub use lines::escape_for_log;
pub use process::guard;
pub use process::{AgentProcess, ExitInfo, ExitWatch, SpawnError};
pub use quirks::Quirks;
pub use rpc::{
    CloseReason, Connection, ConnectionConfig, Incoming, IncomingReceiver, MethodName, Responder,
    RpcError,
};
