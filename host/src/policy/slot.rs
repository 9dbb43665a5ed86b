//! The active policy, and how it is swapped without a restart.
//!
//! A decision clones the active [`Policy`] handle (an `Arc`) when it starts
//! and finishes on it, whatever is swapped meanwhile: in-flight decisions
//! finish on the old instance, later ones run on the new one, and nothing is
//! decided twice or dropped. A reload loads, links and `init`-checks the new
//! policy completely before the one-pointer swap; any failure leaves the old
//! policy active and says why. Reloads run one at a time.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use qserve_http::{ComponentSource, ConfigSource, PolicyInfo, PolicyReload};
use qserve_runtime::{GuestEngine, LoadedComponent, Policy, PolicyOptions};

/// Where the active policy came from, so SIGHUP can read it again and an
/// admin reload can change one half (component or config) and keep the other.
#[derive(Clone, Debug)]
pub enum ComponentSpec {
    /// `builtin:NAME` or a path (re-read on every reload).
    Named(String),
    /// Uploaded through the admin route (kept in memory).
    Uploaded(Arc<[u8]>),
}

#[derive(Clone, Debug)]
pub enum ConfigSpec {
    None,
    /// A file, re-read on every reload.
    Path(PathBuf),
    /// Uploaded inline through the admin route.
    Inline(Arc<str>),
}

/// What the operator configured at start-up (SIGHUP goes back to it).
#[derive(Clone, Debug)]
pub struct PolicySources {
    pub component: ComponentSpec,
    pub config: ConfigSpec,
}

/// Why a (re)load failed. The old policy, if any, stays active.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read the policy config {}: {source}", path.display())]
    Config {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{origin} has sha256 {found}, but --component-sha256 pins {expected}; refusing other bytes"
    )]
    Pinned {
        origin: String,
        found: String,
        expected: String,
    },
    #[error(transparent)]
    Load(#[from] qserve_runtime::LoadError),
    #[error("the policy loader stopped unexpectedly")]
    Gone,
}

/// The policy in force, with what it was loaded from.
#[derive(Clone)]
pub struct Active {
    /// A trait object so the bridge's unit tests can script decisions.
    pub policy: Arc<dyn crate::bridge::seams::Decider>,
    pub info: PolicyInfo,
    pub sources: PolicySources,
}

/// Holds the active policy. Cheap to share (`Arc`).
pub struct PolicySlot {
    engine: GuestEngine,
    options: PolicyOptions,
    /// `--component-sha256`: every load must have exactly these bytes.
    pin: Option<String>,
    /// What `SIGHUP` reloads.
    startup: PolicySources,
    active: RwLock<Active>,
    /// One reload at a time, so two swaps cannot interleave.
    reload_turn: tokio::sync::Mutex<()>,
}

impl PolicySlot {
    /// Load the start-up policy. Errors here stop the daemon before it listens.
    pub async fn load(
        engine: GuestEngine,
        options: PolicyOptions,
        pin: Option<String>,
        startup: PolicySources,
    ) -> Result<PolicySlot, ReloadError> {
        let active = load_active(&engine, &options, pin.as_deref(), startup.clone()).await?;
        Ok(PolicySlot {
            engine,
            options,
            pin,
            startup,
            active: RwLock::new(active),
            reload_turn: tokio::sync::Mutex::new(()),
        })
    }

    /// The policy a decision starting now runs on.
    pub fn current(&self) -> Active {
        self.active.read().unwrap().clone()
    }

    pub fn info(&self) -> PolicyInfo {
        self.active.read().unwrap().info.clone()
    }

    /// SIGHUP: read `--component` and `--policy-config` again.
    pub async fn reload_startup(&self) -> Result<(PolicyInfo, PolicyInfo), ReloadError> {
        self.swap(self.startup.clone()).await
    }

    /// `PUT /admin/policy`: the parts given replace the active ones.
    pub async fn reload_admin(
        &self,
        req: PolicyReload,
    ) -> Result<(PolicyInfo, PolicyInfo), ReloadError> {
        let _turn = self.reload_turn.lock().await;
        let mut sources = self.current().sources;
        match req.component {
            Some(ComponentSource::Named(name)) => sources.component = ComponentSpec::Named(name),
            Some(ComponentSource::Uploaded(bytes)) => {
                sources.component = ComponentSpec::Uploaded(Arc::from(bytes.as_ref()))
            }
            None => {}
        }
        match req.config {
            Some(ConfigSource::Inline(text)) => sources.config = ConfigSpec::Inline(text.into()),
            Some(ConfigSource::Path(path)) => sources.config = ConfigSpec::Path(path),
            None => {}
        }
        self.swap_locked(sources).await
    }

    async fn swap(&self, sources: PolicySources) -> Result<(PolicyInfo, PolicyInfo), ReloadError> {
        let _turn = self.reload_turn.lock().await;
        self.swap_locked(sources).await
    }

    /// Load fully, then swap the pointer. Returns (old, new).
    async fn swap_locked(
        &self,
        sources: PolicySources,
    ) -> Result<(PolicyInfo, PolicyInfo), ReloadError> {
        let next = load_active(&self.engine, &self.options, self.pin.as_deref(), sources).await?;
        let info = next.info.clone();
        let old = std::mem::replace(&mut *self.active.write().unwrap(), next);
        Ok((old.info, info))
    }
}

/// Read, compile (off the async workers), link, `init`-check.
async fn load_active(
    engine: &GuestEngine,
    options: &PolicyOptions,
    pin: Option<&str>,
    sources: PolicySources,
) -> Result<Active, ReloadError> {
    let config_document: Arc<str> = match &sources.config {
        ConfigSpec::None => Arc::from(""),
        ConfigSpec::Inline(text) => text.clone(),
        ConfigSpec::Path(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                std::fs::read_to_string(&path)
                    .map_err(|source| ReloadError::Config { path, source })
            })
            .await
            .map_err(|_| ReloadError::Gone)??
            .into()
        }
    };
    let compile_engine = engine.clone();
    let component = sources.component.clone();
    let loaded: LoadedComponent = tokio::task::spawn_blocking(move || match component {
        ComponentSpec::Named(spec) => compile_engine.load_component(&spec),
        ComponentSpec::Uploaded(bytes) => {
            compile_engine.load_bytes("uploaded component", &bytes, "policy")
        }
    })
    .await
    .map_err(|_| ReloadError::Gone)??;
    if let Some(expected) = pin {
        if !loaded.sha256.eq_ignore_ascii_case(expected) {
            return Err(ReloadError::Pinned {
                origin: loaded.origin.clone(),
                found: loaded.sha256.clone(),
                expected: expected.to_owned(),
            });
        }
    }
    let options = PolicyOptions {
        config_document,
        ..options.clone()
    };
    let policy = Policy::load(engine, &loaded, options).await?;
    let identity = policy.identity();
    let info = PolicyInfo {
        name: identity.name.clone(),
        version: identity.version.clone(),
        sha256: identity.sha256.clone(),
        origin: identity.origin.clone(),
        loaded_at_ms: identity.loaded_at_ms,
    };
    Ok(Active {
        policy: Arc::new(policy),
        info,
        sources,
    })
}

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
