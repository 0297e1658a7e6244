//! What the server counts, for an operator's Prometheus: requests by route and status, their
//! latency, what is open and in flight, the time spent at the connection cap, accept errors and
//! requests cut off at shutdown. Kept with `prometheus-client` and served in the OpenMetrics
//! text format (which Prometheus scrapes) by the admin listener ([`crate::admin`]).

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The labels of an answered request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    /// The route the path named (`index`, `hello`, `healthz`), or `none`.
    route: &'static str,
    /// The status sent.
    status: u16,
}

/// The server's metrics, in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<Answered, Counter>,
    duration: Histogram,
    in_flight: Gauge,
    connections: Gauge,
    at_cap_now: Gauge,
    at_cap: Counter<f64, AtomicU64>,
    accept_errors: Counter,
    cut_off: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under the `hello_edge` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hello_edge");
        let requests = Family::<Answered, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by the route the path named and the status sent",
            requests.clone(),
        );
        // From a millisecond to about a minute, the longest delay.
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register_with_unit(
            "request_duration",
            "From the request head to the answer, the delay included",
            Unit::Seconds,
            duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "Requests waiting for their answer",
            in_flight.clone(),
        );
        let connections = Gauge::default();
        registry.register("connections_open", "Connections open", connections.clone());
        let at_cap_now = Gauge::default();
        registry.register(
            "at_connection_cap",
            "1 while the server holds --max-connections connections and new clients wait",
            at_cap_now.clone(),
        );
        let at_cap = Counter::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "connection_cap_wait",
            "Time the server stopped accepting because it held --max-connections connections",
            Unit::Seconds,
            at_cap.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "accept_errors",
            "Failed accepts (descriptors running out, say), each retried",
            accept_errors.clone(),
        );
        let cut_off = Counter::default();
        registry.register(
            "requests_cut_off",
            "Requests still in flight when the shutdown's grace period ended",
            cut_off.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            in_flight,
            connections,
            at_cap_now,
            at_cap,
            accept_errors,
            cut_off,
        }
    }

    /// The metrics as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }

    /// Counts a request in flight until the guard is dropped.
    pub(crate) fn request_started(&self) -> Open {
        self.in_flight.inc();
        Open(self.in_flight.clone())
    }

    /// Counts an open connection until the guard is dropped.
    pub(crate) fn connection_opened(&self) -> Open {
        self.connections.inc();
        Open(self.connections.clone())
    }

    /// Records an answer as it is sent, `elapsed` after its head arrived.
    pub(crate) fn answered(&self, reply: &hello_edge::Reply, elapsed: Duration) {
        let labels = Answered {
            route: reply.route().unwrap_or("none"),
            status: reply.status().as_u16(),
        };
        self.requests.get_or_create(&labels).inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Says the server is at the connection cap, until the guard is dropped, which records the
    /// time it was.
    pub(crate) fn at_cap(&self) -> AtCap<'_> {
        self.at_cap_now.set(1);
        AtCap {
            metrics: self,
            since: std::time::Instant::now(),
        }
    }

    /// Records a failed accept.
    pub(crate) fn accept_failed(&self) {
        self.accept_errors.inc();
    }

    /// The requests in flight now.
    pub(crate) fn requests_in_flight(&self) -> usize {
        self.in_flight.get().max(0) as usize
    }

    /// Records requests cut off at shutdown.
    pub(crate) fn cut_off(&self, requests: usize) {
        self.cut_off.inc_by(requests as u64);
    }
}

/// The server at its connection cap, while this lives.
pub(crate) struct AtCap<'a> {
    metrics: &'a Metrics,
    since: std::time::Instant,
}

impl Drop for AtCap<'_> {
    fn drop(&mut self) {
        self.metrics.at_cap_now.set(0);
        self.metrics
            .at_cap
            .inc_by(self.since.elapsed().as_secs_f64());
    }
}

/// Something counted open while this lives.
pub(crate) struct Open(Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}
