//! `hosts`: the catalogue's servers ([`support::catalogue`]) for `bench/run`, started the one way
//! the tests start them. The benchmark's Python drives the load generators and writes the report;
//! every server it measures is started, watched and stopped here.
//!
//! * `hosts list`: the catalogue as JSON: the servers, the sweep's and the instance cost's
//!   variants, the components' files, and the hosts' versions.
//! * `hosts serve NAME --delay-ms D [--protocol http2] [--port P] [--log FILE]`: starts NAME
//!   and, once it answers, prints one JSON line: its address and the pid of the process that
//!   serves. Its log goes to FILE as it is written. It is stopped its one way (SIGTERM, or
//!   Ctrl-C for `wasmtime serve` and `spin up`) when stdin closes or says `stop`, or on SIGTERM
//!   or SIGINT here, and a last JSON line says how it ended.
//! * `hosts cold-start [--starts N] [--only NAME,...]`: from spawn to the first 200, for each
//!   cold-start configuration, N times; one JSON line each.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use support::catalogue::{self, Run, Serve, Server};
use support::client::Protocol;
use support::component::{Component, NOOP_WASIP2, NOOP_WASIP3, WASIP2, WASIP3};
use support::host::Host;
use support::tools::{self, root};
use support::wasmtime::REUSE_FOR_GOOD;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The benchmark's servers, started as the tests start them.
#[derive(Debug, Parser)]
#[command(name = "hosts")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Prints the catalogue as JSON.
    List,
    /// Starts a server, prints where it serves, and stops it when told.
    Serve {
        /// The server, as `hosts list` names it.
        name: String,
        /// The delay before each answer, in milliseconds.
        #[arg(long)]
        delay_ms: u64,
        /// The protocol the load speaks.
        #[arg(long, value_enum, default_value_t = Speaks::Http1)]
        protocol: Speaks,
        /// The loopback port to listen on; 0 lets the host pick one.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Where to write the host's log as it is written.
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Times each cold-start configuration from spawn to its first 200, and prints each.
    ColdStart {
        /// Starts per configuration.
        #[arg(long, default_value_t = 20)]
        starts: usize,
        /// Only these configurations (comma-separated); all by default.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
}

/// The protocol the load speaks.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Speaks {
    Http1,
    Http2,
}

#[tokio::main]
async fn main() {
    // Each connection is a descriptor in a server, which inherits this limit.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    match Cli::parse().command {
        Task::List => list(),
        Task::Serve {
            name,
            delay_ms,
            protocol,
            port,
            log,
        } => {
            let protocol = match protocol {
                Speaks::Http1 => Protocol::Http1,
                Speaks::Http2 => Protocol::Http2,
            };
            let run = Run {
                listen: SocketAddr::from(([127, 0, 0, 1], port)),
                delay: Duration::from_millis(delay_ms),
                protocol,
            };
            serve(&find(&name), run, log).await;
        }
        Task::ColdStart { starts, only } => {
            for (name, label, server) in cold_starts() {
                if only.is_empty() || only.contains(&name) {
                    cold_start(&name, &label, &server, starts).await;
                }
            }
        }
    }
}

/// A server by name: of the catalogue, the sweep or the instance cost's variants.
fn find(name: &str) -> Server {
    catalogue::servers()
        .into_iter()
        .chain(sweep().into_iter().map(|(server, ..)| server))
        .chain(instances().into_iter().map(|(server, ..)| server))
        .find(|server| server.name == name)
        .unwrap_or_else(|| {
            eprintln!("hosts: no server is named {name:?}; `hosts list` names them");
            std::process::exit(2)
        })
}

/// `hosts list`.
fn list() {
    let servers: Vec<_> = catalogue::servers()
        .iter()
        .map(|server| {
            let (flags, host_env) = match &server.serve {
                Serve::Component { launch, .. } => (launch.flags.clone(), launch.host_env.clone()),
                Serve::Program { .. } => (Vec::new(), Vec::new()),
            };
            json!({
                "name": server.name,
                "label": server.label,
                "reference": server.reference,
                "http2": server.speaks_http2(),
                "answers_as_hello_edge": server.answers_as_hello_edge(),
                "flags": flags,
                "host_env": host_env.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            })
        })
        .collect();
    let sweep: Vec<_> = sweep()
        .iter()
        .map(|(server, concurrency, reuse)| {
            json!({"name": server.name, "label": server.label,
                   "concurrency": concurrency, "reuse": reuse})
        })
        .collect();
    let instances: Vec<_> = instances()
        .iter()
        .map(|(server, of, reused)| {
            let (_, label, component) = MEASURED.iter().find(|(name, ..)| name == of).unwrap();
            json!({"name": server.name, "of": of, "label": label, "component": component.name,
                   "reused": reused})
        })
        .collect();
    let components: serde_json::Map<_, _> = [&WASIP2, &NOOP_WASIP2, &WASIP3, &NOOP_WASIP3]
        .iter()
        .map(|component| {
            let wasm = component.wasm();
            let size = std::fs::metadata(&wasm).map_or(0, |meta| meta.len());
            (
                component.name.to_owned(),
                json!({"path": wasm, "size": size}),
            )
        })
        .collect();
    let versions: serde_json::Map<_, _> = ["wasmtime", "wash", "spin", "spin-4.0"]
        .iter()
        .map(|tool| (tool.to_string(), json!(version(tool))))
        .collect();
    let cold: Vec<_> = cold_starts()
        .iter()
        .map(|(name, label, _)| json!({"name": name, "label": label}))
        .collect();
    let notes: Vec<_> = catalogue::notes()
        .into_iter()
        .map(|(servers, text)| json!({"servers": servers, "text": text}))
        .collect();
    let catalogue = json!({"servers": servers, "sweep": sweep, "instances": instances,
                           "cold_starts": cold, "components": components, "versions": versions,
                           "notes": notes});
    println!("{catalogue:#}");
}

/// What a pinned tool says its version is (its first line), or `?` when it is not installed.
fn version(tool: &str) -> String {
    std::process::Command::new(tools::tools_dir().join(tool))
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines().next().map(str::to_owned)
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// `hosts serve`: starts `server`, says where, copies its log to `log`, and stops it when told.
async fn serve(server: &Server, run: Run, log: Option<PathBuf>) {
    let mut host = server.start(run).await;
    let line = json!({"event": "serving", "name": server.name, "addr": host.addr().to_string(),
                      "pid": host.pid()});
    println!("{line}");
    let (done, finished) = tokio::sync::oneshot::channel();
    let copying = log.map(|file| tokio::spawn(copy_log(host.log(), file, finished)));
    told_to_stop().await;
    let stopped = host.stop().await;
    if let Some(copying) = copying {
        let _ = done.send(());
        let _ = copying.await;
    }
    let line = json!({"event": "stopped", "name": server.name,
                      "status": stopped.status.to_string(), "success": stopped.status.success()});
    println!("{line}");
}

/// Completes when stdin closes or says `stop`, or on SIGTERM or SIGINT.
async fn told_to_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("a SIGINT handler");
    let stdin = async {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim() == "stop" {
                return;
            }
        }
    };
    tokio::select! {
        () = stdin => {}
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}

/// Appends what `log` gains to `file`, every 100 ms, until `finished`; then what it gained last.
async fn copy_log(
    log: support::process::Log,
    file: PathBuf,
    mut finished: tokio::sync::oneshot::Receiver<()>,
) {
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut out = tokio::fs::File::create(&file)
        .await
        .unwrap_or_else(|err| panic!("create {}: {err}", file.display()));
    let mut written = 0;
    loop {
        let last = tokio::select! {
            _ = &mut finished => true,
            () = tokio::time::sleep(Duration::from_millis(100)) => false,
        };
        let new = log.since(written);
        written += new.len();
        let _ = out.write_all(new.as_bytes()).await;
        let _ = out.flush().await;
        if last {
            return;
        }
    }
}

/// The components whose cold start and instance cost are measured under `wasmtime serve`: the
/// catalogue's server of each, its label in those tables, and the component.
const MEASURED: [(&str, &str, &Component); 4] = [
    ("p2", "hello-edge WASI 0.2", &WASIP2),
    ("noop-p2", "no-op WASI 0.2 (reference)", &NOOP_WASIP2),
    ("p3", "hello-edge WASI 0.3", &WASIP3),
    ("noop-p3", "no-op WASI 0.3 (reference)", &NOOP_WASIP3),
];

/// The sweep's servers: the WASI 0.3 component under `wasmtime serve` tuned, but for the requests
/// an instance takes at once (`--max-instance-concurrent-reuse-count`) and the requests it takes
/// before it is retired (`--max-instance-reuse-count`): each count reused for good, and 100 at a
/// time with wasmtime's default retirement (after 128). With each, its two counts.
fn sweep() -> Vec<(Server, u64, u64)> {
    let tuned = catalogue::server("p3-tuned").expect("p3-tuned is in the catalogue");
    let counts = [16, 100, 1000, 20000]
        .map(|concurrency| (concurrency, REUSE_FOR_GOOD))
        .into_iter()
        .chain([(100, 128)]);
    counts
        .map(|(concurrency, reuse)| {
            let retired = if reuse == REUSE_FOR_GOOD {
                String::new()
            } else {
                format!(", retired after {reuse}")
            };
            let server = tuned.with_flags(
                format!("p3-sweep-{concurrency}-{reuse}"),
                format!(
                    "hello-edge WASI 0.3 component, wasmtime serve, {} requests an instance{retired}",
                    thousands(concurrency)
                ),
                &[
                    "--max-instance-concurrent-reuse-count=",
                    "--max-instance-reuse-count=",
                ],
                &[
                    &format!("--max-instance-concurrent-reuse-count={concurrency}"),
                    &format!("--max-instance-reuse-count={reuse}"),
                ],
            );
            (server, concurrency, reuse)
        })
        .collect()
}

/// The instance cost's servers: each component under `wasmtime serve` with its defaults but a
/// fresh instance for every request (`--max-instance-reuse-count=1`, a WASI 0.2 host's and
/// Spin's way), and with instances reused for good. With each, the server it is a variant of and
/// whether it reuses.
fn instances() -> Vec<(Server, String, bool)> {
    let mut variants = Vec::new();
    for (of, label, _) in MEASURED {
        let server = catalogue::server(of).expect("in the catalogue");
        for (mode, reuse) in [("fresh", 1), ("reused", REUSE_FOR_GOOD)] {
            let variant = server.with_flags(
                format!("{of}-{mode}"),
                format!("{label}, instances {mode}"),
                &["--max-instance-reuse-count="],
                &[&format!("--max-instance-reuse-count={reuse}")],
            );
            variants.push((variant, of.to_owned(), reuse != 1));
        }
    }
    variants
}

/// The cold-start configurations, each a name, a label and a server: the native server and bare
/// hyper; each component under `wasmtime serve` compiled at start, from wasmtime's cache, and
/// precompiled; each of hello-edge's under `spin up` with its cache warm; and the seed.
fn cold_starts() -> Vec<(String, String, Server)> {
    let named = |name: &str| catalogue::server(name).expect("in the catalogue");
    let mut configs = vec![
        (
            "native".to_owned(),
            "hello-edge native".to_owned(),
            named("native"),
        ),
        (
            "bare-hyper".to_owned(),
            "bare hyper (reference)".to_owned(),
            named("bare-hyper"),
        ),
    ];
    for (name, label, component) in MEASURED {
        let server = named(name);
        configs.push((
            format!("{name}-compile"),
            format!("{label}, .wasm compiled at start (cache off)"),
            server.with_flags(name.to_owned(), label.to_owned(), &[], &["-Ccache=n"]),
        ));
        configs.push((
            format!("{name}-cached"),
            format!("{label}, .wasm from wasmtime's cache (the CLI's default)"),
            server.clone(),
        ));
        configs.push((
            format!("{name}-cwasm"),
            format!("{label}, precompiled .cwasm"),
            server
                .with_flags(
                    name.to_owned(),
                    label.to_owned(),
                    &[],
                    &["--allow-precompiled"],
                )
                .serving_file(cwasm(component)),
        ));
    }
    // spin up compiles a component at start unless wasmtime's cache (on in Spin) holds it.
    for (name, label) in [
        ("spin-p2", "hello-edge WASI 0.2"),
        ("spin-p3", "hello-edge WASI 0.3"),
    ] {
        configs.push((
            format!("{name}-cached"),
            format!("{label} under spin up (its cache warm)"),
            named(name),
        ));
    }
    configs.push((
        "seed-aiohttp".to_owned(),
        "seed: aiohttp (reference)".to_owned(),
        named("seed-aiohttp"),
    ));
    configs
}

/// Where `component` precompiled for the pinned wasmtime goes ([`precompile`]).
fn cwasm(component: &Component) -> PathBuf {
    root()
        .join("target/bench-cwasm")
        .join(format!("{}.cwasm", component.name))
}

/// Precompiles the component a `-cwasm` server serves (`wasmtime compile`), from the component
/// as built now.
fn precompile(server: &Server) {
    let Serve::Component {
        component, launch, ..
    } = &server.serve
    else {
        return;
    };
    let Some(cwasm) = &launch.wasm else { return };
    std::fs::create_dir_all(cwasm.parent().unwrap()).unwrap();
    let status = std::process::Command::new(tools::wasmtime())
        .arg("compile")
        .arg(component.wasm())
        .arg("-o")
        .arg(cwasm)
        .status()
        .expect("run wasmtime compile");
    assert!(status.success(), "wasmtime compile {}", component.name);
}

/// One configuration's cold starts: `starts` times from spawn to the first 200 to `GET /` on a
/// new connection (retried while refused), at delay 0; for a `-cached` one, once first to fill
/// the cache; for hello-edge's `-cwasm` ones, a request on a warm host and one after it has
/// dropped its idle instances. Prints one JSON line.
async fn cold_start(name: &str, label: &str, server: &Server, starts: usize) {
    // Built and compiled before any clock starts.
    if let Serve::Component { component, .. } = &server.serve {
        component.wasm();
    }
    precompile(server);
    if name.ends_with("-cached") {
        let (mut host, _) = started(server).await;
        host.stop().await;
    }
    let mut times = Vec::with_capacity(starts);
    for _ in 0..starts {
        let (mut host, took) = started(server).await;
        times.push(took.as_secs_f64() * 1000.0);
        host.stop().await;
    }
    let max = times.iter().copied().fold(0.0, f64::max);
    let count = times.len();
    let median = median(times);
    let (mut warm, mut idle) = (None, None);
    if name.ends_with("-cwasm") && !name.starts_with("noop") {
        let (w, i) = idle_and_warm(server).await;
        (warm, idle) = (Some(w), Some(i));
    }
    let line = json!({"name": name, "label": label, "starts": count, "median_ms": median,
                      "max_ms": max, "warm_ms": warm, "idle_ms": idle});
    println!("{line}");
}

/// Starts `server` at delay 0 on a free port, and how long from spawn to its first 200.
async fn started(server: &Server) -> (Box<dyn Host>, Duration) {
    let port = catalogue::free_port([127, 0, 0, 1].into());
    let run = Run {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        delay: Duration::ZERO,
        protocol: Protocol::Http1,
    };
    let started = Instant::now();
    let starting = {
        let server = server.clone();
        tokio::spawn(async move { server.start(run).await })
    };
    let took = first_answer(port, started).await;
    let host = starting.await.expect("the server starts");
    (host, took)
}

/// From `since` until `GET /` on a new connection to `port` is answered 200, retried every half
/// millisecond while refused; panics after a minute.
async fn first_answer(port: u16, since: Instant) -> Duration {
    use tokio::io::AsyncReadExt;
    let request = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    while since.elapsed() < Duration::from_secs(60) {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await
            && stream.write_all(request).await.is_ok()
        {
            let mut head = [0; 12];
            if stream.read_exact(&mut head).await.is_ok() && head.starts_with(b"HTTP/1.1 200") {
                return since.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    panic!("no 200 on port {port} within a minute");
}

/// The median of 10 requests on a warm host, and of 10 each 1.5 s after the last (past `wasmtime
/// serve`'s 1 s `--idle-instance-timeout`, so the host has dropped the instance it kept), in
/// milliseconds.
async fn idle_and_warm(server: &Server) -> (f64, f64) {
    let (mut host, _) = started(server).await;
    let port = host.addr().port();
    let mut warm = Vec::new();
    for _ in 0..10 {
        warm.push(first_answer(port, Instant::now()).await.as_secs_f64() * 1000.0);
    }
    let mut idle = Vec::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        idle.push(first_answer(port, Instant::now()).await.as_secs_f64() * 1000.0);
    }
    host.stop().await;
    (median(warm), median(idle))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// `n` with a comma between thousands: `20,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use support::wasmtime::TUNED;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(16), "16");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(20000), "20,000");
    }

    #[test]
    fn every_name_is_one_server() {
        let mut names: Vec<String> = catalogue::servers()
            .into_iter()
            .map(|server| server.name)
            .chain(sweep().into_iter().map(|(server, ..)| server.name))
            .chain(instances().into_iter().map(|(server, ..)| server.name))
            .collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "a name is used twice");
        assert!(
            TUNED
                .iter()
                .any(|flag| flag.starts_with("--max-instance-reuse-count="))
        );
    }
}
