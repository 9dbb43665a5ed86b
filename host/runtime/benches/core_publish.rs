//! Events/s published through the core component vs. the same logic native.
//!
//!     cargo bench -p qserve-runtime --bench core_publish
//!
//! Each side publishes `EVENTS` events of a ~200-byte payload into one
//! session's ring (default size 4000, so the ring wraps the whole time), the
//! way the hub does. Runs alternate native/component `ROUNDS` times; the
//! medians and the spread are printed, with a fixed CPU loop timed before and
//! after as a check that the machine did not change speed meanwhile.

use std::time::{Duration, Instant};

use qserve_runtime::{
    CoreGuest, CoreLimits, EngineOptions, GuestEngine, OpenOutcome, Scope, EMBEDDED_CORE,
};

const EVENTS: u64 = 1_000_000;
const ROUNDS: usize = 5;

fn payload() -> String {
    // Shaped like an agent_message_chunk update, ~200 bytes.
    let text = "x".repeat(85);
    let data = format!(
        r#"{{"sessionId":"fake-session-1","update":{{"sessionUpdate":"agent_message_chunk","content":{{"type":"text","text":"{text}"}}}}}}"#
    );
    assert!(
        (190..=230).contains(&data.len()),
        "payload is {} bytes",
        data.len()
    );
    data
}

fn limits() -> CoreLimits {
    CoreLimits {
        max_sessions: 0,
        ring_size: 4000,
        ring_bytes: 8 << 20,
        max_pending_permissions: 64,
    }
}

fn native_round(data: &str) -> Duration {
    let mut core = qserve_core_logic::Core::new(|| uuid::Uuid::new_v4().to_string());
    core.configure(qserve_core_logic::Limits {
        max_sessions: 0,
        ring_size: 4000,
        ring_bytes: 8 << 20,
        max_pending_permissions: 64,
    });
    let reservation = match core
        .open("/bench", qserve_core_logic::Scope::Single)
        .unwrap()
    {
        qserve_core_logic::OpenOutcome::Create(r) => r,
        _ => unreachable!(),
    };
    let sid = core
        .finish_create(reservation, "agent".to_owned())
        .unwrap()
        .id
        .clone();
    let started = Instant::now();
    for _ in 0..EVENTS {
        // The component copies the strings into its memory; so does this.
        let id = core
            .publish(&sid, "session_update".to_owned(), data.to_owned(), None)
            .unwrap();
        std::hint::black_box(id);
    }
    started.elapsed()
}

/// The embedded core with one session, as the daemon runs it.
fn core_with_session(engine: &GuestEngine) -> (CoreGuest, String) {
    let loaded = engine
        .load_bytes("embedded core", EMBEDDED_CORE, "core")
        .unwrap();
    let mut core = CoreGuest::new(engine, &loaded, limits()).unwrap();
    let Ok(OpenOutcome::Create(reservation)) = core.open("/bench", Scope::Single).unwrap() else {
        unreachable!()
    };
    let sid = core
        .finish_create(reservation, "agent")
        .unwrap()
        .unwrap()
        .id;
    (core, sid)
}

fn component_round(engine: &GuestEngine, data: &str) -> Duration {
    let (mut core, sid) = core_with_session(engine);
    let started = Instant::now();
    for _ in 0..EVENTS {
        let id = core.publish(&sid, "session_update", data, None).unwrap();
        std::hint::black_box(id);
    }
    started.elapsed()
}

/// Events per `publish-batch` call: the largest run the agent loop sends (`MAX_BATCH`).
const BATCH: usize = 32;

fn component_batch_round(engine: &GuestEngine, data: &str) -> Duration {
    let (mut core, sid) = core_with_session(engine);
    // In the daemon the payloads already exist as Strings; the guest copies them in.
    let batch: Vec<String> = (0..BATCH).map(|_| data.to_owned()).collect();
    let started = Instant::now();
    for _ in 0..EVENTS / BATCH as u64 {
        let last = core.publish_batch(&sid, "session_update", &batch).unwrap();
        std::hint::black_box(last);
    }
    started.elapsed()
}

fn cpu_check() -> Duration {
    let started = Instant::now();
    let mut x: u64 = 1;
    for i in 0..200_000_000u64 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
    }
    std::hint::black_box(x);
    started.elapsed()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn main() {
    let data = payload();
    let engine = GuestEngine::new(EngineOptions::default()).unwrap();
    println!("core publish benchmark: {EVENTS} events/round, payload {} bytes, {ROUNDS} rounds, alternating", data.len());
    let before = cpu_check();
    // Warm up both (compile/cache the component, fault in memory).
    native_round(&data);
    component_round(&engine, &data);
    component_batch_round(&engine, &data);
    let (mut native, mut component, mut batched) = (Vec::new(), Vec::new(), Vec::new());
    let published = (EVENTS / BATCH as u64 * BATCH as u64) as f64;
    for round in 1..=ROUNDS {
        let n = EVENTS as f64 / native_round(&data).as_secs_f64();
        let c = EVENTS as f64 / component_round(&engine, &data).as_secs_f64();
        let b = published / component_batch_round(&engine, &data).as_secs_f64();
        println!(
            "round {round}: native {n:>12.0}   component {c:>12.0}   component, batches of {BATCH} {b:>12.0}  events/s"
        );
        native.push(n);
        component.push(c);
        batched.push(b);
    }
    let after = cpu_check();
    let spread = |v: &Vec<f64>| {
        let min = v.iter().cloned().fold(f64::MAX, f64::min);
        let max = v.iter().cloned().fold(0.0, f64::max);
        format!("{:.0}..{:.0}", min, max)
    };
    let (n, c, b) = (
        median(native.clone()),
        median(component.clone()),
        median(batched.clone()),
    );
    println!();
    println!(
        "{:<32}{:>16}{:>26}",
        "", "median events/s", "spread (min..max)"
    );
    println!(
        "{:<32}{:>16.0}{:>26}",
        "native (same logic)",
        n,
        spread(&native)
    );
    println!(
        "{:<32}{:>16.0}{:>26}",
        "component, one event per call",
        c,
        spread(&component)
    );
    println!(
        "{:<32}{:>16.0}{:>26}",
        format!("component, batches of {BATCH}"),
        b,
        spread(&batched)
    );
    println!(
        "native / component: {:.2}x one per call, {:.2}x batched as the hub sends bursts \
         (goal: >= 1,000,000 events/s and within 4x)",
        n / c,
        n / b
    );
    println!(
        "cpu check loop: {:.0} ms before, {:.0} ms after",
        before.as_secs_f64() * 1e3,
        after.as_secs_f64() * 1e3
    );
}
