//! The policy guest: untrusted, swappable, and never able to hurt the daemon.
//!
//! Every call runs under an epoch deadline (default 50 ms) in a `Store` with a
//! memory cap (default 64 MiB). Whatever goes wrong — a trap, the deadline, the
//! cap, an answer naming an option that was not offered — **fails closed**: the
//! permission resolves `cancelled`, the session create or file access is
//! refused, a warning names the cause, and the next call runs on a fresh
//! instance built from the kept `InstancePre`.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::Store;

use crate::bindings::policy_world::exports::qserve::bridge::decide::{self, Verdict};
use crate::bindings::policy_world::{Policy, PolicyPre};
use crate::engine::{GuestEngine, LoadedComponent};
use crate::error::LoadError;
use crate::host_state::GuestState;

pub use decide::{PermissionOption as OfferedOption, PolicyInfo, ToolCall};

/// Limits and configuration of the policy guest.
#[derive(Debug, Clone)]
pub struct PolicyOptions {
    /// Longest a single decision may take.
    pub call_deadline: Duration,
    /// Most linear memory the policy may hold.
    pub memory_cap: usize,
    /// The policy's configuration document (`--policy-config`), opaque to us.
    pub config_document: Arc<str>,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            call_deadline: Duration::from_millis(50),
            memory_cap: 64 << 20,
            config_document: Arc::from(""),
        }
    }
}

/// The policy's answer to a permission request, already checked against the
/// offered options: what the host does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionAnswer {
    /// Answer the agent now with this offered option.
    Selected(String),
    /// Answer the agent now with `cancelled` (a reject with no reject option
    /// offered, or a policy fault).
    Cancelled,
    /// Ask the clients; `None` means the daemon's default timeout.
    AskClients(Option<Duration>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAccess {
    Read,
    Write,
}

pub struct PolicyGuest {
    pre: PolicyPre<GuestState>,
    /// `None` after a fault: the next call instantiates afresh.
    live: Option<(Store<GuestState>, Policy)>,
    options: PolicyOptions,
    deadline_ticks: u64,
    label: Arc<str>,
    info: PolicyInfo,
    faults: u64,
    last_fault: Option<String>,
}

impl PolicyGuest {
    /// Link, type-check against the `policy` world, instantiate once and ask
    /// the policy for its name and version.
    pub fn new(
        engine: &GuestEngine,
        loaded: &LoadedComponent,
        options: PolicyOptions,
    ) -> Result<Self, LoadError> {
        let origin = &loaded.origin;
        let instantiate_error = |err: wasmtime::Error| LoadError::Instantiate {
            origin: origin.clone(),
            reason: format!("{err:#}"),
        };
        let wrong_world = |err: wasmtime::Error| LoadError::WrongWorld {
            origin: origin.clone(),
            world: "policy",
            reason: format!("{err:#}"),
        };
        let mut linker = Linker::new(engine.engine());
        Policy::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(instantiate_error)?;
        // Guests from toolchains that import WASI get the locked-down context of
        // `GuestState`; anything else they import traps only if actually called.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(instantiate_error)?;
        stub_unknown_imports(&mut linker, &loaded.component, engine).map_err(instantiate_error)?;
        let instance_pre = linker
            .instantiate_pre(&loaded.component)
            .map_err(wrong_world)?;
        let pre = PolicyPre::new(instance_pre).map_err(wrong_world)?;

        let mut guest = PolicyGuest {
            pre,
            live: None,
            deadline_ticks: engine.ticks_for(options.call_deadline),
            options,
            label: Arc::from("policy"),
            info: PolicyInfo {
                name: String::new(),
                version: String::new(),
            },
            faults: 0,
            last_fault: None,
        };
        let info = guest
            .call("info", |p, s| p.qserve_bridge_decide().call_info(s))
            .map_err(|cause| LoadError::Instantiate {
                origin: origin.clone(),
                reason: format!("its info() call failed: {cause}"),
            })?;
        guest.label = Arc::from(format!("policy:{}", info.name));
        guest.info = info;
        // The next instance is created with the policy's own name in its log lines.
        guest.live = None;
        Ok(guest)
    }

    pub fn info(&self) -> &PolicyInfo {
        &self.info
    }

    /// Faults survived so far (each one cost an instance).
    pub fn faults(&self) -> u64 {
        self.faults
    }

    /// The cause of the most recent fault, as logged.
    pub fn last_fault(&self) -> Option<&str> {
        self.last_fault.as_deref()
    }

    /// Run one call on a live instance under the deadline. On any error the
    /// instance is dropped (a trapped `Store` cannot be entered again).
    fn call<R>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&Policy, &mut Store<GuestState>) -> wasmtime::Result<R>,
    ) -> Result<R, String> {
        if self.live.is_none() {
            let mut store = Store::new(
                self.pre.engine(),
                GuestState::new(
                    self.label.clone(),
                    self.options.memory_cap,
                    self.options.config_document.clone(),
                ),
            );
            store.limiter(|s| s.limits());
            store.set_epoch_deadline(self.deadline_ticks);
            match self.pre.instantiate(&mut store) {
                Ok(policy) => self.live = Some((store, policy)),
                Err(err) => return Err(self.fault(name, format!("instantiation failed: {err:#}"))),
            }
        }
        let (store, policy) = self.live.as_mut().expect("instance was just ensured");
        store.set_epoch_deadline(self.deadline_ticks);
        let result = f(policy, store);
        store.data_mut().flush_captured_output();
        result.map_err(|err| {
            self.live = None;
            self.fault(
                name,
                crate::fault::describe(&err, self.options.call_deadline, self.options.memory_cap),
            )
        })
    }

    fn fault(&mut self, call: &str, cause: String) -> String {
        self.faults += 1;
        tracing::warn!(policy = %self.label, call, "policy fault, failing closed: {cause}");
        self.last_fault = Some(cause.clone());
        cause
    }

    /// Decide a permission request. Never fails: a fault is `Cancelled`.
    pub fn decide_permission(
        &mut self,
        call: &ToolCall,
        offered: &[OfferedOption],
    ) -> PermissionAnswer {
        let verdict = match self.call("on-permission-request", |p, s| {
            p.qserve_bridge_decide()
                .call_on_permission_request(s, call, offered)
        }) {
            Ok(verdict) => verdict,
            Err(_) => return PermissionAnswer::Cancelled,
        };
        match verdict {
            Verdict::Select(option_id) => {
                if offered.iter().any(|o| o.option_id == option_id) {
                    PermissionAnswer::Selected(option_id)
                } else {
                    self.fault(
                        "on-permission-request",
                        format!("selected option `{option_id}`, which the agent did not offer"),
                    );
                    PermissionAnswer::Cancelled
                }
            }
            Verdict::Reject => reject_option(offered)
                .map(PermissionAnswer::Selected)
                .unwrap_or(PermissionAnswer::Cancelled),
            Verdict::AskClients(timeout_ms) => {
                PermissionAnswer::AskClients(timeout_ms.map(Duration::from_millis))
            }
        }
    }

    /// May a session be created in `workspace`? A fault refuses.
    pub fn admit_session(&mut self, workspace: &str) -> Result<(), String> {
        match self.call("on-session-create", |p, s| {
            p.qserve_bridge_decide()
                .call_on_session_create(s, workspace)
        }) {
            Ok(decision) => decision,
            Err(cause) => Err(format!("policy fault: {cause}")),
        }
    }

    /// May the agent read or write `path`? A fault refuses.
    pub fn check_file_access(
        &mut self,
        session_id: &str,
        path: &str,
        access: FileAccess,
    ) -> Result<(), String> {
        let write = access == FileAccess::Write;
        match self.call("on-file-access", |p, s| {
            p.qserve_bridge_decide()
                .call_on_file_access(s, session_id, path, write)
        }) {
            Ok(decision) => decision,
            Err(cause) => Err(format!("policy fault: {cause}")),
        }
    }
}

/// The offered option a `reject` verdict stands for: a one-time reject first.
fn reject_option(offered: &[OfferedOption]) -> Option<String> {
    ["reject_once", "reject_always"].iter().find_map(|kind| {
        offered
            .iter()
            .find(|o| o.kind == *kind)
            .map(|o| o.option_id.clone())
    })
}

/// Define every function of an import the host does not provide (neither
/// `qserve:bridge/…` nor `wasi:…`) as one that fails when called, so such a
/// policy loads and fails closed only if it really uses the import.
///
/// Not `Linker::define_unknown_imports_as_traps`: it also "completes" the
/// WASI instances, giving `wasi:io/streams` a placeholder for the `error`
/// resource that wasmtime-wasi deliberately leaves to `wasi:io/error`, and
/// then every guest that uses stdout fails to link.
fn stub_unknown_imports(
    linker: &mut Linker<GuestState>,
    component: &wasmtime::component::Component,
    engine: &GuestEngine,
) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;
    let ty = component.component_type();
    for (name, import) in ty.imports(engine.engine()) {
        if name.starts_with("qserve:bridge/") || name.starts_with("wasi:") {
            continue;
        }
        match import.ty {
            ComponentItem::ComponentInstance(instance) => {
                let mut stubbed = linker.instance(name)?;
                for (func, item) in instance.exports(engine.engine()) {
                    if let ComponentItem::ComponentFunc(_) = item.ty {
                        let what = format!("{name}#{func}");
                        stubbed.func_new(func, move |_, _, _, _| {
                            wasmtime::bail!("unknown import `{what}` is not provided by qserve")
                        })?;
                    }
                }
            }
            ComponentItem::ComponentFunc(_) => {
                let what = name.to_owned();
                linker.root().func_new(name, move |_, _, _, _| {
                    wasmtime::bail!("unknown import `{what}` is not provided by qserve")
                })?;
            }
            // Types need no definition; an unknown resource cannot be stubbed
            // and makes the component fail to link, with a message naming it.
            _ => {}
        }
    }
    Ok(())
}
