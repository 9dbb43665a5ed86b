//! examples/policy.cedar decides what its rules list says, line by line.

use qserve_cedar_logic::{CedarPolicy, EXAMPLE};
use qserve_policy_logic::types::{
    AccessDecision, AgentInfo, Context, FileAccess, OptionKind, PermissionDecision,
    PermissionOption, Phase, Policy, ResolvedPath, SessionScope, ToolCall, ToolKind, Verdict,
};

const WORKSPACE: &str = "/home/me/project";

fn example() -> CedarPolicy {
    let mut policy = CedarPolicy::default();
    let info = policy
        .init(EXAMPLE)
        .expect("the example policy set validates");
    assert_eq!(info.name, "cedar");
    policy
}

fn ctx(phase: Phase) -> Context {
    Context {
        session_id: if phase == Phase::Create { "" } else { "s-1" }.into(),
        workspace: WORKSPACE.into(),
        agent: AgentInfo {
            name: "default".into(),
            command: "qwen".into(),
            mode: None,
        },
        scope: SessionScope::Single,
        phase,
    }
}

fn inside(relative: &str) -> ResolvedPath {
    ResolvedPath {
        requested: relative.into(),
        resolved: format!("{WORKSPACE}/{relative}"),
        inside_workspace: true,
        exists: true,
    }
}

fn outside(absolute: &str) -> ResolvedPath {
    ResolvedPath {
        requested: absolute.into(),
        resolved: absolute.into(),
        inside_workspace: false,
        exists: true,
    }
}

fn options() -> Vec<PermissionOption> {
    [
        ("always", OptionKind::AllowAlways),
        ("once", OptionKind::AllowOnce),
        ("no", OptionKind::RejectOnce),
    ]
    .into_iter()
    .map(|(id, kind)| PermissionOption {
        option_id: id.into(),
        name: id.into(),
        kind,
    })
    .collect()
}

fn at(kind: ToolKind, locations: Vec<ResolvedPath>) -> ToolCall {
    ToolCall {
        tool_call_id: "tc-1".into(),
        locations,
        ..ToolCall::of_kind(kind)
    }
}

fn execute(command: &str) -> ToolCall {
    ToolCall {
        command: Some(command.into()),
        ..at(ToolKind::Execute, vec![])
    }
}

fn decide(call: &ToolCall) -> PermissionDecision {
    example().on_permission_request(&ctx(Phase::Running), call, &options())
}

#[test]
fn reads_inside_the_workspace_are_allowed_once() {
    for kind in [ToolKind::Read, ToolKind::Search, ToolKind::Think] {
        let decision = decide(&at(kind.clone(), vec![inside("src/lib.rs")]));
        assert_eq!(decision.verdict, Verdict::Select("once".into()), "{kind:?}");
        assert_eq!(decision.reason, "permitted by allow-reads");
    }
}

#[test]
fn edits_inside_the_workspace_ask_the_clients() {
    let decision = decide(&at(ToolKind::Edit, vec![inside("src/lib.rs")]));
    assert_eq!(decision.verdict, Verdict::AskClients(None));
    assert_eq!(decision.reason, "asking the clients (ask-edits)");
}

#[test]
fn git_push_is_never_allowed() {
    for command in [
        "git push",
        "git push --force origin main",
        "cd sub && git push",
        "GIT_SSH_COMMAND=ssh git push",
    ] {
        let decision = decide(&execute(command));
        assert_eq!(decision.verdict, Verdict::Reject, "{command}");
        assert_eq!(
            decision.reason, "forbidden by never-git-push: git push is not allowed",
            "{command}"
        );
    }
}

#[test]
fn other_commands_ask_the_clients() {
    for command in ["git status", "cargo test", "echo git push"] {
        let decision = decide(&execute(command));
        assert_eq!(decision.verdict, Verdict::AskClients(None), "{command}");
        assert_eq!(decision.reason, "asking the clients (ask-commands)");
    }
}

#[test]
fn anything_touching_a_path_outside_the_workspace_is_denied() {
    for kind in [
        ToolKind::Read,
        ToolKind::Search,
        ToolKind::Edit,
        ToolKind::Execute,
    ] {
        let decision = decide(&at(
            kind.clone(),
            vec![inside("a.txt"), outside("/etc/passwd")],
        ));
        assert_eq!(decision.verdict, Verdict::Reject, "{kind:?}");
        assert_eq!(decision.reason, "forbidden by deny-outside-workspace");
    }
}

#[test]
fn what_no_rule_covers_is_denied() {
    for kind in [
        ToolKind::Delete,
        ToolKind::Move,
        ToolKind::Fetch,
        ToolKind::SwitchMode,
    ] {
        let decision = decide(&at(kind.clone(), vec![inside("a.txt")]));
        assert_eq!(decision.verdict, Verdict::Reject, "{kind:?}");
        assert_eq!(
            decision.reason,
            format!("no policy permits {}", kind.name())
        );
    }
}

#[test]
fn sessions_are_allowed() {
    for phase in [Phase::Create, Phase::Attach] {
        assert_eq!(
            example().on_session_create(&ctx(phase)),
            AccessDecision::allow("permitted by sessions"),
            "{phase:?}"
        );
    }
}

#[test]
fn file_reads_and_writes_are_allowed_inside_the_workspace_only() {
    let policy = example();
    for access in [FileAccess::Read, FileAccess::Write] {
        assert_eq!(
            policy.on_file_access(&ctx(Phase::Running), access, &inside("notes.md")),
            AccessDecision::allow("permitted by files-inside-workspace"),
            "{access:?}"
        );
        let outside = policy.on_file_access(&ctx(Phase::Running), access, &outside("/etc/hosts"));
        assert!(!outside.allow, "{access:?}");
        assert_eq!(
            outside.reason,
            format!(
                "no policy permits file_{}",
                match access {
                    FileAccess::Read => "read",
                    FileAccess::Write => "write",
                }
            )
        );
    }
}
