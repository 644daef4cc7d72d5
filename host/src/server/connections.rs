//! Connection hygiene, so that clients who open connections and then dawdle cannot hold the
//! server: how long a request head may take, how long a connection may stay idle, how large a
//! head may be, and how many connections may be open at once. The two timeouts are kept by
//! each connection's [`ConnectionClock`](super::connection_clock::ConnectionClock).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::connection_clock::ConnectionClock;

/// The smallest head limit (hyper's smallest read buffer).
pub const MIN_REQUEST_HEAD: usize = 8192;

/// The limits every connection is served under.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long a request head may take, from the connection's opening or from its first
    /// byte after a response, before the connection is closed.
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may stay idle after a response before it is closed.
    pub idle_timeout: Duration,
    /// The largest request head (request line and headers) accepted; a larger one is answered
    /// 431 and the connection closed.
    pub max_request_head: usize,
    /// The most connections open at once; past it, new connections wait in the listen backlog
    /// until one closes.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The clocks of a connection that has just opened.
    pub(super) fn clock(&self) -> Arc<ConnectionClock> {
        ConnectionClock::start(self.header_read_timeout, self.idle_timeout)
    }

    /// An HTTP/1.1 connection builder under these limits (plain TCP).
    pub(super) fn http1(&self) -> hyper::server::conn::http1::Builder {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_header_size(self.max_request_head)
            .keep_alive(true);
        builder
    }

    /// An HTTP/1.1-or-HTTP/2 connection builder under these limits (TLS with ALPN).
    pub(super) fn auto(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // hyper-util's builder has no head limit of its own: a read buffer no larger than the
        // head limit stops a longer head the same way (431).
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_buf_size(self.max_request_head.max(MIN_REQUEST_HEAD));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.max_request_head).unwrap_or(u32::MAX));
        builder
    }
}

/// The open connections, counted against [`ConnectionLimits::max_connections`].
pub(super) struct ConnectionSlots {
    slots: Arc<Semaphore>,
    max: usize,
    /// Whether the cap has been reported since it was last reached.
    reported: bool,
}

impl ConnectionSlots {
    /// Slots for `max` connections.
    pub(super) fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            reported: false,
        }
    }

    /// A slot for the next connection, waiting while all are taken. Reaching the cap is
    /// logged once each time it is reached, not once per waiting connection.
    pub(super) async fn next(&mut self) -> OwnedSemaphorePermit {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            self.reported = false;
            return slot;
        }
        if !self.reported {
            self.reported = true;
            tracing::warn!(
                "{} connections are open, the most allowed (--max-connections): new ones wait \
                 until one closes",
                self.max
            );
        }
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
}
