//! The built-in `rules` policy (`--policy builtin:rules`): a policy that is
//! configured, not programmed.
//!
//! The operator writes permission rules in TOML (`--policy-config
//! rules.toml`), in the vocabularies coding-agent users already know:
//! Claude Code's `allow`/`ask`/`deny` lists of `Tool(spec)`, Codex's
//! `[[prefix_rule]]` and Gemini CLI's `[[rule]]`, plus `[session]`,
//! `[files]` and inline `[[example]]`s that must hold at load. README.md
//! (next to Cargo.toml) is the reference; examples/rules.toml is a commented
//! starting point.
//!
//! Everything is checked and compiled in [`Policy::init`]; a config with a
//! typo, an unknown key, an impossible rule or a failing example is refused
//! with its line. Decisions then walk precompiled indices (a word trie for
//! commands, `GlobSet`s for paths, hash maps for tools and domains), so a
//! thousand rules cost about what ten do.
//!
//! Plain Rust, no Wasm: the policy-rules component exports [`RulesPolicy`]
//! through the policy glue; everything here is tested natively.

mod compile;
mod config;
mod matchers;
mod ruleset;
mod shell;
mod tools;

use qserve_policy_logic::{
    AccessDecision, Context, FileAccess, OptionKind, PermissionDecision, PermissionOption, Policy,
    PolicyInfo, ResolvedPath, ToolCall, Verdict,
};

pub use ruleset::{Decision, Mode, Outcome, Ruleset, WorkspaceAccess};

/// This crate's version, reported as the policy's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why a rules config was refused. Its `Display` is the message the
/// operator sees (the daemon does not start; a reload keeps the old policy).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// Not TOML, or a key or value of the wrong shape (unknown keys
    /// included); the message has the line, the column and the known keys.
    #[error("rules config: {0}")]
    Syntax(String),
    /// A value that is not allowed where it is.
    #[error("rules config line {line}: {context}: {problem}")]
    Invalid {
        line: usize,
        context: String,
        problem: String,
    },
    /// An `[[example]]` the rules do not decide as it says.
    #[error(
        "rules config line {line}: [[example]] {name}: expected {expected}, got {got} ({reason})"
    )]
    Example {
        line: usize,
        name: String,
        expected: &'static str,
        got: &'static str,
        reason: String,
    },
}

/// The `rules` policy: a [`Ruleset`] behind the [`Policy`] trait.
#[derive(Debug, Default)]
pub struct RulesPolicy {
    ruleset: Ruleset,
}

impl RulesPolicy {
    pub const NAME: &'static str = "rules";

    /// A policy from a config document, as `init` would make it.
    pub fn from_config(config: &str) -> Result<Self, RulesError> {
        Ok(Self {
            ruleset: Ruleset::parse(config)?,
        })
    }

    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }
}

impl Policy for RulesPolicy {
    fn init(&mut self, config: &str) -> Result<PolicyInfo, String> {
        self.ruleset = Ruleset::parse(config).map_err(|error| error.to_string())?;
        Ok(PolicyInfo {
            name: Self::NAME.into(),
            version: VERSION.into(),
        })
    }

    /// Allow selects the offered allow-once option (else allow-always,
    /// else the clients are asked); deny rejects; ask asks the clients.
    fn on_permission_request(
        &self,
        ctx: &Context,
        call: &ToolCall,
        options: &[PermissionOption],
    ) -> PermissionDecision {
        let outcome = self.ruleset.evaluate(ctx, call);
        match outcome.decision {
            Decision::Allow => {
                let offered = |kind: OptionKind| {
                    options
                        .iter()
                        .find(|option| option.kind == kind)
                        .map(|option| option.option_id.clone())
                };
                match offered(OptionKind::AllowOnce).or_else(|| offered(OptionKind::AllowAlways)) {
                    Some(option_id) => PermissionDecision::select(option_id, outcome.reason),
                    None => PermissionDecision {
                        verdict: Verdict::AskClients(self.ruleset.ask_timeout_ms),
                        reason: format!(
                            "{}, but the agent offered no allow option; asking the clients",
                            outcome.reason
                        ),
                    },
                }
            }
            Decision::Deny => PermissionDecision::reject(outcome.reason),
            Decision::Ask => PermissionDecision {
                verdict: Verdict::AskClients(outcome.timeout_ms),
                reason: outcome.reason,
            },
        }
    }

    fn on_session_create(&self, ctx: &Context) -> AccessDecision {
        self.ruleset.session_access(ctx)
    }

    fn on_file_access(
        &self,
        ctx: &Context,
        access: FileAccess,
        path: &ResolvedPath,
    ) -> AccessDecision {
        self.ruleset.file_access(ctx, access, path)
    }
}
