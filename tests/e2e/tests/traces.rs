//! The hosts' traces, on a real collector: Jaeger ([`Jaeger`], built from its Go module at the
//! pinned version) takes OTLP on loopback and gives each trace back through its query API. A
//! client sends `traceparent`, as a traced caller does, and the host's span for that request
//! must be in the collector, a child of the caller's span, with the HTTP semantic conventions'
//! attributes.
//!
//! Spin exports over OTLP/HTTP when the standard OTLP variables name a collector; `wash dev`
//! over OTLP/gRPC when any `OTEL_` variable is set. `wasmtime serve` has no OpenTelemetry. The
//! native server's spans are checked beside its binary, in `native/tests/traces.rs`.

use std::time::Duration;

use http::Method;
use support::client::{self, Protocol};
use support::component::WASIP2;
use support::host::{Host, Launch, WasmHost, assert_clean};
use support::jaeger::{Jaeger, PARENT_ID, parents, tag, traceparent};
use support::spin::SpinUp;
use support::wash::WashDev;

/// The delay each host serves with: the default, which the request's span must hold.
const DELAY: Duration = hello_edge::Delay::DEFAULT.as_duration();

/// The caller's trace, as W3C Trace Context's example writes it (its span is [`PARENT_ID`]).
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// `spin up`, with `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` naming the collector, exports a server
/// span for a request carrying a `traceparent`: the caller's span is its parent, it has the HTTP
/// attributes and the service's name, it lasts the delay, and Spin's span for running the
/// component is its child.
#[tokio::test]
async fn spin_traces_a_request_as_a_child_of_the_callers_span() {
    let jaeger = Jaeger::start().await;
    let endpoint = jaeger.traces_endpoint();
    let mut spin = SpinUp::LATEST
        .serve(
            &WASIP2.manifest(),
            &WASIP2.wasm(),
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
                ("OTEL_SERVICE_NAME", "hello-edge"),
            ],
        )
        .await;
    let answer = ask_under(spin.addr(), TRACE_ID).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "<h1>hello, trace!</h1>");

    let is_server = |span: &serde_json::Value| tag(span, "span.kind").as_deref() == Some("server");
    let trace = jaeger
        .spans(TRACE_ID, Duration::from_secs(30), is_server)
        .await;
    let server = trace.span(is_server);
    assert_eq!(parents(server), [PARENT_ID], "{server:#}");
    assert_eq!(trace.service(server), "hello-edge");
    assert_request_span(
        server,
        &[
            ("http.request.method", "GET"),
            ("url.path", "/hello/trace"),
            ("http.route", "/..."),
            ("http.response.status_code", "200"),
            ("network.protocol.name", "http"),
        ],
    );
    let server_id = server["spanID"].as_str().unwrap().to_owned();
    assert_eq!(server["operationName"], "GET /...", "{server:#}");
    let component = trace.span(|span| span["operationName"] == "execute_wasm_component hello-edge");
    assert_eq!(parents(component), [server_id], "{component:#}");

    let stopped = spin.stop().await;
    assert_clean(&spin.label(), &stopped.log);
    eprintln!("spin's spans for trace {TRACE_ID}: {:?}", trace.summary());
}

/// `wash dev` (wasmCloud's host) exports its spans over OTLP/gRPC when its environment (here
/// `dev.environment` in `.wash/config.yaml`) names a collector: its span for a request carrying
/// a `traceparent` is a child of the caller's span, of kind internal, with the HTTP attributes,
/// under the service `OTEL_SERVICE_NAME` names.
#[tokio::test]
async fn wash_traces_a_request_as_a_child_of_the_callers_span() {
    let jaeger = Jaeger::start().await;
    let endpoint = format!("http://{}", jaeger.otlp_grpc);
    let launch = Launch::default().and_host_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "hello-edge"),
    ]);
    let mut wash = WashDev.serve(&WASIP2, &WASIP2.wasm(), &launch).await;
    let answer = ask_under(wash.addr(), WASH_TRACE_ID).await;
    assert_eq!(answer.status, 200);
    let is_request = |span: &serde_json::Value| span["operationName"] == "handle_http_request";
    let trace = jaeger
        .spans(WASH_TRACE_ID, Duration::from_secs(30), is_request)
        .await;
    let request = trace.span(is_request);
    assert_eq!(parents(request), [PARENT_ID], "{request:#}");
    assert_eq!(trace.service(request), "hello-edge");
    assert_eq!(tag(request, "span.kind").as_deref(), Some("internal"));
    assert_request_span(
        request,
        &[
            ("http.request.method", "GET"),
            ("url.path", "/hello/trace"),
            ("http.response.status_code", "200"),
        ],
    );
    let request_id = request["spanID"].as_str().unwrap().to_owned();
    let handler = trace.span(|span| span["operationName"] == "invoke_component_handler");
    assert_eq!(parents(handler), [request_id], "{handler:#}");
    eprintln!(
        "wash's spans for trace {WASH_TRACE_ID}, service {:?}: {:?}",
        trace.service(request),
        trace.summary()
    );
    let stopped = wash.stop().await;
    assert_clean(&wash.label(), &stopped.log);
}

/// The trace wash is asked under (each test has a collector of its own).
const WASH_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4737";

/// A host's span for the request: each of `tags` as given, and it lasts at least the delay, as
/// the request did.
fn assert_request_span(span: &serde_json::Value, tags: &[(&str, &str)]) {
    for (key, value) in tags {
        assert_eq!(tag(span, key).as_deref(), Some(*value), "{key}: {span:#}");
    }
    let micros = span["duration"].as_u64().expect("a span's duration");
    assert!(
        Duration::from_micros(micros) >= DELAY,
        "the request's span ended before the delay: {micros} µs: {span:#}"
    );
}

/// `GET /hello/trace` of the host at `addr`, as a caller in trace `trace_id` whose span is
/// [`PARENT_ID`] sends it.
async fn ask_under(addr: std::net::SocketAddr, trace_id: &str) -> client::Answer {
    client::send(
        addr,
        Protocol::Http1,
        Method::GET,
        "/hello/trace",
        &[("traceparent".to_owned(), traceparent(trace_id))],
    )
    .await
    .unwrap()
}
