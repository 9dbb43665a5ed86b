//! End-to-end test support for qserve: the harness that runs the real `qserve-host` binary
//! ([`daemon::Daemon`]) and reads its event streams ([`sse::SseStream`]), a scripted mock model
//! ([`mock_openai::MockOpenAi`]), the real `qwen --acp` agent set up to use it
//! ([`real_agent::RealAgentEnv`]), and process-group hygiene so that no child outlives a test.

pub mod binaries;
pub mod cutting_proxy;
pub mod daemon;
pub mod mock_openai;
pub mod process_group;
pub mod real_agent;
pub mod sse;

pub use binaries::{fake_agent_path, qserve_host_path};
pub use daemon::{Daemon, DaemonOptions};
pub use mock_openai::MockOpenAi;
pub use real_agent::{qwen_available_or_skip, RealAgentEnv};
pub use sse::{SseFrame, SseStream};
