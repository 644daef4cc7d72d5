//! The two clocks of one connection, kept by ledge rather than by hyper, whose head timer also
//! runs while a keep-alive connection is idle (so there the two could never differ):
//!
//! - the head clock runs from the connection's opening, or from the first byte after a
//!   response, until the request's head has arrived;
//! - the idle clock runs from the end of a response (its last byte written) until the next
//!   byte arrives; over HTTP/2, where pings and window updates arrive between requests, until
//!   the next request.
//!
//! While a request is being served neither runs: the request body's size limit and the
//! request timeout (`--request-timeout`) are what bound it. A connection past either clock is
//! closed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// What a connection is doing, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head: from the opening, or since the first byte after a response.
    Head(Instant),
    /// Serving this many requests (several only over HTTP/2).
    Serving(usize),
    /// Every response has ended, at this instant; nothing has arrived since.
    Idle(Instant),
}

/// The head and idle clocks of one connection.
pub(super) struct ConnectionClock {
    phase: Mutex<Phase>,
    /// Wakes [`ConnectionClock::run_out`] when the phase changes, for its new deadline.
    changed: Notify,
    head_timeout: Duration,
    idle_timeout: Duration,
}

impl ConnectionClock {
    /// The clocks of a connection that has just opened.
    pub(super) fn start(head_timeout: Duration, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            phase: Mutex::new(Phase::Head(Instant::now())),
            changed: Notify::new(),
            head_timeout,
            idle_timeout,
        })
    }

    /// Bytes have arrived: an idle HTTP/1 connection starts a request head.
    fn bytes_read(&self) {
        let mut phase = self.phase.lock();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
            self.changed.notify_one();
        }
    }

    /// A request's head has arrived; the returned guard ends it when dropped (with its
    /// response's body, or unanswered).
    pub(super) fn request_started(self: &Arc<Self>) -> ResponseEnd {
        let mut phase = self.phase.lock();
        *phase = match *phase {
            Phase::Serving(requests) => Phase::Serving(requests + 1),
            Phase::Head(_) | Phase::Idle(_) => Phase::Serving(1),
        };
        self.changed.notify_one();
        ResponseEnd(self.clone())
    }

    /// Bytes have left: a response still being written out is not idle yet.
    fn bytes_written(&self) {
        let mut phase = self.phase.lock();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Idle(Instant::now());
        }
    }

    fn response_ended(&self) {
        let mut phase = self.phase.lock();
        *phase = match *phase {
            Phase::Serving(requests) if requests > 1 => Phase::Serving(requests - 1),
            _ => Phase::Idle(Instant::now()),
        };
        self.changed.notify_one();
    }

    /// Which clock has run out at `now`, if any, or when to look again.
    fn check(&self, now: Instant) -> Result<&'static str, Instant> {
        let (since, timeout, which) = match *self.phase.lock() {
            Phase::Head(since) => (since, self.head_timeout, "request head"),
            Phase::Idle(since) => (since, self.idle_timeout, "idle"),
            Phase::Serving(_) => return Err(now + Duration::from_secs(86_400)),
        };
        match since.checked_add(timeout) {
            Some(deadline) if deadline <= now => Ok(which),
            Some(deadline) => Err(deadline),
            None => Err(now + Duration::from_secs(86_400)),
        }
    }

    /// Resolves once a clock has run out, naming it.
    pub(super) async fn run_out(&self) -> &'static str {
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        loop {
            match self.check(Instant::now()) {
                Ok(which) => return which,
                Err(next) => {
                    sleep.as_mut().reset(next.into());
                    tokio::select! {
                        () = &mut sleep => {}
                        () = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// Ends a request on its connection's clock when dropped.
pub(super) struct ResponseEnd(Arc<ConnectionClock>);

impl Drop for ResponseEnd {
    fn drop(&mut self) {
        self.0.response_ended();
    }
}

/// A response body that ends its request on the connection's clock once hyper drops it
/// (written out, or abandoned).
pub(super) struct ClockedBody<B> {
    body: B,
    _end: ResponseEnd,
}

impl<B> ClockedBody<B> {
    /// `body`, ending its request with `end`.
    pub(super) fn new(body: B, end: ResponseEnd) -> Self {
        Self { body, _end: end }
    }
}

impl<B: Body + Unpin> Body for ClockedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's socket (or TLS stream) that tells its clock when bytes come and go.
pub(super) struct ClockedIo<S> {
    io: S,
    clock: Arc<ConnectionClock>,
    /// Whether arriving bytes start a request head (HTTP/1); over HTTP/2 only a request does.
    bytes_start_heads: bool,
}

impl<S> ClockedIo<S> {
    /// `io` carrying HTTP/1 (or HTTP/2 when `http2`), reporting to `clock`.
    pub(super) fn new(io: S, clock: Arc<ConnectionClock>, http2: bool) -> Self {
        Self {
            io,
            clock,
            bytes_start_heads: !http2,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClockedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if self.bytes_start_heads && buf.filled().len() > before {
            self.clock.bytes_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClockedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(1..)) = polled {
            self.clock.bytes_written();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(1..)) = polled {
            self.clock.bytes_written();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    #[test]
    fn the_head_clock_runs_from_the_opening_and_from_the_first_byte_after_a_response() {
        let clock = ConnectionClock::start(HEAD, IDLE);
        let opened = Instant::now();
        assert_eq!(clock.check(opened + HEAD * 2), Ok("request head"));
        let end = clock.request_started();
        assert!(
            clock.check(opened + HEAD * 2).is_err(),
            "serving: no clock runs"
        );
        drop(end);
        let ended = Instant::now();
        assert!(
            clock.check(ended + HEAD * 2).is_err(),
            "idle for less than its timeout"
        );
        assert_eq!(clock.check(ended + IDLE * 2), Ok("idle"));
        clock.bytes_read();
        assert_eq!(clock.check(Instant::now() + HEAD * 2), Ok("request head"));
    }

    #[test]
    fn a_response_still_being_written_out_is_not_idle() {
        let clock = ConnectionClock::start(HEAD, IDLE);
        drop(clock.request_started());
        let Phase::Idle(ended) = *clock.phase.lock() else {
            panic!("idle after the response")
        };
        std::thread::sleep(Duration::from_millis(5));
        clock.bytes_written();
        let Phase::Idle(written) = *clock.phase.lock() else {
            panic!("still idle")
        };
        assert!(
            written > ended,
            "the idle clock restarts at the last byte written"
        );
    }

    #[test]
    fn concurrent_requests_keep_the_connection_serving_until_the_last_ends() {
        let clock = ConnectionClock::start(HEAD, IDLE);
        let (first, second) = (clock.request_started(), clock.request_started());
        drop(first);
        assert!(clock.check(Instant::now() + IDLE * 2).is_err());
        drop(second);
        assert_eq!(clock.check(Instant::now() + IDLE * 2), Ok("idle"));
    }
}
