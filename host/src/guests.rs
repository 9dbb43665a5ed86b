//! Start-up: build the engine and load the core and the policy, so that any
//! problem with a component is one clear message before the daemon listens.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use qserve_http::PolicyInfo;
use qserve_runtime::{
    CoreGuest, CoreLimits, EngineOptions, GuestEngine, PolicyGuest, PolicyOptions, EMBEDDED_CORE,
    EMBEDDED_DEFAULT_POLICY,
};

use crate::cli::ServeArgs;

/// Validated guests, ready to move onto their owner threads.
pub struct Guests {
    pub core: Box<dyn FnOnce() -> CoreGuest + Send>,
    pub policy: Box<dyn FnOnce() -> PolicyGuest + Send>,
    pub policy_info: PolicyInfo,
}

pub fn engine(args: &ServeArgs) -> anyhow::Result<GuestEngine> {
    let mut options = EngineOptions::default();
    if let Some(dir) = &args.cache_dir {
        options.cache_dir = Some(dir.clone());
    }
    GuestEngine::new(options).context("cannot start the WebAssembly engine")
}

pub fn policy_options(args: &ServeArgs) -> anyhow::Result<PolicyOptions> {
    let config_document = match &args.policy_config {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --policy-config {}", path.display()))?,
        None => String::new(),
    };
    Ok(PolicyOptions {
        call_deadline: Duration::from_millis(args.policy_deadline_ms),
        memory_cap: args.policy_memory_mib << 20,
        config_document: Arc::from(config_document),
    })
}

pub fn load(args: &ServeArgs) -> anyhow::Result<Guests> {
    let engine = engine(args)?;
    let core_component = match &args.core_component {
        Some(path) => engine.load_bytes(&path.display().to_string(), &read(path)?, "core")?,
        None => engine.load_bytes("embedded core", EMBEDDED_CORE, "core")?,
    };
    let core = CoreGuest::new(
        &engine,
        &core_component,
        CoreLimits {
            max_sessions: args.max_sessions,
            ring_size: args.event_ring_size,
            max_pending_permissions: args.max_pending_permissions,
        },
    )?;
    let policy_component = match &args.component {
        Some(path) => engine.load_file(path)?,
        None => engine.load_bytes("embedded default policy", EMBEDDED_DEFAULT_POLICY, "policy")?,
    };
    let policy = PolicyGuest::new(&engine, &policy_component, policy_options(args)?)?;
    let info = policy.info();
    tracing::info!(
        policy = %info.name,
        version = %info.version,
        from = %policy_component.origin,
        "policy loaded"
    );
    let policy_info = PolicyInfo {
        name: info.name.clone(),
        version: info.version.clone(),
    };
    Ok(Guests {
        core: Box::new(move || core),
        policy: Box::new(move || policy),
        policy_info,
    })
}

fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
