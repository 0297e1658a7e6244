//! The native hello-edge server: the routing core served over HTTP/1.1 and HTTP/2 on tokio +
//! hyper, for anywhere a wasm host is not at hand.
//!
//! The core ([`hello_edge`]) decides every answer and its delay; this crate only does the I/O
//! and sleeps the delay on tokio's event loop, so thousands of waiting requests cost a timer
//! each, not a thread.
//!
//! * [`server`]: [`server::run`] serves an already-bound listener until a shutdown future
//!   completes, then drains the requests in flight.
//! * [`heads`]: the `hello-edge heads` client, which fetches the response heads of many URLs
//!   at once.
//! * [`shutdown_signal`]: the future the binary hands to [`server::run`]: SIGINT or SIGTERM.

pub mod heads;
pub mod server;

pub use server::{ServerConfig, Shutdown, bind, run};

use std::net::SocketAddr;

/// The line the `hello-edge` binary prints on stdout once it listens, with the real address
/// (port 0 picks a free one): `Serving http://127.0.0.1:8000`.
pub fn serving_line(addr: SocketAddr) -> String {
    format!("Serving http://{addr}")
}

/// The address in a [`serving_line`], for whoever started the binary.
pub fn parse_serving_line(line: &str) -> Option<SocketAddr> {
    line.trim().strip_prefix("Serving http://")?.parse().ok()
}

/// Completes when the process is asked to stop: Ctrl-C (SIGINT) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c()
            .await
            .expect("failed to install the Ctrl-C handler");
    };

    #[cfg(unix)]
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("failed to install the SIGTERM handler")
            .recv()
            .await;
    };

    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
