//! Event-stream delivery under stress, through the real daemon and the fake agent: a client
//! that keeps dropping its connection and resuming with `Last-Event-ID` loses and repeats
//! nothing, and a subscriber that stops reading is cut off on its own without holding up the
//! others.

mod common;

use std::time::Instant;

use common::*;
use qserve_e2e::daemon::Daemon;
use qserve_e2e::sse::{SseFrame, SseParser, SseStream};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A tiny deterministic generator (xorshift64): random disconnect points that are the same on
/// every run, so that a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform enough in `low..=high` for choosing disconnect points.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// The chunk index of a `chunk I …` text, if the envelope is such a chunk.
fn chunk_index(envelope: &serde_json::Value) -> Option<u64> {
    chunk_text(envelope)?
        .strip_prefix("chunk ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

#[tokio::test]
async fn a_client_that_reconnects_at_random_points_sees_every_event_once_in_order() {
    const CHUNKS: u64 = 10_000;
    const SEED: u64 = 0x9E37_79B9_7F4A_7C15;
    // The whole stream stays in the ring, so every resume point is still replayable.
    let daemon = daemon(&["--event-ring-size", "20000"], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;

    let mut stream = daemon.subscribe(&session, Some("0")).await;
    let turn = tokio::spawn({
        let url = daemon.url(&format!("/session/{session}/prompt"));
        let http = daemon.http().clone();
        async move {
            let body = serde_json::json!({
                "prompt": [{ "type": "text", "text": format!("chunks {CHUNKS} 64") }]
            });
            let response = http.post(url).json(&body).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    });

    let mut rng = XorShift(SEED);
    let mut ids: Vec<u64> = Vec::with_capacity(CHUNKS as usize);
    let mut chunks_seen: Vec<u64> = Vec::with_capacity(CHUNKS as usize);
    let mut reconnects = 0;
    let mut reconnects_while_streaming = 0;
    let started = Instant::now();
    'reading: loop {
        // Read a random number of events, then hang up mid-stream (whatever the server had
        // already sent beyond them is thrown away with the connection).
        let budget = rng.between(1, 400);
        for _ in 0..budget {
            let (frame, envelope) = stream
                .next_event(WAIT)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "after {} events and {reconnects} reconnects (seed {SEED:#x}): {e}",
                        ids.len()
                    )
                })
                .unwrap_or_else(|| panic!("the stream ended after {} events", ids.len()));
            let id = envelope["id"].as_u64().unwrap_or_else(|| {
                panic!(
                    "an event without an id: {envelope} (event {:?})",
                    frame.event
                )
            });
            assert_eq!(
                frame.id.as_deref(),
                Some(id.to_string().as_str()),
                "the SSE id line and the envelope id agree"
            );
            let expected = ids.last().map_or(1, |last| last + 1);
            assert_eq!(
                id,
                expected,
                "after resuming from {:?} (reconnect {reconnects}, seed {SEED:#x}) the next id",
                ids.last()
            );
            ids.push(id);
            if let Some(index) = chunk_index(&envelope) {
                chunks_seen.push(index);
                if index == CHUNKS - 1 {
                    break 'reading;
                }
            }
        }
        if !turn.is_finished() {
            reconnects_while_streaming += 1;
        }
        drop(stream);
        reconnects += 1;
        let cursor = ids.last().map_or("0".to_string(), u64::to_string);
        stream = daemon.subscribe(&session, Some(&cursor)).await;
    }

    let (status, body) = turn.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("end_turn"), "{body}");
    let last = *ids.last().unwrap();
    assert_eq!(
        ids,
        (1..=last).collect::<Vec<_>>(),
        "every id once, in order"
    );
    assert_eq!(
        chunks_seen,
        (0..CHUNKS).collect::<Vec<_>>(),
        "every chunk of the turn once, in order"
    );
    assert!(
        reconnects >= 10,
        "the client really reconnected mid-stream: {reconnects} reconnects"
    );
    eprintln!(
        "{CHUNKS} chunks, {last} events, {reconnects} reconnects ({reconnects_while_streaming} while the turn streamed) in {:?}",
        started.elapsed()
    );
}

/// Subscribes over a bare socket that the test then stops reading: the response head, the
/// socket, and whatever body bytes came with the head.
async fn raw_subscribe(daemon: &Daemon, session: &str) -> (String, TcpStream, Vec<u8>) {
    let authority = daemon
        .base_url()
        .strip_prefix("http://")
        .expect("an http base URL");
    let mut socket = TcpStream::connect(authority)
        .await
        .expect("connecting to the daemon");
    let request = format!(
        "GET /session/{session}/events HTTP/1.1\r\nHost: {authority}\r\nAccept: text/event-stream\r\nLast-Event-ID: 0\r\n\r\n"
    );
    socket
        .write_all(request.as_bytes())
        .await
        .expect("sending the request");
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).into_owned();
            let rest = received[end + 4..].to_vec();
            return (head, socket, rest);
        }
        let read = tokio::time::timeout(WAIT, socket.read(&mut buffer))
            .await
            .expect("the response head in time")
            .expect("reading the response head");
        assert!(read > 0, "the daemon closed before the response head");
        received.extend_from_slice(&buffer[..read]);
    }
}

/// Decodes a `Transfer-Encoding: chunked` body incrementally.
#[derive(Default)]
struct ChunkedDecoder {
    pending: Vec<u8>,
    /// Bytes left in the current chunk (plus its trailing CRLF), when inside one.
    left_in_chunk: Option<usize>,
    finished: bool,
}

impl ChunkedDecoder {
    fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            match self.left_in_chunk {
                Some(left) => {
                    if self.pending.len() < left {
                        return out;
                    }
                    let chunk: Vec<u8> = self.pending.drain(..left).collect();
                    out.extend_from_slice(&chunk[..left - 2]);
                    self.left_in_chunk = None;
                }
                None => {
                    let Some(line_end) = self.pending.windows(2).position(|w| w == b"\r\n") else {
                        return out;
                    };
                    let line: Vec<u8> = self.pending.drain(..line_end + 2).collect();
                    let size = String::from_utf8_lossy(&line[..line_end]);
                    let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16)
                        .unwrap_or_else(|_| panic!("a chunk size line: {size:?}"));
                    if size == 0 {
                        self.finished = true;
                        return out;
                    }
                    self.left_in_chunk = Some(size + 2);
                }
            }
        }
    }
}

/// Reads what the socket still holds until the body ends or the server closes it.
async fn read_to_end_of_stream(mut socket: TcpStream, already: Vec<u8>) -> Vec<SseFrame> {
    let mut decoder = ChunkedDecoder::default();
    let mut parser = SseParser::default();
    let mut frames = parser.push(&decoder.push(&already));
    let mut buffer = vec![0u8; 64 * 1024];
    while !decoder.finished {
        let read = tokio::time::timeout(WAIT, socket.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("the evicted stream did not end within {WAIT:?}"))
            .expect("reading the evicted stream");
        if read == 0 {
            break;
        }
        frames.extend(parser.push(&decoder.push(&buffer[..read])));
    }
    frames
}

/// Reads one burst of `chunks` from the reader's stream: every id, until the burst's
/// `turn_complete`. Panics if the reader itself is evicted.
async fn read_burst(reader: &mut SseStream, chunks: u64, ids: &mut Vec<u64>) {
    loop {
        let (frame, envelope) = reader
            .next_event(WAIT)
            .await
            .unwrap_or_else(|e| panic!("the reader, after {} events: {e}", ids.len()))
            .unwrap_or_else(|| panic!("the reader's stream ended after {} events", ids.len()));
        assert_ne!(
            frame.event.as_deref(),
            Some("client_evicted"),
            "the reading subscriber was evicted after {} events",
            ids.len()
        );
        ids.push(envelope["id"].as_u64().expect("a numeric id"));
        // A burst ends with its turn's `turn_complete`, after its last chunk.
        if frame.event.as_deref() == Some("turn_complete") {
            assert_eq!(
                ids.len() as u64 % (chunks + 1),
                0,
                "each burst is its chunks and its turn_complete"
            );
            return;
        }
    }
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_evicted_while_another_gets_everything() {
    // A burst is shorter than the 256-frame live queue, and the reader drains each burst
    // before the next starts: it can never be evicted, however loaded the machine. The
    // stalled subscriber takes nothing, so its socket buffers fill and then its queue.
    const BURST: u64 = 200;
    const CHUNK_BYTES: u64 = 8192;
    // ~1.6 MB a burst; 60 bursts are far beyond a stalled socket's buffers plus the queue.
    const MAX_BURSTS: u64 = 60;
    const EVICTION_LOG: &str = "subscriber fell behind";
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;

    // Subscribed first, so that it is registered before the first burst.
    let (head, stalled, body_start) = raw_subscribe(&daemon, &session).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    let mut reader = daemon.subscribe(&session, Some("0")).await;

    let started = Instant::now();
    let mut ids = Vec::new();
    let mut bursts = 0;
    while !daemon.log().contains(EVICTION_LOG) && bursts < MAX_BURSTS {
        let (status, body) =
            prompt(&daemon, &session, &format!("chunks {BURST} {CHUNK_BYTES}")).await;
        assert_eq!(status, StatusCode::OK, "{body}\n{}", daemon.log());
        read_burst(&mut reader, BURST, &mut ids).await;
        bursts += 1;
    }
    assert!(
        daemon.log().contains(EVICTION_LOG),
        "no eviction after {bursts} bursts of {BURST} × {CHUNK_BYTES} B\n{}",
        daemon.log()
    );
    // The reader is unaffected by the eviction: one more burst reaches it whole.
    let (status, body) = prompt(&daemon, &session, &format!("chunks {BURST} {CHUNK_BYTES}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    read_burst(&mut reader, BURST, &mut ids).await;
    bursts += 1;
    assert_eq!(
        ids,
        (1..=bursts * (BURST + 1)).collect::<Vec<_>>(),
        "the reader got every event once, in order"
    );
    assert_eq!(
        daemon.log().matches(EVICTION_LOG).count(),
        1,
        "only the stalled subscriber was evicted\n{}",
        daemon.log()
    );

    // Only now does the stalled subscriber read: what the kernel and the daemon still held
    // for it, then the terminal frame, then the end of the stream.
    let frames = read_to_end_of_stream(stalled, body_start).await;
    let events: Vec<&SseFrame> = frames.iter().filter(|f| f.data.is_some()).collect();
    let last = events.last().expect("the stalled subscriber got frames");
    assert_eq!(
        last.event.as_deref(),
        Some("client_evicted"),
        "the terminal frame (of {} frames)",
        events.len()
    );
    assert_eq!(last.id, None, "a synthetic frame carries no id");
    let envelope = last.json().expect("JSON data");
    assert_eq!(envelope["v"], 1);
    assert_eq!(envelope["type"], "client_evicted");
    let stalled_ids: Vec<u64> = events
        .iter()
        .filter_map(|f| f.id.as_deref()?.parse().ok())
        .collect();
    assert_eq!(
        events.len(),
        stalled_ids.len() + 1,
        "every frame but the terminal one is a numbered event"
    );
    assert!(
        (stalled_ids.len() as u64) < bursts * BURST,
        "the stalled subscriber was cut off: it got {} events",
        stalled_ids.len()
    );
    assert_eq!(
        stalled_ids,
        (1..=stalled_ids.len() as u64).collect::<Vec<_>>(),
        "what it got before the eviction has no gap"
    );
    eprintln!(
        "stalled subscriber evicted after {} events; the reader got all {} in {bursts} bursts, {:?}",
        stalled_ids.len(),
        ids.len(),
        started.elapsed()
    );
}

/// BENCHMARKING.md: the daemon must not evict a subscriber that keeps up.
/// The fake agent emits a burst faster than this reader takes it — the
/// reader even pauses 200 ms every 1 000 events of 1 KiB, as a real client does (a GC
/// pause, a busy UI thread), long enough for the agent to fill the socket
/// buffers and overrun a 256-frame queue. The agent is slowed down instead (backpressure), and
/// every event arrives.
#[tokio::test]
async fn a_subscriber_that_keeps_up_gets_a_20000_event_burst_whole() {
    let daemon = daemon(&[], &[]).await;
    let ws = tempdir();
    let (session, _) = create(&daemon, ws.path()).await;
    let mut reader = daemon.subscribe(&session, None).await;
    let burst = tokio::spawn({
        let url = daemon.url(&format!("/session/{session}/prompt"));
        let http = daemon.http().clone();
        async move {
            http.post(url)
                .json(&serde_json::json!({ "prompt": [{ "type": "text", "text": "chunks 20000 1024" }] }))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let mut received = 0u64;
    let mut last_id = 0u64;
    while received < 20_000 {
        let (frame, envelope) = reader
            .next_event(WAIT)
            .await
            .expect("the stream stays up")
            .expect("no end of stream");
        assert_ne!(
            frame.event.as_deref(),
            Some("client_evicted"),
            "evicted after {received} events"
        );
        let id = envelope["id"].as_u64().unwrap();
        assert_eq!(id, last_id + 1, "gapless");
        last_id = id;
        received += 1;
        if received.is_multiple_of(1000) {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    assert_eq!(burst.await.unwrap(), StatusCode::OK);
    assert!(!daemon.log().contains("evicted"), "{}", daemon.log());
}

/// Reads the bare socket's SSE frames until the first `turn_complete` (included). Panics on
/// `client_evicted` or the end of the stream.
async fn read_raw_until_turn_complete(mut socket: TcpStream, already: Vec<u8>) -> Vec<SseFrame> {
    let mut decoder = ChunkedDecoder::default();
    let mut parser = SseParser::default();
    let mut frames = parser.push(&decoder.push(&already));
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if let Some(end) = frames.iter().position(|f| {
            assert_ne!(
                f.event.as_deref(),
                Some("client_evicted"),
                "the paused subscriber was evicted"
            );
            f.event.as_deref() == Some("turn_complete")
        }) {
            frames.truncate(end + 1);
            return frames;
        }
        assert!(!decoder.finished, "the paused subscriber's stream ended");
        let read = tokio::time::timeout(WAIT, socket.read(&mut buffer))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no turn_complete within {WAIT:?} after {} frames",
                    frames.len()
                )
            })
            .expect("reading the paused subscriber's stream");
        assert!(
            read > 0,
            "the daemon closed the paused subscriber after {} frames",
            frames.len()
        );
        frames.extend(parser.push(&decoder.push(&buffer[..read])));
    }
}

/// Finding 7: backpressure is per subscriber, never per agent. Two sessions share one agent
/// (one workspace). A's subscriber stops reading during a burst far larger than its socket
/// buffers and its queue; meanwhile B's updates and a permission request reach B's subscriber
/// and B's turn ends, while A's subscriber is still connected, paused and not evicted. Then A
/// reads again and gets every event of the burst, none lost, on the same connection.
#[tokio::test]
async fn a_paused_subscriber_holds_back_no_other_session_of_its_agent_and_loses_nothing() {
    // ~17 MB: far beyond a paused socket's buffers (a few MB) and the 256-frame queue, well
    // within what a session may hold for a lagging subscriber.
    const CHUNKS: u64 = 4000;
    const CHUNK_BYTES: u64 = 4096;
    // `thread` scope: each create in the workspace is a session of its own, on its one agent.
    let daemon = daemon(&["--session-scope", "thread"], &[]).await;
    let ws = tempdir();
    let (a, _) = create(&daemon, ws.path()).await;
    let (b, _) = create(&daemon, ws.path()).await;
    assert_ne!(a, b);

    let (head, paused, body_start) = raw_subscribe(&daemon, &a).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // A second subscriber of A that keeps reading shows when the whole burst is out.
    let mut a_reader = daemon.subscribe(&a, Some("0")).await;
    let mut b_events = daemon.subscribe(&b, Some("0")).await;

    let burst = tokio::spawn({
        let url = daemon.url(&format!("/session/{a}/prompt"));
        let http = daemon.http().clone();
        async move {
            let body = serde_json::json!({
                "prompt": [{ "type": "text", "text": format!("chunks {CHUNKS} {CHUNK_BYTES}") }]
            });
            let response = http.post(url).json(&body).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    });
    wait_event(&mut a_reader, "session_update", |e| {
        chunk_index(e) == Some(CHUNKS - 1)
    })
    .await;
    wait_event(&mut a_reader, "turn_complete", |_| true).await;

    // B, on the same agent, is not held back by A's paused subscriber.
    prompt_ok(&daemon, &b, "echo from b").await;
    wait_chunk(&mut b_events, "from b").await;
    let turn_b = tokio::spawn({
        let url = daemon.url(&format!("/session/{b}/prompt"));
        let http = daemon.http().clone();
        async move {
            let body =
                serde_json::json!({ "prompt": [{ "type": "text", "text": "permission edit" }] });
            let response = http.post(url).json(&body).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    });
    let request = wait_event(&mut b_events, "permission_request", |_| true).await;
    let request_id = request["data"]["requestId"].as_str().unwrap().to_owned();
    let (status, body) = daemon.vote(&request_id, "proceed_once").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_chunk(&mut b_events, "outcome: selected proceed_once").await;
    let (status, body) = turn_b.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    // A's turn ended too, although its paused subscriber has not read the burst.
    let (status, body) = burst.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !daemon.log().contains("evicted"),
        "A's paused subscriber was evicted while B was served\n{}",
        daemon.log()
    );

    // A reads again: every event of the burst, in order, then its turn_complete.
    let frames = read_raw_until_turn_complete(paused, body_start).await;
    let events: Vec<&SseFrame> = frames.iter().filter(|f| f.data.is_some()).collect();
    let ids: Vec<u64> = events
        .iter()
        .map(|f| {
            f.id.as_deref()
                .expect("an id")
                .parse()
                .expect("a numeric id")
        })
        .collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "no gap, no repeat"
    );
    let chunks: Vec<u64> = events
        .iter()
        .filter_map(|f| chunk_index(&f.json().expect("JSON data")))
        .collect();
    assert_eq!(
        chunks,
        (0..CHUNKS).collect::<Vec<_>>(),
        "the paused subscriber got every chunk of the burst"
    );
    assert!(!daemon.log().contains("evicted"), "{}", daemon.log());
}
