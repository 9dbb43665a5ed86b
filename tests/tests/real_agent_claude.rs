//! The real `claude-code-acp` (npm `@zed-industries/claude-code-acp`, pinned in tests/npm,
//! which bundles Claude Code) behind the real daemon, its model a scripted mock of the
//! Anthropic Messages API on loopback: a prompt streams text; a write raises a permission
//! request (`allow` lands the file, `reject` leaves none); a cancel ends a turn in the middle;
//! DELETE and SIGTERM leave none of its processes.
//!
//! Skips loudly where claude-code-acp is not installed (`bash scripts/npm-deps.sh`), except
//! under CI=true, where it fails.

use qserve_e2e::mock_anthropic::MockAnthropic;
use qserve_e2e::mock_server::Script;
use qserve_e2e::real_agent::{RealAgent, RealAgentEnv};
use qserve_e2e::real_agent_suite::{self, Options};

#[tokio::test]
async fn real_claude_code_acp_streams_asks_writes_only_when_allowed_cancels_and_leaves_nothing() {
    if !RealAgent::ClaudeCodeAcp.available_or_skip("real_claude_code_acp") {
        return;
    }
    let mock = MockAnthropic::start().expect("mock Anthropic API");
    let agent = RealAgentEnv::for_agent(RealAgent::ClaudeCodeAcp, &mock.base_url());
    real_agent_suite::run(
        &agent,
        Options {
            allow: "allow",
            reject: "reject",
            // Sent only in its tool_call updates; the daemon completes the request from them.
            write_tool_name: Some("mcp__acp__Write"),
        },
        || mock.saw(&Script::Hang),
    )
    .await;
}
