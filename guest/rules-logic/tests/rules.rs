//! The `rules` policy as an operator sees it: a config document in, the
//! decisions (and the refusals) out.

use qserve_policy_logic::{
    AgentInfo, Context, FileAccess, OptionKind, PermissionOption, Phase, Policy, ResolvedPath,
    SessionScope, ToolCall, ToolKind, Verdict,
};
use qserve_rules_logic::{Decision, Mode, Outcome, RulesPolicy, Ruleset};

const WS: &str = "/home/me/project";

fn ctx() -> Context {
    Context {
        session_id: "s-1".into(),
        workspace: WS.into(),
        agent: AgentInfo {
            name: "default".into(),
            command: "claude-code-acp".into(),
            mode: None,
        },
        scope: SessionScope::Single,
        phase: Phase::Running,
    }
}

fn path(path: &str) -> ResolvedPath {
    let resolved = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{WS}/{path}")
    };
    ResolvedPath {
        requested: path.into(),
        inside_workspace: resolved == WS || resolved.starts_with(&format!("{WS}/")),
        resolved,
        exists: true,
    }
}

fn call(kind: ToolKind, tool_name: Option<&str>) -> ToolCall {
    ToolCall {
        tool_name: tool_name.map(str::to_owned),
        ..ToolCall::of_kind(kind)
    }
}

fn bash(command: &str) -> ToolCall {
    ToolCall {
        command: Some(command.into()),
        raw_input: format!("{{\"command\":{command:?}}}"),
        ..call(ToolKind::Execute, Some("Bash"))
    }
}

fn shell_named(name: &str, command: &str) -> ToolCall {
    ToolCall {
        tool_name: Some(name.into()),
        ..bash(command)
    }
}

fn on(kind: ToolKind, tool_name: &str, paths: &[&str]) -> ToolCall {
    ToolCall {
        locations: paths.iter().map(|p| path(p)).collect(),
        ..call(kind, Some(tool_name))
    }
}

fn fetch(url: &str) -> ToolCall {
    ToolCall {
        url: Some(url.into()),
        ..call(ToolKind::Fetch, Some("WebFetch"))
    }
}

fn rules(config: &str) -> Ruleset {
    Ruleset::parse(config).unwrap_or_else(|error| panic!("config refused: {error}\n{config}"))
}

fn refused(config: &str) -> String {
    match Ruleset::parse(config) {
        Ok(_) => panic!("config accepted:\n{config}"),
        Err(error) => error.to_string(),
    }
}

fn decide(rules: &Ruleset, call: &ToolCall) -> Outcome {
    rules.evaluate(&ctx(), call)
}

/// Runs a table of (call, expected decision) and reports every mismatch.
fn table(rules: &Ruleset, cases: &[(ToolCall, Decision)]) {
    let mut wrong = Vec::new();
    for (call, expected) in cases {
        let outcome = decide(rules, call);
        if outcome.decision != *expected {
            wrong.push(format!(
                "{:?} {:?} {:?} {:?}: expected {expected:?}, got {:?} ({})",
                call.kind,
                call.tool_name,
                call.command,
                call.locations
                    .iter()
                    .map(|l| &l.resolved)
                    .collect::<Vec<_>>(),
                outcome.decision,
                outcome.reason
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

use Decision::{Allow, Ask, Deny};

const CLAUDE: &str = r#"
allow = [
    "Bash(git status)",
    "Bash(git diff:*)",
    "Bash(npm run test:*)",
    "Bash(echo)",
    "Read(src/**)",
    "Edit(**/*.rs)",
    "WebFetch(domain:github.com)",
    "mcp__github__list_issues",
]
ask = ["Bash(git commit)", "mcp__slack"]
deny = [
    "Bash(git push:*)",
    "Bash(rm -rf)",
    "Read(.env)",
    "Edit(.git/**)",
    "WebFetch(domain:evil.example)",
    "mcp__github__delete_repo",
]
"#;

#[test]
fn claude_code_rules_match_commands_by_word_prefix() {
    let rules = rules(CLAUDE);
    table(
        &rules,
        &[
            (bash("git status"), Allow),
            (bash("git status --short"), Allow),
            (bash("git diff HEAD~1"), Allow),
            (bash("git push"), Deny),
            (bash("git push origin main --force"), Deny),
            (bash("rm -rf /tmp/x"), Deny),
            (bash("rm -r x"), Ask),
            (bash("npm run test"), Allow),
            (bash("npm run test:unit -- --watch"), Allow),
            (bash("npm run build"), Ask),
            (bash("git commit -m wip"), Ask),
            (bash("git log"), Ask),
            (bash("ls"), Ask),
        ],
    );
}

#[test]
fn compound_commands_are_judged_part_by_part_strictest_first() {
    let rules = rules(CLAUDE);
    table(
        &rules,
        &[
            (bash("git status && git diff"), Allow),
            (bash("git status && git push"), Deny),
            (bash("git status; git push"), Deny),
            (bash("git status | git push"), Deny),
            (bash("git status || rm -rf /"), Deny),
            (bash("git status & ls"), Ask),
            (bash("git status\ngit commit -m x"), Ask),
            (bash("(git status) && { git diff; }"), Allow),
        ],
    );
}

#[test]
fn shell_quoting_and_wrappers_do_not_hide_a_denied_command() {
    let rules = rules(CLAUDE);
    table(
        &rules,
        &[
            (bash("echo 'git push'"), Allow),
            (bash("echo \"a && git push\""), Allow),
            (bash(r"g\it push"), Deny),
            (bash("'git' \"push\""), Deny),
            (bash("FOO=1 git push"), Deny),
            (bash("env GIT_DIR=x git push"), Deny),
            (bash("sudo -u root git push"), Deny),
            (bash("timeout 10 git push"), Deny),
            (bash("/usr/bin/git push"), Deny),
            (bash("git -C /tmp/other push"), Deny),
            (bash("bash -c 'git status && git push'"), Deny),
            (bash("sh -c \"rm -rf /\""), Deny),
            (bash("echo $(git push)"), Deny),
            (bash("echo `rm -rf /`"), Deny),
            (bash("find . -name '*.o' -exec rm -rf {} +"), Deny),
            (bash("xargs rm -rf < list"), Deny),
            (bash("eval git push"), Deny),
        ],
    );
}

#[test]
fn allow_rules_match_only_the_command_as_written() {
    let rules = rules(CLAUDE);
    table(
        &rules,
        &[
            // An assignment or a wrapper can change what an allowed command does.
            (bash("FOO=1 git status"), Ask),
            (bash("GIT_PAGER='sh -c x' git diff"), Ask),
            (bash("sudo git status"), Ask),
            (bash("/tmp/evil/git status"), Ask),
            // More runs than the words show, or output goes to a file.
            (bash("echo $(id)"), Ask),
            (bash("echo `id`"), Ask),
            (bash("echo hi > ~/.bashrc"), Ask),
            (bash("echo hi >> notes"), Ask),
            (bash("git status 'unbalanced"), Ask),
            // Harmless redirections are fine.
            (bash("git status > /dev/null 2>&1"), Allow),
            (bash("npm run test 2>&1 | git diff"), Allow),
        ],
    );
    let reason = decide(&rules, &bash("echo $(id)")).reason;
    assert_eq!(
        reason,
        "allow rule \"Bash(echo)\" does not cover command substitution; asking"
    );
}

#[test]
fn path_rules_match_resolved_locations_relative_to_the_workspace_or_absolute() {
    let rules = rules(CLAUDE);
    table(
        &rules,
        &[
            (on(ToolKind::Read, "Read", &["src/main.rs"]), Allow),
            (on(ToolKind::Read, "Read", &["README.md"]), Allow),
            (on(ToolKind::Read, "Read", &[".env"]), Deny),
            (on(ToolKind::Read, "Read", &["src/a.rs", ".env"]), Deny),
            (on(ToolKind::Read, "Read", &["/etc/passwd"]), Ask),
            // A relative glob never matches outside the workspace.
            (on(ToolKind::Read, "Read", &["/elsewhere/src/main.rs"]), Ask),
            (on(ToolKind::Search, "Grep", &[".env"]), Deny),
            (on(ToolKind::Edit, "Edit", &["src/lib.rs"]), Allow),
            (on(ToolKind::Edit, "Edit", &["deep/down/x.rs"]), Allow),
            // Every location must be allowed.
            (
                on(ToolKind::Edit, "Edit", &["src/lib.rs", "Cargo.toml"]),
                Ask,
            ),
            (on(ToolKind::Edit, "Edit", &[".git/config"]), Deny),
            (on(ToolKind::Delete, "Edit", &[".git/HEAD"]), Deny),
            (on(ToolKind::Edit, "edit", &["/tmp/x.rs"]), Ask),
        ],
    );
    let multi = on(ToolKind::Edit, "MultiEdit", &["src/lib.rs", "notes.txt"]);
    assert_eq!(
        decide(&rules, &multi).decision,
        Ask,
        "notes.txt is not *.rs"
    );
}

#[test]
fn fetch_rules_match_the_domain_and_its_subdomains() {
    let rules = rules(CLAUDE);
    table(
        &rules,
        &[
            (fetch("https://github.com/rust-lang/rust"), Allow),
            (fetch("https://api.github.com/repos"), Allow),
            (fetch("https://github.com.evil.example/"), Deny),
            (fetch("https://notgithub.com/"), Ask),
            (fetch("https://evil.example\\@github.com/"), Deny),
            (fetch("not a url"), Ask),
            (call(ToolKind::Fetch, Some("WebFetch")), Ask),
        ],
    );
}

#[test]
fn mcp_rules_match_server_and_tool() {
    let rules = rules(CLAUDE);
    let mcp = |name: &str| call(ToolKind::Other("mcp".into()), Some(name));
    table(
        &rules,
        &[
            (mcp("mcp__github__list_issues"), Allow),
            (mcp("mcp__github__create_issue"), Ask),
            (mcp("mcp__github__delete_repo"), Deny),
            (mcp("mcp__slack__post"), Ask),
            (mcp("mcp__github"), Ask),
        ],
    );
    assert_eq!(
        decide(&rules, &mcp("mcp__slack__post")).reason,
        "ask rule \"mcp__slack\""
    );
}

#[test]
fn a_tool_name_alone_covers_every_use_of_the_tool_by_any_agent() {
    let rules = rules("allow = [\"Write\", \"Bash\"]\ndeny = [\"Bash(git push)\"]");
    table(
        &rules,
        &[
            // Write stands for the editing tools (Claude Code's Edit/Write/MultiEdit).
            (on(ToolKind::Edit, "Write", &["/tmp/anything"]), Allow),
            (on(ToolKind::Edit, "replace", &["src/a.rs"]), Allow),
            (on(ToolKind::Delete, "Edit", &["src/a.rs"]), Allow),
            (on(ToolKind::Read, "Read", &["/etc/passwd"]), Ask),
            (bash("make install"), Allow),
            (shell_named("run_shell_command", "make && git push"), Deny),
            (call(ToolKind::Other("shell".into()), Some("Bash")), Allow),
        ],
    );
}

#[test]
fn default_reasons_name_the_rule() {
    let rules = rules(CLAUDE);
    assert_eq!(
        decide(&rules, &bash("git push")).reason,
        "deny rule \"Bash(git push:*)\""
    );
    assert_eq!(
        decide(&rules, &bash("git status")).reason,
        "allow rule \"Bash(git status)\""
    );
    assert_eq!(
        decide(&rules, &bash("git status && git push")).reason,
        "deny rule \"Bash(git push:*)\""
    );
    assert_eq!(
        decide(&rules, &bash("ls")).reason,
        "no rule matched; asking the clients"
    );
}

#[test]
fn deny_beats_ask_beats_allow_and_a_rule_may_give_its_reason_and_timeout() {
    let rules = rules(
        r#"
        allow = ["Bash(git)", { rule = "Bash(cargo)", reason = "builds are fine" }]
        ask = [{ rule = "Bash(git commit)", timeout_ms = 30000 }, "Bash(cargo publish)"]
        deny = [{ rule = "Bash(git commit --amend)", reason = "never rewrite history" }]
        ask_timeout_ms = 5000
        "#,
    );
    let outcome = decide(&rules, &bash("git log"));
    assert_eq!((outcome.decision, outcome.timeout_ms), (Allow, None));
    let outcome = decide(&rules, &bash("git commit -m x"));
    assert_eq!((outcome.decision, outcome.timeout_ms), (Ask, Some(30000)));
    let outcome = decide(&rules, &bash("git commit --amend"));
    assert_eq!(
        outcome,
        Outcome {
            decision: Deny,
            reason: "never rewrite history".into(),
            timeout_ms: None
        }
    );
    assert_eq!(
        decide(&rules, &bash("cargo build")).reason,
        "builds are fine"
    );
    let outcome = decide(&rules, &bash("cargo publish"));
    assert_eq!(
        (outcome.decision, outcome.timeout_ms),
        (Ask, Some(5000)),
        "the global ask timeout"
    );
    let outcome = decide(&rules, &bash("make"));
    assert_eq!((outcome.decision, outcome.timeout_ms), (Ask, Some(5000)));
}

#[test]
fn codex_prefix_rules_with_alternatives() {
    let rules = rules(
        r#"
        [[prefix_rule]]
        pattern = ["git", ["push", "fetch"]]
        decision = "forbidden"
        justification = "no network from git"
        match = ["git push origin", ["git", "fetch"]]
        not_match = ["git status", "gitpush"]

        [[prefix_rule]]
        pattern = ["cargo", ["test", "check", "clippy"]]
        decision = "allow"

        [[prefix_rule]]
        pattern = ["cargo", "publish"]
        decision = "prompt"
        "#,
    );
    table(
        &rules,
        &[
            (bash("git push"), Deny),
            (bash("git fetch --all"), Deny),
            (bash("git pull"), Ask),
            (bash("cargo test -p x"), Allow),
            (bash("cargo clippy && cargo check"), Allow),
            (bash("cargo publish"), Ask),
            // Any agent's shell tool.
            (shell_named("run_shell_command", "git push"), Deny),
            (shell_named("shell", "cargo test"), Allow),
        ],
    );
    assert_eq!(
        decide(&rules, &bash("git fetch")).reason,
        "no network from git"
    );
    assert_eq!(
        decide(&rules, &bash("cargo publish")).reason,
        "ask prefix_rule [\"cargo\", \"publish\"]"
    );
}

#[test]
fn codex_match_examples_are_checked_at_load() {
    let message = refused(
        r#"
        [[prefix_rule]]
        pattern = ["git", "push"]
        decision = "forbidden"
        match = ["git pus origin"]
        "#,
    );
    assert!(message.contains("line 2"), "{message}");
    assert!(
        message.contains("match example \"git pus origin\" does not match"),
        "{message}"
    );
    let message = refused(
        r#"
        [[prefix_rule]]
        pattern = ["git"]
        decision = "allow"
        not_match = ["git status"]
        "#,
    );
    assert!(
        message.contains("not_match example \"git status\" matches the pattern"),
        "{message}"
    );
    let message = refused("[[prefix_rule]]\npattern = [\"git\"]\n");
    assert!(message.contains("decision is required"), "{message}");
    let message = refused("[[prefix_rule]]\npattern = [\"git\"]\ndecision = \"block\"\n");
    assert!(
        message.contains("expected allow, prompt or forbidden"),
        "{message}"
    );
}

#[test]
fn gemini_rules_are_ordered_by_priority_first() {
    let rules = rules(
        r#"
        [[rule]]
        toolName = "run_shell_command"
        commandPrefix = "git"
        decision = "ask_user"
        priority = 10

        [[rule]]
        toolName = "run_shell_command"
        commandPrefix = ["git status", "git log"]
        decision = "allow"
        priority = 100

        [[rule]]
        commandPrefix = "git push"
        decision = "deny"
        priority = 500
        denyMessage = "push from your own terminal"

        [[rule]]
        toolName = ["write_file", "replace"]
        decision = "allow"
        priority = 20

        [[rule]]
        toolName = "write_file"
        argsPattern = '"file_path":"[^"]*\.env"'
        decision = "deny"
        priority = 30

        [[rule]]
        mcpName = "untrusted"
        decision = "deny"
        priority = 999

        [[rule]]
        mcpServer = "github"
        mcpTool = "search"
        decision = "allow"
        "#,
    );
    let write = |path: &str| ToolCall {
        raw_input: format!("{{\"file_path\":\"{path}\"}}"),
        ..on(ToolKind::Edit, "write_file", &[path])
    };
    table(
        &rules,
        &[
            (shell_named("run_shell_command", "git status"), Allow),
            (shell_named("run_shell_command", "git log -3"), Allow),
            (shell_named("run_shell_command", "git rebase -i"), Ask),
            (shell_named("run_shell_command", "git push"), Deny),
            (
                shell_named("run_shell_command", "git status && git push"),
                Deny,
            ),
            (write("src/a.rs"), Allow),
            (write(".env"), Deny),
            (on(ToolKind::Edit, "replace", &["src/a.rs"]), Allow),
            (
                call(
                    ToolKind::Other("x".into()),
                    Some("mcp__untrusted__anything"),
                ),
                Deny,
            ),
            (
                call(ToolKind::Other("x".into()), Some("mcp__github__search")),
                Allow,
            ),
            (
                call(
                    ToolKind::Other("x".into()),
                    Some("mcp__github__delete_repo"),
                ),
                Ask,
            ),
        ],
    );
    assert_eq!(
        decide(&rules, &shell_named("run_shell_command", "git push")).reason,
        "push from your own terminal"
    );
}

#[test]
fn a_higher_priority_allow_beats_a_lower_priority_deny() {
    let rules = rules(
        r#"
        deny = ["Bash(rm)"]

        [[rule]]
        commandPrefix = "rm -r build"
        decision = "allow"
        priority = 1
        "#,
    );
    table(
        &rules,
        &[
            (bash("rm -r build"), Allow),
            (bash("rm -r build/x"), Deny),
            (bash("rm -rf /"), Deny),
        ],
    );
    // But only for the command as written: a wrapper is still seen through.
    assert_eq!(decide(&rules, &bash("sudo rm -r build")).decision, Deny);
}

#[test]
fn gemini_allow_redirection_covers_redirects_only() {
    let rules = rules(
        r#"
        [[rule]]
        commandPrefix = "echo"
        decision = "allow"
        allowRedirection = true
        "#,
    );
    table(
        &rules,
        &[
            (bash("echo hi > out.txt"), Allow),
            (bash("echo $(id) > out.txt"), Ask),
        ],
    );
}

#[test]
fn the_empty_config_reads_inside_the_workspace_and_asks_for_the_rest() {
    let rules = rules("");
    assert_eq!(rules.mode(), Mode::Default);
    assert!(rules.is_empty());
    table(
        &rules,
        &[
            (on(ToolKind::Read, "Read", &["src/main.rs"]), Allow),
            (on(ToolKind::Search, "Grep", &["src"]), Allow),
            (on(ToolKind::Read, "Read", &["/etc/passwd"]), Ask),
            (on(ToolKind::Read, "Read", &["src/a", "/etc/passwd"]), Ask),
            (call(ToolKind::Read, Some("Read")), Ask),
            (on(ToolKind::Edit, "Edit", &["src/main.rs"]), Ask),
            (bash("ls"), Ask),
            (fetch("https://example.com/"), Ask),
            (call(ToolKind::Think, None), Ask),
            (call(ToolKind::Other("teleport".into()), None), Ask),
        ],
    );
    assert_eq!(
        decide(&rules, &on(ToolKind::Read, "Read", &["src/main.rs"])).reason,
        "a read inside the workspace"
    );
}

const MODES: &str = r#"
allow = ["Bash(git status)", "Read"]
ask = ["Edit(Cargo.toml)"]
deny = ["Bash(git push)", "Edit(.env)"]
"#;

fn in_mode(mode: &str) -> Ruleset {
    rules(&format!("mode = \"{mode}\"\n{MODES}"))
}

#[test]
fn plan_mode_denies_edits_deletions_moves_and_commands() {
    let rules = in_mode("plan");
    assert_eq!(rules.mode(), Mode::Plan);
    table(
        &rules,
        &[
            (bash("git status"), Deny),
            (on(ToolKind::Edit, "Edit", &["src/a.rs"]), Deny),
            (on(ToolKind::Delete, "delete", &["src/a.rs"]), Deny),
            (on(ToolKind::Move, "move", &["a", "b"]), Deny),
            (on(ToolKind::Read, "Read", &["/etc/hosts"]), Allow),
            (fetch("https://example.com"), Ask),
        ],
    );
    assert_eq!(
        decide(&rules, &bash("git status")).reason,
        "plan mode: no edits, deletions, moves or commands"
    );
}

#[test]
fn default_mode_applies_the_rules_as_written() {
    table(
        &in_mode("default"),
        &[
            (bash("git status"), Allow),
            (bash("git push"), Deny),
            (bash("make"), Ask),
            (on(ToolKind::Edit, "Edit", &["src/a.rs"]), Ask),
        ],
    );
}

#[test]
fn auto_edit_mode_allows_edits_inside_the_workspace_unless_a_rule_says_otherwise() {
    let rules = in_mode("auto-edit");
    table(
        &rules,
        &[
            (on(ToolKind::Edit, "Edit", &["src/a.rs"]), Allow),
            (on(ToolKind::Edit, "Edit", &["src/a.rs", "src/b.rs"]), Allow),
            (on(ToolKind::Edit, "Edit", &["src/a.rs", "/etc/hosts"]), Ask),
            (on(ToolKind::Edit, "Edit", &[".env"]), Deny),
            (on(ToolKind::Edit, "Edit", &["Cargo.toml"]), Allow),
            (call(ToolKind::Edit, Some("Edit")), Ask),
            (on(ToolKind::Delete, "delete", &["src/a.rs"]), Ask),
            (bash("make"), Ask),
            (bash("git push"), Deny),
        ],
    );
    assert_eq!(
        decide(&rules, &on(ToolKind::Edit, "Edit", &["src/a.rs"])).reason,
        "auto-edit mode: an edit inside the workspace"
    );
    // Gemini and Claude Code spellings.
    assert_eq!(in_mode("autoEdit").mode(), Mode::AutoEdit);
    assert_eq!(in_mode("acceptEdits").mode(), Mode::AutoEdit);
}

#[test]
fn yolo_mode_allows_everything_not_denied() {
    let rules = in_mode("yolo");
    table(
        &rules,
        &[
            (bash("make"), Allow),
            (bash("echo $(id) > x"), Allow),
            (on(ToolKind::Edit, "Edit", &["/etc/hosts"]), Allow),
            (on(ToolKind::Edit, "Edit", &["Cargo.toml"]), Allow),
            (bash("git push"), Deny),
            (bash("make && git push"), Deny),
            (on(ToolKind::Edit, "Edit", &[".env"]), Deny),
        ],
    );
    assert_eq!(in_mode("bypassPermissions").mode(), Mode::Yolo);
}

#[test]
fn rules_naming_modes_apply_only_there_and_are_not_overlaid() {
    let config = |mode: &str| {
        rules(&format!(
            r#"
            mode = "{mode}"
            [[rule]]
            commandPrefix = "git status"
            decision = "allow"
            modes = ["plan"]

            [[rule]]
            commandPrefix = "git push"
            decision = "ask_user"
            modes = ["yolo"]
            "#
        ))
    };
    assert_eq!(decide(&config("plan"), &bash("git status")).decision, Allow);
    assert_eq!(decide(&config("plan"), &bash("git log")).decision, Deny);
    assert_eq!(
        decide(&config("default"), &bash("git status")).decision,
        Ask
    );
    assert_eq!(decide(&config("yolo"), &bash("git push")).decision, Ask);
    assert_eq!(decide(&config("yolo"), &bash("git pull")).decision, Allow);
    assert_eq!(decide(&config("default"), &bash("git push")).decision, Ask);
}

fn policy(config: &str) -> RulesPolicy {
    let mut policy = RulesPolicy::default();
    policy
        .init(config)
        .unwrap_or_else(|error| panic!("config refused: {error}"));
    policy
}

fn options(kinds: &[OptionKind]) -> Vec<PermissionOption> {
    kinds
        .iter()
        .map(|kind| PermissionOption {
            option_id: format!("{kind:?}"),
            name: format!("{kind:?}"),
            kind: kind.clone(),
        })
        .collect()
}

#[test]
fn verdicts_select_allow_once_first_reject_or_ask_the_clients() {
    let policy = policy(
        "allow = [\"Bash(ls)\"]\ndeny = [\"Bash(rm)\"]\nask = [{ rule = \"Bash(make)\", timeout_ms = 9000 }]",
    );
    let all = options(&[
        OptionKind::AllowAlways,
        OptionKind::AllowOnce,
        OptionKind::RejectOnce,
    ]);
    let decision = policy.on_permission_request(&ctx(), &bash("ls"), &all);
    assert_eq!(decision.verdict, Verdict::Select("AllowOnce".into()));
    assert_eq!(decision.reason, "allow rule \"Bash(ls)\"");
    let always_only = options(&[OptionKind::AllowAlways, OptionKind::RejectOnce]);
    let decision = policy.on_permission_request(&ctx(), &bash("ls"), &always_only);
    assert_eq!(decision.verdict, Verdict::Select("AllowAlways".into()));
    let reject_only = options(&[OptionKind::RejectOnce]);
    let decision = policy.on_permission_request(&ctx(), &bash("ls"), &reject_only);
    assert_eq!(decision.verdict, Verdict::AskClients(None));
    assert!(
        decision.reason.contains("offered no allow option"),
        "{}",
        decision.reason
    );
    let decision = policy.on_permission_request(&ctx(), &bash("rm x"), &all);
    assert_eq!(decision.verdict, Verdict::Reject);
    let decision = policy.on_permission_request(&ctx(), &bash("make"), &all);
    assert_eq!(decision.verdict, Verdict::AskClients(Some(9000)));
}

#[test]
fn init_names_the_policy_and_refuses_a_bad_config() {
    let mut policy = RulesPolicy::default();
    let info = policy.init("").unwrap();
    assert_eq!(
        (info.name.as_str(), info.version.as_str()),
        ("rules", qserve_rules_logic::VERSION)
    );
    let message = policy.init("deny = [\"Bash(ls *.txt)\"]").unwrap_err();
    assert!(
        message.starts_with("rules config line 1: deny entry \"Bash(ls *.txt)\""),
        "{message}"
    );
    assert!(
        message.contains("only allowed at the end of the last word"),
        "{message}"
    );
}

#[test]
fn session_roots_admit_workspaces_at_or_under_them() {
    let policy = policy("[session]\nallowed_roots = [\"/home/*/src\", \"/srv/work/\"]\n");
    let at = |workspace: &str| Context {
        workspace: workspace.into(),
        phase: Phase::Create,
        ..ctx()
    };
    for (workspace, allowed) in [
        ("/home/me/src", true),
        ("/home/me/src/qserve", true),
        ("/srv/work", true),
        ("/srv/work/a/b", true),
        ("/home/me/srcx", false),
        ("/home/me/other", false),
        ("/home/a/b/src", false),
        ("/srv", false),
        ("/", false),
    ] {
        let decision = policy.on_session_create(&at(workspace));
        assert_eq!(decision.allow, allowed, "{workspace}: {}", decision.reason);
    }
    let decision = policy.on_session_create(&at("/tmp/x"));
    assert_eq!(
        decision.reason,
        "the workspace /tmp/x is not under an allowed root (/home/*/src, /srv/work/)"
    );
    let open = self::policy("");
    assert!(open.on_session_create(&at("/anywhere")).allow);
    let message = refused("[session]\nallowed_roots = [\"src\"]");
    assert!(message.contains("must be an absolute path"), "{message}");
}

#[test]
fn file_access_defaults_to_the_workspace() {
    let policy = policy("");
    let check = |access, p: &str| policy.on_file_access(&ctx(), access, &path(p));
    assert!(check(FileAccess::Read, "src/a.rs").allow);
    assert!(check(FileAccess::Write, "src/a.rs").allow);
    let outside = check(FileAccess::Read, "/etc/passwd");
    assert!(!outside.allow);
    assert_eq!(outside.reason, format!("outside the workspace {WS}"));
    assert!(!check(FileAccess::Write, "/tmp/x").allow);
}

#[test]
fn file_rules_grant_and_deny_by_glob() {
    let policy = policy(
        r#"
        [files]
        workspace = "read-only"
        read = ["/usr/share/doc/**"]
        write = ["/tmp/scratch", "target/**"]
        deny = [".env", ".git/**", "/usr/share/doc/secret"]
        "#,
    );
    let check = |access, p: &str| policy.on_file_access(&ctx(), access, &path(p));
    for (access, p, allowed) in [
        (FileAccess::Read, "src/a.rs", true),
        (FileAccess::Write, "src/a.rs", false),
        (FileAccess::Write, "target/debug/x", true),
        (FileAccess::Read, ".env", false),
        (FileAccess::Write, ".git/config", false),
        (FileAccess::Read, "/usr/share/doc/rust/README", true),
        (FileAccess::Write, "/usr/share/doc/rust/README", false),
        (FileAccess::Read, "/usr/share/doc/secret", false),
        (FileAccess::Write, "/tmp/scratch/out.txt", true),
        (FileAccess::Read, "/tmp/scratch/out.txt", true),
        (FileAccess::Read, "/etc/passwd", false),
    ] {
        let decision = check(access, p);
        assert_eq!(
            decision.allow, allowed,
            "{access:?} {p}: {}",
            decision.reason
        );
    }
    assert_eq!(
        check(FileAccess::Read, ".env").reason,
        "files.deny \".env\""
    );
    assert_eq!(
        check(FileAccess::Write, "src/a.rs").reason,
        "the workspace is read-only for the agent (files.workspace)"
    );
    let plan = self::policy("mode = \"plan\"");
    assert!(
        !plan
            .on_file_access(&ctx(), FileAccess::Write, &path("src/a.rs"))
            .allow
    );
    assert!(
        plan.on_file_access(&ctx(), FileAccess::Read, &path("src/a.rs"))
            .allow
    );
}

#[test]
fn examples_must_hold_at_load() {
    let config = r#"
        allow = ["Bash(git status)", "Read(src/**)"]
        deny = ["Bash(git push)"]

        [[example]]
        name = "status is fine"
        tool = "Bash"
        command = "git status"
        expect = "allow"

        [[example]]
        tool = "run_shell_command"
        command = "FOO=1 git push"
        expect = "deny"

        [[example]]
        kind = "read"
        paths = ["src/x.rs", "/workspace/src/y.rs"]
        expect = "allow"

        [[example]]
        tool = "WebFetch"
        url = "https://example.com"
        expect = "ask"

        [[example]]
        access = "write"
        paths = ["/etc/passwd"]
        expect = "deny"
    "#;
    rules(config);
    let failing = format!(
        "{config}\n[[example]]\nname = \"chained\"\ntool = \"Bash\"\ncommand = \"git status && git push\"\nexpect = \"allow\"\n"
    );
    let message = refused(&failing);
    assert!(
        message.contains(
            "[[example]] \"chained\": expected allow, got deny (deny rule \"Bash(git push)\")"
        ),
        "{message}"
    );
    let header = failing.lines().count() - 4;
    assert_eq!(failing.lines().nth(header - 1), Some("[[example]]"));
    assert!(
        message.starts_with(&format!("rules config line {header}: ")),
        "{message}"
    );
    let message = refused("[[example]]\ncommand = \"ls\"\nexpect = \"ask\"\n");
    assert!(message.contains("say which tool"), "{message}");
    let message = refused("[[example]]\ntool = \"Bash\"\ncommand = \"ls\"\nexpect = \"maybe\"\n");
    assert!(message.contains("expected allow, ask or deny"), "{message}");
    let message = refused("[[example]]\naccess = \"read\"\npaths = [\"a\"]\nexpect = \"ask\"\n");
    assert!(message.contains("never asked"), "{message}");
}

#[test]
fn unknown_keys_are_refused_everywhere() {
    for (config, key) in [
        ("alow = [\"Read\"]", "alow"),
        ("[permissions]\nallow = []", "permissions"),
        ("allow = [{ rule = \"Read\", resaon = \"x\" }]", "resaon"),
        (
            "[[rule]]\ntoolName = \"x\"\ndecision = \"allow\"\nprioirty = 3",
            "prioirty",
        ),
        (
            "[[rule]]\ncommandRegex = \"git\"\ndecision = \"deny\"",
            "commandRegex",
        ),
        (
            "[[prefix_rule]]\npattern = [\"git\"]\ndecision = \"allow\"\nmatches = []",
            "matches",
        ),
        ("[session]\nallowed_root = []", "allowed_root"),
        ("[files]\nreads = []", "reads"),
        (
            "[[example]]\ntool = \"Bash\"\nexpected = \"allow\"\nexpect = \"ask\"",
            "expected",
        ),
    ] {
        let message = refused(config);
        assert!(
            message.contains(&format!("unknown field `{key}`")),
            "{config}: {message}"
        );
        assert!(
            message.starts_with("rules config: line "),
            "{config}: {message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
    }
}

#[test]
fn bad_values_are_refused_with_their_line() {
    for (config, expected) in [
        (
            "mode = \"careful\"",
            "line 1: mode: \"careful\" is not a mode",
        ),
        (
            "\n\nallow = [\"Bash(git push\"]",
            "line 3: allow entry \"Bash(git push\": a `(` without",
        ),
        ("deny = [\"Read(~/.ssh/**)\"]", "no home directory"),
        ("deny = [\"Read(../x)\"]", "`..` cannot match"),
        (
            "allow = [\"WebFetch(github.com)\"]",
            "write WebFetch(domain:example.com)",
        ),
        ("allow = [\"mcp__github(x)\"]", "takes no argument"),
        ("allow = [\"Bash()\"]", "is empty"),
        (
            "allow = [{ rule = \"Bash(ls)\", timeout_ms = 5 }]",
            "timeout_ms only applies to ask rules",
        ),
        (
            "[[rule]]\ndecision = \"deny\"\nargsPattern = \"(\"",
            "argsPattern is not a valid regex",
        ),
        (
            "[[rule]]\ntoolName = \"read_file\"\ncommandPrefix = \"x\"\ndecision = \"deny\"",
            "commandPrefix needs a shell tool",
        ),
        (
            "[[rule]]\nmcpTool = \"x\"\ndecision = \"deny\"",
            "mcpTool needs mcpServer",
        ),
        (
            "[[rule]]\ntoolName = \"x\"\ndecision = \"allow\"\nmodes = [\"turbo\"]",
            "\"turbo\" in modes is not a mode",
        ),
        ("[files]\nworkspace = \"rw\"", "is not an access"),
        ("[files]\ndeny = [\"a[\"]", "not a valid glob"),
        (
            "\n\ndeny = [\"Read(src/[)\"]",
            "line 3: deny entry \"Read(src/[)\": \"src/[\" is not a valid glob",
        ),
        ("allow = 3", "invalid type"),
        ("allow = [", "rules config: line 1, column 10: "),
        (
            "\nallow = \"Read\"",
            "rules config: line 2, column 9: invalid type: string \"Read\", expected a sequence",
        ),
    ] {
        let message = refused(config);
        assert!(message.contains(expected), "{config}: {message}");
    }
}

#[test]
fn the_shipped_example_config_loads_and_keeps_its_promises() {
    let config = include_str!("../examples/rules.toml");
    let rules = rules(config);
    table(
        &rules,
        &[
            (on(ToolKind::Read, "Read", &["src/main.rs"]), Allow),
            (on(ToolKind::Edit, "Edit", &["src/main.rs"]), Ask),
            (bash("git push origin main"), Deny),
            (bash("git status && git push"), Deny),
            (bash("git status"), Allow),
        ],
    );
}

/// Random commands, paths and URLs from an agent never panic the policy,
/// and only what an allow rule names is allowed.
#[test]
fn any_call_gets_a_decision() {
    let rules = rules(CLAUDE);
    let alphabet: Vec<char> = "gitpushstau =;&|()<>$'\"`\\#\n{}!-é€🦀*~/.:@[]?%01"
        .chars()
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..5_000 {
        let length = (next() % 48) as usize;
        let text: String = (0..length)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let outcome = decide(&rules, &bash(&text));
        if outcome.decision == Allow {
            // The alphabet can spell only one allowed command: `git status`.
            assert!(
                text.contains("git") && text.contains("status"),
                "{text:?} allowed: {}",
                outcome.reason
            );
        }
        decide(&rules, &fetch(&format!("https://{text}")));
        decide(
            &rules,
            &on(ToolKind::Edit, "Edit", &[&text, &format!("/{text}")]),
        );
    }
}
