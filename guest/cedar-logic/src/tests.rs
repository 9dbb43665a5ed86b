//! The decision mapping, one Cedar outcome at a time, and the refusals.

use super::*;
use qserve_policy_logic::types::{AgentInfo, Phase, SessionScope, ToolKind};

const WORKSPACE: &str = "/home/me/project";

fn running() -> Context {
    Context {
        session_id: "s-1".into(),
        workspace: WORKSPACE.into(),
        agent: AgentInfo {
            name: "coder".into(),
            command: "qwen".into(),
            mode: Some("default".into()),
        },
        scope: SessionScope::Single,
        phase: Phase::Running,
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

fn option(id: &str, kind: OptionKind) -> PermissionOption {
    PermissionOption {
        option_id: id.into(),
        name: id.into(),
        kind,
    }
}

/// Allow-always first, so picking by position would show.
fn all_options() -> Vec<PermissionOption> {
    vec![
        option("always", OptionKind::AllowAlways),
        option("once", OptionKind::AllowOnce),
        option("no", OptionKind::RejectOnce),
    ]
}

fn call(kind: ToolKind) -> ToolCall {
    ToolCall {
        tool_call_id: "tc-1".into(),
        ..ToolCall::of_kind(kind)
    }
}

fn execute(command: &str) -> ToolCall {
    ToolCall {
        command: Some(command.into()),
        ..call(ToolKind::Execute)
    }
}

fn load(text: &str) -> CedarPolicy {
    CedarPolicy::load(text).unwrap_or_else(|error| panic!("{error}"))
}

fn decide(policy: &CedarPolicy, call: &ToolCall) -> PermissionDecision {
    policy.on_permission_request(&running(), call, &all_options())
}

#[test]
fn a_permit_selects_allow_once_and_names_the_policy() {
    let policy =
        load(r#"@id("reads") permit (principal, action == Qserve::Action::"read", resource);"#);
    let decision = decide(&policy, &call(ToolKind::Read));
    assert_eq!(decision.verdict, Verdict::Select("once".into()));
    assert_eq!(decision.reason, "permitted by reads");
}

#[test]
fn a_permit_selects_allow_always_when_allow_once_is_not_offered() {
    let policy = load(r#"permit (principal, action, resource);"#);
    let options = [
        option("no", OptionKind::RejectOnce),
        option("always", OptionKind::AllowAlways),
    ];
    let decision = policy.on_permission_request(&running(), &call(ToolKind::Edit), &options);
    assert_eq!(decision.verdict, Verdict::Select("always".into()));
    assert_eq!(
        decision.reason, "permitted by policy0",
        "Cedar's generated id without @id"
    );
}

#[test]
fn a_permit_asks_the_clients_when_no_allow_option_is_offered() {
    let policy = load(r#"permit (principal, action, resource);"#);
    let options = [option("no", OptionKind::RejectOnce)];
    let decision = policy.on_permission_request(&running(), &call(ToolKind::Edit), &options);
    assert_eq!(decision.verdict, Verdict::AskClients(None));
    assert!(
        decision.reason.contains("offers no allow option"),
        "{}",
        decision.reason
    );
}

#[test]
fn forbid_overrides_permit_and_rejects_naming_the_forbid_and_its_reason() {
    let policy = load(
        r#"
        @id("all") permit (principal, action, resource);
        @id("no-exec") @reason("commands are off")
        forbid (principal, action == Qserve::Action::"execute", resource);
        "#,
    );
    let decision = decide(&policy, &execute("ls"));
    assert_eq!(decision.verdict, Verdict::Reject);
    assert_eq!(decision.reason, "forbidden by no-exec: commands are off");
    assert_eq!(
        decide(&policy, &call(ToolKind::Read)).verdict,
        Verdict::Select("once".into())
    );
}

#[test]
fn no_permit_rejects() {
    let policy =
        load(r#"@id("reads") permit (principal, action == Qserve::Action::"read", resource);"#);
    let decision = decide(&policy, &call(ToolKind::Delete));
    assert_eq!(decision.verdict, Verdict::Reject);
    assert_eq!(decision.reason, "no policy permits delete");
}

#[test]
fn an_ask_permit_asks_the_clients_with_its_timeout_if_any() {
    let policy = load(
        r#"
        @id("ask-edits") @ask
        permit (principal, action == Qserve::Action::"edit", resource);
        @id("ask-commands") @ask("60000")
        permit (principal, action == Qserve::Action::"execute", resource);
        "#,
    );
    let edit = decide(&policy, &call(ToolKind::Edit));
    assert_eq!(edit.verdict, Verdict::AskClients(None));
    assert_eq!(edit.reason, "asking the clients (ask-edits)");
    let command = decide(&policy, &execute("make"));
    assert_eq!(command.verdict, Verdict::AskClients(Some(60_000)));
}

#[test]
fn ask_wins_over_a_plain_permit_and_the_shortest_timeout_wins() {
    let policy = load(
        r#"
        @id("all") permit (principal, action, resource);
        @id("slow") @ask("90000") permit (principal, action == Qserve::Action::"edit", resource);
        @id("fast") @ask("5000") permit (principal, action == Qserve::Action::"edit", resource);
        "#,
    );
    let decision = decide(&policy, &call(ToolKind::Edit));
    assert_eq!(decision.verdict, Verdict::AskClients(Some(5000)));
    assert_eq!(decision.reason, "asking the clients (fast, slow)");
}

#[test]
fn a_forbid_beats_an_ask() {
    let policy = load(
        r#"
        @ask permit (principal, action, resource);
        @id("never") forbid (principal, action == Qserve::Action::"fetch", resource);
        "#,
    );
    let decision = decide(&policy, &call(ToolKind::Fetch));
    assert_eq!(decision.verdict, Verdict::Reject);
    assert_eq!(decision.reason, "forbidden by never");
}

#[test]
fn unknown_tool_kinds_are_the_other_action_with_their_name_in_kind() {
    let policy = load(
        r#"permit (principal, action == Qserve::Action::"other", resource) when { resource.kind == "teleport" };"#,
    );
    assert_eq!(
        decide(&policy, &call(ToolKind::Other("teleport".into()))).verdict,
        Verdict::Select("once".into())
    );
    assert_eq!(
        decide(&policy, &call(ToolKind::Other("warp".into()))).verdict,
        Verdict::Reject
    );
}

#[test]
fn every_tool_kind_has_its_action_in_the_tool_group() {
    let policy = load(r#"permit (principal, action in Qserve::Action::"tool", resource);"#);
    for kind in [
        ToolKind::Read,
        ToolKind::Edit,
        ToolKind::Delete,
        ToolKind::Move,
        ToolKind::Search,
        ToolKind::Execute,
        ToolKind::Think,
        ToolKind::Fetch,
        ToolKind::SwitchMode,
        ToolKind::Other("x".into()),
    ] {
        assert_eq!(
            decide(&policy, &call(kind.clone())).verdict,
            Verdict::Select("once".into()),
            "{kind:?}"
        );
    }
    // The group holds tools only.
    assert!(!policy.on_session_create(&running()).allow);
    assert!(
        !policy
            .on_file_access(&running(), FileAccess::Read, &inside("a"))
            .allow
    );
}

#[test]
fn the_principal_carries_the_session_and_agent() {
    let policy = load(
        r#"
        permit (principal == Qserve::Session::"s-1", action == Qserve::Action::"read", resource)
        when { principal.agent == "coder" && principal.agentCommand == "qwen"
            && principal.agentMode == "default" && principal.scope == "single"
            && principal.workspace == "/home/me/project"
            && principal in Qserve::Workspace::"/home/me/project" };
        "#,
    );
    assert_eq!(
        decide(&policy, &call(ToolKind::Read)).verdict,
        Verdict::Select("once".into())
    );
    let other_session = Context {
        session_id: "s-2".into(),
        ..running()
    };
    assert_eq!(
        policy
            .on_permission_request(&other_session, &call(ToolKind::Read), &all_options())
            .verdict,
        Verdict::Reject
    );
}

#[test]
fn the_tool_call_carries_its_command_url_paths_and_mcp_names() {
    let policy = load(
        r#"
        @id("tool") permit (principal, action, resource == Qserve::ToolCall::"tc-1")
        when {
            resource.toolName == "mcp__github__create_issue"
            && resource.mcpServer == "github" && resource.mcpTool == "create_issue"
            && resource.title == "Open an issue"
            && resource.url == "https://API.github.com:443/repos"
            && resource.domain == "api.github.com"
            && resource.command == "gh issue create --title 'a b'"
            && resource.commandTokens.containsAll(["gh", "a b"])
            && resource.commandPrefixes.contains("gh issue create")
            && resource.commandParsed && !resource.commandHasShellSyntax
            && resource.paths == ["/home/me/project/README.md"]
            && resource.allInsideWorkspace
        };
        "#,
    );
    let full = ToolCall {
        tool_name: Some("mcp__github__create_issue".into()),
        title: "Open an issue".into(),
        url: Some("https://API.github.com:443/repos".into()),
        locations: vec![inside("README.md")],
        ..execute("gh issue create --title 'a b'")
    };
    let decision = decide(&policy, &full);
    assert_eq!(
        decision.verdict,
        Verdict::Select("once".into()),
        "{}",
        decision.reason
    );
    let elsewhere = ToolCall {
        locations: vec![inside("README.md"), outside("/etc/passwd")],
        ..full
    };
    assert_eq!(decide(&policy, &elsewhere).verdict, Verdict::Reject);
}

#[test]
fn absent_strings_are_empty_and_no_paths_count_as_inside() {
    let policy = load(
        r#"permit (principal, action in Qserve::Action::"tool", resource) when {
            resource.command == "" && resource.url == "" && resource.domain == ""
            && resource.toolName == "" && resource.mcpServer == ""
            && resource.commandTokens.isEmpty() && resource.commandParsed
            && resource.paths.isEmpty() && resource.allInsideWorkspace
        };"#,
    );
    assert_eq!(
        decide(&policy, &call(ToolKind::Think)).verdict,
        Verdict::Select("once".into())
    );
}

#[test]
fn sessions_map_to_create_and_attach_on_the_workspace() {
    let policy = load(
        r#"
        @id("create") permit (principal == Qserve::Session::"", action == Qserve::Action::"session_create",
            resource == Qserve::Workspace::"/home/me/project");
        @id("attach-by-coder") permit (principal, action == Qserve::Action::"session_attach", resource)
            when { principal.agent == "coder" && resource.path == "/home/me/project" };
        "#,
    );
    let create = Context {
        session_id: String::new(),
        phase: Phase::Create,
        ..running()
    };
    assert_eq!(
        policy.on_session_create(&create),
        AccessDecision::allow("permitted by create")
    );
    let attach = Context {
        phase: Phase::Attach,
        ..running()
    };
    assert_eq!(
        policy.on_session_create(&attach),
        AccessDecision::allow("permitted by attach-by-coder")
    );
    let other_agent = Context {
        agent: AgentInfo {
            name: "other".into(),
            ..running().agent
        },
        ..attach
    };
    assert_eq!(
        policy.on_session_create(&other_agent),
        AccessDecision::deny("no policy permits session_attach")
    );
}

#[test]
fn files_map_to_read_and_write_with_their_resolved_path() {
    let policy = load(
        r#"
        @id("read-inside") permit (principal, action == Qserve::Action::"file_read", resource in Qserve::Workspace::"/home/me/project");
        @id("write-new-notes") permit (principal, action == Qserve::Action::"file_write", resource)
            when { resource.insideWorkspace && !resource.exists && resource.path like "*/notes/*" };
        "#,
    );
    assert_eq!(
        policy.on_file_access(&running(), FileAccess::Read, &inside("src/main.rs")),
        AccessDecision::allow("permitted by read-inside")
    );
    assert_eq!(
        policy.on_file_access(&running(), FileAccess::Read, &outside("/etc/passwd")),
        AccessDecision::deny("no policy permits file_read")
    );
    let new_note = ResolvedPath {
        exists: false,
        ..inside("notes/today.md")
    };
    assert!(
        policy
            .on_file_access(&running(), FileAccess::Write, &new_note)
            .allow
    );
    assert!(
        !policy
            .on_file_access(&running(), FileAccess::Write, &inside("notes/old.md"))
            .allow,
        "exists"
    );
    assert!(
        !policy
            .on_file_access(&running(), FileAccess::Write, &inside("src/main.rs"))
            .allow
    );
}

#[test]
fn ask_cannot_ask_for_files_or_sessions_so_it_denies() {
    let policy = load(r#"@id("ask-all") @ask permit (principal, action, resource);"#);
    let file = policy.on_file_access(&running(), FileAccess::Write, &inside("a"));
    assert_eq!(
        file,
        AccessDecision::deny("asking the clients (ask-all): cannot ask here, denied")
    );
    assert!(!policy.on_session_create(&running()).allow);
}

#[test]
fn init_names_the_policy_and_versions_the_policy_set() {
    let mut policy = CedarPolicy::default();
    let info = policy
        .init(r#"permit (principal, action, resource);"#)
        .unwrap();
    assert_eq!(info.name, "cedar");
    let (crate_version, set_hash) = info.version.split_once('+').unwrap();
    assert_eq!(crate_version, VERSION);
    assert_eq!(set_hash.len(), 16);
    let other = CedarPolicy::default()
        .init(r#"forbid (principal, action, resource);"#)
        .unwrap();
    assert_ne!(info.version, other.version, "another set, another version");
    assert_eq!(policy.len(), 1);
}

#[test]
fn a_policy_set_that_does_not_validate_is_refused_with_cedars_message() {
    let error = CedarPolicy::default()
        .init(
            "@id(\"typo\")\npermit (principal, action == Qserve::Action::\"execute\", resource)\n  when { resource.commandz.contains(\"ls\") };",
        )
        .unwrap_err();
    assert!(
        error.starts_with(
            "cedar policy: the policy set does not validate against the qserve schema:"
        ),
        "{error}"
    );
    // Cedar's own words, the policy's id, and where.
    assert!(error.contains("commandz"), "{error}");
    assert!(error.contains("`typo`"), "{error}");
    assert!(error.contains("line 3"), "{error}");
}

#[test]
fn unknown_actions_and_type_errors_are_refused() {
    for (text, expected) in [
        (
            r#"permit (principal, action == Qserve::Action::"exec", resource);"#,
            "exec",
        ),
        (
            r#"permit (principal, action, resource) when { resource.allInsideWorkspace == "yes" };"#,
            "does not validate",
        ),
        (
            r#"permit (principal is Qserve::User, action, resource);"#,
            "Qserve::User",
        ),
    ] {
        let error = CedarPolicy::load(text).err().map(|e| e.to_string());
        let error = error.unwrap_or_else(|| panic!("accepted: {text}"));
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn a_policy_set_that_does_not_parse_is_refused_with_cedars_message() {
    let error =
        CedarPolicy::load("permit (principal, action, resource)\nwhen { resource.kind == };")
            .err()
            .unwrap()
            .to_string();
    assert!(
        error.starts_with("cedar policy: the policy set does not parse:"),
        "{error}"
    );
    assert!(error.contains("line 2"), "{error}");
}

#[test]
fn empty_configuration_is_refused() {
    for text in ["", "  \n", "\t"] {
        let error = CedarPolicy::default().init(text).unwrap_err();
        assert!(error.contains("the configuration is empty"), "{error}");
    }
}

#[test]
fn bad_annotations_are_refused_naming_the_policy() {
    for (text, expected) in [
        (
            r#"@ask("soon") permit (principal, action, resource);"#,
            "policy policy0 (policy number 1 in the file): @ask(\"soon\")",
        ),
        (
            r#"@id("x") @ask forbid (principal, action, resource);"#,
            "policy x: @ask only applies to permit policies",
        ),
        (
            r#"@id("same") permit (principal, action, resource); @id("same") forbid (principal, action, resource);"#,
            "same @id",
        ),
        (
            r#"@id permit (principal, action, resource);"#,
            "@id needs a value",
        ),
    ] {
        let error = CedarPolicy::load(text).err().unwrap().to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn templates_are_refused() {
    let error = CedarPolicy::load(r#"permit (principal == ?principal, action, resource);"#)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("templates are not supported"), "{error}");
}

#[test]
fn validation_warnings_are_kept_for_the_log() {
    let policy = load(
        r#"permit (principal, action == Qserve::Action::"read", resource) when { resource.title == "ʏоur" };"#,
    );
    // Mixed scripts in a string literal: Cedar warns, the set still loads.
    assert!(!policy.warnings().is_empty());
}

#[test]
fn the_schema_loads_and_the_example_validates() {
    let policy = load(EXAMPLE);
    assert_eq!(policy.len(), 7);
    assert!(policy.warnings().is_empty(), "{:?}", policy.warnings());
}
