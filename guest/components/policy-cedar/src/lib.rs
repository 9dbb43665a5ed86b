//! The built-in `cedar` policy component (`builtin:cedar`): the operator's
//! `--policy-config` is a Cedar policy set, validated against the qserve
//! schema at `init`; every decision is a Cedar authorization request (see
//! guest/cedar-logic/README.md for the entity model and the mapping).

use qserve_cedar_logic::CedarPolicy;
use qserve_policy::{
    host, AccessDecision, Context, FileAccess, PermissionDecision, PermissionOption, Policy,
    PolicyInfo, ResolvedPath, ToolCall,
};

/// [`CedarPolicy`], plus Cedar's validation warnings in the daemon's log.
#[derive(Default)]
struct Cedar(CedarPolicy);

impl Policy for Cedar {
    fn init(&mut self, config: &str) -> Result<PolicyInfo, String> {
        let info = self.0.init(config)?;
        for warning in self.0.warnings() {
            host::warn(&format!("cedar policy: {warning}"));
        }
        Ok(info)
    }

    fn on_permission_request(
        &self,
        ctx: &Context,
        call: &ToolCall,
        options: &[PermissionOption],
    ) -> PermissionDecision {
        self.0.on_permission_request(ctx, call, options)
    }

    fn on_session_create(&self, ctx: &Context) -> AccessDecision {
        self.0.on_session_create(ctx)
    }

    fn on_file_access(
        &self,
        ctx: &Context,
        access: FileAccess,
        path: &ResolvedPath,
    ) -> AccessDecision {
        self.0.on_file_access(ctx, access, path)
    }
}

qserve_policy::export!(Cedar);
