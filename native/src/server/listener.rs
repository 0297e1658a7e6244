//! Accepting connections under the connection cap, and through accept errors.
//!
//! Each connection holds a slot of a semaphore, taken before accepting: at the cap the server
//! stops accepting, so new clients wait in the kernel's listen backlog, not in an error.

use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::drain::Drain;
use super::{Shared, connection};

/// Accepts connections on `listener` and spawns a task for each, until `shutdown` completes;
/// then accepts what the kernel has already queued, past the cap if need be, since each of those
/// clients has connected and may have sent its request: closing the listener would reset them.
pub(super) async fn accept(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    drain: &Drain,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let max = shared.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    let (mut cap_log, mut accept_log) = (Throttle::every_minute(), Throttle::every_minute());
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if cap_log.ready() {
                    tracing::warn!(
                        max_connections = max,
                        "connection cap reached: new clients wait in the listen backlog"
                    );
                }
                let _at_cap = shared.metrics.at_cap();
                tokio::select! {
                    () = &mut shutdown => break,
                    slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
                }
            }
        };
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let task = connection::serve(stream, peer, Arc::clone(shared), drain.steps(), slot);
                    drain.spawn(task);
                }
                Err(err) => {
                    shared.metrics.accept_failed();
                    accept_error(err, &mut accept_log).await;
                }
            },
        }
    }
    // What the kernel queued before the signal: the backlog is bounded, so is this.
    slots.add_permits(super::LISTEN_BACKLOG as usize);
    let mut queued = 0;
    while let Poll::Ready(accepted) =
        std::future::poll_fn(|cx| Poll::Ready(listener.poll_accept(cx))).await
    {
        let Ok((stream, peer)) = accepted else {
            // A client gone, or no descriptor left: what remains is lost either way.
            break;
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => break,
        };
        queued += 1;
        drain.spawn(connection::serve(
            stream,
            peer,
            Arc::clone(shared),
            drain.steps(),
            slot,
        ));
    }
    if queued > 0 {
        tracing::info!(
            connections = queued,
            "accepted the connections queued before shutdown"
        );
    }
}

/// Keeps the server up through accept errors: a client that left early is nothing; running out
/// of file descriptors passes once connections close, so wait a little and retry.
async fn accept_error(err: io::Error, log: &mut Throttle) {
    match err.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionRefused => {}
        _ => {
            if log.ready() {
                tracing::error!(error = %err, "accept failed; retrying every 50 ms (logged once a minute)");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
