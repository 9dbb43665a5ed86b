//! The `cedar` policy: qserve's permission decisions made by a Cedar policy
//! set (<https://www.cedarpolicy.com>), the policy language agent platforms
//! use for tool-call authorization.
//!
//! The operator's `--policy-config` *is* the policy set, in Cedar's policy
//! syntax. [`init`](Policy::init) parses it and validates it (strict mode)
//! against the qserve schema, [`SCHEMA`]; a set that does not parse or
//! validate is refused with Cedar's own messages, so a typo stops the daemon
//! instead of silently never matching. Each decision is one Cedar
//! authorization request:
//!
//! | qserve asks | principal | action | resource |
//! |---|---|---|---|
//! | permission request | `Qserve::Session::"<session id>"` | `Qserve::Action::"<tool kind>"` (`read`, `edit`, `delete`, `move`, `search`, `execute`, `think`, `fetch`, `switch_mode`, `other`) | `Qserve::ToolCall::"<tool call id>"` |
//! | file read / write | same | `"file_read"` / `"file_write"` | `Qserve::File::"<resolved path>"` |
//! | session create / attach | same (id `""` on create) | `"session_create"` / `"session_attach"` | `Qserve::Workspace::"<workspace>"` |
//!
//! and the answer is mapped:
//!
//! - `forbid` wins (Cedar's rule), and no `permit` at all denies: the
//!   permission is rejected, the file access or session refused;
//! - a `permit` carrying the annotation `@ask` (optionally `@ask("<ms>")`, a
//!   timeout) asks the clients — caution wins again: one determining `@ask`
//!   permit is enough. File accesses and sessions cannot ask: there `@ask`
//!   denies;
//! - any other `permit` allows: the agent's allow-once option is selected,
//!   else its allow-always option, else the clients are asked.
//!
//! Reasons name the determining policies by id: `@id("…")` when the policy
//! has one, else Cedar's `policy0`, `policy1`, … (position in the file),
//! followed by the policy's `@reason("…")` text when it has one. See the
//! crate's README.md for the entity attributes and an example.

mod diagnostics;
mod entities;
pub mod facts;

use std::collections::HashMap;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Decision, PolicyId, PolicySet, Response, Schema, ValidationMode, Validator,
};
use qserve_policy_logic::types::{
    AccessDecision, Context, FileAccess, OptionKind, PermissionDecision, PermissionOption, Policy,
    PolicyInfo, ResolvedPath, ToolCall, Verdict,
};

pub use entities::tool_action;

/// The policy's name (`policy-info.name`).
pub const NAME: &str = "cedar";

/// This crate's version; `policy-info.version` adds a hash of the policy set.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The qserve Cedar schema (Cedar's human-readable schema syntax). Every
/// policy set is validated against it.
pub const SCHEMA: &str = include_str!("qserve.cedarschema");

/// The example policy set (README.md explains it line by line).
pub const EXAMPLE: &str = include_str!("../examples/policy.cedar");

/// Why a policy set is refused. The messages are shown to the operator.
#[derive(Debug, thiserror::Error)]
pub enum CedarError {
    #[error("cedar policy: the configuration is empty: pass a Cedar policy set with --policy-config (see the example guest/cedar-logic/examples/policy.cedar)")]
    Empty,
    #[error("cedar policy: the policy set does not parse:\n{0}")]
    Parse(String),
    #[error("cedar policy: the policy set does not validate against the qserve schema:\n{0}")]
    Validation(String),
    #[error("cedar policy: policy templates are not supported (nothing links them): {0}")]
    Template(String),
    #[error("cedar policy: policy {policy}: {message}")]
    Annotation { policy: String, message: String },
    /// The embedded schema does not load: a build of this crate is broken.
    #[error("cedar policy: the embedded qserve schema does not load: {0}")]
    Schema(String),
}

/// What a policy's annotations say about it.
#[derive(Debug, Clone, Default)]
struct Meta {
    /// `@ask` (`Some(None)`) or `@ask("<ms>")` (`Some(Some(ms))`).
    ask: Option<Option<u64>>,
    /// `@reason("…")`.
    reason: Option<String>,
}

struct Loaded {
    schema: Schema,
    policies: PolicySet,
    meta: HashMap<PolicyId, Meta>,
    types: entities::Types,
    authorizer: Authorizer,
    warnings: Vec<String>,
    version: String,
}

/// A validated Cedar policy set answering qserve's decisions. Made empty by
/// `Default` (the Wasm glue), loaded by [`Policy::init`] or [`CedarPolicy::load`].
#[derive(Default)]
pub struct CedarPolicy {
    loaded: Option<Loaded>,
}

impl CedarPolicy {
    /// Parses `text` as a Cedar policy set and validates it against [`SCHEMA`].
    pub fn load(text: &str) -> Result<Self, CedarError> {
        if text.trim().is_empty() {
            return Err(CedarError::Empty);
        }
        let schema = Schema::from_str(SCHEMA).map_err(|e| CedarError::Schema(e.to_string()))?;
        let parsed = PolicySet::from_str(text)
            .map_err(|errors| CedarError::Parse(diagnostics::parse_errors(&errors, text)))?;
        if let Some(template) = parsed.templates().next() {
            return Err(CedarError::Template(diagnostics::describe(template.id())));
        }
        let (policies, meta) = renamed(&parsed)?;
        let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !validation.validation_passed() {
            return Err(CedarError::Validation(diagnostics::list(
                validation.validation_errors(),
                text,
            )));
        }
        let warnings = validation
            .validation_warnings()
            .map(|warning| diagnostics::render(warning, text))
            .collect();
        Ok(Self {
            loaded: Some(Loaded {
                schema,
                policies,
                meta,
                types: entities::Types::new(),
                authorizer: Authorizer::new(),
                warnings,
                version: format!("{VERSION}+{:016x}", fnv1a(text.as_bytes())),
            }),
        })
    }

    /// Cedar's validation warnings for the loaded set (say, a policy that
    /// can never apply), one rendered line each. Not a refusal: the
    /// component logs them.
    pub fn warnings(&self) -> &[String] {
        self.loaded.as_ref().map_or(&[], |loaded| &loaded.warnings)
    }

    /// The number of policies in the loaded set.
    pub fn len(&self) -> usize {
        self.loaded
            .as_ref()
            .map_or(0, |loaded| loaded.policies.policies().count())
    }

    /// No policy set is loaded, or it is empty (then everything is denied).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn loaded(&self) -> &Loaded {
        self.loaded
            .as_ref()
            .expect("the host calls init before any decision")
    }
}

/// The set with each policy under its `@id` (when it has one), and what
/// the annotations say. Ids then read well in reasons and in Cedar's own
/// validation messages.
fn renamed(parsed: &PolicySet) -> Result<(PolicySet, HashMap<PolicyId, Meta>), CedarError> {
    let mut policies = PolicySet::new();
    let mut meta = HashMap::new();
    for policy in parsed.policies() {
        let policy = match policy.annotation("id") {
            Some(id) if !id.is_empty() => policy.new_id(PolicyId::new(id)),
            Some(_) => {
                return Err(CedarError::Annotation {
                    policy: diagnostics::describe(policy.id()),
                    message: "@id needs a value, e.g. @id(\"allow-reads\")".into(),
                })
            }
            None => policy.clone(),
        };
        let name = || diagnostics::describe(policy.id());
        let ask = match policy.annotation("ask") {
            None => None,
            Some(_) if policy.effect() == cedar_policy::Effect::Forbid => {
                return Err(CedarError::Annotation {
                    policy: name(),
                    message: "@ask only applies to permit policies (a forbid always denies)"
                        .into(),
                })
            }
            Some("") => Some(None),
            Some(ms) => Some(Some(ms.trim().parse::<u64>().map_err(|_| {
                CedarError::Annotation {
                    policy: name(),
                    message: format!(
                        "@ask(\"{ms}\"): the value is the clients' timeout in milliseconds, e.g. @ask(\"60000\"), or leave it out: @ask"
                    ),
                }
            })?)),
        };
        let reason = policy
            .annotation("reason")
            .filter(|reason| !reason.is_empty())
            .map(str::to_owned);
        let id = policy.id().clone();
        policies.add(policy).map_err(|e| CedarError::Annotation {
            policy: id.to_string(),
            message: format!("{e} (two policies with the same @id?)"),
        })?;
        meta.insert(id, Meta { ask, reason });
    }
    Ok((policies, meta))
}

/// FNV-1a, 64 bits: tells two loaded policy sets apart in the version
/// string (not a security hash; the host records the component's SHA-256).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What Cedar answered, in qserve's terms.
enum Answer {
    Allow(String),
    Ask(Option<u64>, String),
    Deny(String),
}

impl Loaded {
    fn evaluate(&self, query: Result<entities::Query, entities::QueryError>) -> Answer {
        let query = match query {
            Ok(query) => query,
            Err(error) => return Answer::Deny(format!("cedar policy: {error}")),
        };
        let response =
            self.authorizer
                .is_authorized(&query.request, &self.policies, &query.entities);
        self.answer(&query.action, &response)
    }

    fn answer(&self, action: &str, response: &Response) -> Answer {
        let mut determining: Vec<&PolicyId> = response.diagnostics().reason().collect();
        // Stable reasons: Cedar reports a set.
        determining.sort_by_key(|id| id.to_string());
        match response.decision() {
            Decision::Deny if determining.is_empty() => {
                let mut reason = format!("no policy permits {action}");
                let errors: Vec<String> = response
                    .diagnostics()
                    .errors()
                    .map(ToString::to_string)
                    .collect();
                if !errors.is_empty() {
                    reason.push_str(&format!(" (errors: {})", errors.join("; ")));
                }
                Answer::Deny(reason)
            }
            Decision::Deny => Answer::Deny(format!("forbidden by {}", self.names(&determining))),
            Decision::Allow => {
                let asking: Vec<&PolicyId> = determining
                    .iter()
                    .copied()
                    .filter(|id| self.meta(id).ask.is_some())
                    .collect();
                if asking.is_empty() {
                    Answer::Allow(format!("permitted by {}", self.names(&determining)))
                } else {
                    // The shortest timeout any of them asks for, else the daemon's.
                    let timeout = asking
                        .iter()
                        .filter_map(|id| self.meta(id).ask.flatten())
                        .min();
                    Answer::Ask(
                        timeout,
                        format!("asking the clients ({})", self.names(&asking)),
                    )
                }
            }
        }
    }

    fn meta(&self, id: &PolicyId) -> Meta {
        self.meta.get(id).cloned().unwrap_or_default()
    }

    /// `a, b: reason of b` style: ids, then each `@reason`.
    fn names(&self, ids: &[&PolicyId]) -> String {
        ids.iter()
            .map(|id| match self.meta(id).reason {
                Some(reason) => format!("{id}: {reason}"),
                None => id.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn access(&self, answer: Answer) -> AccessDecision {
        match answer {
            Answer::Allow(reason) => AccessDecision::allow(reason),
            Answer::Deny(reason) => AccessDecision::deny(reason),
            Answer::Ask(_, reason) => {
                AccessDecision::deny(format!("{reason}: cannot ask here, denied"))
            }
        }
    }
}

/// The offered option to select for an allow: allow-once, else allow-always.
pub fn allow_option(options: &[PermissionOption]) -> Option<&PermissionOption> {
    [OptionKind::AllowOnce, OptionKind::AllowAlways]
        .iter()
        .find_map(|kind| options.iter().find(|option| option.kind == *kind))
}

impl Policy for CedarPolicy {
    fn init(&mut self, config: &str) -> Result<PolicyInfo, String> {
        *self = Self::load(config).map_err(|error| error.to_string())?;
        Ok(PolicyInfo {
            name: NAME.into(),
            version: self.loaded().version.clone(),
        })
    }

    fn on_permission_request(
        &self,
        ctx: &Context,
        call: &ToolCall,
        options: &[PermissionOption],
    ) -> PermissionDecision {
        let loaded = self.loaded();
        let query = entities::permission(&loaded.types, &loaded.schema, ctx, call);
        match loaded.evaluate(query) {
            Answer::Allow(reason) => match allow_option(options) {
                Some(option) => PermissionDecision::select(option.option_id.clone(), reason),
                None => PermissionDecision::ask_clients(format!(
                    "{reason}, but the agent offers no allow option: asking the clients"
                )),
            },
            Answer::Ask(timeout, reason) => PermissionDecision {
                verdict: Verdict::AskClients(timeout),
                reason,
            },
            Answer::Deny(reason) => PermissionDecision::reject(reason),
        }
    }

    fn on_session_create(&self, ctx: &Context) -> AccessDecision {
        let loaded = self.loaded();
        let query = entities::session_open(&loaded.types, &loaded.schema, ctx);
        loaded.access(loaded.evaluate(query))
    }

    fn on_file_access(
        &self,
        ctx: &Context,
        access: FileAccess,
        path: &ResolvedPath,
    ) -> AccessDecision {
        let loaded = self.loaded();
        let query = entities::file(&loaded.types, &loaded.schema, ctx, access, path);
        loaded.access(loaded.evaluate(query))
    }
}

#[cfg(test)]
mod tests;
