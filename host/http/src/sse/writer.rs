//! Where a subscription becomes the bytes of an SSE response body.
//!
//! Order on the wire: `retry: 3000`, the replayed frames, then live frames,
//! with a `: ping` comment after every heartbeat interval of silence. A frame
//! whose id was already sent (or is not above the client's resume cursor) is
//! skipped: one published while the subscription was being set up can sit
//! in both `replay` and `live`.
//!
//! Backpressure: hyper pulls the next chunk only when the socket can take
//! it, so a slow client leaves frames waiting in the bounded `live` queue,
//! where the bridge notices and evicts it. Nothing here buffers on its own.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::frame::{client_evicted_frame, stream_error_frame, HEARTBEAT, RETRY_PREAMBLE};
use crate::backend::{EventFrame, Subscription};

/// Message of the `stream_error` frame that ends streams on daemon shutdown.
pub const SHUTDOWN_MESSAGE: &str = "the daemon is shutting down";

/// Turns a subscription into an SSE body stream.
///
/// `resume_after` is the client's parsed `Last-Event-ID`; `heartbeat` of zero
/// disables pings. When `stop` is cancelled the stream sends whatever frames
/// are already queued, then ends — with `stream_error` unless the session's
/// own stream had already closed — so graceful shutdown is never held up by
/// a long-lived subscriber.
pub fn sse_body_stream(
    subscription: Subscription,
    resume_after: Option<u64>,
    heartbeat: Duration,
    stop: CancellationToken,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let writer = SseWriter {
        phase: Phase::Preamble,
        replay: subscription.replay.into_iter(),
        live: subscription.live,
        evicted: subscription.evicted,
        last_sent: resume_after,
        heartbeat: heartbeat_interval(heartbeat),
        stop,
        _subscriber: qserve_metrics::get().subscriber(),
    };
    futures::stream::unfold(writer, |mut writer| async move {
        let chunk = writer.next_chunk().await?;
        Some((Ok(chunk), writer))
    })
}

enum Phase {
    Preamble,
    Replay,
    Live,
    Finished,
}

struct SseWriter {
    phase: Phase,
    replay: std::vec::IntoIter<EventFrame>,
    live: mpsc::Receiver<EventFrame>,
    evicted: Arc<AtomicBool>,
    /// Highest id on the wire so far (seeded with the resume cursor).
    last_sent: Option<u64>,
    heartbeat: Option<Interval>,
    stop: CancellationToken,
    /// `qserve_subscribers` counts this stream until the body is dropped.
    _subscriber: qserve_metrics::SubscriberGuard,
}

impl SseWriter {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            match self.phase {
                Phase::Preamble => {
                    self.phase = Phase::Replay;
                    return Some(Bytes::from_static(RETRY_PREAMBLE));
                }
                Phase::Replay => {
                    let mut batch = Batch::default();
                    while !batch.is_full() {
                        match self.replay.next() {
                            Some(frame) => {
                                if let Some(bytes) = self.admit(frame) {
                                    batch.push(bytes);
                                }
                            }
                            None => {
                                self.phase = Phase::Live;
                                break;
                            }
                        }
                    }
                    if let Some(bytes) = batch.finish() {
                        return Some(bytes);
                    }
                }
                Phase::Live => {
                    if let Some(chunk) = self.next_live_chunk().await {
                        return chunk;
                    }
                }
                Phase::Finished => return None,
            }
        }
    }

    /// One step of the live phase: `Some(chunk)` to emit (or `Some(None)` to
    /// end the stream), `None` when a duplicate was skipped.
    async fn next_live_chunk(&mut self) -> Option<Option<Bytes>> {
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => Some(self.drain_for_shutdown()),
            received = self.live.recv() => match received {
                Some(frame) => {
                    // Whatever else is already queued goes out in the same
                    // write: a burst empties the queue in a few writes
                    // instead of one per frame.
                    let mut batch = Batch::default();
                    if let Some(bytes) = self.admit(frame) {
                        batch.push(bytes);
                    }
                    while !batch.is_full() {
                        match self.live.try_recv() {
                            Ok(frame) => {
                                if let Some(bytes) = self.admit(frame) {
                                    batch.push(bytes);
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    let bytes = batch.finish()?;
                    if let Some(heartbeat) = self.heartbeat.as_mut() {
                        heartbeat.reset();
                    }
                    Some(Some(bytes))
                }
                None => Some(self.finish_closed_stream()),
            },
            _ = next_tick(&mut self.heartbeat) => Some(Some(Bytes::from_static(HEARTBEAT))),
        }
    }

    /// Shutdown: flush what is already queued (one frame per call), then end.
    fn drain_for_shutdown(&mut self) -> Option<Bytes> {
        loop {
            match self.live.try_recv() {
                Ok(frame) => {
                    if let Some(bytes) = self.admit(frame) {
                        return Some(bytes);
                    }
                }
                Err(TryRecvError::Disconnected) => return self.finish_closed_stream(),
                Err(TryRecvError::Empty) => {
                    self.phase = Phase::Finished;
                    return Some(stream_error_frame(SHUTDOWN_MESSAGE).bytes);
                }
            }
        }
    }

    /// `live` closed: the session ended (its terminal frame already went
    /// out) or this subscriber was evicted, which the client must be told.
    fn finish_closed_stream(&mut self) -> Option<Bytes> {
        self.phase = Phase::Finished;
        if self.evicted.load(Ordering::Acquire) {
            Some(client_evicted_frame().bytes)
        } else {
            None
        }
    }

    /// The frame's bytes unless its id is not above the last one sent.
    fn admit(&mut self, frame: EventFrame) -> Option<Bytes> {
        if let Some(id) = frame.id {
            if self.last_sent.is_some_and(|last| id <= last) {
                return None;
            }
            self.last_sent = Some(id);
        }
        qserve_metrics::get().event_delivered(matches!(self.phase, Phase::Replay));
        Some(frame.bytes)
    }
}

/// Frames joined into one body chunk, up to a size that keeps a single write
/// reasonable. One frame alone is passed through without copying.
#[derive(Default)]
struct Batch {
    first: Option<Bytes>,
    joined: Option<bytes::BytesMut>,
}

/// Stop adding frames to a chunk past this many bytes.
const BATCH_BYTES: usize = 64 * 1024;

impl Batch {
    fn push(&mut self, bytes: Bytes) {
        match (&mut self.first, &mut self.joined) {
            (None, None) => self.first = Some(bytes),
            (Some(first), None) => {
                let mut joined = bytes::BytesMut::with_capacity((first.len() + bytes.len()) * 4);
                joined.extend_from_slice(first);
                joined.extend_from_slice(&bytes);
                self.first = None;
                self.joined = Some(joined);
            }
            (_, Some(joined)) => joined.extend_from_slice(&bytes),
        }
    }

    fn is_full(&self) -> bool {
        let len = match (&self.first, &self.joined) {
            (_, Some(joined)) => joined.len(),
            (Some(first), None) => first.len(),
            (None, None) => 0,
        };
        len >= BATCH_BYTES
    }

    fn finish(self) -> Option<Bytes> {
        match self.joined {
            Some(joined) => Some(joined.freeze()),
            None => self.first,
        }
    }
}

fn heartbeat_interval(period: Duration) -> Option<Interval> {
    if period.is_zero() {
        return None;
    }
    let mut interval = tokio::time::interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    Some(interval)
}

async fn next_tick(heartbeat: &mut Option<Interval>) {
    match heartbeat {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
