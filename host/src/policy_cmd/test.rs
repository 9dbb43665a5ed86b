//! `qserve-host policy test POLICY CASES.toml`: run a case table against a
//! policy, like `opa test`. Each failure is printed as expected vs got with
//! the policy's reason; the last line is the summary; any failure exits 1.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use qserve_runtime::{GuestEngine, LoadedComponent, Policy, PolicyOptions};

use super::cases::{Case, CaseKind, CaseTable, Defaults};
use super::outcome::{decide, Outcome};

pub async fn run(
    engine: &GuestEngine,
    policy_spec: &str,
    table_path: &Path,
    config_override: Option<String>,
    options: &PolicyOptions,
    coverage: bool,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(table_path)
        .with_context(|| format!("cannot read {}", table_path.display()))?;
    let table: CaseTable = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid case table", table_path.display()))?;
    anyhow::ensure!(
        table.version == 1,
        "{}: case table version {} is not supported (this qserve-host reads version 1)",
        table_path.display(),
        table.version
    );
    let defaults = Defaults {
        config: config_override.or(table.config.clone()),
        context: table.context.clone(),
        options: table.options.clone(),
    };
    let component = engine.load_component(policy_spec)?;
    let mut policies: HashMap<String, Result<Policy, String>> = HashMap::new();
    let (mut passed, mut failed) = (0usize, 0usize);
    for (index, case) in table.cases.iter().enumerate() {
        let name = if case.name.is_empty() {
            format!("case {}", index + 1)
        } else {
            case.name.clone()
        };
        let verdict = match check(engine, &component, options, &mut policies, case, &defaults).await
        {
            Ok(()) => {
                passed += 1;
                continue;
            }
            Err(failure) => failure,
        };
        failed += 1;
        println!("FAIL  {name}");
        for line in verdict.lines() {
            println!("      {line}");
        }
    }
    if coverage {
        print_coverage(&defaults, &table.cases);
    }
    let total = passed + failed;
    if total == 0 {
        println!("{}: no cases", table_path.display());
    }
    println!("policy test: {passed} passed, {failed} failed");
    Ok(if failed == 0 && total > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `Ok` when the case holds; otherwise the failure's explanation.
async fn check(
    engine: &GuestEngine,
    component: &LoadedComponent,
    options: &PolicyOptions,
    policies: &mut HashMap<String, Result<Policy, String>>,
    case: &Case,
    defaults: &Defaults,
) -> Result<(), String> {
    let inputs = case
        .inputs(defaults)
        .map_err(|e| format!("malformed case: {e}"))?;
    let expect = case
        .expect
        .clone()
        .ok_or_else(|| "malformed case: no `expect`".to_owned())?;
    if !policies.contains_key(&inputs.config) {
        let loaded = Policy::load(
            engine,
            component,
            PolicyOptions {
                config_document: Arc::from(inputs.config.as_str()),
                ..options.clone()
            },
        )
        .await
        .map_err(|err| err.to_string());
        policies.insert(inputs.config.clone(), loaded);
    }
    let policy = &policies[&inputs.config];
    if case.kind == CaseKind::Init {
        let got = match policy {
            Ok(_) => ("ok", String::new()),
            Err(message) => ("error", message.clone()),
        };
        if got.0 != expect {
            return Err(format!(
                "expected: init {expect}\ngot:      init {}{}",
                got.0,
                if got.1.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", got.1)
                }
            ));
        }
        return reason_holds(case, &got.1);
    }
    let policy = policy
        .as_ref()
        .map_err(|message| format!("the policy refused this case's config: {message}"))?;
    let got = decide(policy, case.kind, &inputs).await;
    let wanted = Outcome {
        verdict: expect.clone(),
        option: case.option.clone(),
        timeout_ms: case.timeout_ms,
        reason: String::new(),
        latency: Default::default(),
    };
    let same = got.verdict == expect
        && (expect != "select" || case.option.is_none() || got.option == case.option)
        && (expect != "ask" || got.timeout_ms == case.timeout_ms);
    if !same {
        return Err(format!(
            "expected: {}\ngot:      {}\nreason:   {:?}",
            wanted.summary(),
            got.summary(),
            got.reason
        ));
    }
    reason_holds(case, &got.reason)
}

fn reason_holds(case: &Case, reason: &str) -> Result<(), String> {
    match &case.reason {
        Some(wanted) if !reason.contains(wanted.as_str()) => Err(format!(
            "expected a reason containing {wanted:?}\ngot:      {reason:?}"
        )),
        _ => Ok(()),
    }
}

/// `--coverage` for `builtin:rules`: the rules of each config the cases use
/// that decided no case. The rules are evaluated natively on the same inputs
/// (the component runs the same `qserve-rules-logic`), which tells which
/// rule decided even when its reason is custom.
fn print_coverage(defaults: &Defaults, cases: &[Case]) {
    use std::collections::BTreeMap;
    let mut decided: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for case in cases.iter().filter(|c| c.kind == CaseKind::Permission) {
        let Ok(inputs) = case.inputs(defaults) else {
            continue;
        };
        let entry = decided.entry(inputs.config.clone()).or_insert_with(|| {
            let labels = qserve_rules_logic::Ruleset::parse(&inputs.config)
                .map(|rules| rules.rule_labels())
                .unwrap_or_default();
            (labels, Vec::new())
        });
        let Ok(rules) = qserve_rules_logic::Ruleset::parse(&inputs.config) else {
            continue;
        };
        let (_, rule) = rules.evaluate_traced(
            &native::context(&inputs.context),
            &native::call(&inputs.call),
        );
        if let Some(rule) = rule {
            entry.1.push(rule);
        }
    }
    let mut unexercised: Vec<String> = decided
        .into_values()
        .flat_map(|(labels, hit)| labels.into_iter().filter(move |l| !hit.contains(l)))
        .collect();
    unexercised.sort();
    unexercised.dedup();
    if unexercised.is_empty() {
        println!("coverage: every rule decided at least one case");
    } else {
        println!("coverage: {} rules decided no case:", unexercised.len());
        for rule in unexercised {
            println!("  {rule}");
        }
    }
}

/// The contract's host-side types as the plain-Rust policy logic takes them.
mod native {
    use qserve_policy_logic as logic;
    use qserve_runtime as rt;

    pub fn context(ctx: &rt::Context) -> logic::Context {
        logic::Context {
            session_id: ctx.session_id.clone(),
            workspace: ctx.workspace.clone(),
            agent: logic::AgentInfo {
                name: ctx.agent.name.clone(),
                command: ctx.agent.command.clone(),
                mode: ctx.agent.mode.clone(),
            },
            scope: match ctx.scope {
                rt::SessionScope::Single => logic::SessionScope::Single,
                rt::SessionScope::Thread => logic::SessionScope::Thread,
            },
            phase: match ctx.phase {
                rt::Phase::Create => logic::Phase::Create,
                rt::Phase::Attach => logic::Phase::Attach,
                rt::Phase::Running => logic::Phase::Running,
            },
        }
    }

    fn kind(kind: &rt::ToolKind) -> logic::ToolKind {
        match kind {
            rt::ToolKind::Read => logic::ToolKind::Read,
            rt::ToolKind::Edit => logic::ToolKind::Edit,
            rt::ToolKind::Delete => logic::ToolKind::Delete,
            rt::ToolKind::Move => logic::ToolKind::Move,
            rt::ToolKind::Search => logic::ToolKind::Search,
            rt::ToolKind::Execute => logic::ToolKind::Execute,
            rt::ToolKind::Think => logic::ToolKind::Think,
            rt::ToolKind::Fetch => logic::ToolKind::Fetch,
            rt::ToolKind::SwitchMode => logic::ToolKind::SwitchMode,
            rt::ToolKind::Other(other) => logic::ToolKind::Other(other.clone()),
        }
    }

    pub fn call(call: &rt::ToolCall) -> logic::ToolCall {
        logic::ToolCall {
            tool_call_id: call.tool_call_id.clone(),
            kind: kind(&call.kind),
            tool_name: call.tool_name.clone(),
            title: call.title.clone(),
            command: call.command.clone(),
            url: call.url.clone(),
            locations: call
                .locations
                .iter()
                .map(|p| logic::ResolvedPath {
                    requested: p.requested.clone(),
                    resolved: p.resolved.clone(),
                    inside_workspace: p.inside_workspace,
                    exists: p.exists,
                })
                .collect(),
            raw_input: call.raw_input.clone(),
        }
    }
}
