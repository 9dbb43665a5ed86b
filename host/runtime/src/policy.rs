//! The policy guest: untrusted, swappable, and never able to hurt the daemon.
//!
//! A [`Policy`] is a small pool of instances of one component, each in its
//! own `Store` with a memory cap and table/instance limits. Every decision
//! takes an idle instance (or starts one: instantiate, then `init(config)`),
//! runs one call under the deadline, and gives the instance back only if
//! the call succeeded. Decisions run concurrently, on the caller's task:
//! one stuck decision holds one instance, never the others.
//!
//! The deadline is enforced twice, because a policy can overrun it in two ways:
//! - **computing**: the store's epoch callback yields to the executor every
//!   tick (so a busy policy never monopolises a tokio worker) and traps
//!   the call once its deadline has passed;
//! - **waiting in a host call** (WASI `pollable.block` after
//!   `subscribe-duration`, `poll`, a read that never returns): WASI is linked
//!   async, so the call is a pending future, and `tokio::time::timeout`
//!   drops it at the deadline (wasmtime unwinds its fiber).
//!
//! Whatever goes wrong — a trap, the deadline, a limit, an answer naming an
//! option that was not offered — **fails closed**: the permission resolves
//! `cancelled`, the session create or file access is refused, a warning
//! names the cause, and that instance is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Semaphore, SemaphorePermit};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Store, UpdateDeadline};

use crate::bindings::policy_types as types;
use crate::bindings::policy_world::{Policy as PolicyBindings, PolicyPre};
use crate::engine::{GuestEngine, LoadedComponent};
use crate::error::LoadError;
use crate::guest_log::sanitize_line;
use crate::host_state::GuestState;
use crate::limits::Caps;

pub use types::{
    AgentInfo, Context, FileAccess, OptionKind, PermissionOption, Phase, PolicyInfo, ResolvedPath,
    SessionScope, ToolCall, ToolKind, Verdict,
};

/// Instantiation plus `init` may take this long even when decisions must be
/// quicker: interpreted guests (Python, JavaScript) spend tens of ms starting.
const START_DEADLINE_FLOOR: Duration = Duration::from_secs(1);
/// A call counts as `stuck` in [`PolicyHealth`] this long past its deadline.
/// The timeout should make that impossible; the count is the safety net that
/// shows it if a host call ever blocks a thread instead of awaiting.
const STUCK_MARGIN: Duration = Duration::from_secs(1);
/// Longest `reason` kept from a decision (escaped like a log line).
const MAX_REASON_BYTES: usize = 1024;
/// Longest policy name or version kept.
const MAX_NAME_BYTES: usize = 128;

/// Limits and configuration of a policy.
#[derive(Debug, Clone)]
pub struct PolicyOptions {
    /// Longest a single decision may take, host calls included.
    pub call_deadline: Duration,
    /// Most linear memory one instance may hold.
    pub memory_cap: usize,
    /// The policy's configuration document (`--policy-config`), handed to
    /// `init` of every instance; opaque to the host.
    pub config_document: Arc<str>,
    /// Most instances alive at once, so most decisions running at once
    /// (0 counts as 1). More wait for an instance, up to the call deadline.
    pub max_instances: usize,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            call_deadline: Duration::from_millis(50),
            memory_cap: 64 << 20,
            config_document: Arc::from(""),
            max_instances: 8,
        }
    }
}

/// What a policy is, for `/capabilities`, `policy list`, the decision log.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PolicyIdentity {
    /// From the policy's `init` (escaped, at most 128 bytes).
    pub name: String,
    pub version: String,
    /// Lowercase hex SHA-256 of the component's bytes.
    pub sha256: String,
    /// `builtin:NAME` or the component's path.
    pub origin: String,
    /// When it was loaded, in ms since the Unix epoch.
    pub loaded_at_ms: u64,
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

/// Whether a decision is the policy's own answer or the host failing closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionSource {
    Policy,
    Fault,
}

/// A permission decision, ready for the decision log and the
/// `policy_decision` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionDecision {
    pub answer: PermissionAnswer,
    /// `select`, `reject`, `ask` or `fault`.
    pub verdict: &'static str,
    /// The policy's reason (escaped, at most 1 KiB), or `policy fault: …`.
    pub reason: String,
    /// The fault's one-line cause, when the host failed closed.
    pub fault: Option<String>,
    /// From the call to the answer, waiting for an instance included.
    pub latency: Duration,
}

impl PermissionDecision {
    pub fn source(&self) -> DecisionSource {
        source(&self.fault)
    }
}

/// A yes or no for a session create/attach or a file access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDecision {
    pub allow: bool,
    /// The policy's reason (escaped, at most 1 KiB), or `policy fault: …`.
    pub reason: String,
    pub fault: Option<String>,
    pub latency: Duration,
}

impl AccessDecision {
    pub fn source(&self) -> DecisionSource {
        source(&self.fault)
    }
}

fn source(fault: &Option<String>) -> DecisionSource {
    match fault {
        Some(_) => DecisionSource::Fault,
        None => DecisionSource::Policy,
    }
}

/// How a policy is doing, for `/health` and `policy list`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyHealth {
    /// Calls running now (including instances being started for one).
    pub in_flight: usize,
    /// Of those, how many are past their deadline by more than a margin.
    /// Should stay 0: a call is cut off at its deadline.
    pub stuck: usize,
    /// Faults since load (each cost an instance, or refused a decision).
    pub faults: u64,
    /// Faults in the last minute.
    pub recent_faults: u64,
    /// The cause of the most recent fault, as logged.
    pub last_fault: Option<String>,
}

/// Faults per second over the last minute: 60 counters, however many faults.
struct FaultWindow {
    origin: Instant,
    /// (second since `origin`, faults in it), indexed by second % 60.
    buckets: [(u64, u64); 60],
}

impl FaultWindow {
    fn new() -> Self {
        FaultWindow {
            origin: Instant::now(),
            buckets: [(u64::MAX, 0); 60],
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.duration_since(self.origin).as_secs()
    }

    fn record(&mut self, now: Instant) {
        let second = self.second(now);
        let bucket = &mut self.buckets[(second % 60) as usize];
        if bucket.0 != second {
            *bucket = (second, 0);
        }
        bucket.1 += 1;
    }

    fn last_minute(&self, now: Instant) -> u64 {
        let second = self.second(now);
        self.buckets
            .iter()
            .filter(|(at, _)| *at != u64::MAX && second.saturating_sub(*at) < 60)
            .map(|(_, count)| count)
            .sum()
    }
}

struct FaultLog {
    last: Option<String>,
    window: FaultWindow,
}

/// A loaded, init-checked policy. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Policy {
    shared: Arc<Shared>,
}

struct Shared {
    pre: PolicyPre<GuestState>,
    options: PolicyOptions,
    start_deadline: Duration,
    identity: PolicyIdentity,
    /// `policy:NAME`, in every log line about this policy or from it.
    label: Arc<str>,
    /// Instances between decisions, each `init`ed.
    idle: Mutex<Vec<Instance>>,
    /// One permit per instance that may exist: a decision holds one from
    /// before it takes or starts an instance until it gives it back.
    slots: Semaphore,
    max_instances: usize,
    /// Calls running, by id: when each is due.
    in_flight: Mutex<HashMap<u64, Instant>>,
    next_call: AtomicU64,
    faults: AtomicU64,
    fault_log: Mutex<FaultLog>,
    /// Instances alive (idle or busy).
    live: Arc<AtomicUsize>,
}

struct Instance {
    store: Store<GuestState>,
    bindings: PolicyBindings,
    _counted: Counted,
}

/// Keeps [`Shared::live`] right however an instance goes away.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        Counted(live.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An instance checked out for one decision, with its slot.
struct Lease<'a> {
    instance: Instance,
    _slot: SemaphorePermit<'a>,
}

enum Request<'a> {
    Permission(&'a Context, &'a ToolCall, &'a [PermissionOption]),
    Session(&'a Context),
    File(&'a Context, FileAccess, &'a ResolvedPath),
}

enum Reply {
    Permission(types::PermissionDecision),
    Access(types::AccessDecision),
}

/// Why an instance could not be started.
enum StartError {
    /// `init` returned an error: the policy refuses its configuration.
    Refused(String),
    /// Instantiation or `init` trapped, hit a limit or the deadline.
    Fault(String),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Policy {
    /// Check the contract version, link (the `host` interface, a locked-down
    /// WASI, failing stubs for anything else), start one instance and call
    /// its `init` with the configuration: an `Err` from `init` refuses the
    /// load ([`LoadError::ConfigRefused`]). That instance is kept for the
    /// first decision.
    pub async fn load(
        engine: &GuestEngine,
        component: &LoadedComponent,
        options: PolicyOptions,
    ) -> Result<Policy, LoadError> {
        let origin = &component.origin;
        crate::contract::check(origin, &component.component, engine.engine())?;
        let link_error = |err: wasmtime::Error| LoadError::Instantiate {
            origin: origin.clone(),
            reason: format!("{err:#}"),
        };
        let wrong_world = |err: wasmtime::Error| LoadError::WrongWorld {
            origin: origin.clone(),
            world: "policy",
            reason: format!("{err:#}"),
        };
        let mut linker = Linker::new(engine.engine());
        PolicyBindings::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(link_error)?;
        // Guests from toolchains that import WASI get the locked-down context of
        // `GuestState`, linked async so that a blocking WASI call is a future
        // the deadline can drop. Anything else traps only if actually called.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link_error)?;
        stub_unknown_imports(&mut linker, &component.component, engine).map_err(link_error)?;
        let instance_pre = linker
            .instantiate_pre(&component.component)
            .map_err(wrong_world)?;
        let pre = PolicyPre::new(instance_pre).map_err(wrong_world)?;

        let start_deadline = options.call_deadline.max(START_DEADLINE_FLOOR);
        let live = Arc::new(AtomicUsize::new(0));
        let (mut first, info) =
            start_instance(&pre, Arc::from("policy"), &options, start_deadline, &live)
                .await
                .map_err(|err| match err {
                    StartError::Refused(reason) => LoadError::ConfigRefused {
                        origin: origin.clone(),
                        reason,
                    },
                    StartError::Fault(cause) => LoadError::Instantiate {
                        origin: origin.clone(),
                        reason: cause,
                    },
                })?;
        let identity = PolicyIdentity {
            name: sanitize_line(&info.name, MAX_NAME_BYTES),
            version: sanitize_line(&info.version, MAX_NAME_BYTES),
            sha256: component.sha256.clone(),
            origin: origin.clone(),
            loaded_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        };
        let label: Arc<str> = Arc::from(format!("policy:{}", identity.name));
        first.store.data_mut().set_label(label.clone());
        let max_instances = options.max_instances.max(1);
        Ok(Policy {
            shared: Arc::new(Shared {
                pre,
                start_deadline,
                identity,
                label,
                idle: Mutex::new(vec![first]),
                slots: Semaphore::new(max_instances),
                max_instances,
                in_flight: Mutex::new(HashMap::new()),
                next_call: AtomicU64::new(0),
                faults: AtomicU64::new(0),
                fault_log: Mutex::new(FaultLog {
                    last: None,
                    window: FaultWindow::new(),
                }),
                live,
                options,
            }),
        })
    }

    pub fn identity(&self) -> &PolicyIdentity {
        &self.shared.identity
    }

    pub fn options(&self) -> &PolicyOptions {
        &self.shared.options
    }

    /// Instances alive now, idle or deciding (at most `max_instances`).
    pub fn instances(&self) -> usize {
        self.shared.live.load(Ordering::Relaxed)
    }

    pub fn health(&self) -> PolicyHealth {
        let now = Instant::now();
        let (in_flight, stuck) = {
            let in_flight = lock(&self.shared.in_flight);
            let stuck = in_flight
                .values()
                .filter(|due| now > **due + STUCK_MARGIN)
                .count();
            (in_flight.len(), stuck)
        };
        let fault_log = lock(&self.shared.fault_log);
        PolicyHealth {
            in_flight,
            stuck,
            faults: self.shared.faults.load(Ordering::Relaxed),
            recent_faults: fault_log.window.last_minute(now),
            last_fault: fault_log.last.clone(),
        }
    }

    /// Decide a permission request. Never fails: a fault answers `Cancelled`.
    /// A `select` must name an offered option; a `reject` becomes the offered
    /// reject-once option, else reject-always, else `Cancelled`.
    pub async fn decide_permission(
        &self,
        ctx: &Context,
        call: &ToolCall,
        options: &[PermissionOption],
    ) -> PermissionDecision {
        const CALL: &str = "on-permission-request";
        let started = Instant::now();
        let fault = |cause: String| PermissionDecision {
            answer: PermissionAnswer::Cancelled,
            verdict: "fault",
            reason: format!("policy fault: {cause}"),
            fault: Some(cause),
            latency: started.elapsed(),
        };
        let (lease, decision) = match self
            .run(CALL, Request::Permission(ctx, call, options))
            .await
        {
            Ok((lease, Reply::Permission(decision))) => (lease, decision),
            Ok((_, Reply::Access(_))) => unreachable!("on-permission-request answers a permission"),
            Err(cause) => return fault(cause),
        };
        let (answer, verdict) = match decision.verdict {
            Verdict::Select(option_id) => {
                if !options.iter().any(|o| o.option_id == option_id) {
                    drop(lease);
                    return fault(self.fault(
                        CALL,
                        format!(
                            "selected option `{}`, which the agent did not offer",
                            sanitize_line(&option_id, MAX_NAME_BYTES)
                        ),
                    ));
                }
                (PermissionAnswer::Selected(option_id), "select")
            }
            Verdict::Reject => (
                reject_option(options)
                    .map(PermissionAnswer::Selected)
                    .unwrap_or(PermissionAnswer::Cancelled),
                "reject",
            ),
            Verdict::AskClients(timeout_ms) => (
                PermissionAnswer::AskClients(timeout_ms.map(Duration::from_millis)),
                "ask",
            ),
        };
        self.give_back(lease);
        PermissionDecision {
            answer,
            verdict,
            reason: sanitize_line(&decision.reason, MAX_REASON_BYTES),
            fault: None,
            latency: started.elapsed(),
        }
    }

    /// May a session be created (`phase::create`) or attached to
    /// (`phase::attach`)? A fault refuses.
    pub async fn decide_session(&self, ctx: &Context) -> AccessDecision {
        self.decide_access("on-session-create", Request::Session(ctx))
            .await
    }

    /// May the agent read or write `path`? A fault refuses.
    pub async fn decide_file(
        &self,
        ctx: &Context,
        access: FileAccess,
        path: &ResolvedPath,
    ) -> AccessDecision {
        self.decide_access("on-file-access", Request::File(ctx, access, path))
            .await
    }

    async fn decide_access(&self, call: &'static str, request: Request<'_>) -> AccessDecision {
        let started = Instant::now();
        match self.run(call, request).await {
            Ok((lease, Reply::Access(decision))) => {
                self.give_back(lease);
                AccessDecision {
                    allow: decision.allow,
                    reason: sanitize_line(&decision.reason, MAX_REASON_BYTES),
                    fault: None,
                    latency: started.elapsed(),
                }
            }
            Ok((_, Reply::Permission(_))) => unreachable!("{call} answers an access decision"),
            Err(cause) => AccessDecision {
                allow: false,
                reason: format!("policy fault: {cause}"),
                fault: Some(cause),
                latency: started.elapsed(),
            },
        }
    }

    /// Take a slot and an instance, run one call under the deadline. `Err`
    /// is a fault, already counted and logged; the instance is gone with it.
    async fn run(
        &self,
        call: &'static str,
        request: Request<'_>,
    ) -> Result<(Lease<'_>, Reply), String> {
        let shared = &*self.shared;
        let deadline = shared.options.call_deadline;
        let slot = match tokio::time::timeout(deadline, shared.slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            // The semaphore is never closed; Err(Elapsed): every instance busy.
            _ => {
                return Err(self.fault(
                    call,
                    format!(
                        "all {} instances stayed busy past the {} ms deadline",
                        shared.max_instances,
                        deadline.as_millis()
                    ),
                ))
            }
        };
        let idle = lock(&shared.idle).pop();
        let instance = match idle {
            Some(instance) => instance,
            None => {
                let _tracked = self.track(shared.start_deadline);
                match start_instance(
                    &shared.pre,
                    shared.label.clone(),
                    &shared.options,
                    shared.start_deadline,
                    &shared.live,
                )
                .await
                {
                    Ok((instance, _)) => instance,
                    Err(StartError::Refused(message)) => {
                        return Err(self.fault(
                            call,
                            format!("a new instance's init refused the configuration: {message}"),
                        ))
                    }
                    Err(StartError::Fault(cause)) => {
                        return Err(self.fault(call, format!("a new instance failed: {cause}")))
                    }
                }
            }
        };
        let mut lease = Lease {
            instance,
            _slot: slot,
        };
        let tracked = self.track(deadline);
        let result = timed(
            &mut lease.instance.store,
            deadline,
            &lease.instance.bindings,
            request,
        )
        .await;
        drop(tracked);
        match result {
            Ok(reply) => Ok((lease, reply)),
            Err(cause) => Err(self.fault(call, cause)),
        }
    }

    fn give_back(&self, lease: Lease<'_>) {
        lock(&self.shared.idle).push(lease.instance);
    }

    fn track(&self, deadline: Duration) -> Tracked<'_> {
        let id = self.shared.next_call.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.in_flight).insert(id, Instant::now() + deadline);
        Tracked {
            shared: &self.shared,
            id,
        }
    }

    fn fault(&self, call: &str, cause: String) -> String {
        self.shared.faults.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(policy = %self.shared.label, call, "policy fault, failing closed: {cause}");
        let mut fault_log = lock(&self.shared.fault_log);
        fault_log.window.record(Instant::now());
        fault_log.last = Some(cause.clone());
        cause
    }
}

/// Removes a call from `in_flight` however it ends (the caller may drop the
/// decision's future).
struct Tracked<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        lock(&self.shared.in_flight).remove(&self.id);
    }
}

/// A fresh instance, `init`ed with the configuration, all under `deadline`.
async fn start_instance(
    pre: &PolicyPre<GuestState>,
    label: Arc<str>,
    options: &PolicyOptions,
    deadline: Duration,
    live: &Arc<AtomicUsize>,
) -> Result<(Instance, PolicyInfo), StartError> {
    let counted = Counted::new(live);
    let mut store = Store::new(
        pre.engine(),
        GuestState::new(label, Caps::policy(options.memory_cap)),
    );
    store.limiter(|s| s.limiter());
    // Every tick: yield to the executor while the call is within its
    // deadline, trap (`Trap::Interrupt`) once past it.
    store.epoch_deadline_callback(|ctx| match ctx.data().call_due {
        Some(due) if Instant::now() < due => Ok(UpdateDeadline::Yield(1)),
        _ => Ok(UpdateDeadline::Interrupt),
    });
    store.data_mut().call_due = Some(Instant::now() + deadline);
    store.set_epoch_deadline(1);
    let outcome = tokio::time::timeout(
        deadline,
        instantiate_and_init(pre, &mut store, &options.config_document),
    )
    .await;
    store.data_mut().call_due = None;
    store.data_mut().flush_output();
    match outcome {
        Ok(Ok((bindings, Ok(info)))) => Ok((
            Instance {
                store,
                bindings,
                _counted: counted,
            },
            info,
        )),
        Ok(Ok((_, Err(message)))) => Err(StartError::Refused(sanitize_line(
            &message,
            MAX_REASON_BYTES,
        ))),
        Ok(Err((stage, err))) => Err(StartError::Fault(format!(
            "{stage} failed: {}",
            crate::fault::describe(&err, deadline)
        ))),
        Err(_) => Err(StartError::Fault(format!(
            "instantiation and init {} while waiting in a host call",
            crate::fault::exceeded(deadline)
        ))),
    }
}

async fn instantiate_and_init(
    pre: &PolicyPre<GuestState>,
    store: &mut Store<GuestState>,
    config: &str,
) -> Result<(PolicyBindings, Result<PolicyInfo, String>), (&'static str, wasmtime::Error)> {
    let bindings = pre
        .instantiate_async(&mut *store)
        .await
        .map_err(|err| ("instantiation", err))?;
    let init = bindings
        .qserve_policy_decide()
        .call_init(&mut *store, config)
        .await
        .map_err(|err| ("init", err))?;
    Ok((bindings, init))
}

/// Run one `decide` call under `deadline`: the epoch callback stops compute,
/// the timeout stops waiting.
async fn timed(
    store: &mut Store<GuestState>,
    deadline: Duration,
    bindings: &PolicyBindings,
    request: Request<'_>,
) -> Result<Reply, String> {
    store.data_mut().call_due = Some(Instant::now() + deadline);
    store.set_epoch_deadline(1);
    let outcome = tokio::time::timeout(deadline, invoke(store, bindings, request)).await;
    store.data_mut().call_due = None;
    store.data_mut().flush_output();
    match outcome {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(err)) => Err(crate::fault::describe(&err, deadline)),
        Err(_) => Err(format!(
            "{} while waiting in a host call",
            crate::fault::exceeded(deadline)
        )),
    }
}

async fn invoke(
    store: &mut Store<GuestState>,
    bindings: &PolicyBindings,
    request: Request<'_>,
) -> wasmtime::Result<Reply> {
    let decide = bindings.qserve_policy_decide();
    Ok(match request {
        Request::Permission(ctx, call, options) => Reply::Permission(
            decide
                .call_on_permission_request(store, ctx, call, options)
                .await?,
        ),
        Request::Session(ctx) => Reply::Access(decide.call_on_session_create(store, ctx).await?),
        Request::File(ctx, access, path) => {
            Reply::Access(decide.call_on_file_access(store, ctx, access, path).await?)
        }
    })
}

/// The offered option a `reject` verdict stands for: a one-time reject first.
fn reject_option(offered: &[PermissionOption]) -> Option<String> {
    [OptionKind::RejectOnce, OptionKind::RejectAlways]
        .iter()
        .find_map(|kind| {
            offered
                .iter()
                .find(|o| o.kind == *kind)
                .map(|o| o.option_id.clone())
        })
}

/// Define every function of an import the host does not provide (neither
/// `qserve:policy/…` nor `wasi:…`) as one that fails when called, so such a
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
        if name.starts_with("qserve:policy/") || name.starts_with("wasi:") {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_faults_count_the_last_minute_only() {
        let mut window = FaultWindow::new();
        let t0 = window.origin;
        for _ in 0..3 {
            window.record(t0);
        }
        window.record(t0 + Duration::from_secs(30));
        assert_eq!(window.last_minute(t0 + Duration::from_secs(30)), 4);
        assert_eq!(window.last_minute(t0 + Duration::from_secs(59)), 4);
        assert_eq!(
            window.last_minute(t0 + Duration::from_secs(60)),
            1,
            "t0 left the window"
        );
        // A bucket reused a minute later starts from zero.
        window.record(t0 + Duration::from_secs(120));
        assert_eq!(window.last_minute(t0 + Duration::from_secs(120)), 1);
        assert_eq!(window.last_minute(t0 + Duration::from_secs(200)), 0);
    }
}
