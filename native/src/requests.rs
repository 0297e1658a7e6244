//! The requests in flight on the whole server, counted by the connections as they begin and end:
//! the drain reads the count to say how many it cut off, and the metrics to expose it. A leaf:
//! it uses nothing else of the crate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The requests in flight on the whole server.
#[derive(Debug, Default)]
pub(crate) struct Requests(AtomicUsize);

impl Requests {
    /// Counts a request in flight until the guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.0.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// How many are in flight now.
    pub(crate) fn now(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// A request in flight, counted until dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Requests>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}
