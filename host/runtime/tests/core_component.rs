//! The core's behaviours, through the real component in wasmtime.

mod support;

use qserve_runtime::{
    CoreGuest, CoreLimits, OpenError, OpenOutcome, RegisterError, Scope, VoteError, VoteOutcome,
    EMBEDDED_CORE,
};

fn core(max_sessions: u32, ring_size: u32, max_pending: u32) -> CoreGuest {
    let loaded = support::component("core");
    CoreGuest::new(
        support::engine(),
        &loaded,
        CoreLimits {
            max_sessions,
            ring_size,
            ring_bytes: 8 << 20,
            max_pending_permissions: max_pending,
        },
    )
    .expect("core instantiates")
}

fn create(core: &mut CoreGuest, workspace: &str, scope: Scope, agent_sid: &str) -> String {
    match core.open(workspace, scope).unwrap() {
        Ok(OpenOutcome::Create(reservation)) => {
            core.finish_create(reservation, agent_sid)
                .unwrap()
                .unwrap()
                .id
        }
        other => panic!("expected a create, got {other:?}"),
    }
}

/// Ids of the retained events after `after`.
fn retained_ids(core: &mut CoreGuest, sid: &str, after: u64) -> Vec<u64> {
    core.replay(sid, after)
        .unwrap()
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect()
}

/// The offered options' ids.
fn options() -> Vec<String> {
    ["opt-allow_once", "opt-reject_once"]
        .iter()
        .map(|id| id.to_string())
        .collect()
}

#[test]
fn ring_ids_are_gapless_retention_and_replay_hold() {
    let mut core = core(0, 5, 64);
    let sid = create(&mut core, "/w", Scope::Single, "a");
    let ids: Vec<u64> = (0..8)
        .map(|i| {
            core.publish(&sid, "session_update", &format!("{{\"n\":{i}}}"), None)
                .unwrap()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, (1..=8).collect::<Vec<_>>());
    let replayed: Vec<u64> = retained_ids(&mut core, &sid, 0);
    assert_eq!(
        replayed,
        vec![4, 5, 6, 7, 8],
        "only the last 5 are retained"
    );
    let after6 = core.replay(&sid, 6).unwrap().unwrap();
    assert_eq!(after6.iter().map(|e| e.id).collect::<Vec<_>>(), vec![7, 8]);
    assert_eq!(after6[0].data, "{\"n\":6}");
    assert_eq!(after6[0].kind, "session_update");
    assert!(
        core.replay(&sid, 8).unwrap().unwrap().is_empty(),
        "nothing after the head"
    );
    core.remove(&sid).unwrap();
    assert!(
        core.replay(&sid, 0).unwrap().is_none(),
        "the ring went with the session"
    );
    assert!(core.publish(&sid, "x", "{}", None).unwrap().is_none());
}

#[test]
fn single_scope_attaches_thread_scope_creates_and_ids_are_daemon_unique() {
    let mut core = core(0, 100, 64);
    let first = create(&mut core, "/w", Scope::Single, "same-acp-id");
    match core.open("/w", Scope::Single).unwrap() {
        Ok(OpenOutcome::Attached(s)) => {
            assert_eq!(s.id, first);
            assert_eq!(s.attach_count, 2);
        }
        other => panic!("expected attach, got {other:?}"),
    }
    let other_ws = create(&mut core, "/other", Scope::Single, "same-acp-id");
    assert_ne!(
        first, other_ws,
        "two agents returning one ACP id still get distinct ids"
    );
    let thread = create(&mut core, "/w", Scope::Thread, "t1");
    assert_ne!(thread, first);
    let listed: Vec<String> = core
        .list_workspace("/w")
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![first, thread]);
}

#[test]
fn cap_counts_in_flight_creates_and_attaches_bypass_it() {
    let mut core = core(2, 100, 64);
    let live = create(&mut core, "/a", Scope::Single, "a");
    let Ok(OpenOutcome::Create(pending)) = core.open("/b", Scope::Single).unwrap() else {
        panic!("second create should reserve")
    };
    assert!(matches!(
        core.open("/c", Scope::Thread).unwrap(),
        Err(OpenError::LimitExceeded(2))
    ));
    assert!(
        matches!(core.open("/a", Scope::Single).unwrap(), Ok(OpenOutcome::Attached(s)) if s.id == live),
        "attach works at the cap"
    );
    assert!(
        matches!(core.open("/b", Scope::Single).unwrap(), Ok(OpenOutcome::Wait(r)) if r == pending),
        "a create in flight for /b is waited on, not duplicated"
    );
    core.abort_create(pending).unwrap();
    assert!(matches!(
        core.open("/c", Scope::Thread).unwrap(),
        Ok(OpenOutcome::Create(_))
    ));
}

#[test]
fn first_vote_wins_invalid_option_stays_pending_cancel_all_and_cap() {
    let mut core = core(0, 100, 2);
    let sid = create(&mut core, "/w", Scope::Single, "a");
    let request = core.register_permission(&sid, &options()).unwrap().unwrap();
    assert!(matches!(
        core.vote(&request, &VoteOutcome::Selected("not-offered".into()))
            .unwrap(),
        Err(VoteError::InvalidOption)
    ));
    assert_eq!(
        core.stats().unwrap().pending_permissions,
        1,
        "still pending"
    );
    let won = core
        .vote(&request, &VoteOutcome::Selected("opt-allow_once".into()))
        .unwrap()
        .unwrap();
    assert_eq!(won.session_id, sid);
    assert!(matches!(
        core.vote(&request, &VoteOutcome::Cancelled).unwrap(),
        Err(VoteError::NotFound)
    ));

    let a = core.register_permission(&sid, &options()).unwrap().unwrap();
    let b = core.register_permission(&sid, &options()).unwrap().unwrap();
    assert!(matches!(
        core.register_permission(&sid, &options()).unwrap(),
        Err(RegisterError::TooManyPending(2))
    ));
    let cancelled = core.cancel_permissions(&sid).unwrap();
    let mut ids: Vec<String> = cancelled.iter().map(|r| r.request_id.clone()).collect();
    ids.sort();
    let mut expected = vec![a.clone(), b];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(cancelled
        .iter()
        .all(|r| r.outcome == VoteOutcome::Cancelled));
    assert!(
        core.expire_permission(&a).unwrap().is_none(),
        "already resolved"
    );
}

#[test]
fn the_embedded_core_is_a_working_core() {
    let loaded = support::engine()
        .load_bytes("embedded core", EMBEDDED_CORE, "core")
        .expect("embedded core loads");
    let mut core = CoreGuest::new(
        support::engine(),
        &loaded,
        CoreLimits {
            max_sessions: 1,
            ring_size: 10,
            ring_bytes: 8 << 20,
            max_pending_permissions: 4,
        },
    )
    .unwrap();
    let sid = create(&mut core, "/w", Scope::Single, "a");
    assert_eq!(
        core.publish(&sid, "session_update", "{}", None).unwrap(),
        Some(1)
    );
}

fn faulty_core() -> (
    CoreGuest,
    std::sync::Arc<std::sync::Mutex<Vec<qserve_runtime::Recovery>>>,
) {
    let loaded = support::component("core-faulty");
    let mut core = CoreGuest::new(
        support::engine(),
        &loaded,
        CoreLimits {
            max_sessions: 0,
            ring_size: 100,
            ring_bytes: 8 << 20,
            max_pending_permissions: 8,
        },
    )
    .unwrap();
    let recoveries = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = recoveries.clone();
    core.on_recovery(move |recovery| seen.lock().unwrap().push(recovery));
    (core, recoveries)
}

#[test]
fn a_core_trap_rebuilds_the_core_with_its_sessions_and_their_id_sequences() {
    let (mut core, recoveries) = faulty_core();
    let sid = create(&mut core, "/w", Scope::Single, "agent-1");
    assert!(matches!(
        core.open("/w", Scope::Single).unwrap(),
        Ok(OpenOutcome::Attached(_))
    ));
    for _ in 0..3 {
        core.publish(&sid, "session_update", "{}", None).unwrap();
    }
    let pending = core.register_permission(&sid, &options()).unwrap().unwrap();

    let fault = core
        .publish(
            &sid,
            "session_update",
            r#"{"text":"qserve-test-core-trap"}"#,
            None,
        )
        .expect_err("the injected trap surfaces as a fault");
    assert_eq!(fault.call, "publish");

    let restored = core.get(&sid).unwrap().expect("the session survived");
    assert_eq!(restored.attach_count, 2, "attach count kept");
    assert_eq!(restored.agent_session_id, "agent-1");
    assert_eq!(
        core.publish(&sid, "session_update", "{}", None).unwrap(),
        Some(4),
        "ids continue"
    );
    let replayed: Vec<u64> = retained_ids(&mut core, &sid, 0);
    assert_eq!(
        replayed,
        vec![4],
        "retained events were lost with the instance"
    );
    assert!(matches!(
        core.vote(&pending, &VoteOutcome::Cancelled).unwrap(),
        Err(VoteError::NotFound)
    ));
    let recoveries = recoveries.lock().unwrap();
    assert_eq!(recoveries.len(), 1);
    assert_eq!(recoveries[0].sessions, vec![(sid.clone(), 3)]);
}

#[test]
fn a_hanging_core_is_stopped_by_its_deadline_and_the_next_call_works() {
    let (mut core, recoveries) = faulty_core();
    let sid = create(&mut core, "/w", Scope::Single, "a");
    let started = std::time::Instant::now();
    assert!(core
        .publish(&sid, "session_update", "qserve-test-core-hang", None)
        .is_err());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        core.publish(&sid, "session_update", "{}", None).unwrap(),
        Some(1)
    );
    assert_eq!(recoveries.lock().unwrap().len(), 1);
}

#[test]
fn a_core_fault_is_described_in_one_line() {
    let (mut core, recoveries) = faulty_core();
    let sid = create(&mut core, "/w", Scope::Single, "a");
    let fault = core
        .publish(&sid, "x", "qserve-test-core-trap", None)
        .unwrap_err();
    assert!(fault.cause.starts_with("trapped: "), "{}", fault.cause);
    assert!(
        !fault.cause.contains('\n'),
        "no wasm backtrace: {}",
        fault.cause
    );
    assert_eq!(recoveries.lock().unwrap()[0].cause, fault.cause);
}

#[test]
fn a_batch_is_ringed_in_order_with_consecutive_ids() {
    let mut core = core(0, 100, 8);
    let sid = create(&mut core, "/w", Scope::Single, "a");
    core.publish(&sid, "session_update", "{\"n\":0}", None)
        .unwrap();
    let datas = ["{\"n\":1}", "{\"n\":2}", "{\"é\":\"ü\"}"];
    assert_eq!(
        core.publish_batch(&sid, "session_update", &datas).unwrap(),
        Some(4)
    );
    let replayed = core.replay(&sid, 1).unwrap().unwrap();
    let got: Vec<(u64, &str)> = replayed.iter().map(|e| (e.id, e.data.as_str())).collect();
    assert_eq!(got, vec![(2, datas[0]), (3, datas[1]), (4, datas[2])]);
    assert!(replayed
        .iter()
        .all(|e| e.kind == "session_update" && e.originator.is_none()));
    assert_eq!(
        core.publish_batch(&sid, "session_update", &["{}"]).unwrap(),
        Some(5)
    );
    assert_eq!(
        core.publish_batch("no-such-session", "session_update", &["{}"])
            .unwrap(),
        None
    );
}

/// A core whose `configure` never returns fails to load, at its deadline,
/// with a sentence saying so (instantiation and `configure` run under the
/// same 2 s deadline as every core call; a rebuild after a fault too).
#[test]
fn a_core_whose_configure_hangs_fails_to_load_at_its_deadline() {
    let started = std::time::Instant::now();
    let err = CoreGuest::new(
        support::engine(),
        &support::component("core-faulty"),
        CoreLimits {
            max_sessions: 0,
            ring_size: 100,
            ring_bytes: 8 << 20,
            max_pending_permissions: 0xDEAD,
        },
    )
    .err()
    .expect("a hanging configure refuses the load");
    let message = err.to_string();
    assert!(
        message
            .contains("could not be instantiated: configure failed: exceeded its 2000 ms deadline"),
        "{message}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// `--node-id`: every id the core mints names the node before the first `.`,
/// in a core rebuilt after a fault too (a proxy routes on it).
#[test]
fn a_node_prefix_starts_every_session_and_request_id_even_after_a_rebuild() {
    let (mut core, recoveries) = faulty_core();
    core.set_id_prefix("node-b");
    let owned_by_b = |id: &str| {
        id.split_once('.')
            .is_some_and(|(node, rest)| node == "node-b" && rest.len() == 36)
    };
    let sid = create(&mut core, "/w", Scope::Single, "agent-1");
    assert!(owned_by_b(&sid), "{sid}");
    let request = core.register_permission(&sid, &options()).unwrap().unwrap();
    assert!(owned_by_b(&request), "{request}");

    core.publish(
        &sid,
        "session_update",
        r#"{"text":"qserve-test-core-trap"}"#,
        None,
    )
    .expect_err("the injected trap surfaces as a fault");
    assert_eq!(recoveries.lock().unwrap().len(), 1);
    let after = create(&mut core, "/other", Scope::Single, "agent-2");
    assert!(
        owned_by_b(&after),
        "a rebuilt core keeps the prefix: {after}"
    );
    let request = core.register_permission(&sid, &options()).unwrap().unwrap();
    assert!(owned_by_b(&request), "{request}");
}
