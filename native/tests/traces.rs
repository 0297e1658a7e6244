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
use support::jaeger::{Jaeger, PARENT_ID, parents, tag, tag_type, traceparent};
use support::native::NativeBinary;
use support::scenarios;

/// The delay the server waits: the default, which a request's span must last.
const DELAY: Duration = hello_edge::Delay::DEFAULT.as_duration();

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
            None,
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        (
            Protocol::Http2,
            "/hello/trace",
            Some("x=1"),
            "4bf92f3577b34da6a3ce929d0e0e4737",
        ),
        (
            Protocol::Http1,
            "/nowhere",
            None,
            "4bf92f3577b34da6a3ce929d0e0e4738",
        ),
    ];
    for (protocol, path, query, trace_id) in cases {
        let target = match query {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        let answer = ask(
            server.addr(),
            protocol,
            &target,
            &[
                ("traceparent", &traceparent(trace_id)),
                ("tracestate", "edge=1"),
            ],
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
        assert_eq!(
            trace
                .resource(span, "deployment.environment.name")
                .as_deref(),
            Some("test"),
            "OTEL_RESOURCE_ATTRIBUTES not on the resource: {:#}",
            trace.processes
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
            ("url.query", query),
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
            assert_eq!(
                tag_type(span, key).as_deref(),
                Some("int64"),
                "{key}: {span:#}"
            );
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

/// A collector that accepts connections and never answers, or one that is down (its port
/// refuses), costs the requests nothing: twice, 300 requests at once are all answered within the
/// delay and a second, while the exporter waits on the collector, or fails, on a thread of its
/// own. With the default log filter, the log says so: past its small queue, the exporter drops
/// spans and says it once; a failed export is logged. At shutdown the server drains and exits
/// within the flush's bound (5 s) and a margin.
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
    // A port held, bound but not listening, for the test's length: a connection to it is
    // refused, and no other test can be given it.
    let down = tokio::net::TcpSocket::new_v4().unwrap();
    down.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let down = down.local_addr().unwrap();
    for (collector, what, says) in [
        (silent_addr, "never answers", "SpanDroppingStarted"),
        (down, "is down", "BatchSpanProcessor.ExportError"),
    ] {
        let endpoint = format!("http://{collector}/v1/traces");
        let binary = Path::new(env!("CARGO_BIN_EXE_hello-edge"));
        // The log's default filter, which must show the exporter's warnings.
        let env = [
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "16"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ];
        let mut server = NativeBinary::start_with(binary, &[], &env, None).await;
        for _ in 0..2 {
            scenarios::assert_overlap(server.addr(), 300, DELAY, DELAY + Duration::from_secs(1))
                .await;
        }
        server
            .process()
            .wait_for(
                "the exporter's word on the collector",
                Duration::from_secs(10),
                |line| line.contains(says).then_some(()),
            )
            .await;
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
        // Said once, however many spans it dropped.
        let dropped = stopped.log.matches("SpanDroppingStarted").count();
        assert!(dropped <= 1, "collector {what}: {}", stopped.log);
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
/// no exporting thread, holds no more sockets than at start once its client has gone, says
/// nothing of traces, and answers as always.
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
        let pid = server.pid().unwrap();
        // Its listener and tokio's signal pipe.
        let at_start = sockets(pid);
        let answer = ask(server.addr(), Protocol::Http1, "/hello/trace", &[]).await;
        assert_eq!(answer.status, 200);
        let threads = thread_names(pid);
        assert!(
            !threads
                .iter()
                .any(|name| EXPORT_THREAD.starts_with(name.as_str())),
            "{env:?}: {threads:?}"
        );
        let line = access_line(&server, "/hello/trace", "").await;
        assert!(line["fields"].get("trace_id").is_none(), "{env:?}: {line}");
        let started = Instant::now();
        while sockets(pid) != at_start {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{env:?}: {} sockets open, {at_start} at start",
                sockets(pid)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

/// An unsupported protocol or sampler is logged, quoted, and ignored, as the OpenTelemetry
/// specification says of a value an SDK cannot use: the traces still go out as OTLP/HTTP in
/// protobuf, every one sampled, under the service `OTEL_SERVICE_NAME` names.
#[tokio::test]
async fn unsupported_settings_are_logged_and_ignored() {
    let jaeger = Jaeger::start().await;
    let endpoint = format!("http://{}", jaeger.otlp_http);
    let mut server = traced(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_SERVICE_NAME", "edge-under-test"),
    ])
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4739";
    let answer = ask(
        server.addr(),
        Protocol::Http1,
        "/",
        &[("traceparent", &traceparent(trace_id))],
    )
    .await;
    assert_eq!(answer.status, 200);
    let trace = jaeger
        .spans(trace_id, Duration::from_secs(30), |_| true)
        .await;
    let span = trace.span(|_| true);
    assert_eq!(span["operationName"], "GET /");
    assert_eq!(trace.service(span), "edge-under-test");
    let stopped = server.stop().await;
    for quoted in [
        r#"OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\" is not supported"#,
        "Unrecognized sampler type 'sometimes'",
    ] {
        assert!(stopped.log.contains(quoted), "{quoted}: {}", stopped.log);
    }
}

/// A client that leaves during the delay ends its request's span then, with no status: no
/// answer was sent.
#[tokio::test]
async fn a_request_whose_client_left_has_no_status() {
    let jaeger = Jaeger::start().await;
    let mut server = traced(&[(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        &jaeger.traces_endpoint(),
    )])
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4741";
    let request = format!(
        "GET /hello/gone HTTP/1.1\r\nhost: edge\r\ntraceparent: {}\r\n\r\n",
        traceparent(trace_id)
    );
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    let trace = jaeger
        .spans(trace_id, Duration::from_secs(30), |_| true)
        .await;
    let span = trace.span(|_| true);
    assert_eq!(parents(span), [PARENT_ID], "{span:#}");
    assert_eq!(tag(span, "http.response.status_code"), None, "{span:#}");
    let lasted = Duration::from_micros(span["duration"].as_u64().unwrap());
    assert!(lasted < DELAY, "the span lasted {lasted:?}: {span:#}");
    let stopped = server.stop().await;
    assert!(stopped.status.success(), "{}", stopped.log);
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

/// How many sockets process `pid` holds.
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
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
