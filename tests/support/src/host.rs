//! What every host under test offers, behind one [`Host`] trait: a label, an address, its log, the
//! process that serves (when there is one here), and one way to stop. Each host picks its own
//! port (port 0) and says which, so tests running in parallel cannot race for one, and a host
//! counts as started only once the real route answers from the core ([`wait_until_ready`]).
//!
//! A program that serves the components is a [`WasmHost`]: how it starts one, as a [`Launch`]
//! says. The hosts themselves are in their own modules, and named in the catalogue
//! ([`crate::catalogue`]): the native server ([`crate::native`]), `wasmtime serve`
//! ([`crate::wasmtime`]), `wash dev` ([`crate::wash`]), `spin up` ([`crate::spin`]), and a
//! container under containerd ([`crate::containerd`]). The trait is object safe, so the catalogue
//! hands any of them out as a `Box<dyn Host>`, and a host whose address is a cluster's Service
//! (no process of its own here, stopped through its API) is one more implementation.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::client::{self, Protocol};
use crate::component::Component;
use crate::process::{Log, LogFiles, Process};

/// A future a [`Host`] returns, boxed so that the trait stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What every host under test offers.
pub trait Host: Send {
    /// Which host this is, for failure messages: `wasmtime serve 49.0.3, wasip2`.
    fn label(&self) -> String;
    /// The address it serves on.
    fn addr(&self) -> SocketAddr;
    /// What it has logged so far (empty for a host in this process, whose log is this one's).
    fn log(&self) -> Log;
    /// The process that serves, whose process tree holds the host's CPU time and memory (the
    /// benchmark reads them); `None` for a host with no process of its own here.
    fn pid(&self) -> Option<u32>;
    /// Stops the host as its operator would, letting it finish what it will, and says how it
    /// ended: SIGTERM for the native binary and `wash dev` (as Kubernetes and a terminal's
    /// `kill` send it), Ctrl-C (SIGINT) for `wasmtime serve` (which drains on it only) and
    /// `spin up`, the shutdown future for the server in this process. Called once; the host is
    /// done with afterwards.
    fn stop(&mut self) -> BoxFuture<'_, Stopped>;
}

/// A host that is a process of its own here, as every host but the in-process server and a
/// container is: what it says it serves on, its output (and its log files, if it writes any) as
/// its log, and the signal that stops it its one way; killed on drop, with the run directory it
/// was given, if any, removed.
pub struct Served {
    label: String,
    addr: SocketAddr,
    process: Process,
    stop: Signal,
    dir: Option<PathBuf>,
    files: Option<LogFiles>,
    /// Takes out of what it logs once signalled what it logs for its own exit, which is not a
    /// guest's failure (`spin up`'s dropped workers).
    exit_noise: Option<fn(&str) -> String>,
}

impl Served {
    /// `process`, labelled `label`, serving on `addr`, stopped by `stop`.
    pub fn new(label: String, addr: SocketAddr, process: Process, stop: Signal) -> Served {
        Served {
            label,
            addr,
            process,
            stop,
            dir: None,
            files: None,
            exit_noise: None,
        }
    }

    /// This host, with `dir` (its run directory) removed once it is gone.
    pub fn removing(mut self, dir: PathBuf) -> Served {
        self.dir = Some(dir);
        self
    }

    /// This host, its log files read into its log.
    pub fn with_log_files(mut self, files: LogFiles) -> Served {
        self.files = Some(files);
        self
    }

    /// This host, with `without` taking out of what it logs once signalled what it logs for its
    /// own exit.
    pub fn without_exit_noise(mut self, without: fn(&str) -> String) -> Served {
        self.exit_noise = Some(without);
        self
    }

    /// The process, to look at or signal.
    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }

    /// Stops it with `signal` (waiting up to 20 s), and returns how it exited, and its whole log
    /// (its log files read to their end), without what it logs for its own exit.
    pub async fn stop_with(&mut self, signal: Signal) -> Stopped {
        let log = self.process.log().clone();
        if let Some(files) = &self.files {
            files.catch_up();
        }
        let signalled = log.mark();
        let status = self.process.stop(signal, Duration::from_secs(20)).await;
        if let Some(files) = self.files.take() {
            files.catch_up();
        }
        let text = log.text();
        let (before, after) = text.split_at(signalled);
        let after = match self.exit_noise {
            Some(without) => without(after),
            None => after.to_owned(),
        };
        Stopped {
            status,
            log: format!("{before}{after}"),
        }
    }
}

impl Host for Served {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn log(&self) -> Log {
        self.process.log().clone()
    }

    fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    fn stop(&mut self) -> BoxFuture<'_, Stopped> {
        Box::pin(self.stop_with(self.stop))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
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
    wait_until(addr, process, timeout, Protocol::Http1, |answer| {
        answer.one("content-security-policy") == Some(hello_edge::CONTENT_SECURITY_POLICY_VALUE)
    })
    .await;
}

/// Waits until the server at `addr` answers `GET /healthz` over `protocol` at all, whatever it
/// answers: how a reference that is not hello-edge (the seed, bare hyper speaking HTTP/2 only)
/// is ready. Panics as [`wait_until_ready`] does.
pub async fn wait_until_answering(
    addr: SocketAddr,
    process: &mut Process,
    timeout: Duration,
    protocol: Protocol,
) {
    wait_until(addr, process, timeout, protocol, |_| true).await;
}

async fn wait_until(
    addr: SocketAddr,
    process: &mut Process,
    timeout: Duration,
    protocol: Protocol,
    ready: impl Fn(&client::Answer) -> bool,
) {
    let started = Instant::now();
    loop {
        let asked = client::send(
            addr,
            protocol,
            http::Method::GET,
            hello_edge::HEALTH_PATH,
            &[],
        );
        if let Ok(answer) = asked.await
            && ready(&answer)
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

/// How a host is asked to serve a component.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Where it listens: port 0 of loopback (the host picks a port and says which) unless a port
    /// is wanted, as a cold start's clock needs.
    pub listen: SocketAddr,
    /// The component's environment (`HELLO_EDGE_DELAY_MS`).
    pub env: Vec<(String, String)>,
    /// The host process's own environment (Spin's `SPIN_MAX_INSTANCE_COUNT`).
    pub host_env: Vec<(String, String)>,
    /// The host's own flags, after the ones it always gets.
    pub flags: Vec<String>,
    /// The file to serve instead of the component as built (a precompiled `.cwasm`).
    pub wasm: Option<PathBuf>,
}

impl Default for Launch {
    fn default() -> Launch {
        Launch {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            env: Vec::new(),
            host_env: Vec::new(),
            flags: Vec::new(),
            wasm: None,
        }
    }
}

impl Launch {
    /// The component's environment variables, as pairs.
    pub fn with_env(env: &[(&str, &str)]) -> Launch {
        Launch {
            env: pairs(env),
            ..Launch::default()
        }
    }

    /// This launch with `more` of the host's own flags.
    pub fn and_flags(mut self, more: &[&str]) -> Launch {
        self.flags.extend(more.iter().map(|flag| flag.to_string()));
        self
    }

    /// This launch with `more` in the host process's environment.
    pub fn and_host_env(mut self, more: &[(&str, &str)]) -> Launch {
        self.host_env.extend(pairs(more));
        self
    }
}

fn pairs(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// What a [`WasmHost`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    /// Its name, in test names and the benchmark's: `wasmtime`, `wash`, `spin`, `spin-4.0`.
    pub name: &'static str,
    /// What it is, in the benchmark's labels: `wasmtime serve`, `wasmCloud wash dev`.
    pub describe: &'static str,
    /// The prefix of its servers' names in the benchmark: `wash-`; none for `wasmtime serve`,
    /// the reference host.
    pub prefix: &'static str,
}

/// A program that serves the components: how it starts one, and what it is.
pub trait WasmHost: Sync {
    /// What it is called.
    fn names(&self) -> Names;

    /// Its name ([`Names::name`]).
    fn name(&self) -> &'static str {
        self.names().name
    }

    /// Whether it serves `component` (Spin 4.0 knows only a release candidate of WASI 0.3).
    fn serves(&self, _component: &Component) -> bool {
        true
    }

    /// What it is told to serve many thousands of waiting requests (its pools and caps lifted),
    /// beyond its defaults; `None` when its defaults are what a user runs it with (`wash dev`
    /// takes its pool from the repository's dev config).
    fn tuned(&self, _component: &Component) -> Option<Launch> {
        None
    }

    /// What the benchmark's report says of how it runs beyond its flags (the configuration it
    /// reads), if anything.
    fn note(&self) -> Option<String> {
        None
    }

    /// Starts it serving `wasm` (`component`, as built or as `launch` names it) as `launch`
    /// says, and returns once the component answers.
    fn serve<'a>(
        &'a self,
        component: &'a Component,
        wasm: &'a Path,
        launch: &'a Launch,
    ) -> BoxFuture<'a, Box<dyn Host>>;

    /// Starts it serving `component` as `launch` says: the component as built, unless `launch`
    /// names another file.
    fn start<'a>(
        &'a self,
        component: &'a Component,
        launch: &'a Launch,
    ) -> BoxFuture<'a, Box<dyn Host>> {
        Box::pin(async move {
            let wasm = launch.wasm.clone().unwrap_or_else(|| component.wasm());
            self.serve(component, &wasm, launch).await
        })
    }
}
