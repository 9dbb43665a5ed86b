//! The real `gemini --acp` (npm `@google/gemini-cli`, pinned in tests/npm) behind the real
//! daemon, its model a scripted mock of the Gemini API on loopback: a prompt streams text; a
//! write raises a permission request (`proceed_once` lands the file, `cancel` leaves none); a
//! cancel ends a turn in the middle; DELETE and SIGTERM leave none of its processes.
//!
//! gemini reads a file before writing it; the daemon answers the read of a missing file with
//! empty content for this agent (a quirk, see docs/protocol.md), or it could never create one.
//!
//! Skips loudly where gemini is not installed (`bash scripts/npm-deps.sh`), except under
//! CI=true, where it fails.

use qserve_e2e::mock_gemini::MockGemini;
use qserve_e2e::mock_server::Script;
use qserve_e2e::real_agent::{RealAgent, RealAgentEnv};
use qserve_e2e::real_agent_suite::{self, Options};

#[tokio::test]
async fn real_gemini_streams_asks_writes_only_when_allowed_cancels_and_leaves_nothing() {
    if !RealAgent::Gemini.available_or_skip("real_gemini") {
        return;
    }
    let mock = MockGemini::start().expect("mock Gemini API");
    let agent = RealAgentEnv::for_agent(RealAgent::Gemini, &mock.base_url());
    real_agent_suite::run(
        &agent,
        Options {
            allow: "proceed_once",
            reject: "cancel",
            write_tool_name: None,
        },
        || mock.saw(&Script::Hang),
    )
    .await;
}
