//! One connection, from its first bytes to its close, with every wait bounded:
//!
//! * its first request head, protocol detection included, must be whole within one header
//!   timeout, or the connection is closed;
//! * a connection with no request in flight for a header timeout is closed, HTTP/1.1 and HTTP/2
//!   alike (HTTP/2 with GOAWAY); hyper bounds each later HTTP/1.1 head, and HTTP/2 pings find
//!   peers that are gone while their requests wait;
//! * on shutdown it finishes the requests it has and closes; past the grace period it is cut
//!   off. A connection that has not sent its first request yet is given until
//!   [`FIRST_REQUEST_WINDOW`] after it was accepted (and no longer than its first header
//!   timeout) to send it, and is answered with `connection: close`: a client that connected just
//!   before the signal cannot tell a connection closed unanswered from a request lost.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::detect::{self, Protocol};
use super::drain::Steps;
use super::service;
use super::shared::Shared;
use crate::requests::{self, Requests};

/// How long after it was accepted a connection may still send its first request once the
/// server drains, at most: a client that connected just before SIGTERM has sent its request, or
/// is about to, and closing it would lose that request. Its header timeout bounds it too, and the
/// grace period bounds everything.
pub(super) const FIRST_REQUEST_WINDOW: Duration = Duration::from_secs(5);

/// Serves one connection until it closes.
///
/// Thousands of these wait at once, so the task holds little beyond hyper's connection: the
/// socket, the peer's address, an `Arc` of what all connections share, the shutdown steps, the
/// connection's activity and its slot under the cap.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    steps: Arc<Steps>,
    requests: Arc<Requests>,
    // Held while the connection lives: its slot under the connection cap.
    _slot: OwnedSemaphorePermit,
) {
    let _open = shared.metrics.connection_opened();
    tracing::debug!(%peer, "connection accepted");
    // Small answers should leave at once, not wait for more to coalesce with.
    let _ = stream.set_nodelay(true);
    let accepted = Instant::now();
    let first = FirstRequest {
        by: accepted + shared.header_read_timeout,
        when_draining: accepted + shared.header_read_timeout.min(FIRST_REQUEST_WINDOW),
    };

    let detected = {
        let mut detecting = std::pin::pin!(detect::detect(stream));
        let mut deadline = first.by;
        loop {
            tokio::select! {
                // First: bytes a client sent are a request to read, draining or not.
                biased;
                detected = &mut detecting => break detected.ok().flatten(),
                () = tokio::time::sleep_until(deadline) => break None,
                () = steps.closing.cancelled() => break None,
                () = steps.draining.cancelled(), if deadline != first.when_draining => {
                    deadline = first.when_draining;
                }
            }
        }
    };
    let Some((protocol, io)) = detected else {
        tracing::debug!(%peer, "closing a connection that sent no request");
        return;
    };

    let activity = Arc::new(Activity::new(requests));
    let service = {
        let (shared, activity) = (Arc::clone(&shared), Arc::clone(&activity));
        service_fn(move |request| {
            // In flight, on this connection and on the server, until the answer is handed over.
            let in_flight = activity.begin();
            let answer = service::answer(&shared, peer, request);
            async move {
                let answer = answer.await;
                drop(in_flight);
                answer
            }
        })
    };
    let io = TokioIo::new(io);
    let idle = shared.header_read_timeout;
    let result = match protocol {
        Protocol::Http1 => {
            let conn = std::pin::pin!(shared.http1.serve_connection(io, service));
            drive(conn, &steps, &activity, first, idle).await
        }
        // Rare here, and a larger state: kept out of the common task's size.
        Protocol::Http2 => {
            let mut conn = Box::pin(shared.http2.serve_connection(io, service));
            drive(conn.as_mut(), &steps, &activity, first, idle).await
        }
    };
    if let Err(err) = result {
        // hyper's Display of an error leaves out its cause (an h2 GOAWAY reason, an I/O error).
        tracing::debug!(%peer, error = ?err, "connection ended with an error");
    }
}

/// When a connection's first request head must have come: by its header timeout, and, once the
/// server drains, by the end of its [`FIRST_REQUEST_WINDOW`] (whichever is first).
#[derive(Debug, Clone, Copy)]
struct FirstRequest {
    by: Instant,
    when_draining: Instant,
}

/// Runs a connection to its end: until it closes, its first head misses its deadline (closed
/// at once), it goes idle (closed gracefully: GOAWAY on HTTP/2; cut off a timeout later if it
/// still has not finished), or the server drains (it finishes what it has and closes, unless the
/// grace period ends first; one that has had no request yet is first given its window to send
/// one, which is then answered with `connection: close`).
///
/// It takes the connection pinned where the caller holds it: passed by value, the connection
/// (about 700 bytes) would be stored twice in the connection's task, once in each future.
async fn drive<C>(
    mut conn: Pin<&mut C>,
    steps: &Steps,
    activity: &Activity,
    first: FirstRequest,
    idle: Duration,
) -> Result<(), C::Error>
where
    C: GracefulConnection,
{
    let idled = tokio::select! {
        // The connection first, so that a request it has already received is read and started
        // before a drain that began meanwhile closes it.
        biased;
        result = conn.as_mut() => return result,
        () = steps.draining.cancelled() => false,
        ended = activity.idle(first.by, idle) => match ended {
            Idle::NoRequest => return Ok(()),
            Idle::Quiet => true,
        },
    };
    if !idled && !activity.has_had_a_request() {
        // Draining before its first request: hyper would close an idle connection at once, so
        // serve it until that request begins (then the shutdown below lets it finish) or its
        // window ends.
        tokio::select! {
            biased;
            result = conn.as_mut() => return result,
            () = activity.first_request(first.when_draining) => {}
            () = steps.closing.cancelled() => return Ok(()),
        }
    }
    conn.as_mut().graceful_shutdown();
    // Gone idle, the connection gets one more timeout to finish: an answer a client does not
    // read would otherwise hold it (hyper has no write timeout) until the server shuts down.
    let finishing = async {
        if idled {
            tokio::time::sleep(idle).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = conn.as_mut() => result,
        () = steps.closing.cancelled() => Ok(()),
        () = finishing => Ok(()),
    }
}

/// The requests in flight on one connection, and whether it has had one; each is counted on
/// the server's [`Requests`] too.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    seen: AtomicBool,
    changed: Notify,
    server: Arc<Requests>,
}

/// How a connection went idle.
enum Idle {
    /// No whole request head came before the first deadline.
    NoRequest,
    /// No request was in flight for the idle timeout.
    Quiet,
}

impl Activity {
    fn new(server: Arc<Requests>) -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            seen: AtomicBool::new(false),
            changed: Notify::new(),
            server,
        }
    }

    /// Counts a request in flight, here and on the server, until the guard is dropped. Only
    /// the connection's first request and a start from none in flight are news to whoever
    /// watches it (the idle clock, the drain's wait for a first request): an HTTP/2 connection
    /// with many streams does not take the lock of its `Notify` for each.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.seen.store(true, Ordering::Relaxed);
        if self.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            self.changed.notify_waiters();
        }
        InFlight {
            connection: Arc::clone(self),
            _server: self.server.begin(),
        }
    }

    /// Whether a request has begun on the connection.
    fn has_had_a_request(&self) -> bool {
        self.seen.load(Ordering::Relaxed)
    }

    /// Completes once a request has begun on the connection, or at `deadline`.
    async fn first_request(&self, deadline: Instant) {
        let mut sleep = std::pin::pin!(tokio::time::sleep_until(deadline));
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if self.has_had_a_request() {
                return;
            }
            tokio::select! {
                () = &mut sleep => return,
                () = &mut changed => {}
            }
        }
    }

    /// Completes once no request has been in flight for `timeout`; the first time, by `first`.
    async fn idle(&self, first: Instant, timeout: Duration) -> Idle {
        let mut deadline = first;
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if self.in_flight.load(Ordering::Relaxed) == 0 {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {
                        return if self.seen.load(Ordering::Relaxed) {
                            Idle::Quiet
                        } else {
                            Idle::NoRequest
                        };
                    }
                    () = &mut changed => {}
                }
            } else {
                changed.await;
            }
            // Requests began, or the last one ended: the idle clock starts again.
            deadline = Instant::now() + timeout;
        }
    }
}

/// A request in flight on its connection, and on the server while `_server` lives.
struct InFlight {
    connection: Arc<Activity>,
    _server: requests::InFlight,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // The last one in flight: the connection may go idle from now.
        if self.connection.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.connection.changed.notify_waiters();
        }
    }
}
