//! The `hello-edge` binary's traces, on a real collector: Jaeger (`support::jaeger`, built from
//! its Go module by `cargo xtask setup`) takes OTLP/HTTP on loopback, and each test reads back
//! what the server sent through Jaeger's query API. The server is configured only through the
//! standard OpenTelemetry environment, as an operator configures it.
//!
//! A request is one server span with the HTTP semantic conventions' attributes, a child of the
//! caller's `traceparent`; a malformed `traceparent` starts a trace of its own and changes
//! nothing in the answer; the access log line carries the trace's ids; a collector that is down
//! or never answers costs the requests nothing; and with no collector named, no exporter runs.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::Value;
use support::client::{self, Answer, Protocol};
use support::host::{Host, Served};
use support::jaeger::{Jaeger, parents, tag};
use support::native::NativeBinary;
use support::scenarios;

/// The delay the server waits: the default, which a request's span must last.
const DELAY: Duration = hello_edge::Delay::DEFAULT.as_duration();

/// The caller's span, as W3C Trace Context's example writes it; each test has a trace id of its
/// own.
const PARENT_ID: &str = "00f067aa0ba902b7";

/// The thread the OpenTelemetry SDK's batch processor exports from.
const EXPORT_THREAD: &str = "OpenTelemetry.Traces.BatchProcessor";

/// Each request is one server span, a child of the caller's span (the `traceparent` it sent, with
/// its `tracestate` kept), named and described as the HTTP semantic conventions say, under the
/// service `hello-edge` and the resource attributes the environment adds; it lasts the delay, and
/// the request's JSON access line names its trace and span. HTTP/1.1 and HTTP/2 alike, and a path
/// no route names.
#[tokio::test]
async fn each_request_is_a_span_parented_on_the_callers_traceparent() {
    let jaeger = Jaeger::start().await;
    let endpoint = format!("http://{}", jaeger.otlp_http);
    let mut server = traced(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=test",
        ),
    ])
    .await;

    let cases = [
        (
            Protocol::Http1,
            "/hello/trace",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        (
            Protocol::Http2,
            "/hello/trace",
            "4bf92f3577b34da6a3ce929d0e0e4737",
        ),
        (
            Protocol::Http1,
            "/nowhere",
            "4bf92f3577b34da6a3ce929d0e0e4738",
        ),
    ];
    for (protocol, path, trace_id) in cases {
        let traceparent = format!("00-{trace_id}-{PARENT_ID}-01");
        let answer = ask(
            server.addr(),
            protocol,
            path,
            &[("traceparent", &traceparent), ("tracestate", "edge=1")],
        )
        .await;
        let found = path != "/nowhere";
        assert_eq!(answer.status, if found { 200 } else { 404 }, "{path}");

        let trace = jaeger
            .spans(trace_id, Duration::from_secs(30), |_| true)
            .await;
        let span = trace.span(|_| true);
        assert_eq!(parents(span), [PARENT_ID], "{span:#}");
        assert_eq!(trace.service(span), "hello-edge", "{span:#}");
        let process = &trace.processes[span["processID"].as_str().unwrap()];
        assert!(
            process["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|tag| tag["key"] == "deployment.environment.name" && tag["value"] == "test"),
            "OTEL_RESOURCE_ATTRIBUTES not on the resource: {process:#}"
        );
        let version = match protocol {
            Protocol::Http1 => "1.1",
            Protocol::Http2 => "2",
        };
        let (name, route, status, delay) = if found {
            ("GET /hello/{name}", Some("/hello/{name}"), "200", DELAY)
        } else {
            ("GET", None, "404", Duration::ZERO)
        };
        assert_eq!(span["operationName"], name, "{span:#}");
        let delay_ms = delay.as_millis().to_string();
        let expected = [
            ("span.kind", Some("server")),
            ("http.request.method", Some("GET")),
            ("url.scheme", Some("http")),
            ("url.path", Some(path)),
            ("http.route", route),
            ("http.response.status_code", Some(status)),
            ("network.protocol.name", None),
            ("client.port", None),
            ("network.protocol.version", Some(version)),
            ("client.address", Some("127.0.0.1")),
            ("hello_edge.delay_ms", Some(delay_ms.as_str())),
            ("w3c.tracestate", Some("edge=1")),
        ];
        for (key, value) in expected {
            assert_eq!(tag(span, key).as_deref(), value, "{key}: {span:#}");
        }
        // The conventions' integers are integers.
        for key in ["http.response.status_code", "hello_edge.delay_ms"] {
            let tag = span["tags"]
                .as_array()
                .unwrap()
                .iter()
                .find(|tag| tag["key"] == key);
            assert_eq!(tag.unwrap()["type"], "int64", "{key}: {span:#}");
        }
        let lasted = Duration::from_micros(span["duration"].as_u64().unwrap());
        assert!(
            lasted >= delay && lasted < delay + Duration::from_secs(1),
            "the span lasted {lasted:?}, the request waited {delay:?}: {span:#}"
        );

        let line = access_line(&server, path, trace_id).await;
        assert_eq!(line["fields"]["span_id"], span["spanID"], "{line}");
    }

    let stopped = server.stop().await;
    assert!(stopped.status.success(), "{}", stopped.log);
}

/// A malformed `traceparent` is ignored: the answer is the one sent without it, field for field,
/// and the request's span starts a trace of its own, with no parent.
#[tokio::test]
async fn a_malformed_traceparent_starts_a_trace_of_its_own() {
    let jaeger = Jaeger::start().await;
    let endpoint = jaeger.traces_endpoint();
    let mut server = traced(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint)]).await;
    let plain = ask(server.addr(), Protocol::Http1, "/hello/trace", &[]).await;
    let malformed = [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "not a traceparent",
    ];
    for (i, traceparent) in malformed.into_iter().enumerate() {
        // Each under a path of its own, for its access line; the page is the same but the name.
        let path = format!("/hello/trace{i}");
        let answer = ask(
            server.addr(),
            Protocol::Http1,
            &path,
            &[("traceparent", traceparent)],
        )
        .await;
        let plain = ask(server.addr(), Protocol::Http1, &path, &[]).await;
        assert_eq!(answer.status, plain.status, "{traceparent}");
        assert_eq!(answer.text(), plain.text(), "{traceparent}");
        assert_eq!(fields(&answer), fields(&plain), "{traceparent}");

        // The log names the trace the span started.
        let line = access_line(&server, &path, "").await;
        let trace_id = line["fields"]["trace_id"].as_str().unwrap().to_owned();
        assert!(!traceparent.contains(&trace_id), "{traceparent}: {line}");
        let trace = jaeger
            .spans(&trace_id, Duration::from_secs(30), |_| true)
            .await;
        let span = trace.span(|_| true);
        assert_eq!(
            parents(span),
            Vec::<String>::new(),
            "{traceparent}: {span:#}"
        );
        assert_eq!(span["spanID"], line["fields"]["span_id"], "{span:#}");
    }
    assert_eq!(plain.status, 200);
    let stopped = server.stop().await;
    assert!(stopped.status.success(), "{}", stopped.log);
}

/// A collector that accepts connections and never answers, or one that is down, costs the
/// requests nothing: 300 requests at once are answered as fast as without traces, while the
/// exporter waits on the collector from a thread of its own. Past its small queue, spans are
/// dropped, and the log says so once; at shutdown the server drains and exits at once, with at
/// most the flush's bound spent on the collector.
#[tokio::test]
async fn a_collector_that_never_answers_costs_the_requests_nothing() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    // Accepts every connection and holds it, unanswered, counting them.
    let accepted = Arc::new(AtomicUsize::new(0));
    let held = tokio::spawn({
        let accepted = Arc::clone(&accepted);
        async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                held.push(stream);
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    for (collector, what) in [(silent_addr, "never answers"), (down, "is down")] {
        let endpoint = format!("http://{collector}/v1/traces");
        let mut server = traced(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "16"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ])
        .await;
        for _ in 0..2 {
            scenarios::assert_overlap(server.addr(), 300, DELAY, DELAY + Duration::from_secs(1))
                .await;
        }
        if collector == silent_addr {
            // The exporter waits on it; the queue fills, and spans are dropped.
            server
                .process()
                .wait_for(
                    "the SDK's word that it dropped spans",
                    Duration::from_secs(10),
                    |line| line.contains("dropped a Span").then_some(()),
                )
                .await;
        }
        let stopping = Instant::now();
        let stopped = server.stop().await;
        let took = stopping.elapsed();
        assert!(
            stopped.status.success(),
            "collector {what}: {}",
            stopped.log
        );
        assert!(
            took < hello_edge_native::traces::FLUSH_AT_SHUTDOWN + Duration::from_secs(2),
            "collector {what}: stopping took {took:?}: {}",
            stopped.log
        );
        eprintln!("collector {what}: stopped in {took:?}");
    }
    held.abort();
    let accepted = accepted.load(Ordering::Relaxed);
    assert!(
        accepted > 0,
        "the exporter never reached the silent collector"
    );
}

/// With no collector named, or with `OTEL_SDK_DISABLED=true`, no exporter runs: the process has
/// no exporting thread, says nothing of traces, and answers as always.
#[tokio::test]
async fn without_a_collector_no_exporter_runs() {
    let cases: [&[(&str, &str)]; 3] = [
        &[],
        &[
            ("OTEL_SERVICE_NAME", "hello-edge"),
            ("OTEL_TRACES_SAMPLER", "always_on"),
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    ];
    for env in cases {
        let mut server = traced(env).await;
        let answer = ask(server.addr(), Protocol::Http1, "/hello/trace", &[]).await;
        assert_eq!(answer.status, 200);
        let pid = server.pid().unwrap();
        let threads = thread_names(pid);
        assert!(
            !threads
                .iter()
                .any(|name| EXPORT_THREAD.starts_with(name.as_str())),
            "{env:?}: {threads:?}"
        );
        let line = access_line(&server, "/hello/trace", "").await;
        assert!(line["fields"].get("trace_id").is_none(), "{env:?}: {line}");
        let stopped = server.stop().await;
        assert!(stopped.status.success(), "{}", stopped.log);
        assert!(!stopped.log.contains("OTLP"), "{env:?}: {}", stopped.log);
    }
    // And with one named, it does.
    let mut server = traced(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")]).await;
    let threads = thread_names(server.pid().unwrap());
    assert!(
        threads
            .iter()
            .any(|name| EXPORT_THREAD.starts_with(name.as_str())),
        "{threads:?}"
    );
    server.stop().await;
}

/// An unsupported protocol is logged, quoted, and ignored, as the OpenTelemetry specification
/// says of a value it cannot use: the traces still go out as OTLP/HTTP in protobuf.
#[tokio::test]
async fn an_unsupported_protocol_is_logged_and_ignored() {
    let jaeger = Jaeger::start().await;
    let endpoint = format!("http://{}", jaeger.otlp_http);
    let mut server = traced(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ])
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4739";
    let traceparent = format!("00-{trace_id}-{PARENT_ID}-01");
    let answer = ask(
        server.addr(),
        Protocol::Http1,
        "/",
        &[("traceparent", &traceparent)],
    )
    .await;
    assert_eq!(answer.status, 200);
    let trace = jaeger
        .spans(trace_id, Duration::from_secs(30), |_| true)
        .await;
    assert_eq!(trace.span(|_| true)["operationName"], "GET /");
    let stopped = server.stop().await;
    assert!(
        stopped
            .log
            .contains(r#"OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\" is not supported"#),
        "{}",
        stopped.log
    );
}

/// The binary, with JSON logs and its access lines on, and these variables.
async fn traced(env: &[(&str, &str)]) -> Served {
    let binary = Path::new(env!("CARGO_BIN_EXE_hello-edge"));
    let mut vars = vec![
        (
            "RUST_LOG",
            "hello_edge=info,hello_edge_native::access=debug,opentelemetry=warn",
        ),
        // Spans leave within a tenth of a second, not the default five.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    vars.extend_from_slice(env);
    NativeBinary::start_with(binary, &["--log-format", "json"], &vars, None).await
}

/// `GET path` with these header fields.
async fn ask(addr: SocketAddr, protocol: Protocol, path: &str, fields: &[(&str, &str)]) -> Answer {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    client::send(addr, protocol, Method::GET, path, &fields)
        .await
        .unwrap()
}

/// The JSON access line of the request for `path` in trace `trace_id` (any trace, if empty).
async fn access_line(server: &Served, path: &str, trace_id: &str) -> Value {
    access_line_matching(server, |line| {
        line["fields"]["path"] == path
            && (trace_id.is_empty() || line["fields"]["trace_id"] == trace_id)
    })
    .await
}

/// The first JSON access line of the server's log that satisfies `which`.
async fn access_line_matching(server: &Served, which: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let log = server.log().text();
        let found = log
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["target"] == "hello_edge_native::access")
            .find(|line| which(line));
        if let Some(line) = found {
            return line;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no such access line: {log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An answer's header fields but `date`, sorted.
fn fields(answer: &Answer) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = answer
        .headers
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    fields.sort();
    fields
}

/// The names of the threads of process `pid`, as Linux keeps them (15 bytes at most).
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}
