//! What the server counts, for an operator's Prometheus: requests by route and status, their
//! latency, what is open and in flight, the time spent at the connection cap, accept errors and
//! requests cut off at shutdown. Kept with `prometheus-client` and served in the OpenMetrics
//! text format (which Prometheus scrapes) by the admin listener ([`crate::admin`]).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use hello_edge::{Route, STATUSES};

use crate::requests::Requests;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `route` label of an answer whose path named no route, or that was refused before routing.
const NO_ROUTE: &str = "none";

/// How many `route` labels there are: the core's routes, and [`NO_ROUTE`] after them.
const ROUTE_LABELS: usize = Route::NAMES.len() + 1;

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
    /// The series of `requests` each answer counts in, found once: the family's lookup takes a
    /// lock and a hash of the labels, which every request would otherwise pay.
    answered: [[OnceLock<Counter>; STATUSES.len()]; ROUTE_LABELS],
    duration: Histogram,
    connections: Gauge,
    at_cap_now: Gauge,
    at_cap: Counter<f64, AtomicU64>,
    accept_errors: Counter,
    cut_off: Counter,
}

impl Metrics {
    /// Every metric at zero, registered under the `hello_edge` prefix; the requests in flight
    /// are `in_flight`'s count, read at each scrape.
    pub(crate) fn new(in_flight: Arc<Requests>) -> Metrics {
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
        registry.register_collector(Box::new(InFlightGauge(in_flight)));
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
            answered: Default::default(),
            duration,
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

    /// Counts an open connection until the guard is dropped.
    pub(crate) fn connection_opened(&self) -> Open {
        self.connections.inc();
        Open(self.connections.clone())
    }

    /// Records an answer as it is sent, `elapsed` after its head arrived.
    pub(crate) fn answered(&self, reply: &hello_edge::Reply, elapsed: Duration) {
        let labels = Answered {
            route: reply.route().unwrap_or(NO_ROUTE),
            status: reply.status().as_u16(),
        };
        let route = match reply.route() {
            Some(name) => Route::NAMES.iter().position(|route| *route == name),
            None => Some(Route::NAMES.len()),
        };
        let status = STATUSES.iter().position(|status| *status == reply.status());
        match (route, status) {
            (Some(route), Some(status)) => self.answered[route][status]
                .get_or_init(|| self.requests.get_or_create(&labels).clone())
                .inc(),
            // Not one the core gives today: counted all the same.
            _ => self.requests.get_or_create(&labels).inc(),
        };
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

    /// Records requests cut off at shutdown.
    pub(crate) fn cut_off(&self, requests: usize) {
        self.cut_off.inc_by(requests as u64);
    }
}

/// `requests_in_flight`: the drain's own count of the requests waiting for their answer, read at
/// each scrape.
#[derive(Debug)]
struct InFlightGauge(Arc<Requests>);

impl Collector for InFlightGauge {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(i64::try_from(self.0.now()).unwrap_or(i64::MAX));
        let metric = encoder.encode_descriptor(
            "requests_in_flight",
            "Requests waiting for their answer",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
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
