//! The native server as a host: [`NativeServer`] in this process, on a listener bound here, and
//! [`NativeBinary`], the `hello-edge` binary as a user runs it; and what only the native server's
//! own log says ([`accepted_ports`]), which a stop's check reads ([`assert_answered_through_a_stop`]).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use hello_edge_native::{ServerConfig, Shutdown};
use nix::sys::signal::Signal;
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::host::{BoxFuture, Host, Served, Stopped};
use crate::process::{Log, Process};
use crate::scenarios::{Arrival, unanswered};

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

    fn pid(&self) -> Option<u32> {
        None
    }

    fn stop(&mut self) -> BoxFuture<'_, Stopped> {
        Box::pin(async move {
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
        })
    }
}

/// The `hello-edge` binary as a user runs it, on a loopback port it picks (`--listen
/// 127.0.0.1:0`) and prints: a [`Served`] host, stopped by SIGTERM (as Kubernetes sends it: it
/// drains). Any program that says where it serves as the binary does
/// ([`hello_edge_native::serving_line`]) runs so too ([`NativeBinary::program`]): the
/// benchmark's references.
pub struct NativeBinary;

impl NativeBinary {
    /// Runs `binary` (`env!("CARGO_BIN_EXE_hello-edge")`, or a pulled copy) with these
    /// arguments.
    pub async fn start(binary: &Path, args: &[&str]) -> Served {
        Self::start_with(binary, args, &[], None).await
    }

    /// Like [`NativeBinary::start`], logging each connection it accepts and why each ended
    /// (`hello_edge_native::server` at debug, plain text) beside what it logs by default (the
    /// rest of the crate at info: the connection cap and accept errors, say), under an
    /// open-file limit when given.
    pub async fn start_logging_connections(
        binary: &Path,
        args: &[&str],
        open_files: Option<u32>,
    ) -> Served {
        let env = [
            (
                "RUST_LOG",
                "hello_edge_native=info,hello_edge_native::server=debug",
            ),
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
    ) -> Served {
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
    pub async fn from_command(command: Command) -> Served {
        Self::program("native, the hello-edge binary", command).await
    }

    /// Runs `command`, a program labelled `label` that says where it serves as the binary does
    /// (`Serving http://ADDR`), and waits for that line.
    pub async fn program(label: impl Into<String>, mut command: Command) -> Served {
        let label = label.into();
        let mut process = Process::spawn(label.clone(), &mut command);
        let addr = process
            .wait_for(
                "where it serves",
                Duration::from_secs(10),
                hello_edge_native::parse_serving_line,
            )
            .await;
        Served::new(label, addr, process, Signal::SIGTERM)
    }

    /// The admin listener's address of a binary started so, once it has said it
    /// (`--admin-listen`).
    pub async fn admin_addr(binary: &mut Served) -> SocketAddr {
        binary
            .process()
            .wait_for(
                "where its admin listener is",
                Duration::from_secs(10),
                hello_edge_native::parse_admin_line,
            )
            .await
    }
}

/// The client ports the native server's log says it accepted connections from: its
/// `connection accepted` lines at debug ([`NativeBinary::start_logging_connections`]), text or
/// JSON, from loopback peers.
pub fn accepted_ports(log: &str) -> BTreeSet<u16> {
    log.lines()
        .filter(|line| line.contains("connection accepted"))
        .filter_map(|line| {
            let (_, rest) = line.split_once("127.0.0.1:")?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

/// What the native server's stop must keep, checked for clients that arrived through it
/// ([`crate::scenarios::arrive_through_a_stop`]) and the server's log, which logged each
/// connection it accepted: every connection it accepted was answered, every client that
/// connected was accepted (but for one reset between the last accept and the close), and some
/// were answered. Says what it saw on stderr, and returns how many were answered.
pub fn assert_answered_through_a_stop(what: &str, arrivals: &[Arrival], log: &str) -> usize {
    let accepted = accepted_ports(log);
    let report = unanswered(arrivals, &accepted, 1);
    let answered = arrivals.iter().filter(|a| a.answered()).count();
    let refused = arrivals.iter().filter(|a| a.port.is_none()).count();
    eprintln!(
        "{what}: {} clients, {answered} answered, {refused} refused, {} accepted",
        arrivals.len(),
        accepted.len()
    );
    assert!(
        report.is_empty(),
        "{what}: {report}\nthe server's log:\n{log}"
    );
    assert!(
        answered > 0,
        "{what}: no client was answered:\nthe server's log:\n{log}"
    );
    answered
}
