//! The hosts hello-edge runs on, behind one [`Host`] trait: an address, the log, a stop. Each
//! host picks its own port (port 0) and says which, so tests running in parallel cannot race for
//! one, and a host counts as started only once the real route answers from the core.
//!
//! * [`NativeServer`]: the native server in this process, on a listener bound here.
//! * [`NativeBinary`]: the `hello-edge` binary, as a user runs it.
//! * [`Wasmtime`]: a component under the pinned `wasmtime serve`.
//! * [`Wash`]: a component under wasmCloud's runtime, the pinned `wash dev`.
//! * [`Spin`], [`Spin4_0`]: a component under `spin up`, on the pinned Spin and on Spin 4.0.
//!
//! A wasm host is a [`ComponentHost`]: it starts a [`Component`] with an environment. Adding
//! one is an implementation of that trait and a line in the host list of `tests/e2e/tests/wasm_hosts.rs`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use hello_edge_native::{ServerConfig, Shutdown};
use nix::sys::signal::Signal;
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client;
use crate::component::Component;
use crate::process::{Log, Process};
use crate::tools;

pub use crate::spin::{Spin, Spin4_0};
pub use crate::wash::Wash;

/// What every host under test offers.
pub trait Host {
    /// Which host this is, for failure messages: `wasmtime serve 49.0.3, wasip2`.
    fn label(&self) -> String;
    /// The address it serves on.
    fn addr(&self) -> SocketAddr;
    /// What it has logged so far (empty for a host in this process, whose log is this one's).
    fn log(&self) -> Log;
    /// Stops the host as its operator would, letting it finish what it will, and says how it
    /// ended: SIGTERM for the native binary and `wash dev` (as Kubernetes and a terminal's
    /// `kill` send it), Ctrl-C (SIGINT) for `wasmtime serve` (which drains on it only) and
    /// `spin up`, the shutdown future for the server in this process.
    fn stop(self) -> impl Future<Output = Stopped>
    where
        Self: Sized;
}

/// How a host ended.
#[derive(Debug)]
pub struct Stopped {
    /// Its exit status; for the server in this process, the status its binary would exit with
    /// (0 drained, 1 cut off).
    pub status: ExitStatus,
    /// Its whole log.
    pub log: String,
}

/// A wasm host: it serves a component, with an environment.
pub trait ComponentHost: Host + Sized {
    /// Starts the host serving `component` with these environment variables, and waits until
    /// it answers on the component's health route.
    fn start(component: &Component, env: &[(&str, &str)]) -> impl Future<Output = Self>;
}

/// What in a host's log says a guest failed: a panic, a trap, a worker that died. A guest may
/// log what it likes, but never one of these.
pub const GUEST_FAILURES: [&str; 6] = [
    "panicked at",
    "wasm backtrace",
    "wasm trap",
    "worker failed",
    "error while executing",
    "failed to invoke component",
];

/// The lines of `log` that say a guest failed ([`GUEST_FAILURES`]).
pub fn guest_failures(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| GUEST_FAILURES.iter().any(|failure| line.contains(failure)))
        .collect()
}

/// Panics, with the log, if a host's whole log holds a guest failure ([`guest_failures`]).
pub fn assert_clean(label: &str, log: &str) {
    let failures = guest_failures(log);
    assert!(
        failures.is_empty(),
        "{label} logged {} guest failures, the first: {}\nits log:\n{log}",
        failures.len(),
        failures[0]
    );
}

/// Waits until the server at `addr` answers `GET /healthz` from the core (the answer carries
/// the core's content security policy), whatever the status: a misconfigured component answers
/// 500, and that is an answer too. Panics, with the process's log, after `timeout` or if the
/// process exits.
pub async fn wait_until_ready(addr: SocketAddr, process: &mut Process, timeout: Duration) {
    let started = Instant::now();
    loop {
        if let Ok(answer) = client::get(addr, hello_edge::HEALTH_PATH).await
            && answer.one("content-security-policy")
                == Some(hello_edge::CONTENT_SECURITY_POLICY_VALUE)
        {
            return;
        }
        if !process.is_running() {
            // Its last lines, which say why, may still be on their way.
            let status = process.wait().await;
            panic!(
                "{} exited with {status} before it answered on {addr}:\n{}",
                process.name(),
                process.log().text()
            );
        }
        assert!(
            started.elapsed() < timeout,
            "{} did not answer GET {} on {addr} within {timeout:?}:\n{}",
            process.name(),
            hello_edge::HEALTH_PATH,
            process.log().text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The native server in this process, on loopback listeners bound to port 0 here.
pub struct NativeServer {
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Shutdown>>,
}

impl NativeServer {
    /// Serves with `config` until [`NativeServer::shutdown`] or drop.
    pub async fn start(config: ServerConfig) -> NativeServer {
        Self::serve(config, false).await
    }

    /// Like [`NativeServer::start`], with the admin listener on too.
    pub async fn start_with_admin(config: ServerConfig) -> NativeServer {
        Self::serve(config, true).await
    }

    async fn serve(config: ServerConfig, with_admin: bool) -> NativeServer {
        let loopback = "127.0.0.1:0".parse().unwrap();
        let listener = hello_edge_native::bind(loopback).unwrap();
        let addr = listener.local_addr().unwrap();
        let admin = with_admin.then(|| hello_edge_native::bind(loopback).unwrap());
        let admin_addr = admin.as_ref().map(|admin| admin.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(hello_edge_native::run(
            listener,
            admin,
            config,
            async move {
                let _ = stopped.await;
            },
        ));
        NativeServer {
            addr,
            admin: admin_addr,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// The admin listener's address, when it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Starts the shutdown, as SIGTERM does for the binary.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits, up to `timeout`, for the server to return, and says how it ended.
    pub async fn finished(&mut self, timeout: Duration) -> Shutdown {
        let handle = self.handle.take().expect("the server is awaited once");
        tokio::time::timeout(timeout, handle)
            .await
            .unwrap_or_else(|_| panic!("the server did not return within {timeout:?}"))
            .expect("the server task does not panic")
    }
}

impl Host for NativeServer {
    fn label(&self) -> String {
        "native, in-process".to_owned()
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn log(&self) -> Log {
        Log::default()
    }

    async fn stop(mut self) -> Stopped {
        use std::os::unix::process::ExitStatusExt;
        self.shutdown();
        let code = match self.finished(Duration::from_secs(20)).await {
            Shutdown::Drained => 0,
            Shutdown::GraceExpired { .. } => 1,
        };
        Stopped {
            status: ExitStatus::from_raw(code << 8),
            log: String::new(),
        }
    }
}

/// The `hello-edge` binary on a loopback port it picks (`--listen 127.0.0.1:0`) and prints;
/// killed on drop.
pub struct NativeBinary {
    addr: SocketAddr,
    process: Process,
}

impl NativeBinary {
    /// Runs `binary` (`env!("CARGO_BIN_EXE_hello-edge")`, or a pulled copy) with these
    /// arguments.
    pub async fn start(binary: &Path, args: &[&str]) -> NativeBinary {
        Self::start_with(binary, args, &[], None).await
    }

    /// Like [`NativeBinary::start`], logging each connection it accepts and why each ended
    /// (`hello_edge_native::server` at debug, plain text), under an open-file limit when given.
    pub async fn start_logging_connections(
        binary: &Path,
        args: &[&str],
        open_files: Option<u32>,
    ) -> NativeBinary {
        let env = [
            ("RUST_LOG", "hello_edge_native::server=debug"),
            ("NO_COLOR", "1"),
        ];
        Self::start_with(binary, args, &env, open_files).await
    }

    /// Like [`NativeBinary::start`], with these environment variables, and under an open-file
    /// limit when given (util-linux's `prlimit`, soft and hard, so the server cannot raise it).
    pub async fn start_with(
        binary: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        open_files: Option<u32>,
    ) -> NativeBinary {
        let mut command = match open_files {
            Some(n) => {
                let mut command = Command::new("prlimit");
                command.arg(format!("--nofile={n}:{n}")).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.args(["--listen", "127.0.0.1:0"]).args(args);
        for (name, value) in env {
            command.env(name, value);
        }
        Self::from_command(command).await
    }

    /// Runs `command`, which must start the binary listening on port 0 of loopback (by flag or
    /// by `HELLO_EDGE_LISTEN`), and waits for the line that says where.
    pub async fn from_command(mut command: Command) -> NativeBinary {
        let mut process = Process::spawn("hello-edge", &mut command);
        let addr = process
            .wait_for(
                "where it serves",
                Duration::from_secs(10),
                hello_edge_native::parse_serving_line,
            )
            .await;
        NativeBinary { addr, process }
    }

    /// The admin listener's address, once the binary has said it (`--admin-listen`).
    pub async fn admin_addr(&mut self) -> SocketAddr {
        self.process
            .wait_for(
                "where its admin listener is",
                Duration::from_secs(10),
                hello_edge_native::parse_admin_line,
            )
            .await
    }

    /// The process, to look at or signal.
    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }
}

impl Host for NativeBinary {
    fn label(&self) -> String {
        "native, the hello-edge binary".to_owned()
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn log(&self) -> Log {
        self.process.log().clone()
    }

    /// SIGTERM, as Kubernetes sends it: the server drains.
    async fn stop(mut self) -> Stopped {
        self.process.stopped(Signal::SIGTERM).await
    }
}

/// A component under the pinned `wasmtime serve`, with `-Scli` (the environment and stderr), on
/// a loopback port it picks and prints; killed on drop.
pub struct Wasmtime {
    addr: SocketAddr,
    process: Process,
    label: String,
}

impl Wasmtime {
    /// Serves `wasm` with these environment variables and extra flags.
    pub async fn serve(wasm: &Path, env: &[(&str, &str)], flags: &[&str]) -> Wasmtime {
        let mut command = Command::new(tools::wasmtime());
        command
            .args(["serve", "-Scli", "--addr=127.0.0.1:0"])
            .args(flags);
        for (name, value) in env {
            command.arg(format!("--env={name}={value}"));
        }
        command.arg(wasm);
        let label = format!(
            "wasmtime serve {}, {}",
            tools::pinned_version("wasmtime"),
            wasm.file_name().unwrap().to_string_lossy()
        );
        let mut process = Process::spawn(label.clone(), &mut command);
        // It compiles the component, then says where it listens: "Serving HTTP on http://ADDR/".
        let addr = process
            .wait_for("where it serves", Duration::from_secs(60), |line| {
                line.strip_prefix("Serving HTTP on http://")?
                    .trim_end_matches('/')
                    .parse()
                    .ok()
            })
            .await;
        wait_until_ready(addr, &mut process, Duration::from_secs(30)).await;
        Wasmtime {
            addr,
            process,
            label,
        }
    }
}

impl Host for Wasmtime {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn log(&self) -> Log {
        self.process.log().clone()
    }

    /// SIGINT: `wasmtime serve` finishes the requests in flight on it (SIGTERM kills it).
    async fn stop(mut self) -> Stopped {
        self.process.stopped(Signal::SIGINT).await
    }
}

impl ComponentHost for Wasmtime {
    async fn start(component: &Component, env: &[(&str, &str)]) -> Self {
        Wasmtime::serve(&component.wasm(), env, &[]).await
    }
}
