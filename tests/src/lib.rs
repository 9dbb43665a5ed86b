//! End-to-end test support for qserve: the harness that runs the real `qserve-host` binary
//! ([`daemon::Daemon`]) and reads its event streams ([`sse::SseStream`]), a scripted mock model
//! ([`mock_openai::MockOpenAi`]) and mocks of the Gemini and Anthropic APIs
//! ([`mock_gemini`], [`mock_anthropic`]), the real `qwen --acp`, `gemini --acp` and
//! `claude-code-acp` agents set up to use them ([`real_agent::RealAgentEnv`], checked by
//! [`real_agent_suite`]), and process-group hygiene so that no child outlives a test.

pub mod binaries;
pub mod cutting_proxy;
pub mod daemon;
pub mod mock_anthropic;
pub mod mock_gemini;
pub mod mock_openai;
pub mod mock_otlp;
pub mod mock_server;
pub mod nginx;
pub mod process_group;
pub mod real_agent;
pub mod real_agent_suite;
pub mod sse;

pub use binaries::{fake_agent_path, qserve_host_path};
pub use daemon::{Daemon, DaemonOptions};
pub use mock_openai::MockOpenAi;
pub use real_agent::{qwen_available_or_skip, RealAgentEnv};
pub use sse::{SseFrame, SseStream};
