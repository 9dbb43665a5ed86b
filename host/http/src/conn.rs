//! One accepted connection, served by hyper's HTTP/1 state machine with the
//! deadlines `axum::serve` does not give: without them a socket that never
//! sends a byte holds a connection slot forever, and 256 such sockets lock
//! everyone out.
//!
//! Where each deadline lives:
//! - **header read** (`--header-read-timeout`): from accept, or from the
//!   first byte of a later request, until its head is parsed;
//! - **idle** (`--idle-timeout`): a keep-alive connection between requests,
//!   with no byte of the next one yet;
//! - **stalled write** (`--writer-idle-timeout`): a response (typically an
//!   SSE stream) whose bytes the socket has not taken for this long — the
//!   client stopped reading.
//!
//! A request being handled (a prompt running for minutes, an SSE stream
//! between heartbeats) is never idle: the read deadlines only run while no
//! request is in flight. They are enforced here, in the socket wrapper,
//! rather than with hyper's own `header_read_timeout`, because hyper also
//! restarts that one for every keep-alive gap, so it cannot express a
//! separate (longer) idle timeout.
//!
//! Closing: when hyper closes a connection whose request body was left
//! partly unread (a 413 answered from `Content-Length` alone), closing the
//! socket at once would make the kernel answer the still-arriving body with
//! a reset, which can destroy the 413 before the client reads it. So the
//! close lingers: our write side is shut (the client sees the answer and
//! EOF), and the rest of the body is read and discarded up to a bound.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response};
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::config::HttpConfig;
use crate::tls::TlsConfig;

/// Longest a lingering close keeps reading an unwanted request body.
const LINGER_TIMEOUT: Duration = Duration::from_secs(5);

/// Most bytes of an unwanted request body read (and dropped) while lingering.
const LINGER_MAX_BYTES: usize = 128 << 20;

/// The per-connection deadlines; `None` = off.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header_read: Option<Duration>,
    pub idle: Option<Duration>,
    pub write_stall: Option<Duration>,
}

impl Timeouts {
    /// From the configuration; a zero duration turns that deadline off.
    pub fn from_config(config: &HttpConfig) -> Self {
        let enabled = |duration: Duration| (!duration.is_zero()).then_some(duration);
        Self {
            header_read: enabled(config.header_read_timeout),
            idle: enabled(config.idle_timeout),
            write_stall: enabled(config.writer_idle_timeout),
        }
    }
}

/// Serves one connection until it closes, the server shuts down (in-flight
/// requests finish; idle keep-alive ends at once), or a deadline passes.
/// `slot` is the connection cap's permit; `_open` tells `serve` this
/// connection is still running.
pub async fn serve_connection(
    stream: TcpStream,
    slot: Option<OwnedSemaphorePermit>,
    router: Router,
    timeouts: Timeouts,
    tls: Option<TlsConfig>,
    stop: CancellationToken,
    _open: watch::Receiver<()>,
) {
    let activity = Arc::new(Mutex::new(Activity::new()));
    let peer = stream.peer_addr().ok().map(|addr| addr.ip());
    let io = ConnIo::new(stream, Arc::clone(&activity), timeouts);
    let service = TrackedService {
        router,
        activity,
        peer,
    };
    match tls {
        None => drive(io, service, stop).await,
        // The handshake reads through ConnIo, so the header-read deadline
        // bounds it; a shutdown during it just drops the socket.
        Some(tls) => {
            let handshake = tokio::select! {
                result = tls.acceptor().accept(io) => result,
                () = stop.cancelled() => return,
            };
            match handshake {
                Ok(io) => drive(io, service, stop).await,
                Err(error) => tracing::debug!(%error, "TLS handshake failed"),
            }
        }
    }
    drop(slot);
}

/// Runs hyper's HTTP/1 state machine on the (plain or TLS) stream.
async fn drive<I>(io: I, service: TrackedService, stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(io);
    let mut builder = hyper::server::conn::http1::Builder::new();
    // ConnIo enforces the header-read deadline (see the module comment).
    builder.header_read_timeout(None);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "connection closed with an error");
    }
}

/// What the socket wrapper must know about the requests on its connection.
#[derive(Debug)]
struct Activity {
    /// Requests whose response has not been completely handed to hyper.
    in_flight: usize,
    /// Responses completed so far.
    completed: u64,
    /// When the last response completed (start of the keep-alive gap).
    idle_since: Instant,
    /// The current request's body has not been read to its end.
    unread_request_body: bool,
    /// The connection task, to wake when a response completes: hyper does
    /// not necessarily read again on its own then, and the idle deadline
    /// only starts when it does.
    waker: Option<Waker>,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: 0,
            completed: 0,
            idle_since: Instant::now(),
            unread_request_body: false,
            waker: None,
        }
    }
}

type SharedActivity = Arc<Mutex<Activity>>;

fn lock(activity: &SharedActivity) -> MutexGuard<'_, Activity> {
    // Nothing panics while holding it; recover the data if something did.
    activity
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The router as hyper's service, keeping [`Activity`] current.
#[derive(Clone)]
struct TrackedService {
    router: Router,
    activity: SharedActivity,
    /// The client's address, for per-client limits (`--rate-limit`).
    peer: Option<std::net::IpAddr>,
}

impl hyper::service::Service<Request<Incoming>> for TrackedService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = BusyGuard::begin(&self.activity);
        let unread = !request.body().is_end_stream();
        lock(&self.activity).unread_request_body = unread;
        let activity = Arc::clone(&self.activity);
        let mut request = request;
        if let Some(ip) = self.peer {
            request
                .extensions_mut()
                .insert(crate::rate_limit::PeerIp(ip));
        }
        let request = request.map(|inner| RequestBody {
            inner,
            activity: Arc::clone(&activity),
        });
        let mut router = self.router.clone();
        Box::pin(async move {
            // axum's Router is always ready (its poll_ready returns Ready
            // unconditionally), so it is called without poll_ready.
            let mut response = match tower_service::Service::call(&mut router, request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let status = response.status();
            if lock(&activity).unread_request_body
                && (status.is_client_error() || status.is_server_error())
            {
                // Refused before its body was read (413, 401, …): hyper will
                // not keep this connection, so say so to the client.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| TrackedBody {
                inner: body,
                _busy: busy,
            }))
        })
    }
}

/// Marks a request in flight from the moment hyper parsed its head until its
/// response body is finished (or dropped).
struct BusyGuard(SharedActivity);

impl BusyGuard {
    fn begin(activity: &SharedActivity) -> Self {
        lock(activity).in_flight += 1;
        Self(Arc::clone(activity))
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut activity = lock(&self.0);
        activity.in_flight = activity.in_flight.saturating_sub(1);
        activity.completed += 1;
        activity.idle_since = Instant::now();
        if let Some(waker) = activity.waker.take() {
            waker.wake();
        }
    }
}

/// A request body that records when it has been read to its end.
struct RequestBody {
    inner: Incoming,
    activity: SharedActivity,
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() {
            lock(&self.activity).unread_request_body = false;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request in flight until hyper drops it.
pub struct TrackedBody {
    inner: Body,
    _busy: BusyGuard,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A timer armed for one instant at a time, created on first use.
#[derive(Default)]
struct Deadline {
    sleep: Option<Pin<Box<Sleep>>>,
    armed: Option<Instant>,
}

impl Deadline {
    /// Whether `at` has passed; if not, the task is woken when it does.
    fn poll_passed(&mut self, at: Instant, cx: &mut Context<'_>) -> bool {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if self.armed != Some(at) {
            sleep.as_mut().reset(at);
            self.armed = Some(at);
        }
        sleep.as_mut().poll(cx).is_ready()
    }
}

enum Linger {
    /// The close has not started.
    NotStarted,
    /// Reading and dropping the rest of an unwanted request body.
    Draining {
        until: Instant,
        budget: usize,
    },
    Done,
}

/// The accepted socket with the connection's read, idle and write deadlines
/// and its lingering close.
struct ConnIo {
    stream: TcpStream,
    activity: SharedActivity,
    timeouts: Timeouts,
    accepted_at: Instant,
    /// `Activity::completed` when this wrapper last looked: a change means
    /// a new keep-alive gap began.
    seen_completed: u64,
    /// First byte of the next request's head, in a keep-alive gap.
    head_started: Option<Instant>,
    read_timer: Deadline,
    /// Since when the socket has refused every byte offered.
    write_stalled_since: Option<Instant>,
    write_timer: Deadline,
    linger: Linger,
}

impl ConnIo {
    fn new(stream: TcpStream, activity: SharedActivity, timeouts: Timeouts) -> Self {
        Self {
            stream,
            activity,
            timeouts,
            accepted_at: Instant::now(),
            seen_completed: 0,
            head_started: None,
            read_timer: Deadline::default(),
            write_stalled_since: None,
            write_timer: Deadline::default(),
            linger: Linger::NotStarted,
        }
    }

    /// When a read waiting now must give up, if it must (no request in flight).
    fn read_deadline(&mut self, cx: &Context<'_>) -> Option<Instant> {
        let mut activity = lock(&self.activity);
        match &mut activity.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            None => activity.waker = Some(cx.waker().clone()),
        }
        if activity.in_flight > 0 {
            return None;
        }
        if activity.completed != self.seen_completed {
            self.seen_completed = activity.completed;
            self.head_started = None;
        }
        let (from, limit) = if activity.completed == 0 {
            (self.accepted_at, self.timeouts.header_read)
        } else if let Some(started) = self.head_started {
            (started, self.timeouts.header_read)
        } else {
            (activity.idle_since, self.timeouts.idle)
        };
        from.checked_add(limit?)
    }

    fn note_bytes_read(&mut self) {
        let activity = lock(&self.activity);
        if activity.in_flight > 0 || activity.completed == 0 {
            return;
        }
        if activity.completed != self.seen_completed {
            self.seen_completed = activity.completed;
            self.head_started = None;
        }
        if self.head_started.is_none() {
            self.head_started = Some(Instant::now());
        }
    }

    /// A write returned `Pending`: fail it once the socket has taken nothing
    /// for the writer idle timeout.
    fn poll_write_stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let Some(limit) = self.timeouts.write_stall else {
            return Poll::Pending;
        };
        let since = *self.write_stalled_since.get_or_insert_with(Instant::now);
        match since.checked_add(limit) {
            Some(deadline) if self.write_timer.poll_passed(deadline, cx) => {
                tracing::info!(
                    timeout = ?limit,
                    "closing a connection whose client stopped reading"
                );
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took no bytes for the writer idle timeout",
                )))
            }
            _ => Poll::Pending,
        }
    }

    fn write_result<T>(
        &mut self,
        poll: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.write_stalled_since = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_write_stall(cx),
        }
    }

    /// Reads and drops what the client still sends, until it finishes
    /// (EOF), the budget or the time runs out.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Linger::Draining { until, budget } = &mut self.linger else {
            return Poll::Ready(());
        };
        let mut scratch = [0u8; 8192];
        loop {
            let mut buffer = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buffer) {
                Poll::Ready(Ok(())) if !buffer.filled().is_empty() => {
                    *budget = budget.saturating_sub(buffer.filled().len());
                    if *budget == 0 {
                        return Poll::Ready(());
                    }
                }
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => {
                    let until = *until;
                    return if self.read_timer.poll_passed(until, cx) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    };
                }
            }
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.note_bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => match this.read_deadline(cx) {
                Some(deadline) if this.read_timer.poll_passed(deadline, cx) => {
                    tracing::debug!("closing a connection that sent no complete request in time");
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no complete request head within the deadline",
                    )))
                }
                _ => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.write_result(poll, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.write_result(poll, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    /// A TCP flush is a no-op: it says nothing about whether the client
    /// reads, so it neither starts nor ends a write stall.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// Shuts the write side, then lingers if a request body was left unread.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match this.linger {
                Linger::NotStarted => {
                    let shut = ready!(Pin::new(&mut this.stream).poll_shutdown(cx));
                    if shut.is_err() || !lock(&this.activity).unread_request_body {
                        this.linger = Linger::Done;
                        return Poll::Ready(shut);
                    }
                    this.linger = Linger::Draining {
                        until: Instant::now() + LINGER_TIMEOUT,
                        budget: LINGER_MAX_BYTES,
                    };
                }
                Linger::Draining { .. } => {
                    ready!(this.poll_drain(cx));
                    this.linger = Linger::Done;
                }
                Linger::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}
