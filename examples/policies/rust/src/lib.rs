//! An example qserve permission policy in Rust, on the SDK (`qserve-policy`).
//!
//! It decides exactly as ../python/app.py and ../js/policy.js, so that
//! one case table (../cases.toml) checks all three through
//! `qserve-host policy test`:
//!
//! - reads, searches and thinking: the offered allow-once option;
//! - a shell command starting with a configured `deny_commands` prefix
//!   (leading blanks ignored): rejected;
//! - anything else: the clients are asked;
//! - sessions: allowed; file accesses: inside the workspace only.
//!
//! Config (`--policy-config`, JSON; empty means nothing denied):
//! `{"deny_commands": ["rm ", "git push"]}`.

use qserve_policy::{
    host, AccessDecision, Context, FileAccess, OptionKind, PermissionDecision, PermissionOption,
    Policy, PolicyInfo, ResolvedPath, ToolCall, ToolKind,
};
use serde_json::Value;

const NAME: &str = "example-rust";

#[derive(Debug, Default)]
pub struct ExamplePolicy {
    deny_commands: Vec<String>,
}

/// The denied prefixes, or what is wrong with the config (the same
/// messages as the Python and JavaScript examples).
fn parse_config(text: &str) -> Result<Vec<String>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let doc: Value =
        serde_json::from_str(text).map_err(|e| format!("config is not valid JSON: {e}"))?;
    let Value::Object(doc) = doc else {
        return Err("config must be a JSON object".into());
    };
    if let Some(unknown) = doc.keys().filter(|k| *k != "deny_commands").min() {
        return Err(format!(
            "unknown config key {} (known: deny_commands)",
            Value::from(unknown.as_str())
        ));
    }
    let list_error = || "deny_commands must be a list of strings".to_owned();
    let prefixes = match doc.get("deny_commands") {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(list_error()),
    };
    let mut out = Vec::new();
    for item in prefixes {
        let prefix = item.as_str().ok_or_else(list_error)?;
        if prefix.trim().is_empty() {
            // An empty prefix would deny every command: almost surely a mistake.
            return Err("deny_commands entries must not be empty".into());
        }
        out.push(prefix.to_owned());
    }
    Ok(out)
}

impl Policy for ExamplePolicy {
    fn init(&mut self, config: &str) -> Result<PolicyInfo, String> {
        self.deny_commands = parse_config(config)?;
        host::info(&format!(
            "{NAME}: {} denied command prefixes",
            self.deny_commands.len()
        ));
        Ok(PolicyInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    fn on_permission_request(
        &self,
        _ctx: &Context,
        call: &ToolCall,
        options: &[PermissionOption],
    ) -> PermissionDecision {
        if matches!(
            call.kind,
            ToolKind::Read | ToolKind::Search | ToolKind::Think
        ) {
            return match options.iter().find(|o| o.kind == OptionKind::AllowOnce) {
                Some(option) => {
                    PermissionDecision::select(option.option_id.clone(), "reads are allowed")
                }
                None => PermissionDecision::ask_clients(
                    "asking the clients: no allow-once option offered",
                ),
            };
        }
        if let (ToolKind::Execute, Some(command)) = (&call.kind, &call.command) {
            let command = command.trim_start();
            if let Some(prefix) = self
                .deny_commands
                .iter()
                .find(|prefix| command.starts_with(prefix.as_str()))
            {
                return PermissionDecision::reject(format!(
                    "command starts with denied prefix {}",
                    Value::from(prefix.as_str())
                ));
            }
        }
        PermissionDecision::ask_clients("asking the clients")
    }

    fn on_session_create(&self, _ctx: &Context) -> AccessDecision {
        AccessDecision::allow("sessions are allowed")
    }

    fn on_file_access(
        &self,
        _ctx: &Context,
        _access: FileAccess,
        path: &ResolvedPath,
    ) -> AccessDecision {
        if path.inside_workspace {
            AccessDecision::allow("inside the workspace")
        } else {
            AccessDecision::deny("outside the workspace")
        }
    }
}

qserve_policy::export!(ExamplePolicy);
