//! A session's event stream that resumes across disconnects.
//!
//! Guarantee: events are delivered in id order, each at most once; after a
//! disconnect the stream reconnects with `Last-Event-ID` = the last id it
//! delivered, so nothing the daemon still retains is lost. Frames with an id
//! at or below that cursor are dropped (a defence: the daemon already never
//! sends them). The stream ends after `session_died`, or with an error when
//! the session is gone (404) or reconnecting keeps failing.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::{Method, Url};

use crate::client::{check, Client};
use crate::error::ClientError;
use crate::sse::{Frame, FrameReader, MAX_FRAME_BYTES};
use crate::types::Event;

/// How the stream reconnects.
#[derive(Clone, Debug)]
pub struct ReconnectPolicy {
    /// Wait before each reconnect; `None` follows the daemon's `retry:` advice
    /// (3 s from qserve), 1 s until the daemon gave one.
    pub delay: Option<Duration>,
    /// Give up after this many failed attempts in a row (a connection that
    /// delivered an event resets the count).
    pub max_failures: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> ReconnectPolicy {
        ReconnectPolicy {
            delay: None,
            max_failures: 10,
        }
    }
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

pub struct EventStream {
    client: Client,
    url: Url,
    policy: ReconnectPolicy,
    /// The id of the last event delivered: the resume cursor.
    last_id: Option<u64>,
    reader: FrameReader,
    body: Option<Body>,
    advised_retry: Duration,
    connections: u64,
    failures: u32,
    finished: bool,
}

impl EventStream {
    pub(crate) fn new(
        client: Client,
        url: Url,
        last_event_id: Option<u64>,
        policy: ReconnectPolicy,
    ) -> EventStream {
        EventStream {
            client,
            url,
            policy,
            last_id: last_event_id,
            reader: FrameReader::default(),
            body: None,
            advised_retry: Duration::from_secs(1),
            connections: 0,
            failures: 0,
            finished: false,
        }
    }

    /// The id of the last event delivered (the cursor a reconnect sends).
    pub fn last_event_id(&self) -> Option<u64> {
        self.last_id
    }

    /// How many times the stream reconnected after the first connection.
    pub fn reconnects(&self) -> u64 {
        self.connections.saturating_sub(1)
    }

    /// The next event; `None` once the session ended (after `session_died`).
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        loop {
            if self.finished {
                return None;
            }
            while let Some(frame) = self.reader.next_frame() {
                match frame {
                    Frame::Retry(ms) => self.advised_retry = Duration::from_millis(ms),
                    Frame::Malformed(data) => {
                        return Some(Err(ClientError::Decode(format!(
                            "an SSE frame that is not an event envelope: {}",
                            &data[..data.len().min(256)]
                        ))))
                    }
                    Frame::Event(event) => {
                        if let Some(event) = self.accept(event) {
                            return Some(Ok(event));
                        }
                    }
                }
            }
            match &mut self.body {
                None => {
                    if let Err(err) = self.connect().await {
                        return Some(Err(err));
                    }
                }
                Some(body) => match body.next().await {
                    Some(Ok(bytes)) => {
                        self.reader.push(&bytes);
                        if self.reader.pending() > MAX_FRAME_BYTES {
                            self.drop_connection();
                            return Some(Err(ClientError::Decode(format!(
                                "an SSE frame over {MAX_FRAME_BYTES} bytes"
                            ))));
                        }
                    }
                    // A reset or an orderly close mid-session: resume.
                    Some(Err(_)) | None => self.drop_connection(),
                },
            }
        }
    }

    /// Applies the cursor to an event: `None` for a duplicate.
    fn accept(&mut self, event: Event) -> Option<Event> {
        if let Some(id) = event.id {
            if self.last_id.is_some_and(|last| id <= last) {
                return None;
            }
            self.last_id = Some(id);
            self.failures = 0;
        }
        if event.ends_session() {
            self.finished = true;
            self.drop_connection();
        } else if event.id.is_none() {
            // `client_evicted` / `stream_error`: the daemon closes this
            // connection; the next call resumes from the cursor.
            self.drop_connection();
        }
        Some(event)
    }

    fn drop_connection(&mut self) {
        self.body = None;
        self.reader.reset();
    }

    /// Opens the stream, waiting first when it is a reconnect. `Err` ends the
    /// stream: the session is gone, or attempts ran out.
    async fn connect(&mut self) -> Result<(), ClientError> {
        loop {
            if self.connections > 0 || self.failures > 0 {
                tokio::time::sleep(self.policy.delay.unwrap_or(self.advised_retry)).await;
            }
            let mut request = self.client.request(Method::GET, self.url.clone());
            if let Some(id) = self.last_id {
                request = request.header("Last-Event-ID", id.to_string());
            }
            let outcome = match request.send().await {
                Ok(response) => check(response).await,
                Err(err) => Err(ClientError::Transport(err)),
            };
            match outcome {
                Ok(response) => {
                    self.connections += 1;
                    self.body = Some(Box::pin(response.bytes_stream()));
                    return Ok(());
                }
                // The session is gone (or never was): nothing to wait for.
                Err(err @ ClientError::Http { status: 404, .. }) => {
                    self.finished = true;
                    return Err(err);
                }
                Err(err) => {
                    self.failures += 1;
                    if self.failures >= self.policy.max_failures {
                        self.finished = true;
                        return Err(ClientError::StreamGaveUp {
                            attempts: self.failures,
                            last: Box::new(err),
                        });
                    }
                }
            }
        }
    }
}
