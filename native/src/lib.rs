//! The native hello-edge server: the routing core served over HTTP/1.1 and HTTP/2 on tokio +
//! hyper, for anywhere a wasm host is not at hand.
//!
//! The core ([`hello_edge`]) decides every answer and its delay; this crate only does the I/O
//! and sleeps the delay on tokio's event loop, so thousands of waiting requests cost a timer
//! each, not a thread.
//!
//! * [`server`]: [`server::run`] serves an already-bound listener until a shutdown future
//!   completes, then drains the requests in flight; it starts the admin listener beside it.
//! * [`admin`]: the admin listener (liveness and `/metrics`), outside the connection cap, and
//!   [`metrics`], what it exposes.
//! * [`traces`]: each request's span, and its export over OTLP when the OpenTelemetry
//!   environment names a collector.
//! * `accept`: accepting under a connection cap and through accept errors, for both listeners.
//! * `requests`: the count of requests in flight, which the drain and the metrics read.
//! * [`env`]: the environment variables the binary reads, where a flag is not given.
//! * [`shutdown_signal`]: the future the binary hands to [`server::run`]: SIGINT or SIGTERM.
//!
//! The modules depend one way: `server` on `admin`, `accept`, `metrics`, `requests` and
//! `traces`; `admin` on `accept` and `metrics`; `accept` on `metrics`; `metrics` on `requests`;
//! `requests` and `traces` on nothing (`tests/modules.rs` reads the sources and fails on a
//! circle).

pub mod admin;
pub mod metrics;
pub mod server;
pub mod traces;

mod accept;
mod requests;

pub use server::{ServerConfig, Shutdown, bind, run};

use std::net::SocketAddr;

/// The environment variables the `hello-edge` binary reads where a flag is not given, each named
/// once here (the flag is the name without `HELLO_EDGE_`, in lower case with dashes).
pub mod env {
    /// `--listen`.
    pub const LISTEN: &str = "HELLO_EDGE_LISTEN";
    /// `--admin-listen`.
    pub const ADMIN_LISTEN: &str = "HELLO_EDGE_ADMIN_LISTEN";
    /// `--delay-ms`: the core's own variable, which every host reads.
    pub const DELAY_MS: &str = hello_edge::Config::DELAY_ENV;
    /// `--shutdown-grace-secs`.
    pub const SHUTDOWN_GRACE_SECS: &str = "HELLO_EDGE_SHUTDOWN_GRACE_SECS";
    /// `--header-timeout-secs`.
    pub const HEADER_TIMEOUT_SECS: &str = "HELLO_EDGE_HEADER_TIMEOUT_SECS";
    /// `--max-connections`.
    pub const MAX_CONNECTIONS: &str = "HELLO_EDGE_MAX_CONNECTIONS";
    /// `--log-format`.
    pub const LOG_FORMAT: &str = "HELLO_EDGE_LOG_FORMAT";
}

/// The line the `hello-edge` binary prints on stdout once it listens, with the real address
/// (port 0 picks a free one): `Serving http://127.0.0.1:8000`.
pub fn serving_line(addr: SocketAddr) -> String {
    format!("Serving http://{addr}")
}

/// The address in a [`serving_line`], for whoever started the binary.
pub fn parse_serving_line(line: &str) -> Option<SocketAddr> {
    line.trim().strip_prefix("Serving http://")?.parse().ok()
}

/// The line the binary prints after its [`serving_line`] when the admin listener is on:
/// `Admin http://127.0.0.1:9090`.
pub fn admin_line(addr: SocketAddr) -> String {
    format!("Admin http://{addr}")
}

/// The address in an [`admin_line`].
pub fn parse_admin_line(line: &str) -> Option<SocketAddr> {
    line.trim().strip_prefix("Admin http://")?.parse().ok()
}

/// The future the binary hands to [`server::run`]: it completes when the process is asked to
/// stop, by SIGINT (Ctrl-C) or, on Unix, SIGTERM.
///
/// The handlers are installed when this is called, not when the future is first polled, so a
/// signal that comes right after the server says it serves is not lost (without a handler,
/// SIGTERM would kill the process before it drains). Call it inside the tokio runtime.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
