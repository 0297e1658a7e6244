//! Shutting down: once the listener has stopped, every connection is told to finish the requests
//! it has and take no more; those still unfinished when the grace period ends are cut off.
//!
//! On tokio-util's primitives: a [`TaskTracker`] knows when every connection task is done, and
//! two [`CancellationToken`]s say "drain" and "close now". A token stays cancelled once it is,
//! so a connection that starts after a step, or looks late, still sees it. The drain holds the
//! count of requests in flight ([`Requests`]), to say how many it cut off; the metrics read that
//! count.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::requests::Requests;

/// How [`run`](super::run) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Every request in flight was answered within the grace period.
    Drained,
    /// The grace period ran out with requests in flight; this many were cut off.
    GraceExpired {
        /// The requests cut off.
        aborted: usize,
    },
}

/// The two steps of a shutdown, as a connection watches them.
#[derive(Debug, Default)]
pub(super) struct Steps {
    /// Finish the requests in flight, take no new ones.
    pub(super) draining: CancellationToken,
    /// The grace period is over: close now.
    pub(super) closing: CancellationToken,
}

/// The connection tasks, and the steps that end them.
pub(super) struct Drain {
    tasks: TaskTracker,
    steps: Arc<Steps>,
    requests: Arc<Requests>,
    /// Cancelled once the drain is over, for what outlives the connections (the admin port).
    stopped: CancellationToken,
}

impl Drain {
    pub(super) fn new() -> Drain {
        Drain {
            tasks: TaskTracker::new(),
            steps: Arc::default(),
            requests: Arc::default(),
            stopped: CancellationToken::new(),
        }
    }

    /// Runs a connection's task, tracked until it ends.
    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// The steps, for a connection to watch.
    pub(super) fn steps(&self) -> Arc<Steps> {
        Arc::clone(&self.steps)
    }

    /// The requests in flight, for the connections to count theirs in and the metrics to read.
    pub(super) fn requests(&self) -> Arc<Requests> {
        Arc::clone(&self.requests)
    }

    /// Cancelled once the drain is over.
    pub(super) fn stopped(&self) -> CancellationToken {
        self.stopped.clone()
    }

    /// Drains: tells every connection to finish, waits up to `grace` for all of them, then cuts
    /// off the rest. Says whether any request was cut off, and how many.
    pub(super) async fn finish(self, grace: Duration, metrics: &Metrics) -> Shutdown {
        self.tasks.close();
        tracing::info!(connections = self.tasks.len(), ?grace, "shutting down");
        self.steps.draining.cancel();
        let outcome = match tokio::time::timeout(grace, self.tasks.wait()).await {
            Ok(()) => {
                tracing::info!("all connections finished");
                Shutdown::Drained
            }
            Err(_) => {
                let aborted = self.requests.now();
                if aborted > 0 {
                    tracing::warn!(
                        requests = aborted,
                        connections = self.tasks.len(),
                        "grace period over: cutting off unfinished requests"
                    );
                    metrics.cut_off(aborted);
                }
                self.steps.closing.cancel();
                // They close at once; wait for their sockets to be gone.
                let _ = tokio::time::timeout(Duration::from_secs(1), self.tasks.wait()).await;
                if aborted > 0 {
                    Shutdown::GraceExpired { aborted }
                } else {
                    Shutdown::Drained
                }
            }
        };
        self.stopped.cancel();
        outcome
    }
}
