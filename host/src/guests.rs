//! Start-up: build the engine and load the core and the policy, so that any
//! problem with a component the operator named is one clear message before
//! the daemon listens.
//!
//! Cold start: the embedded core is known good, so it is compiled on its own
//! owner thread while the daemon already answers `/health`; the first call
//! that needs it waits for it. A core given with `--core-component` (tests)
//! and the policy are loaded before listening, since they can be wrong.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use qserve_runtime::{
    CoreGuest, CoreLimits, EngineOptions, GuestEngine, PolicyOptions, EMBEDDED_CORE,
};

use crate::cli::ServeArgs;
use crate::policy::slot::{ComponentSpec, ConfigSpec, PolicySlot, PolicySources};

pub fn engine(args: &ServeArgs) -> anyhow::Result<GuestEngine> {
    let mut options = EngineOptions::default();
    if let Some(dir) = &args.cache_dir {
        options.cache_dir = Some(dir.clone());
    }
    GuestEngine::new(options).context("cannot start the WebAssembly engine")
}

/// The policy's limits from the flags (its config document is read by the slot).
pub fn policy_options(args: &ServeArgs) -> PolicyOptions {
    PolicyOptions {
        call_deadline: Duration::from_millis(args.policy_deadline_ms),
        memory_cap: args.policy_memory_mib << 20,
        config_document: Arc::from(""),
        ..PolicyOptions::default()
    }
}

/// What `--component` and `--policy-config` name (SIGHUP reads them again).
pub fn policy_sources(args: &ServeArgs) -> PolicySources {
    PolicySources {
        component: ComponentSpec::Named(args.component.clone()),
        config: match &args.policy_config {
            Some(path) => ConfigSpec::Path(path.clone()),
            None => ConfigSpec::None,
        },
    }
}

/// Load and `init`-check the start-up policy.
pub async fn load_policy(
    engine: &GuestEngine,
    args: &ServeArgs,
) -> anyhow::Result<Arc<PolicySlot>> {
    let slot = PolicySlot::load(
        engine.clone(),
        policy_options(args),
        args.component_sha256.clone(),
        policy_sources(args),
    )
    .await?;
    let info = slot.info();
    tracing::info!(
        policy = %info.name,
        version = %info.version,
        sha256 = %info.sha256,
        from = %info.origin,
        "policy loaded"
    );
    Ok(Arc::new(slot))
}

/// `--shadow-component`, if any: loaded like the policy (no pin: it decides
/// nothing).
pub async fn load_shadow(
    engine: &GuestEngine,
    args: &ServeArgs,
) -> anyhow::Result<Option<Arc<PolicySlot>>> {
    let Some(component) = &args.shadow_component else {
        return Ok(None);
    };
    let sources = PolicySources {
        component: ComponentSpec::Named(component.clone()),
        config: match &args.shadow_config {
            Some(path) => ConfigSpec::Path(path.clone()),
            None => ConfigSpec::None,
        },
    };
    let slot = PolicySlot::load(engine.clone(), policy_options(args), None, sources)
        .await
        .context("cannot load --shadow-component")?;
    let info = slot.info();
    tracing::info!(shadow = %info.name, version = %info.version, sha256 = %info.sha256, "shadow policy loaded: its verdicts are recorded, never acted on");
    Ok(Some(Arc::new(slot)))
}

fn core_limits(args: &ServeArgs) -> CoreLimits {
    CoreLimits {
        max_sessions: args.max_sessions,
        ring_size: args.event_ring_size,
        ring_bytes: args.event_ring_bytes,
        max_pending_permissions: args.max_pending_permissions,
    }
}

/// Builds the core on its owner thread. A `--core-component` is checked now;
/// the embedded core is compiled lazily there (see the module docs).
pub fn core_loader(
    engine: &GuestEngine,
    args: &ServeArgs,
) -> anyhow::Result<Box<dyn FnOnce() -> CoreGuest + Send>> {
    let limits = core_limits(args);
    if let Some(path) = &args.core_component {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let component = engine.load_bytes(&path.display().to_string(), &bytes, "core")?;
        let mut core = CoreGuest::new(engine, &component, limits)?;
        if let Some(node) = &args.node_id {
            core.set_id_prefix(node);
        }
        return Ok(Box::new(move || core));
    }
    let engine = engine.clone();
    let node_id = args.node_id.clone();
    Ok(Box::new(move || {
        let started = std::time::Instant::now();
        let component = engine
            .load_bytes("embedded core", EMBEDDED_CORE, "core")
            .expect("the embedded core compiles (it is built and tested with this binary)");
        let mut core = CoreGuest::new(&engine, &component, limits)
            .expect("the embedded core links (it is built and tested with this binary)");
        // `--node-id`: session ids say which daemon owns them (docs/deploy.md).
        if let Some(node) = &node_id {
            core.set_id_prefix(node);
        }
        tracing::debug!(elapsed = ?started.elapsed(), "embedded core ready");
        core
    }))
}
