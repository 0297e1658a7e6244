//! Traces over OTLP: with the standard OpenTelemetry environment naming a collector, each request
//! is one server span, exported by OTLP/HTTP in protobuf; with none, nothing is set up and a
//! request costs one branch.
//!
//! * [`Settings::from_env`] reads the variables this module decides on (whether to export, and
//!   the protocol); the OpenTelemetry SDK reads the rest itself (the endpoint, headers, timeout,
//!   `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, the batch
//!   processor's `OTEL_BSP_*`).
//! * [`Traces::start`] builds the exporter. Spans wait in the SDK's batch processor's bounded
//!   queue (2,048 by default) and are sent from its own thread: a request never waits for the
//!   collector. When the queue is full, spans are dropped, and the SDK logs it once.
//! * [`request_span`] is a request's span, with the HTTP semantic conventions' attributes and the
//!   caller's `traceparent` as its parent; [`Traces::layer`] turns such spans, and only those,
//!   into OpenTelemetry spans.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, Version};
use opentelemetry::InstrumentationScope;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::resource::{EnvResourceDetector, ResourceDetector};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// The target of the requests' spans. They are at `TRACE`, so a log at its default level never
/// formats them: only [`Traces::layer`] takes them.
pub const SPAN_TARGET: &str = "hello_edge_native::traces::request";

/// The service name the spans carry unless `OTEL_SERVICE_NAME` (or `service.name` in
/// `OTEL_RESOURCE_ATTRIBUTES`) names another.
pub const DEFAULT_SERVICE_NAME: &str = "hello-edge";

/// How long the exporter may take, at shutdown, to send the spans it still holds.
pub const FLUSH_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// The OpenTelemetry variables this module reads itself, each named once here; the SDK reads the
/// others.
pub mod env {
    /// The collector, for every signal: the traces go to `{it}/v1/traces`.
    pub const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    /// The collector's traces endpoint, as it is: it wins over [`ENDPOINT`].
    pub const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
    /// The protocol, for every signal.
    pub const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
    /// The traces' protocol: it wins over [`PROTOCOL`].
    pub const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
    /// `true` turns the SDK off, whatever else is set.
    pub const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
    /// The service name.
    pub const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
}

/// The one protocol this build exports with, the OpenTelemetry specification's default.
const HTTP_PROTOBUF: &str = "http/protobuf";

/// What the environment asks for, as this module reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where the traces go, as the variable that named it says (the SDK adds `/v1/traces` to
    /// [`env::ENDPOINT`]); `None`: no export.
    pub endpoint: Option<String>,
    /// What the environment asked for that this build does not do, each a line to log: the
    /// specification says an unsupported value is logged and ignored.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Reads the variables through `var` (`std::env::var(name).ok()` in the binary).
    ///
    /// It exports when [`env::TRACES_ENDPOINT`] or [`env::ENDPOINT`] is set and not empty, and
    /// [`env::SDK_DISABLED`] is not `true` (in any case), as the specification says.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Settings {
        // Empty is unset, as the SDK reads them.
        let set = |name: &str| var(name).filter(|value| !value.is_empty());
        let disabled =
            set(env::SDK_DISABLED).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let endpoint = set(env::TRACES_ENDPOINT).or_else(|| set(env::ENDPOINT));
        let mut warnings = Vec::new();
        if disabled || endpoint.is_none() {
            return Settings {
                endpoint: None,
                warnings,
            };
        }
        for name in [env::TRACES_PROTOCOL, env::PROTOCOL] {
            if let Some(protocol) = set(name) {
                if protocol.trim() != HTTP_PROTOBUF {
                    warnings.push(format!(
                        "{name}={protocol:?} is not supported by this build: the traces are \
                         sent as {HTTP_PROTOBUF}, to the collector's OTLP/HTTP port (4318 by \
                         default)"
                    ));
                }
                break;
            }
        }
        if let Some(url) = endpoint
            .as_deref()
            .filter(|url| url.trim().starts_with("https:"))
        {
            warnings.push(format!(
                "the OTLP endpoint {url:?} is HTTPS, which this build does not speak: export fails \
                 until it is plain HTTP (a collector beside the server, or a sidecar)"
            ));
        }
        Settings { endpoint, warnings }
    }
}

/// The exporter, running: its spans' layer for the log's subscriber, and the flush at shutdown.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Builds the OTLP/HTTP exporter and its batch processor, which runs on a thread of its own.
    /// Nothing is sent until a span ends.
    pub fn start() -> anyhow::Result<Traces> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .map_err(|err| anyhow::anyhow!("cannot set up the OTLP exporter: {err}"))?;
        let resource = if service_named() {
            Resource::builder().build()
        } else {
            Resource::builder()
                .with_service_name(DEFAULT_SERVICE_NAME)
                .build()
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Ok(Traces { provider })
    }

    /// The layer that makes each request's span ([`request_span`]) an OpenTelemetry span, and
    /// takes nothing else: not the log's events, nor the SDK's own warnings.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(
                self.provider.tracer_with_scope(
                    InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
                        .with_version(env!("CARGO_PKG_VERSION"))
                        .build(),
                ),
            )
            .with_location(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_target(SPAN_TARGET, tracing::Level::TRACE))
    }

    /// Sends what the exporter still holds, within [`FLUSH_AT_SHUTDOWN`], and stops it. Called
    /// off the runtime, once the server has drained.
    pub fn shutdown(self) {
        if let Err(err) = self.provider.shutdown_with_timeout(FLUSH_AT_SHUTDOWN) {
            tracing::warn!(%err, "the OTLP exporter did not flush its spans at shutdown");
        }
    }
}

/// Whether the environment names the service (`OTEL_SERVICE_NAME`, or `service.name` in
/// `OTEL_RESOURCE_ATTRIBUTES`): if not, the spans carry [`DEFAULT_SERVICE_NAME`].
fn service_named() -> bool {
    std::env::var(env::SERVICE_NAME).is_ok_and(|name| !name.is_empty())
        || EnvResourceDetector::new()
            .detect()
            .get(&opentelemetry::Key::new("service.name"))
            .is_some()
}

/// A request's span, named and given its attributes as the HTTP semantic conventions say for a
/// server span (their required attributes, and of the recommended ones
/// `network.protocol.version` and `client.address`), and parented on the caller's `traceparent`
/// (with its `tracestate`) if the request carries a valid one; a malformed one is ignored, and
/// the span starts a trace of its own.
///
/// It starts now and ends when it is dropped: the caller holds it until the answer is sent, so
/// it lasts the delay, and records the status then ([`answered`]): a request whose client left
/// before its answer ends without one. Disabled, and built for nothing, unless a layer takes
/// [`SPAN_TARGET`] at `TRACE` ([`Traces::layer`] does).
pub fn request_span(
    request: &http::Request<impl Sized>,
    reply: &hello_edge::Reply,
    peer: SocketAddr,
) -> tracing::Span {
    if !tracing::enabled!(target: SPAN_TARGET, tracing::Level::TRACE) {
        return tracing::Span::none();
    }
    let method = known_method(request.method());
    let route = reply.route_template();
    let span = tracing::trace_span!(
        target: SPAN_TARGET,
        "request",
        // Formatted once, by the layer, into the span's name.
        otel.name = %SpanName { method, route },
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        http.request.method = method.unwrap_or("_OTHER"),
        http.request.method_original = method.is_none().then(|| request.method().as_str()),
        url.scheme = "http",
        url.path = request.uri().path(),
        url.query = request.uri().query(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        network.protocol.version = protocol_version(request.version()),
        client.address = %peer.ip(),
        // Integers as i64: tracing-opentelemetry records a u64 as its text.
        hello_edge.delay_ms = i64::try_from(reply.delay().as_millis()).unwrap_or(i64::MAX),
    );
    if !span.is_disabled() && request.headers().contains_key("traceparent") {
        let extractor = opentelemetry_http::HeaderExtractor(request.headers());
        let parent = TraceContextPropagator::new().extract(&extractor);
        let _ = span.set_parent(parent);
    }
    span
}

/// A request span's name, as the conventions write it: `{method} {route}`, the method alone
/// when no route was named, `HTTP` for a method they do not know.
struct SpanName {
    method: Option<&'static str>,
    route: Option<&'static str>,
}

impl std::fmt::Display for SpanName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.method, self.route) {
            (Some(method), Some(route)) => write!(f, "{method} {route}"),
            (Some(method), None) => f.write_str(method),
            (None, _) => f.write_str("HTTP"),
        }
    }
}

/// Records on a request's span the status it was answered with, as it is sent; a server error
/// (5xx) is the span's error, as the conventions say (`error.type` is the status code).
pub fn answered(span: &tracing::Span, status: http::StatusCode) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "error");
        span.record("error.type", status.as_str());
    }
}

/// The ids a log line of a request carries, as W3C Trace Context writes them: the trace's (32
/// hex digits) and the span's (16); `None` when the span is not exported.
pub fn ids(span: &tracing::Span) -> Option<(String, String)> {
    if span.is_disabled() {
        return None;
    }
    use opentelemetry::trace::TraceContextExt;
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        (
            span_context.trace_id().to_string(),
            span_context.span_id().to_string(),
        )
    })
}

/// The method as the semantic conventions name it, if it is one of HTTP's (RFC 9110 and RFC
/// 5789's PATCH); any other is `_OTHER`, with the method as sent beside it.
fn known_method(method: &Method) -> Option<&'static str> {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN.into_iter().find(|known| *known == method.as_str())
}

/// `network.protocol.version`: `1.0`, `1.1` or `2`.
fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        Settings::from_env(|name| {
            vars.iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn exports_only_when_an_endpoint_is_named() {
        assert_eq!(settings(&[]).endpoint, None);
        assert_eq!(settings(&[(env::ENDPOINT, "")]).endpoint, None);
        assert_eq!(
            settings(&[(env::PROTOCOL, "http/protobuf"), (env::SERVICE_NAME, "x")]).endpoint,
            None
        );
        assert_eq!(
            settings(&[(env::ENDPOINT, "http://c:4318")])
                .endpoint
                .as_deref(),
            Some("http://c:4318")
        );
        assert_eq!(
            settings(&[
                (env::ENDPOINT, "http://c:4318"),
                (env::TRACES_ENDPOINT, "http://t:4318/v1/traces")
            ])
            .endpoint
            .as_deref(),
            Some("http://t:4318/v1/traces")
        );
    }

    #[test]
    fn sdk_disabled_wins() {
        let on = [(env::ENDPOINT, "http://c:4318")];
        for disabled in ["true", "TRUE", " True "] {
            let vars = [on[0], (env::SDK_DISABLED, disabled)];
            assert_eq!(settings(&vars).endpoint, None, "{disabled}");
        }
        for not_disabled in ["false", "1", "yes", ""] {
            let vars = [on[0], (env::SDK_DISABLED, not_disabled)];
            assert!(settings(&vars).endpoint.is_some(), "{not_disabled}");
        }
    }

    #[test]
    fn another_protocol_is_logged_and_ignored() {
        let on = (env::ENDPOINT, "http://c:4318");
        assert!(
            settings(&[on, (env::PROTOCOL, "http/protobuf")])
                .warnings
                .is_empty()
        );
        let grpc = settings(&[on, (env::PROTOCOL, "grpc")]);
        assert!(grpc.endpoint.is_some());
        assert_eq!(grpc.warnings.len(), 1);
        assert!(
            grpc.warnings[0].contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\""),
            "{grpc:?}"
        );
        // The traces' own variable wins over the general one, either way.
        let traces = settings(&[
            on,
            (env::PROTOCOL, "grpc"),
            (env::TRACES_PROTOCOL, "http/protobuf"),
        ]);
        assert!(traces.warnings.is_empty(), "{traces:?}");
        let https = settings(&[(env::ENDPOINT, "https://c:4318")]);
        assert!(
            https.warnings[0].contains("\"https://c:4318\" is HTTPS"),
            "{https:?}"
        );
        let json = settings(&[on, (env::TRACES_PROTOCOL, "http/json")]);
        assert!(json.warnings[0].contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=\"http/json\""));
    }

    #[test]
    fn names_spans_as_the_conventions_do() {
        let name = |method, route| SpanName { method, route }.to_string();
        assert_eq!(
            name(Some("GET"), Some("/hello/{name}")),
            "GET /hello/{name}"
        );
        assert_eq!(name(Some("GET"), None), "GET");
        assert_eq!(name(None, Some("/")), "HTTP");
    }

    #[test]
    fn names_methods_and_versions_as_the_conventions_do() {
        assert_eq!(known_method(&Method::GET), Some("GET"));
        assert_eq!(known_method(&Method::PATCH), Some("PATCH"));
        assert_eq!(known_method(&Method::from_bytes(b"BREW").unwrap()), None);
        assert_eq!(protocol_version(Version::HTTP_10), "1.0");
        assert_eq!(protocol_version(Version::HTTP_11), "1.1");
        assert_eq!(protocol_version(Version::HTTP_2), "2");
    }
}
