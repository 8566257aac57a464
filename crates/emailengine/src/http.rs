//! The API's HTTP serving loop: accepts connections up to a bound and serves each with hyper
//! (HTTP/1.1, and HTTP/2 with prior knowledge, as axum's own `serve` does), closing those that
//! stall — header, body and keep-alive idle timeouts — so slow or half-open clients cannot hold
//! the descriptors mail connections need. Routes and responses stay the router's: this module
//! adds only the peer address (`ConnectInfo`) and the 408 that ends a stalled body.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, Version, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep, sleep_until};
use tower::ServiceExt;

use emailengine_api::error::ApiError;

/// How long clients may take, and how many may be connected at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From accept to the first request's complete header; on a reused connection, from the
    /// first byte of a request to its complete header.
    pub header_timeout: Duration,
    /// From a request's header to the end of its body (EmailEngine's `api.maxPayloadTimeout`).
    pub body_timeout: Duration,
    /// A connection with no request in flight and no byte of a new one is closed after this.
    pub keep_alive_timeout: Duration,
    /// Concurrent connections; beyond it new connections are accepted and closed at once.
    pub max_connections: usize,
}

/// After a persistent error from `accept` (out of descriptors or memory), wait this long before
/// the next try, so the loop does not spin while nothing can be accepted.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Repeated refusals and accept errors are logged at most once per interval, with a count.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, closes the
/// connections without a request in flight and waits for the others to finish theirs.
///
/// At the bound, a new connection is accepted and closed at once rather than left in the
/// listen queue: the queue then keeps draining, a refused client learns it at once instead of
/// hanging behind stalled ones, and a slot freed by a timeout goes to the next client that asks.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut refused = Throttled::default();
    let mut failed = Throttled::default();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                if let Some(repeated) = failed.tick(Instant::now()) {
                    tracing::error!(err = %e, repeated, "API server cannot accept connections");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            if let Some(refused) = refused.tick(Instant::now()) {
                tracing::warn!(
                    limit = limits.max_connections,
                    refused,
                    "API connection limit reached, refusing connections"
                );
            }
            continue;
        };
        tokio::spawn(serve_connection(
            stream,
            peer,
            slot,
            router.clone(),
            limits,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let open = limits.max_connections - slots.available_permits();
    if open > 0 {
        tracing::info!(connections = open, "Finishing open API requests");
    }
    let _ = stop_tx.send(true);
    // Every connection task holds one permit until it ends: all permits back, all closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Errors that concern one connection only (it went away before it was accepted).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Counts repeated events and lets one log line through per [`LOG_INTERVAL`], so a flood of
/// refused connections costs a line every few seconds instead of one each.
#[derive(Default)]
struct Throttled {
    count: u64,
    last: Option<Instant>,
}

impl Throttled {
    /// `Some(events since the last line)` when a line may be logged now.
    fn tick(&mut self, now: Instant) -> Option<u64> {
        self.count += 1;
        if self.last.is_some_and(|at| now - at < LOG_INTERVAL) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
    router: axum::Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(WatchedStream {
        inner: stream,
        activity: activity.clone(),
    });
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |req| {
            handle(
                req,
                peer,
                router.clone(),
                activity.clone(),
                limits.body_timeout,
            )
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog below times header reads. hyper's own timer would also run on idle
    // keep-alive connections (cutting `keepAliveTimeout` to the header timeout) and does not
    // cover the protocol detection before it, nor HTTP/2.
    builder.http1().header_read_timeout(None);
    // As axum's `serve`: the extended CONNECT protocol for HTTP/2.
    builder.http2().enable_connect_protocol();
    let mut conn = pin!(builder.serve_connection_with_upgrades(io, service));
    let mut shutting_down = false;
    // Once an idle connection was asked to close: the moment it is dropped regardless.
    let mut closing: Option<Option<Instant>> = None;
    loop {
        let deadline = match closing {
            Some(at) => at,
            None => activity.deadline(&limits).map(|(at, _)| at),
        };
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::trace!(peer = %peer, err = %e, "API connection ended with an error");
                }
                return;
            }
            () = activity.changed.notified() => {}
            _ = stop.wait_for(|stop| *stop), if !shutting_down => {
                // Without a request in flight there is nothing to finish: a half-sent header
                // would otherwise hold the shutdown for the whole header timeout.
                if activity.is_idle() {
                    return;
                }
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            () = sleep_until_some(deadline) => {
                if closing.is_some() {
                    return;
                }
                match activity.expired(&limits) {
                    Some(Expiry::Stalled) => return,
                    Some(Expiry::Idle) => {
                        if !shutting_down {
                            shutting_down = true;
                            conn.as_mut().graceful_shutdown();
                        }
                        closing = Some(Instant::now().checked_add(limits.header_timeout));
                    }
                    None => {}
                }
            }
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One request: the peer address for the handlers, a deadline on the body, and the
/// connection's in-flight count held until the response body is finished.
async fn handle(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    router: axum::Router,
    activity: Arc<Activity>,
    body_timeout: Duration,
) -> Result<Response<TrackedBody>, std::convert::Infallible> {
    let in_flight = activity.request_started();
    let version = req.version();
    let timed_out = Arc::new(AtomicBool::new(false));
    req.extensions_mut().insert(ConnectInfo(peer));
    let req = req.map(|body| TimedBody {
        inner: body,
        deadline: Instant::now().checked_add(body_timeout),
        timer: None,
        timed_out: timed_out.clone(),
    });
    let Ok(response) = router.oneshot(req).await;
    // The handler saw a body error; the client is told why, as EmailEngine tells it.
    let response = if timed_out.load(Ordering::Acquire) {
        body_timeout_response(version)
    } else {
        response
    };
    Ok(response.map(|body| TrackedBody {
        inner: body,
        _in_flight: in_flight,
    }))
}

fn body_timeout_response(version: Version) -> axum::response::Response {
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "Request body was not received in time",
    )
    .into_response();
    if version < Version::HTTP_2 {
        // The rest of the body may still arrive; it is not worth reading.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Why a connection is closed by its watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// A request header did not arrive in time: the connection is dropped.
    Stalled,
    /// Nothing happened on a kept-alive connection: it is shut down gracefully.
    Idle,
}

/// What a connection is doing, as far as its timeouts care.
#[derive(Debug)]
struct Phase {
    in_flight: usize,
    /// A request head has been received on this connection.
    served: bool,
    /// When the connection was accepted, or last became idle.
    since: Instant,
    /// The first byte after the connection became idle (a new request begins).
    head_started: Option<Instant>,
}

impl Phase {
    /// The next deadline, if any (a timeout too large to add to a clock reading never ends).
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Expiry)> {
        let (from, timeout, why) = match (self.in_flight, self.served, self.head_started) {
            (1.., _, _) => return None,
            (0, false, _) => (self.since, limits.header_timeout, Expiry::Stalled),
            (0, true, Some(start)) => (start, limits.header_timeout, Expiry::Stalled),
            (0, true, None) => (self.since, limits.keep_alive_timeout, Expiry::Idle),
        };
        Some((from.checked_add(timeout)?, why))
    }
}

/// A connection's phase, shared by its stream (bytes read), its requests (started, finished)
/// and its watchdog, which `changed` wakes when a deadline may have moved.
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase {
                in_flight: 0,
                served: false,
                since: Instant::now(),
                head_started: None,
            }),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deadline(&self, limits: &Limits) -> Option<(Instant, Expiry)> {
        self.phase().deadline(limits)
    }

    fn expired(&self, limits: &Limits) -> Option<Expiry> {
        self.deadline(limits)
            .filter(|(at, _)| *at <= Instant::now())
            .map(|(_, why)| why)
    }

    fn is_idle(&self) -> bool {
        self.phase().in_flight == 0
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut phase = self.phase();
        phase.in_flight += 1;
        phase.served = true;
        phase.head_started = None;
        InFlight(self.clone())
    }

    fn bytes_received(&self) {
        let mut phase = self.phase();
        if phase.served && phase.in_flight == 0 && phase.head_started.is_none() {
            phase.head_started = Some(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }
}

/// One request in flight, until its response body is finished or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        phase.in_flight = phase.in_flight.saturating_sub(1);
        if phase.in_flight == 0 {
            phase.since = Instant::now();
            phase.head_started = None;
            drop(phase);
            self.0.changed.notify_one();
        }
    }
}

/// The connection's socket, reporting received bytes to its [`Activity`].
struct WatchedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_received();
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error(transparent)]
    Transport(#[from] hyper::Error),
    #[error("request body was not received in time")]
    TimedOut,
}

/// A request body that fails with [`BodyError::TimedOut`] when it is not complete by its
/// deadline: a total budget, not a per-read one, so a trickle of bytes cannot outlast it.
struct TimedBody {
    inner: Incoming,
    /// `None` for a timeout too large to add to a clock reading.
    deadline: Option<Instant>,
    /// Created on the first wait, so bodies that arrive at once never touch the timer.
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.timed_out.load(Ordering::Acquire) {
            return Poll::Ready(Some(Err(BodyError::TimedOut)));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BodyError::from)));
        }
        let Some(deadline) = this.deadline else {
            return Poll::Pending;
        };
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(BodyError::TimedOut)));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that holds its request's [`InFlight`] until hyper has sent it or dropped it.
struct TrackedBody {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl Body for TrackedBody {
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
        keep_alive_timeout: Duration::from_secs(5),
        max_connections: 4,
    };

    fn phase(in_flight: usize, served: bool, head_started: Option<u64>) -> (Instant, Phase) {
        let t0 = Instant::now();
        let phase = Phase {
            in_flight,
            served,
            since: t0,
            head_started: head_started.map(|s| t0 + Duration::from_secs(s)),
        };
        (t0, phase)
    }

    #[test]
    fn deadlines_by_phase() {
        let s = Duration::from_secs;
        let (t0, fresh) = phase(0, false, None);
        assert_eq!(fresh.deadline(&LIMITS), Some((t0 + s(10), Expiry::Stalled)));
        let (_, busy) = phase(2, true, None);
        assert_eq!(busy.deadline(&LIMITS), None);
        let (t0, idle) = phase(0, true, None);
        assert_eq!(idle.deadline(&LIMITS), Some((t0 + s(5), Expiry::Idle)));
        let (t0, next_head) = phase(0, true, Some(3));
        assert_eq!(
            next_head.deadline(&LIMITS),
            Some((t0 + s(13), Expiry::Stalled))
        );
        let forever = Limits {
            header_timeout: Duration::MAX,
            keep_alive_timeout: Duration::MAX,
            ..LIMITS
        };
        assert_eq!(fresh.deadline(&forever), None);
        assert_eq!(idle.deadline(&forever), None);
    }

    #[test]
    fn requests_move_the_deadlines() {
        let activity = Arc::new(Activity::new());
        let accepted = activity.phase().since;
        // Bytes before the first request leave the header deadline counted from accept.
        activity.bytes_received();
        assert_eq!(
            activity.deadline(&LIMITS),
            Some((accepted + LIMITS.header_timeout, Expiry::Stalled))
        );
        let first = activity.request_started();
        let second = activity.request_started();
        assert!(!activity.is_idle());
        assert_eq!(activity.deadline(&LIMITS), None);
        drop(first);
        assert_eq!(activity.deadline(&LIMITS), None);
        drop(second);
        assert!(activity.is_idle());
        let idle = activity.phase().since;
        assert!(idle >= accepted);
        assert_eq!(
            activity.deadline(&LIMITS),
            Some((idle + LIMITS.keep_alive_timeout, Expiry::Idle))
        );
        assert_eq!(activity.expired(&LIMITS), None);
        activity.bytes_received();
        let head = activity.phase().head_started.unwrap();
        activity.bytes_received();
        assert_eq!(activity.phase().head_started, Some(head));
        assert_eq!(
            activity.deadline(&LIMITS),
            Some((head + LIMITS.header_timeout, Expiry::Stalled))
        );
        let third = activity.request_started();
        assert_eq!(activity.phase().head_started, None);
        assert_eq!(activity.deadline(&LIMITS), None);
        drop(third);
        let expired = Limits {
            keep_alive_timeout: Duration::ZERO,
            ..LIMITS
        };
        assert_eq!(activity.expired(&expired), Some(Expiry::Idle));
    }

    #[test]
    fn refusals_are_logged_once_per_interval() {
        let t0 = Instant::now();
        let mut throttled = Throttled::default();
        assert_eq!(throttled.tick(t0), Some(1));
        assert_eq!(throttled.tick(t0 + Duration::from_secs(1)), None);
        assert_eq!(throttled.tick(t0 + Duration::from_secs(9)), None);
        assert_eq!(throttled.tick(t0 + LOG_INTERVAL), Some(3));
        assert_eq!(throttled.tick(t0 + LOG_INTERVAL), None);
    }
}
