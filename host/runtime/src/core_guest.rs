//! The core guest: session registry, event ring and permission bookkeeping,
//! run in wasmtime with a deadline on every call and recovery after a fault.
//!
//! A trap leaves the `Store` unusable, and with it everything the core held.
//! So this wrapper keeps a *shadow* of the little needed to carry on — each
//! live session (id, workspace, agent session id, attach count) and the id of
//! its newest event — and after a fault builds a fresh instance, re-registers
//! those sessions and continues their event ids. What is lost (retained
//! events, pending permissions, in-flight creates) is reported to the caller
//! in the [`CoreFault`].
//!
//! Unlike the policy, the core is called synchronously, from its owner
//! thread: it is trusted and embedded, it imports nothing that can block
//! (only `host.log`, a clock and random ids; no WASI), so a hang can only be
//! Wasm code running, which the epoch deadline interrupts; and a synchronous
//! call needs no fiber switch, which matters at a million events a second.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Store, UpdateDeadline};

use crate::bindings::core_world::exports::qserve::core::{
    events, lifecycle, permissions, sessions,
};
use crate::bindings::core_world::{Core, CorePre};
use crate::engine::{GuestClock, GuestEngine, LoadedComponent};
use crate::error::LoadError;
use crate::host_state::GuestState;
use crate::limits::Caps;

pub use events::Event;
pub use lifecycle::{CoreStats, Limits as CoreLimits};
pub use permissions::{Outcome as VoteOutcome, RegisterError, Resolution, VoteError};
pub use sessions::{OpenError, OpenOutcome, Scope, Session};

/// The core is trusted, so this is a hang detector rather than a budget. It
/// also bounds instantiation (start code) and `configure`, at load and when
/// rebuilding after a fault.
const CORE_CALL_DEADLINE: Duration = Duration::from_secs(2);
/// wasm32 cannot address more; the event ring is the core's main use of memory.
const CORE_MEMORY_CAP: usize = 4 << 30;

/// A core call failed (trap, deadline). The core has already been replaced
/// by a fresh instance holding the live sessions when this is returned.
#[derive(Debug, Clone, thiserror::Error)]
#[error("core guest fault in `{call}`: {cause}; retained events, pending permissions and in-flight creates were lost")]
pub struct CoreFault {
    pub call: &'static str,
    pub cause: String,
}

/// What a core fault cost, for whoever must tell agents and clients: the
/// restored sessions (with the id their event sequence continues after) lost
/// their retained events and pending permissions.
#[derive(Debug, Clone)]
pub struct Recovery {
    pub cause: String,
    pub sessions: Vec<(String, u64)>,
}

type RecoveryListener = Box<dyn Fn(Recovery) + Send>;

/// What the wrapper remembers of each live session to survive a fault.
struct Shadow {
    session: Session,
    last_event_id: u64,
}

pub struct CoreGuest {
    pre: CorePre<GuestState>,
    store: Store<GuestState>,
    core: Core,
    limits: CoreLimits,
    clock: GuestClock,
    shadow: HashMap<String, Shadow>,
    /// Set when a fresh instance could not be built; every call retries.
    broken: Option<String>,
    on_recovery: Option<RecoveryListener>,
    /// `--node-id` (see [`CoreGuest::set_id_prefix`]); kept for rebuilt instances.
    id_prefix: Option<Arc<str>>,
}

impl CoreGuest {
    /// Link and instantiate the core. Fails with the component's origin and
    /// the mismatch when it does not implement the `core` world.
    pub fn new(
        engine: &GuestEngine,
        loaded: &LoadedComponent,
        limits: CoreLimits,
    ) -> Result<Self, LoadError> {
        let mut linker = wasmtime::component::Linker::new(engine.engine());
        Core::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s).map_err(
            |err| LoadError::Instantiate {
                origin: loaded.origin.clone(),
                reason: format!("{err:#}"),
            },
        )?;
        let wrong_world = |err: wasmtime::Error| LoadError::WrongWorld {
            origin: loaded.origin.clone(),
            world: "core",
            reason: format!("{err:#}"),
        };
        let instance_pre = linker
            .instantiate_pre(&loaded.component)
            .map_err(wrong_world)?;
        let pre = CorePre::new(instance_pre).map_err(wrong_world)?;
        let clock = engine.clock().clone();
        let (store, core) =
            instantiate(&pre, &limits, &clock).map_err(|reason| LoadError::Instantiate {
                origin: loaded.origin.clone(),
                reason,
            })?;
        Ok(CoreGuest {
            pre,
            store,
            core,
            limits,
            clock,
            shadow: HashMap::new(),
            broken: None,
            on_recovery: None,
            id_prefix: None,
        })
    }

    /// Start every session and permission-request id this core mints from
    /// now on with `NODE.` (`--node-id`), in this instance and in any
    /// instance rebuilt after a fault. Set before the first session.
    pub fn set_id_prefix(&mut self, node: &str) {
        let prefix: Arc<str> = Arc::from(node);
        self.store.data_mut().id_prefix = Some(prefix.clone());
        self.id_prefix = Some(prefix);
    }

    /// Be told after every recovery from a fault (called on the owner thread).
    pub fn on_recovery(&mut self, listener: impl Fn(Recovery) + Send + 'static) {
        self.on_recovery = Some(Box::new(listener));
    }

    /// Run one guest call under the deadline; on a fault, rebuild and report.
    fn call<R>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&Core, &mut Store<GuestState>) -> wasmtime::Result<R>,
    ) -> Result<R, CoreFault> {
        if let Some(reason) = self.broken.clone() {
            self.recover();
            if self.broken.is_some() {
                return Err(CoreFault {
                    call: name,
                    cause: format!("core unavailable: {reason}"),
                });
            }
        }
        arm_deadline(&mut self.store, &self.clock);
        match f(&self.core, &mut self.store) {
            Ok(value) => Ok(value),
            Err(err) => {
                let cause = crate::fault::describe(&err, CORE_CALL_DEADLINE);
                tracing::error!(
                    call = name,
                    "core guest fault: {cause}; rebuilding the core"
                );
                self.recover();
                if self.broken.is_none() {
                    self.announce_recovery(&cause);
                }
                Err(CoreFault { call: name, cause })
            }
        }
    }

    fn announce_recovery(&self, cause: &str) {
        if let Some(listener) = &self.on_recovery {
            listener(Recovery {
                cause: cause.to_owned(),
                sessions: self
                    .shadow
                    .iter()
                    .map(|(id, shadow)| (id.clone(), shadow.last_event_id))
                    .collect(),
            });
        }
    }

    /// A fresh instance with the live sessions re-registered.
    fn recover(&mut self) {
        let rebuilt =
            instantiate(&self.pre, &self.limits, &self.clock).and_then(|(mut store, core)| {
                store.data_mut().id_prefix = self.id_prefix.clone();
                for shadow in self.shadow.values() {
                    arm_deadline(&mut store, &self.clock);
                    core.qserve_core_sessions()
                        .call_restore(&mut store, &shadow.session, shadow.last_event_id)
                        .map_err(|err| {
                            format!(
                                "restoring session {}: {}",
                                shadow.session.id,
                                crate::fault::describe(&err, CORE_CALL_DEADLINE)
                            )
                        })?;
                }
                Ok((store, core))
            });
        match rebuilt {
            Ok((store, core)) => {
                self.store = store;
                self.core = core;
                self.broken = None;
                tracing::warn!(
                    sessions = self.shadow.len(),
                    "core guest rebuilt; live sessions restored"
                );
            }
            Err(reason) => {
                tracing::error!("could not rebuild the core guest: {reason}");
                self.broken = Some(reason);
            }
        }
    }

    // ---- lifecycle ----

    pub fn stats(&mut self) -> Result<CoreStats, CoreFault> {
        self.call("stats", |c, s| c.qserve_core_lifecycle().call_stats(s))
    }

    pub fn limits(&self) -> CoreLimits {
        self.limits
    }

    // ---- sessions ----

    pub fn open(
        &mut self,
        workspace: &str,
        scope: Scope,
    ) -> Result<Result<OpenOutcome, OpenError>, CoreFault> {
        let outcome = self.call("open", |c, s| {
            c.qserve_core_sessions().call_open(s, workspace, scope)
        })?;
        if let Ok(OpenOutcome::Attached(session)) = &outcome {
            self.remember(session);
        }
        Ok(outcome)
    }

    pub fn finish_create(
        &mut self,
        reservation: u64,
        agent_session_id: &str,
    ) -> Result<Result<Session, String>, CoreFault> {
        let created = self.call("finish-create", |c, s| {
            c.qserve_core_sessions()
                .call_finish_create(s, reservation, agent_session_id)
        })?;
        if let Ok(session) = &created {
            self.shadow.insert(
                session.id.clone(),
                Shadow {
                    session: session.clone(),
                    last_event_id: 0,
                },
            );
        }
        Ok(created)
    }

    pub fn abort_create(&mut self, reservation: u64) -> Result<(), CoreFault> {
        self.call("abort-create", |c, s| {
            c.qserve_core_sessions().call_abort_create(s, reservation)
        })
    }

    pub fn attach(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault> {
        let session = self.call("attach", |c, s| {
            c.qserve_core_sessions().call_attach(s, session_id)
        })?;
        if let Some(session) = &session {
            self.remember(session);
        }
        Ok(session)
    }

    pub fn detach(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault> {
        let session = self.call("detach", |c, s| {
            c.qserve_core_sessions().call_detach(s, session_id)
        })?;
        if let Some(session) = &session {
            self.remember(session);
        }
        Ok(session)
    }

    pub fn get(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault> {
        self.call("get", |c, s| {
            c.qserve_core_sessions().call_get(s, session_id)
        })
    }

    pub fn list_workspace(&mut self, workspace: &str) -> Result<Vec<Session>, CoreFault> {
        self.call("list-workspace", |c, s| {
            c.qserve_core_sessions().call_list_workspace(s, workspace)
        })
    }

    pub fn list_all(&mut self) -> Result<Vec<Session>, CoreFault> {
        self.call("list-all", |c, s| c.qserve_core_sessions().call_list_all(s))
    }

    pub fn remove(&mut self, session_id: &str) -> Result<Option<Session>, CoreFault> {
        self.shadow.remove(session_id);
        self.call("remove", |c, s| {
            c.qserve_core_sessions().call_remove(s, session_id)
        })
    }

    fn remember(&mut self, session: &Session) {
        if let Some(shadow) = self.shadow.get_mut(&session.id) {
            shadow.session.attach_count = session.attach_count;
        }
    }

    // ---- events ----

    /// Ring one event. `Ok(None)`: the session is unknown.
    pub fn publish(
        &mut self,
        session_id: &str,
        kind: &str,
        data: &str,
        originator: Option<&str>,
    ) -> Result<Option<u64>, CoreFault> {
        let published = self.call("publish", |c, s| {
            c.qserve_core_events()
                .call_publish(s, session_id, kind, data, originator)
        })?;
        match published {
            Ok(id) => {
                if let Some(shadow) = self.shadow.get_mut(session_id) {
                    shadow.last_event_id = id;
                }
                Ok(Some(id))
            }
            Err(_) => Ok(None),
        }
    }

    /// Ring `datas` in order as events of one `kind`; returns the id of the
    /// last (`Ok(None)`: the session is unknown). One guest call, and one
    /// string crossing into the guest, for all of them.
    pub fn publish_batch<S: AsRef<str>>(
        &mut self,
        session_id: &str,
        kind: &str,
        datas: &[S],
    ) -> Result<Option<u64>, CoreFault> {
        let mut packed = String::with_capacity(datas.iter().map(|d| d.as_ref().len()).sum());
        let mut lengths = Vec::with_capacity(datas.len());
        for data in datas {
            packed.push_str(data.as_ref());
            lengths.push(data.as_ref().len() as u32);
        }
        let published = self.call("publish-batch", |c, s| {
            c.qserve_core_events()
                .call_publish_batch(s, session_id, kind, &packed, &lengths)
        })?;
        match published {
            Ok(last) => {
                if let Some(shadow) = self.shadow.get_mut(session_id) {
                    shadow.last_event_id = last;
                }
                Ok(Some(last))
            }
            Err(events::PublishError::UnknownSession) => Ok(None),
            Err(events::PublishError::MalformedBatch) => {
                tracing::error!("the core refused a batch packed by the host; events dropped");
                Ok(None)
            }
        }
    }

    /// Retained events after `after`. `Ok(None)`: the session is unknown.
    pub fn replay(
        &mut self,
        session_id: &str,
        after: u64,
    ) -> Result<Option<Vec<Event>>, CoreFault> {
        let replayed = self.call("replay", |c, s| {
            c.qserve_core_events().call_replay(s, session_id, after)
        })?;
        Ok(replayed.ok())
    }

    pub fn last_event_id(&mut self, session_id: &str) -> Result<Option<u64>, CoreFault> {
        let last = self.call("last-id", |c, s| {
            c.qserve_core_events().call_last_id(s, session_id)
        })?;
        Ok(last.ok())
    }

    // ---- permissions ----

    /// Register a request whose votes must name one of `option_ids` (the
    /// offered options' ids).
    pub fn register_permission(
        &mut self,
        session_id: &str,
        option_ids: &[String],
    ) -> Result<Result<String, RegisterError>, CoreFault> {
        self.call("register", |c, s| {
            c.qserve_core_permissions()
                .call_register(s, session_id, option_ids)
        })
    }

    pub fn vote(
        &mut self,
        request_id: &str,
        outcome: &VoteOutcome,
    ) -> Result<Result<Resolution, VoteError>, CoreFault> {
        self.call("vote", |c, s| {
            c.qserve_core_permissions()
                .call_vote(s, request_id, outcome)
        })
    }

    pub fn expire_permission(&mut self, request_id: &str) -> Result<Option<Resolution>, CoreFault> {
        self.call("expire", |c, s| {
            c.qserve_core_permissions().call_expire(s, request_id)
        })
    }

    pub fn cancel_permissions(&mut self, session_id: &str) -> Result<Vec<Resolution>, CoreFault> {
        self.call("cancel-session", |c, s| {
            c.qserve_core_permissions()
                .call_cancel_session(s, session_id)
        })
    }
}

/// A fresh, configured core, all of it under the call deadline: a core whose
/// start code or `configure` hangs is stopped and reported, not waited on.
fn instantiate(
    pre: &CorePre<GuestState>,
    limits: &CoreLimits,
    clock: &GuestClock,
) -> Result<(Store<GuestState>, Core), String> {
    let state = GuestState::new(Arc::from("core"), Caps::core(CORE_MEMORY_CAP));
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|s| s.limiter());
    // Checked at every epoch tick the call spans: past its due time, trap.
    let ticking = clock.clone();
    store.epoch_deadline_callback(move |ctx| {
        if ticking.now_ms() >= ctx.data().due_ms {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Continue(1))
        }
    });
    arm_deadline(&mut store, clock);
    let core = pre.instantiate(&mut store).map_err(|err| {
        format!(
            "its start code failed: {}",
            crate::fault::describe(&err, CORE_CALL_DEADLINE)
        )
    })?;
    arm_deadline(&mut store, clock);
    core.qserve_core_lifecycle()
        .call_configure(&mut store, *limits)
        .map_err(|err| {
            format!(
                "configure failed: {}",
                crate::fault::describe(&err, CORE_CALL_DEADLINE)
            )
        })?;
    Ok((store, core))
}

/// Give the next call [`CORE_CALL_DEADLINE`] from now (checked each tick).
fn arm_deadline(store: &mut Store<GuestState>, clock: &GuestClock) {
    store.data_mut().due_ms = clock.now_ms() + CORE_CALL_DEADLINE.as_millis() as u64;
    store.set_epoch_deadline(1);
}
