//! How long the `rules` policy takes to decide with 1 000 mixed rules.
//!
//!     cargo bench -p qserve-rules-logic --bench rules
//!
//! No criterion: a plain timer around each decision, printing p50/p99/max
//! per kind of call and overall, plus the time `init` takes to compile the
//! rules. (The integrator runs the same decisions through the Wasm
//! component for the figure that includes the host boundary.)

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use qserve_policy_logic::{
    AgentInfo, Context, OptionKind, PermissionOption, Phase, Policy, ResolvedPath, SessionScope,
    ToolCall, ToolKind,
};
use qserve_rules_logic::RulesPolicy;

const WS: &str = "/home/me/project";

/// 1 000 rules in every style, with `[[example]]`s so `init` runs them too.
fn config() -> String {
    let mut allow = Vec::new();
    let mut ask = Vec::new();
    let mut deny = Vec::new();
    // 400 shell rules.
    for i in 0..400 {
        let rule = match i % 4 {
            0 => format!("Bash(tool{i} status)"),
            1 => format!("Bash(tool{i} run test:*)"),
            2 => format!("Bash(tool{i} push:*)"),
            _ => format!("Bash(tool{i})"),
        };
        match i % 3 {
            0 => allow.push(rule),
            1 => ask.push(rule),
            _ => deny.push(rule),
        }
    }
    // 150 path rules, 100 domains, 100 MCP tools.
    for i in 0..150 {
        match i % 3 {
            0 => allow.push(format!("Read(dir{i}/**)")),
            1 => ask.push(format!("Edit(**/*.ext{i})")),
            _ => deny.push(format!("Read(/etc/secret{i}/**)")),
        }
    }
    for i in 0..100 {
        let rule = format!("WebFetch(domain:site{i}.example.com)");
        if i % 2 == 0 {
            allow.push(rule)
        } else {
            deny.push(rule)
        }
    }
    for i in 0..100 {
        let rule = format!("mcp__server{}__tool{i}", i % 10);
        if i % 2 == 0 {
            allow.push(rule)
        } else {
            ask.push(rule)
        }
    }
    let list = |rules: &[String]| {
        rules
            .iter()
            .map(|rule| format!("  {rule:?},\n"))
            .collect::<String>()
    };
    let mut config = format!(
        "allow = [\n{}]\nask = [\n{}]\ndeny = [\n{}]\n",
        list(&allow),
        list(&ask),
        list(&deny)
    );
    // 150 Codex prefix rules with alternatives and inline examples.
    for i in 0..150 {
        let decision = ["allow", "prompt", "forbidden"][i % 3];
        writeln!(
            config,
            "[[prefix_rule]]\npattern = [\"cx{i}\", [\"a\", \"b\", \"c\"]]\ndecision = \"{decision}\"\nmatch = [\"cx{i} b x\"]\nnot_match = [\"cx{i} d\"]\n"
        )
        .unwrap();
    }
    // 100 Gemini rules with priorities, 20 of them with an argsPattern.
    for i in 0..100 {
        let decision = ["allow", "ask_user", "deny"][i % 3];
        let priority = (i * 37) % 1000;
        if i % 5 == 0 {
            writeln!(
                config,
                "[[rule]]\ntoolName = \"write_file\"\nargsPattern = '\"file_path\":\"[^\"]*\\.gen{i}\"'\ndecision = \"{decision}\"\npriority = {priority}\n"
            )
            .unwrap();
        } else {
            writeln!(
                config,
                "[[rule]]\ntoolName = \"run_shell_command\"\ncommandPrefix = \"gm{i} sub\"\ndecision = \"{decision}\"\npriority = {priority}\n"
            )
            .unwrap();
        }
    }
    config.push_str(
        "[[example]]\ntool = \"Bash\"\ncommand = \"tool0 status && tool2 push origin\"\nexpect = \"deny\"\n\n\
         [[example]]\ntool = \"Read\"\npaths = [\"dir0/src/main.rs\"]\nexpect = \"allow\"\n",
    );
    config
}

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

fn located(kind: ToolKind, name: &str, paths: &[String]) -> ToolCall {
    ToolCall {
        tool_name: Some(name.into()),
        locations: paths
            .iter()
            .map(|path| {
                let resolved = if path.starts_with('/') {
                    path.clone()
                } else {
                    format!("{WS}/{path}")
                };
                ResolvedPath {
                    requested: path.clone(),
                    inside_workspace: resolved.starts_with(WS),
                    resolved,
                    exists: true,
                }
            })
            .collect(),
        raw_input: format!(
            "{{\"file_path\":{:?}}}",
            paths.first().cloned().unwrap_or_default()
        ),
        ..ToolCall::of_kind(kind)
    }
}

fn shell(command: String) -> ToolCall {
    ToolCall {
        tool_name: Some("Bash".into()),
        raw_input: format!("{{\"command\":{command:?}}}"),
        command: Some(command),
        ..ToolCall::of_kind(ToolKind::Execute)
    }
}

/// A mix of calls, named by what they exercise.
fn calls() -> Vec<(&'static str, ToolCall)> {
    let mut calls = Vec::new();
    for i in 0..50 {
        calls.push((
            "simple command",
            shell(format!("tool{} status --short", i * 4)),
        ));
        calls.push(("simple command", shell(format!("cx{i} b --flag value"))));
        calls.push((
            "compound command",
            shell(format!(
                "tool{} run test:unit && tool{} push origin | tee log",
                i * 4 + 1,
                i * 4 + 2
            )),
        ));
        calls.push((
            "wrapped/substituted",
            shell(format!(
                "FOO=1 sudo -u me tool{} push $(gm{i} sub x)",
                i * 4 + 2
            )),
        ));
        calls.push(("unmatched command", shell(format!("make -j{i} all"))));
        calls.push((
            "read/edit paths",
            located(
                ToolKind::Read,
                "Read",
                &[format!("dir{}/src/lib.rs", (i * 3) % 150)],
            ),
        ));
        calls.push((
            "read/edit paths",
            located(
                ToolKind::Edit,
                "write_file",
                &[
                    format!("src/m{i}.gen{}", (i * 5) % 100),
                    "/tmp/out.txt".to_owned(),
                ],
            ),
        ));
        calls.push((
            "fetch",
            ToolCall {
                tool_name: Some("WebFetch".into()),
                url: Some(format!("https://api.site{i}.example.com/v1/x?y=1")),
                ..ToolCall::of_kind(ToolKind::Fetch)
            },
        ));
        calls.push((
            "mcp",
            ToolCall {
                tool_name: Some(format!("mcp__server{}__tool{i}", i % 10)),
                ..ToolCall::of_kind(ToolKind::Other("mcp".into()))
            },
        ));
    }
    calls
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(label: &str, samples: &mut [Duration]) {
    samples.sort_unstable();
    println!(
        "{label:<22} n={:<7} p50={:>7.2?} p99={:>7.2?} max={:>8.2?}",
        samples.len(),
        percentile(samples, 0.50),
        percentile(samples, 0.99),
        samples[samples.len() - 1]
    );
}

fn main() {
    let config = config();
    let mut init_times = Vec::new();
    let mut policy = RulesPolicy::default();
    for _ in 0..5 {
        let mut fresh = RulesPolicy::default();
        let started = Instant::now();
        fresh.init(&config).expect("the bench config is valid");
        init_times.push(started.elapsed());
        policy = fresh;
    }
    println!(
        "rules: {} ({} bytes of TOML), mode {}",
        policy.ruleset().len(),
        config.len(),
        policy.ruleset().mode().as_str()
    );
    report("init (compile+examples)", &mut init_times);

    let ctx = ctx();
    let options = vec![
        PermissionOption {
            option_id: "once".into(),
            name: "Allow once".into(),
            kind: OptionKind::AllowOnce,
        },
        PermissionOption {
            option_id: "no".into(),
            name: "Reject".into(),
            kind: OptionKind::RejectOnce,
        },
    ];
    let calls = calls();
    // Warm up.
    for (_, call) in &calls {
        black_box(policy.on_permission_request(&ctx, call, &options));
    }
    let rounds = 100;
    let mut by_label: Vec<(&str, Vec<Duration>)> = Vec::new();
    let mut all = Vec::with_capacity(rounds * calls.len());
    for _ in 0..rounds {
        for (label, call) in &calls {
            let started = Instant::now();
            black_box(policy.on_permission_request(&ctx, black_box(call), &options));
            let elapsed = started.elapsed();
            all.push(elapsed);
            match by_label.iter_mut().find(|(known, _)| known == label) {
                Some((_, samples)) => samples.push(elapsed),
                None => by_label.push((label, vec![elapsed])),
            }
        }
    }
    for (label, samples) in &mut by_label {
        report(label, samples);
    }
    report("all decisions", &mut all);
}
