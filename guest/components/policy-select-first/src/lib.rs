//! Test-only policy: allows at once, predictably, for decision-log and
//! policy-swap tests.
//!
//! Permission requests select the first offered allow option (allow-once or
//! allow-always, whichever comes first) with the reason
//! "policy-select-first allowed"; without one, the clients are asked.
//! Sessions and file accesses (inside the workspace or not) are allowed with
//! the same reason.
//!
//! Config (`key = value` lines): `version` (the `policy-info` version,
//! default this crate's), so a test can load `version=1`, swap to
//! `version=2` and see which one decided. Anything else is refused.

qserve_policy_glue::export_policy!(SelectFirst);

use qserve_policy_logic::config;
use qserve_policy_logic::{
    AccessDecision, Context, FileAccess, OptionKind, PermissionDecision, PermissionOption, Policy,
    PolicyInfo, ResolvedPath, ToolCall,
};

const ALLOWED: &str = "policy-select-first allowed";

#[derive(Default)]
pub struct SelectFirst;

impl Policy for SelectFirst {
    fn init(&mut self, config: &str) -> Result<PolicyInfo, String> {
        let settings = config::key_values(config, &["version"])
            .map_err(|error| format!("select-first policy: {error}"))?;
        let version = settings
            .first()
            .map_or(env!("CARGO_PKG_VERSION"), |setting| setting.value);
        Ok(PolicyInfo {
            name: "select-first".into(),
            version: version.to_owned(),
        })
    }

    fn on_permission_request(
        &self,
        _ctx: &Context,
        _call: &ToolCall,
        options: &[PermissionOption],
    ) -> PermissionDecision {
        let allow = options
            .iter()
            .find(|option| matches!(option.kind, OptionKind::AllowOnce | OptionKind::AllowAlways));
        match allow {
            Some(option) => PermissionDecision::select(option.option_id.clone(), ALLOWED),
            None => PermissionDecision::ask_clients(
                "policy-select-first: no allow option offered; asking the clients",
            ),
        }
    }

    fn on_session_create(&self, _ctx: &Context) -> AccessDecision {
        AccessDecision::allow(ALLOWED)
    }

    fn on_file_access(
        &self,
        _ctx: &Context,
        _access: FileAccess,
        _path: &ResolvedPath,
    ) -> AccessDecision {
        AccessDecision::allow(ALLOWED)
    }
}
