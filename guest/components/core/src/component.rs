// The core component's mapping, shared by `core` and the test-only
// `core-faulty` (which `include!`s it with the `fault-injection` feature).

use std::cell::RefCell;

use qserve_core_logic as logic;

/// Recycles the equal-sized strings the ring allocates and frees on every
/// publish (see `SizeClassAlloc`). Only in Wasm: native builds of this crate
/// (clippy) keep the system allocator.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
// SAFETY: a wasm32-unknown-unknown component instance has a single thread.
static ALLOCATOR: logic::SizeClassAlloc = unsafe { logic::SizeClassAlloc::new() };

wit_bindgen::generate!({ path: "../../../wit/core", world: "core" });

use exports::qserve::core::{events, lifecycle, permissions, sessions};
use qserve::core::host;

/// Session and request ids from the host (UUID v4).
struct HostIds;

impl logic::IdSource for HostIds {
    fn fresh_id(&mut self) -> String {
        host::random_id()
    }
}

thread_local! {
    // A component instance is single-threaded; the host serializes calls.
    static CORE: RefCell<logic::Core<HostIds>> = RefCell::new(logic::Core::new(HostIds));
}

fn with_core<R>(call: impl FnOnce(&mut logic::Core<HostIds>) -> R) -> R {
    CORE.with(|core| call(&mut core.borrow_mut()))
}

struct CoreComponent;

impl lifecycle::Guest for CoreComponent {
    fn configure(limits: lifecycle::Limits) {
        // TEST ONLY (core-faulty): a core whose `configure` never returns,
        // for the host's instantiation/configure deadline.
        #[cfg(feature = "fault-injection")]
        if limits.max_pending_permissions == 0xDEAD {
            loop {
                std::hint::spin_loop();
            }
        }
        with_core(|core| {
            core.configure(logic::Limits {
                max_sessions: limits.max_sessions,
                ring_size: limits.ring_size,
                ring_bytes: limits.ring_bytes,
                max_pending_permissions: limits.max_pending_permissions,
            })
        })
    }

    fn stats() -> lifecycle::CoreStats {
        let stats = with_core(|core| core.stats());
        lifecycle::CoreStats {
            sessions: stats.sessions,
            creates_in_flight: stats.creates_in_flight,
            pending_permissions: stats.pending_permissions,
        }
    }
}

fn wit_session(session: logic::Session) -> sessions::Session {
    sessions::Session {
        id: session.id,
        workspace: session.workspace,
        agent_session_id: session.agent_session_id,
        attach_count: session.attach_count,
    }
}

fn wit_sessions(list: Vec<logic::Session>) -> Vec<sessions::Session> {
    list.into_iter().map(wit_session).collect()
}

impl sessions::Guest for CoreComponent {
    fn open(
        workspace: String,
        scope: sessions::Scope,
    ) -> Result<sessions::OpenOutcome, sessions::OpenError> {
        let scope = match scope {
            sessions::Scope::Single => logic::Scope::Single,
            sessions::Scope::Thread => logic::Scope::Thread,
        };
        match with_core(|core| core.open(&workspace, scope)) {
            Ok(logic::OpenOutcome::Attached(session)) => {
                Ok(sessions::OpenOutcome::Attached(wit_session(session)))
            }
            Ok(logic::OpenOutcome::Create(reservation)) => {
                Ok(sessions::OpenOutcome::Create(reservation))
            }
            Ok(logic::OpenOutcome::Wait(reservation)) => {
                Ok(sessions::OpenOutcome::Wait(reservation))
            }
            Err(logic::OpenError::LimitExceeded(cap)) => {
                Err(sessions::OpenError::LimitExceeded(cap))
            }
        }
    }

    fn finish_create(
        reservation: u64,
        agent_session_id: String,
    ) -> Result<sessions::Session, String> {
        with_core(|core| core.finish_create(reservation, agent_session_id))
            .map(wit_session)
            .map_err(|error| error.to_string())
    }

    fn abort_create(reservation: u64) {
        with_core(|core| core.abort_create(reservation))
    }

    fn attach(session_id: String) -> Option<sessions::Session> {
        with_core(|core| core.attach(&session_id)).map(wit_session)
    }

    fn detach(session_id: String) -> Option<sessions::Session> {
        with_core(|core| core.detach(&session_id)).map(wit_session)
    }

    fn get(session_id: String) -> Option<sessions::Session> {
        with_core(|core| core.get(&session_id).cloned()).map(wit_session)
    }

    fn list_workspace(workspace: String) -> Vec<sessions::Session> {
        wit_sessions(with_core(|core| core.list_workspace(&workspace)))
    }

    fn list_all() -> Vec<sessions::Session> {
        wit_sessions(with_core(|core| core.list_all()))
    }

    fn remove(session_id: String) -> Option<sessions::Session> {
        with_core(|core| core.remove(&session_id)).map(wit_session)
    }

    fn restore(session: sessions::Session, last_event_id: u64) {
        let session = logic::Session {
            id: session.id,
            workspace: session.workspace,
            agent_session_id: session.agent_session_id,
            attach_count: session.attach_count,
        };
        with_core(|core| core.restore(session, last_event_id))
    }
}

fn unknown_session(_: logic::PublishError) -> events::PublishError {
    events::PublishError::UnknownSession
}

impl events::Guest for CoreComponent {
    fn publish(
        session_id: String,
        kind: String,
        data: String,
        originator: Option<String>,
    ) -> Result<u64, events::PublishError> {
        #[cfg(feature = "fault-injection")]
        inject_fault(&data);
        with_core(|core| core.publish(&session_id, kind, data, originator)).map_err(unknown_session)
    }

    fn publish_batch(
        session_id: String,
        kind: String,
        datas: String,
        lengths: Vec<u32>,
    ) -> Result<u64, events::PublishError> {
        let mut rest = datas.as_str();
        let mut parts = Vec::with_capacity(lengths.len());
        for length in lengths {
            let length = length as usize;
            if length > rest.len() || !rest.is_char_boundary(length) {
                return Err(events::PublishError::MalformedBatch);
            }
            let (part, tail) = rest.split_at(length);
            parts.push(part);
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(events::PublishError::MalformedBatch);
        }
        with_core(|core| {
            let mut last = core.last_id(&session_id)?;
            for data in parts {
                #[cfg(feature = "fault-injection")]
                inject_fault(data);
                last = core.publish(&session_id, kind.clone(), data.to_owned(), None)?;
            }
            Ok(last)
        })
        .map_err(unknown_session)
    }

    fn replay(session_id: String, after: u64) -> Result<Vec<events::Event>, events::PublishError> {
        let replayed =
            with_core(|core| core.replay(&session_id, after)).map_err(unknown_session)?;
        Ok(replayed
            .into_iter()
            .map(|event| events::Event {
                id: event.id,
                kind: event.kind,
                data: event.data,
                originator: event.originator,
            })
            .collect())
    }

    fn last_id(session_id: String) -> Result<u64, events::PublishError> {
        with_core(|core| core.last_id(&session_id)).map_err(unknown_session)
    }
}

fn wit_resolution(resolution: logic::Resolution) -> permissions::Resolution {
    permissions::Resolution {
        request_id: resolution.request_id,
        session_id: resolution.session_id,
        outcome: match resolution.outcome {
            logic::Outcome::Selected(option_id) => permissions::Outcome::Selected(option_id),
            logic::Outcome::Cancelled => permissions::Outcome::Cancelled,
        },
    }
}

impl permissions::Guest for CoreComponent {
    fn register(
        session_id: String,
        option_ids: Vec<String>,
    ) -> Result<String, permissions::RegisterError> {
        match with_core(|core| core.register(&session_id, option_ids)) {
            Ok(request_id) => Ok(request_id),
            Err(logic::RegisterError::UnknownSession) => {
                Err(permissions::RegisterError::UnknownSession)
            }
            Err(logic::RegisterError::TooManyPending(cap)) => {
                Err(permissions::RegisterError::TooManyPending(cap))
            }
            // Only a broken `random-id` gets here; the WIT has no error for
            // it, and a trap makes the host restore a fresh core.
            Err(error @ logic::RegisterError::IdsExhausted) => panic!("{error}"),
        }
    }

    fn vote(
        request_id: String,
        outcome: permissions::Outcome,
    ) -> Result<permissions::Resolution, permissions::VoteError> {
        let outcome = match outcome {
            permissions::Outcome::Selected(option_id) => logic::Outcome::Selected(option_id),
            permissions::Outcome::Cancelled => logic::Outcome::Cancelled,
        };
        match with_core(|core| core.vote(&request_id, outcome)) {
            Ok(resolution) => Ok(wit_resolution(resolution)),
            Err(logic::VoteError::NotFound) => Err(permissions::VoteError::NotFound),
            Err(logic::VoteError::InvalidOption) => Err(permissions::VoteError::InvalidOption),
        }
    }

    fn expire(request_id: String) -> Option<permissions::Resolution> {
        with_core(|core| core.expire(&request_id)).map(wit_resolution)
    }

    fn cancel_session(session_id: String) -> Vec<permissions::Resolution> {
        with_core(|core| core.cancel_session(&session_id))
            .into_iter()
            .map(wit_resolution)
            .collect()
    }
}

export!(CoreComponent);

/// Test-only (`core-faulty` component): an event whose data carries one of
/// these markers makes the core trap or hang, so tests can prove the host
/// survives a core fault. Never compiled into the real core.
#[cfg(feature = "fault-injection")]
fn inject_fault(data: &str) {
    if data.contains("qserve-test-core-trap") {
        panic!("qserve-test-core-trap: injected core fault");
    }
    if data.contains("qserve-test-core-hang") {
        loop {
            std::hint::spin_loop();
        }
    }
}
