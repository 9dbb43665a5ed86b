use std::time::Duration;

use serde_json::json;
use tokio::io::{
    AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines, ReadHalf, WriteHalf,
};

use super::*;

/// The agent's end of an in-memory connection.
struct FakeAgent {
    lines: Lines<BufReader<ReadHalf<DuplexStream>>>,
    out: WriteHalf<DuplexStream>,
}

impl FakeAgent {
    /// The next line the client wrote, parsed.
    async fn recv(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
            .await
            .expect("client writes a line")
            .unwrap()
            .expect("client stdin open");
        serde_json::from_str(&line).unwrap()
    }

    async fn recv_raw(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
            .await
            .expect("client writes a line")
            .unwrap()
            .expect("client stdin open")
    }

    async fn send(&mut self, line: &str) {
        self.out.write_all(line.as_bytes()).await.unwrap();
        self.out.write_all(b"\n").await.unwrap();
        self.out.flush().await.unwrap();
    }
}

/// A connection to an in-memory agent. Its messages are drained, as the
/// bridge does, by a task of their own into a queue the test reads.
fn connect(config: ConnectionConfig) -> (Connection, mpsc::UnboundedReceiver<Incoming>, FakeAgent) {
    let (conn, receiver, agent) = connect_undrained(config);
    (conn, drain(receiver), agent)
}

fn connect_undrained(config: ConnectionConfig) -> (Connection, IncomingReceiver, FakeAgent) {
    let (client, agent) = tokio::io::duplex(1 << 16);
    let (client_read, client_write) = tokio::io::split(client);
    let (agent_read, agent_write) = tokio::io::split(agent);
    let (conn, incoming) = Connection::start(client_write, client_read, config);
    let agent = FakeAgent {
        lines: BufReader::new(agent_read).lines(),
        out: agent_write,
    };
    (conn, incoming, agent)
}

fn drain(mut receiver: IncomingReceiver) -> mpsc::UnboundedReceiver<Incoming> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = receiver.recv().await {
            if tx.send(message).is_err() {
                return;
            }
        }
    });
    rx
}

async fn next(incoming: &mut mpsc::UnboundedReceiver<Incoming>) -> Incoming {
    tokio::time::timeout(Duration::from_secs(5), incoming.recv())
        .await
        .expect("an incoming message")
        .expect("channel open")
}

#[tokio::test]
async fn concurrent_requests_get_their_own_answers_in_any_order() {
    let (conn, _incoming, mut agent) = connect(ConnectionConfig::default());
    let first = tokio::spawn({
        let conn = conn.clone();
        async move { conn.request("session/new", json!({"cwd": "/a"})).await }
    });
    let a = agent.recv().await;
    let second = tokio::spawn({
        let conn = conn.clone();
        async move { conn.request("session/new", json!({"cwd": "/b"})).await }
    });
    let b = agent.recv().await;
    assert_eq!(a["jsonrpc"], "2.0");
    assert_eq!(a["method"], "session/new");
    assert_ne!(a["id"], b["id"]);
    // Answer the second first.
    agent
        .send(&json!({"jsonrpc":"2.0","id":b["id"],"result":{"sessionId":"B"}}).to_string())
        .await;
    agent.send(&json!({"jsonrpc":"2.0","id":a["id"],"error":{"code":-32000,"message":"Authentication required"}}).to_string()).await;
    assert_eq!(second.await.unwrap().unwrap(), json!({"sessionId":"B"}));
    let err = first.await.unwrap().unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (-32000, "Authentication required")
    );
    assert!(!err.is_connection_closed());
}

#[tokio::test]
async fn an_answer_arrives_only_after_every_message_sent_before_it() {
    let (conn, mut incoming, mut agent) = connect(ConnectionConfig::default());
    let prompt = tokio::spawn({
        let conn = conn.clone();
        async move { conn.request("session/prompt", json!({})).await }
    });
    let sent = agent.recv().await;
    let mut burst = String::new();
    for i in 0..500 {
        burst.push_str(&format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{{\"i\":{i}}}}}\n"
        ));
    }
    burst.push_str(
        &json!({"jsonrpc":"2.0","id":sent["id"],"result":{"stopReason":"end_turn"}}).to_string(),
    );
    agent.send(&burst).await;
    assert_eq!(prompt.await.unwrap().unwrap()["stopReason"], "end_turn");
    assert_eq!(
        incoming.len(),
        500,
        "all updates were handed over before the answer"
    );
    for i in 0..500 {
        let Incoming::Notification { params, .. } = next(&mut incoming).await else {
            panic!("an update")
        };
        assert_eq!(params.get(), format!("{{\"i\":{i}}}"));
    }
}

#[tokio::test]
async fn answers_still_arrive_when_nobody_drains_the_messages() {
    let (conn, receiver, mut agent) = connect_undrained(ConnectionConfig::default());
    drop(receiver);
    let pending = tokio::spawn({
        let conn = conn.clone();
        async move { conn.request("session/new", json!({})).await }
    });
    let sent = agent.recv().await;
    agent
        .send(r#"{"jsonrpc":"2.0","method":"session/update","params":{}}"#)
        .await;
    agent
        .send(r#"{"jsonrpc":"2.0","id":3,"method":"fs/read_text_file","params":{}}"#)
        .await;
    assert_eq!(
        agent.recv().await["error"]["code"],
        RpcError::INTERNAL_ERROR,
        "unheard requests get an error"
    );
    agent
        .send(&json!({"jsonrpc":"2.0","id":sent["id"],"result":{"sessionId":"s"}}).to_string())
        .await;
    assert_eq!(pending.await.unwrap().unwrap(), json!({"sessionId":"s"}));
}

#[tokio::test]
async fn requests_from_the_agent_are_answered_with_their_id_verbatim() {
    let (_conn, mut incoming, mut agent) = connect(ConnectionConfig::default());
    agent
        .send(r#"{"jsonrpc":"2.0","id":0,"method":"fs/read_text_file","params":{"path":"/x"}}"#)
        .await;
    agent
        .send(r#"{"jsonrpc":"2.0","id":"req-7","method":"craft/drainMidTurnQueue","params":{}}"#)
        .await;

    let Incoming::Request {
        method,
        params,
        responder,
    } = next(&mut incoming).await
    else {
        panic!("a request")
    };
    assert_eq!(
        (&*method, params.get()),
        ("fs/read_text_file", r#"{"path":"/x"}"#)
    );
    assert_eq!(responder.id().get(), "0");
    responder.respond(Ok(json!({"content": "hi"})));
    assert_eq!(
        agent.recv_raw().await,
        r#"{"jsonrpc":"2.0","id":0,"result":{"content":"hi"}}"#
    );

    let Incoming::Request {
        method, responder, ..
    } = next(&mut incoming).await
    else {
        panic!("a request")
    };
    responder.respond(Err(RpcError::method_not_found(&method)));
    let answer = agent.recv().await;
    assert_eq!(answer["id"], "req-7");
    assert_eq!(answer["error"]["code"], -32601);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("craft/drainMidTurnQueue"));
}

#[tokio::test]
async fn requests_past_the_in_flight_cap_are_refused_at_once_not_delivered() {
    let (_conn, mut incoming, mut agent) = connect(ConnectionConfig {
        max_agent_requests: 2,
        ..ConnectionConfig::default()
    });
    for id in 1..=3 {
        agent
            .send(&format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"session/request_permission","params":{{}}}}"#
            ))
            .await;
    }
    let mut held = Vec::new();
    for _ in 0..2 {
        let Incoming::Request { responder, .. } = next(&mut incoming).await else {
            panic!("a request")
        };
        held.push(responder);
    }
    // The third is answered by the connection itself, never delivered.
    let refused = agent.recv().await;
    assert_eq!(refused["id"], 3, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many requests in flight"),
        "{refused}"
    );
    // Answering one makes room for the next.
    held.pop().unwrap().respond(Ok(json!({})));
    assert_eq!(agent.recv().await["id"], 2);
    agent
        .send(r#"{"jsonrpc":"2.0","id":4,"method":"session/request_permission","params":{}}"#)
        .await;
    let Incoming::Request { responder, .. } = next(&mut incoming).await else {
        panic!("the fourth request is delivered")
    };
    assert_eq!(responder.id().get(), "4");
}

#[tokio::test]
async fn an_agent_that_stops_reading_its_stdin_is_cut_off_not_buffered_for() {
    const BUDGET: usize = 256 * 1024;
    // The agent end never reads: the in-memory pipe fills, then the queue.
    let (conn, mut incoming, _agent) = connect(ConnectionConfig {
        max_queued_write_bytes: BUDGET,
        ..ConnectionConfig::default()
    });
    let big = "x".repeat(32 * 1024);
    let mut refused_after = None;
    for sent in 0..1000 {
        if conn
            .notify("session/cancel", json!({ "pad": big }))
            .is_err()
        {
            refused_after = Some(sent);
            break;
        }
    }
    let sent = refused_after.expect("the queue is bounded");
    // Pipe (64 KiB) + writer buffer (64 KiB) + the budget, in 32 KiB frames.
    assert!(
        sent <= (BUDGET + 2 * 65536) / (32 * 1024) + 2,
        "sent {sent}"
    );
    let Incoming::Closed { reason } = next(&mut incoming).await else {
        panic!("the connection closes");
    };
    assert_eq!(reason, CloseReason::NotReading { max: BUDGET });
    assert!(reason.to_string().contains("stopped reading its stdin"));
    assert!(conn.is_closed());
}

#[tokio::test]
async fn a_dropped_responder_answers_with_an_internal_error() {
    let (_conn, mut incoming, mut agent) = connect(ConnectionConfig::default());
    agent
        .send(r#"{"jsonrpc":"2.0","id":5,"method":"session/request_permission","params":{}}"#)
        .await;
    drop(next(&mut incoming).await);
    let answer = agent.recv().await;
    assert_eq!(answer["id"], 5);
    assert_eq!(answer["error"]["code"], RpcError::INTERNAL_ERROR);
}

#[tokio::test]
async fn notifications_are_forwarded_byte_for_byte_including_unknown_variants() {
    let (_conn, mut incoming, mut agent) = connect(ConnectionConfig::default());
    let params = r#"{"sessionId":"s1","update":{"sessionUpdate":"future_variant_xyz","extra":{"n":[1,2.50,"é"]},"z":null}}"#;
    agent
        .send(&format!(
            r#"{{"jsonrpc":"2.0","method":"session/update","params":{params}}}"#
        ))
        .await;
    let Incoming::Notification {
        method,
        params: got,
    } = next(&mut incoming).await
    else {
        panic!("a notification")
    };
    assert_eq!(method, "session/update");
    assert!(
        matches!(method, std::borrow::Cow::Borrowed(_)),
        "hot method names are interned"
    );
    assert_eq!(got.get(), params);
}

#[tokio::test]
async fn garbage_lines_are_skipped_and_reading_goes_on() {
    let (_conn, mut incoming, mut agent) = connect(ConnectionConfig::default());
    for junk in [
        "this is not json",
        "{broken",
        "",
        "   ",
        "42",
        r#"{"jsonrpc":"2.0"}"#,
        "\u{7f}\u{1b}[31m",
    ] {
        agent.send(junk).await;
    }
    agent
        .send(r#"{"jsonrpc":"2.0","method":"session/update","params":{"ok":1}}"#)
        .await;
    let Incoming::Notification { params, .. } = next(&mut incoming).await else {
        panic!("the valid line after the junk")
    };
    assert_eq!(params.get(), r#"{"ok":1}"#);
}

#[tokio::test]
async fn a_line_over_the_cap_closes_the_connection_and_fails_pending_requests() {
    let config = ConnectionConfig {
        max_line_bytes: 1024,
        ..Default::default()
    };
    let (conn, mut incoming, mut agent) = connect(config);
    let pending = tokio::spawn({
        let conn = conn.clone();
        async move { conn.request("session/prompt", json!({})).await }
    });
    agent.recv().await;

    // Exactly at the cap: still fine.
    let prefix = r#"{"jsonrpc":"2.0","method":"session/update","params":{"t":""#;
    let fits = format!("{prefix}{}\"}}}}", "x".repeat(1024 - prefix.len() - 3));
    assert_eq!(fits.len(), 1024);
    agent.send(&fits).await;
    assert!(matches!(
        next(&mut incoming).await,
        Incoming::Notification { .. }
    ));

    agent
        .send(&format!("{prefix}{}\"}}}}", "x".repeat(4000)))
        .await;
    let Incoming::Closed { reason } = next(&mut incoming).await else {
        panic!("closed after the long line")
    };
    assert_eq!(
        reason,
        CloseReason::LineTooLong {
            max_line_bytes: 1024
        }
    );
    assert!(reason.to_string().contains("1024-byte limit"));
    let err = pending.await.unwrap().unwrap_err();
    assert!(err.is_connection_closed(), "{err}");
    assert!(err.message.contains("longer than"), "{err}");
    let err = conn.request("session/new", json!({})).await.unwrap_err();
    assert!(err.is_connection_closed());
    assert_eq!(conn.close_reason(), Some(reason));
}

#[tokio::test]
async fn agent_exit_fails_waiting_and_later_requests_at_once() {
    let (conn, mut incoming, mut agent) = connect(ConnectionConfig::default());
    let pending = tokio::spawn({
        let conn = conn.clone();
        async move { conn.request("session/prompt", json!({})).await }
    });
    agent.recv().await;
    agent
        .send(r#"{"jsonrpc":"2.0","method":"session/update","params":{"last":true}}"#)
        .await;
    drop(agent);
    let err = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.is_connection_closed());
    assert!(
        matches!(next(&mut incoming).await, Incoming::Notification { .. }),
        "lines before EOF still arrive"
    );
    let Incoming::Closed { reason } = next(&mut incoming).await else {
        panic!("closed last")
    };
    assert_eq!(reason, CloseReason::Eof);
    assert!(conn
        .request("x", json!({}))
        .await
        .unwrap_err()
        .is_connection_closed());
    assert!(conn.notify("x", json!({})).is_err());
}

#[tokio::test]
async fn a_cancelled_request_is_forgotten() {
    let (conn, _incoming, mut agent) = connect(ConnectionConfig::default());
    let result =
        tokio::time::timeout(Duration::from_millis(50), conn.request("slow", json!({}))).await;
    assert!(result.is_err(), "timed out");
    let sent = agent.recv().await;
    assert!(conn.shared.lock().pending.is_empty());
    // A late answer is ignored without harm.
    agent
        .send(&json!({"jsonrpc":"2.0","id":sent["id"],"result":{}}).to_string())
        .await;
    let again = tokio::spawn({
        let conn = conn.clone();
        async move { conn.request("again", json!({})).await }
    });
    let sent = agent.recv().await;
    agent
        .send(&json!({"jsonrpc":"2.0","id":sent["id"],"result":7}).to_string())
        .await;
    assert_eq!(again.await.unwrap().unwrap(), json!(7));
}

#[tokio::test]
async fn notify_writes_a_frame_without_id() {
    let (conn, _incoming, mut agent) = connect(ConnectionConfig::default());
    conn.notify("session/cancel", json!({"sessionId": "s"}))
        .unwrap();
    let sent = agent.recv().await;
    assert_eq!(
        sent,
        json!({"jsonrpc":"2.0","method":"session/cancel","params":{"sessionId":"s"}})
    );
}

#[tokio::test]
async fn shutdown_closes_the_agents_stdin_after_queued_frames() {
    let (conn, _incoming, mut agent) = connect(ConnectionConfig::default());
    conn.notify("a", json!(1)).unwrap();
    conn.shutdown();
    assert_eq!(agent.recv().await["method"], "a");
    let eof = tokio::time::timeout(Duration::from_secs(5), agent.lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(eof, None, "stdin closed");
    let err = conn.request("b", json!({})).await.unwrap_err();
    assert!(err.is_connection_closed());
}

#[tokio::test]
async fn dropping_every_handle_closes_the_agents_stdin() {
    let (conn, incoming, mut agent) = connect(ConnectionConfig::default());
    drop(conn);
    let eof = tokio::time::timeout(Duration::from_secs(5), agent.lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(eof, None);
    drop(incoming);
}

#[tokio::test]
async fn works_over_a_real_child_with_a_560_kb_line() {
    use crate::{AgentCommand, AgentProcess};
    // Answers our first request (id 1), then sends one big notification.
    let script = r#"read -r line; echo '{"jsonrpc":"2.0","id":1,"result":{"ok":true}}';
        printf '{"jsonrpc":"2.0","method":"session/update","params":{"text":"'; head -c 600000 /dev/zero | tr '\0' x; printf '"}}\n'"#;
    let command = AgentCommand::new("sh", ["-c", script]);
    let (process, stdin, stdout) =
        AgentProcess::spawn(&command, &std::env::temp_dir(), &[]).unwrap();
    let (conn, incoming) = Connection::start(stdin, stdout, ConnectionConfig::default());
    let mut incoming = drain(incoming);
    assert_eq!(
        conn.request("initialize", json!({})).await.unwrap(),
        json!({"ok": true})
    );
    let Incoming::Notification { params, .. } = next(&mut incoming).await else {
        panic!("the big line")
    };
    assert!(params.get().len() > 600_000);
    assert!(matches!(
        next(&mut incoming).await,
        Incoming::Closed {
            reason: CloseReason::Eof
        }
    ));
    assert_eq!(process.wait().await.code, Some(0));
}

/// Throughput of the read path; run with
/// `cargo test -p qserve-acp --release -- --ignored --nocapture read_throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn read_throughput() {
    const N: usize = 300_000;
    let (_conn, mut incoming, mut agent) = connect_undrained(ConnectionConfig::default());
    let line = r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"fake-session-1","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}}}"#;
    let writer = tokio::spawn(async move {
        let mut batch = String::new();
        for _ in 0..N {
            batch.push_str(line);
            batch.push('\n');
            if batch.len() > 60_000 {
                agent.out.write_all(batch.as_bytes()).await.unwrap();
                batch.clear();
            }
        }
        agent.out.write_all(batch.as_bytes()).await.unwrap();
        agent
    });
    let started = std::time::Instant::now();
    for _ in 0..N {
        assert!(matches!(
            incoming.recv().await,
            Some(Incoming::Notification { .. })
        ));
    }
    let elapsed = started.elapsed();
    let _agent = writer.await.unwrap();
    println!(
        "{N} notifications in {elapsed:?}: {:.0}/s",
        N as f64 / elapsed.as_secs_f64()
    );
}

/// The bridge batches queued updates with `try_recv_message`: the lookahead
/// must stop at an answer and leave it undelivered, or a prompt's result
/// would overtake the updates sent before it (issue 11, finding 10).
#[tokio::test]
async fn the_lookahead_stops_at_an_answer_and_recv_delivers_it_after() {
    let (conn, mut incoming, mut agent) = connect_undrained(ConnectionConfig::default());
    let request = tokio::spawn({
        let conn = conn.clone();
        async move { conn.request("session/prompt", json!({})).await }
    });
    let id = agent.recv().await["id"].clone();
    agent
        .send(r#"{"jsonrpc":"2.0","method":"session/update","params":{"n":1}}"#)
        .await;
    agent
        .send(&json!({"jsonrpc":"2.0","id":id,"result":{"stopReason":"end_turn"}}).to_string())
        .await;
    agent
        .send(r#"{"jsonrpc":"2.0","method":"session/update","params":{"n":2}}"#)
        .await;
    let first = tokio::time::timeout(Duration::from_secs(5), incoming.recv())
        .await
        .expect("the first update")
        .expect("open");
    assert!(matches!(first, Incoming::Notification { .. }));
    // Wait until the reader has queued the answer and the second update.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while incoming.rx.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reader queued both"
        );
        tokio::task::yield_now().await;
    }
    assert!(incoming.try_recv_message().is_none(), "stops at the answer");
    assert!(incoming.try_recv_message().is_none(), "and stays stopped");
    tokio::task::yield_now().await;
    assert!(!request.is_finished(), "the answer is not delivered yet");
    let second = tokio::time::timeout(Duration::from_secs(5), incoming.recv())
        .await
        .expect("the second update")
        .expect("open");
    match second {
        Incoming::Notification { params, .. } => assert_eq!(params.get(), r#"{"n":2}"#),
        other => panic!("expected the second update, got {other:?}"),
    }
    let answer = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the answer")
        .unwrap()
        .unwrap();
    assert_eq!(answer["stopReason"], "end_turn");
}
