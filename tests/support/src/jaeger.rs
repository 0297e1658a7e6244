//! Jaeger, the tests' trace collector: the `jaeger` binary `cargo xtask setup` builds from its Go
//! module at the pinned version, with a configuration of the tests' own. It takes OTLP over HTTP
//! and gRPC on loopback ports it is given, keeps the traces in memory, and serves its query API
//! on loopback, where the tests read a trace back by its id. It exports no telemetry of its own.
//! Stopped on drop.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::Command;

use crate::client;
use crate::cluster::bin;
use crate::process::{Log, Process};
use crate::tools::root;

/// A running Jaeger.
pub struct Jaeger {
    process: Process,
    /// Where it takes OTLP over HTTP (`/v1/traces`).
    pub otlp_http: SocketAddr,
    /// Where it takes OTLP over gRPC.
    pub otlp_grpc: SocketAddr,
    /// Its query API (`/api/traces/{id}`).
    pub query: SocketAddr,
    dir: PathBuf,
}

impl Jaeger {
    /// Starts one taking OTLP on loopback, and returns once it says it is ready.
    pub async fn start() -> Jaeger {
        Self::start_on(Ipv4Addr::LOCALHOST).await
    }

    /// Starts one taking OTLP on `otlp`, an address of this machine (a cluster's bridge, for its
    /// pods), its query API still on loopback; returns once it says it is ready.
    pub async fn start_on(otlp: Ipv4Addr) -> Jaeger {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let dir = root().join("target/jaeger-tests").join(format!(
            "{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Four distinct free ports, OTLP's two on `otlp`: each held until all four are picked.
        let held: Vec<TcpListener> = [otlp, otlp, Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST]
            .into_iter()
            .map(|ip| TcpListener::bind((ip, 0)).expect("a free port"))
            .collect();
        let ports: Vec<SocketAddr> = held
            .iter()
            .map(|listener| listener.local_addr().unwrap())
            .collect();
        drop(held);
        let (otlp_http, otlp_grpc, query, query_grpc) = (ports[0], ports[1], ports[2], ports[3]);
        // The all-in-one's pipeline (OTLP in, the memory store, the query service) with every
        // address on loopback, no batching (a span is queryable as soon as it arrives), and
        // Jaeger's own traces and metrics off.
        let config = format!(
            "service:\n  extensions: [jaeger_storage, jaeger_query]\n  pipelines:\n    traces:\n      \
             receivers: [otlp]\n      exporters: [jaeger_storage_exporter]\n  telemetry:\n    \
             metrics:\n      level: none\n\
             extensions:\n  jaeger_storage:\n    backends:\n      memory:\n        memory:\n          \
             max_traces: 10000\n  jaeger_query:\n    storage:\n      traces: memory\n    \
             enable_tracing: false\n    http:\n      endpoint: {query}\n    grpc:\n      \
             endpoint: {query_grpc}\n\
             receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: {otlp_grpc}\n      \
             http:\n        endpoint: {otlp_http}\n\
             exporters:\n  jaeger_storage_exporter:\n    trace_storage: memory\n"
        );
        let file = dir.join("jaeger.yaml");
        std::fs::write(&file, config).unwrap();
        let mut command = Command::new(bin("jaeger"));
        command.arg("--config").arg(&file);
        let mut process = Process::spawn("jaeger", &mut command);
        process
            .wait_for("that it is ready", Duration::from_secs(60), |line| {
                line.contains("Everything is ready").then_some(())
            })
            .await;
        Jaeger {
            process,
            otlp_http,
            otlp_grpc,
            query,
            dir,
        }
    }

    /// The URL of its OTLP/HTTP traces endpoint, for `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub fn traces_endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.otlp_http)
    }

    /// The spans of the trace `id` (32 hex digits), once one of them satisfies `until` (it has
    /// arrived), as the query API gives them; a failure after `timeout`.
    pub async fn spans(
        &self,
        id: &str,
        timeout: Duration,
        until: impl Fn(&Value) -> bool,
    ) -> Trace {
        let started = Instant::now();
        loop {
            let answer = client::get(self.query, &format!("/api/traces/{id}")).await;
            if let Ok(answer) = &answer
                && answer.status == 200
            {
                let body: Value = serde_json::from_slice(&answer.body).expect("a trace is JSON");
                let trace = &body["data"][0];
                let spans = trace["spans"].as_array().cloned().unwrap_or_default();
                if spans.iter().any(&until) {
                    return Trace {
                        spans,
                        processes: trace["processes"].clone(),
                    };
                }
            }
            assert!(
                started.elapsed() < timeout,
                "no such span of trace {id} reached Jaeger within {timeout:?}: {:?}\n{}",
                answer.map(|answer| answer.text()),
                self.log().text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Its log.
    pub fn log(&self) -> &Log {
        self.process.log()
    }
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A trace as Jaeger's query API gives it: its spans, and the processes (services) they name.
#[derive(Debug)]
pub struct Trace {
    /// Each span: `operationName`, `spanID`, `references` (`CHILD_OF`), `duration` (µs), `tags`.
    pub spans: Vec<Value>,
    /// By `processID`: each one's `serviceName` and `tags`.
    pub processes: Value,
}

impl Trace {
    /// The one span satisfying `which`.
    pub fn span(&self, which: impl Fn(&Value) -> bool) -> &Value {
        let mut found = self.spans.iter().filter(|span| which(span));
        let span = found
            .next()
            .unwrap_or_else(|| panic!("no such span: {:#?}", self.spans));
        assert!(found.next().is_none(), "two such spans: {:#?}", self.spans);
        span
    }

    /// The attribute `key` of `span`'s resource (its process's tags), as text.
    pub fn resource(&self, span: &Value, key: &str) -> Option<String> {
        let process = span["processID"].as_str()?;
        tag(&self.processes[process], key)
    }

    /// Each span's name, kind and duration (µs), for a test's output.
    pub fn summary(&self) -> Vec<(String, Option<String>, Option<u64>)> {
        self.spans
            .iter()
            .map(|span| {
                let name = span["operationName"].as_str().unwrap_or_default();
                (
                    name.to_owned(),
                    tag(span, "span.kind"),
                    span["duration"].as_u64(),
                )
            })
            .collect()
    }

    /// The service name of `span`'s process.
    pub fn service(&self, span: &Value) -> String {
        let process = span["processID"].as_str().unwrap_or_default();
        self.processes[process]["serviceName"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The caller's span the tests send their requests under, as W3C Trace Context's example writes
/// it.
pub const PARENT_ID: &str = "00f067aa0ba902b7";

/// A `traceparent` naming trace `trace_id` (32 hex digits) and the caller's span [`PARENT_ID`],
/// sampled.
pub fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{PARENT_ID}-01")
}

/// A span's tag `key`, as text, whatever its type.
pub fn tag(span: &Value, key: &str) -> Option<String> {
    let tag = span["tags"]
        .as_array()?
        .iter()
        .find(|tag| tag["key"] == key)?;
    Some(match &tag["value"] {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    })
}

/// The type Jaeger gives a span's tag `key` (`string`, `int64`, ...).
pub fn tag_type(span: &Value, key: &str) -> Option<String> {
    let tag = span["tags"]
        .as_array()?
        .iter()
        .find(|tag| tag["key"] == key)?;
    tag["type"].as_str().map(str::to_owned)
}

/// The span ids `span` names as its parents (`CHILD_OF` references).
pub fn parents(span: &Value) -> Vec<String> {
    span["references"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|reference| reference["refType"] == "CHILD_OF")
        .filter_map(|reference| reference["spanID"].as_str().map(str::to_owned))
        .collect()
}
