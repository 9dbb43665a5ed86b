//! Test-only policy: slow on purpose, for hot-swap and race tests.
//!
//! Every decision first busy-waits (on `host.monotonic-now-ms`, so the time
//! is spent running Wasm, like a heavy policy) for `delay_ms`, then answers:
//! permission requests select the offered allow-once option, else ask the
//! clients; sessions and file accesses are allowed. Every reason is
//! "slow policy".
//!
//! Config (`key = value` lines): `delay_ms` (default 30), `version` (the
//! `policy-info` version, default this crate's; lets tests tell two loads
//! apart). Anything else is refused by `init`.

qserve_policy_glue::export_policy!(SlowPolicy);

use qserve::policy::host;
use qserve_policy_logic::config::{self, ConfigError};
use qserve_policy_logic::{
    AccessDecision, Context, FileAccess, OptionKind, PermissionDecision, PermissionOption, Policy,
    PolicyInfo, ResolvedPath, ToolCall,
};

const REASON: &str = "slow policy";

pub struct SlowPolicy {
    delay_ms: u64,
}

impl Default for SlowPolicy {
    fn default() -> Self {
        Self { delay_ms: 30 }
    }
}

impl SlowPolicy {
    fn spin(&self) {
        let start = host::monotonic_now_ms();
        while host::monotonic_now_ms().saturating_sub(start) < self.delay_ms {
            std::hint::spin_loop();
        }
    }

    fn configure(&mut self, config: &str) -> Result<String, ConfigError> {
        let mut version = env!("CARGO_PKG_VERSION").to_owned();
        for setting in config::key_values(config, &["delay_ms", "version"])? {
            match setting.key {
                "delay_ms" => self.delay_ms = setting.parse_u64()?,
                _ => version = setting.value.to_owned(),
            }
        }
        Ok(version)
    }
}

impl Policy for SlowPolicy {
    fn init(&mut self, config: &str) -> Result<PolicyInfo, String> {
        let version = self
            .configure(config)
            .map_err(|error| format!("slow policy: {error}"))?;
        Ok(PolicyInfo {
            name: "slow".into(),
            version,
        })
    }

    fn on_permission_request(
        &self,
        _ctx: &Context,
        _call: &ToolCall,
        options: &[PermissionOption],
    ) -> PermissionDecision {
        self.spin();
        match options
            .iter()
            .find(|option| option.kind == OptionKind::AllowOnce)
        {
            Some(option) => PermissionDecision::select(option.option_id.clone(), REASON),
            None => PermissionDecision::ask_clients(REASON),
        }
    }

    fn on_session_create(&self, _ctx: &Context) -> AccessDecision {
        self.spin();
        AccessDecision::allow(REASON)
    }

    fn on_file_access(
        &self,
        _ctx: &Context,
        _access: FileAccess,
        _path: &ResolvedPath,
    ) -> AccessDecision {
        self.spin();
        AccessDecision::allow(REASON)
    }
}
