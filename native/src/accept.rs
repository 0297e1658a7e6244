//! Accepting connections under a cap, and through accept errors: the app's listener
//! ([`crate::server`]) and the admin one ([`crate::admin`]) share this [`Acceptor`], each with a
//! cap of its own.
//!
//! Each connection holds a slot of a semaphore, taken before accepting: at the cap the server
//! stops accepting, so new clients wait in the kernel's listen backlog, not in an error. For the
//! app, the time at the cap and the failed accepts are counted ([`crate::metrics`]) and logged,
//! once a minute at most.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// The pending connections the kernel keeps for a listener: many clients connect at once.
pub(crate) const LISTEN_BACKLOG: u32 = 4096;

/// A connection accepted under the cap: the stream, its peer, and its slot, held while it
/// lives.
pub(crate) type Accepted = (TcpStream, SocketAddr, OwnedSemaphorePermit);

/// Accepts connections on one listener, at most `max` at once.
pub(crate) struct Acceptor<'a> {
    listener: &'a TcpListener,
    slots: Arc<Semaphore>,
    max: usize,
    /// The app's metrics (time at the cap, failed accepts), and the cap and accept errors
    /// logged once a minute; the admin listener keeps none of these.
    app: Option<(&'a Metrics, Throttle, Throttle)>,
}

impl<'a> Acceptor<'a> {
    /// The app's acceptor: the connection cap logged and measured.
    pub(crate) fn app(listener: &'a TcpListener, max: usize, metrics: &'a Metrics) -> Self {
        let throttles = (Throttle::every_minute(), Throttle::every_minute());
        Self::new(listener, max, Some((metrics, throttles.0, throttles.1)))
    }

    /// The admin listener's acceptor: a small cap, nothing logged but at debug.
    pub(crate) fn admin(listener: &'a TcpListener, max: usize) -> Self {
        Self::new(listener, max, None)
    }

    fn new(
        listener: &'a TcpListener,
        max: usize,
        app: Option<(&'a Metrics, Throttle, Throttle)>,
    ) -> Self {
        Acceptor {
            listener,
            slots: Arc::new(Semaphore::new(max)),
            max,
            app,
        }
    }

    /// The next connection, once a slot is free; `None` once `stop` completes. Accept errors are
    /// retried: a client that left early is nothing, and running out of file descriptors passes
    /// once connections close.
    pub(crate) async fn next(
        &mut self,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Option<Accepted> {
        loop {
            let slot = match Arc::clone(&self.slots).try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    let _at_cap = self.app.as_mut().map(|(metrics, cap_log, _)| {
                        if cap_log.ready() {
                            tracing::warn!(
                                max_connections = self.max,
                                "connection cap reached: new clients wait in the listen backlog"
                            );
                        }
                        metrics.at_cap()
                    });
                    tokio::select! {
                        () = stop.as_mut() => return None,
                        slot = Arc::clone(&self.slots).acquire_owned() => {
                            slot.expect("the semaphore is never closed")
                        }
                    }
                }
            };
            tokio::select! {
                () = stop.as_mut() => return None,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => return Some((stream, peer, slot)),
                    Err(err) => self.failed(err).await,
                },
            }
        }
    }

    /// What the kernel has queued for the listener now, taken past the cap: each of those
    /// clients has connected and may have sent its request, and closing the listener would reset
    /// them. A slot is taken before each accept, so no accepted client is dropped for want of
    /// one; the kernel's backlog is at most [`LISTEN_BACKLOG`], and that many slots are
    /// added, so the clients arriving meanwhile cannot keep it going.
    pub(crate) async fn queued(&mut self) -> Vec<Accepted> {
        self.slots.add_permits(LISTEN_BACKLOG as usize);
        let mut queued = Vec::new();
        while let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
            let accepted =
                std::future::poll_fn(|cx| Poll::Ready(self.listener.poll_accept(cx))).await;
            match accepted {
                Poll::Pending => break,
                Poll::Ready(Ok((stream, peer))) => queued.push((stream, peer, slot)),
                // A client that left before its turn: the ones behind it are still there.
                Poll::Ready(Err(err)) if is_client_gone(&err) => {}
                // No descriptor left: what remains is lost either way.
                Poll::Ready(Err(_)) => break,
            }
        }
        queued
    }

    /// An accept that failed: counted and logged (once a minute) for the app, then, unless the
    /// client merely left, a pause before the next try.
    async fn failed(&mut self, err: io::Error) {
        if let Some((metrics, _, accept_log)) = self.app.as_mut() {
            metrics.accept_failed();
            if is_client_gone(&err) {
                return;
            }
            if accept_log.ready() {
                tracing::error!(error = %err, "accept failed; retrying every 50 ms (logged once a minute)");
            }
        } else {
            tracing::debug!(error = %err, "admin accept failed");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lets a recurring condition be logged once a minute at most, not once per event.
struct Throttle {
    last: Option<Instant>,
}

impl Throttle {
    fn every_minute() -> Throttle {
        Throttle { last: None }
    }

    /// Whether to log now; if so, the next minute is quiet.
    fn ready(&mut self) -> bool {
        let ready = self
            .last
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60));
        if ready {
            self.last = Some(Instant::now());
        }
        ready
    }
}

/// Whether an accept failed only because its client left before it was accepted.
fn is_client_gone(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}
