//! The native server: how it is configured ([`ServerConfig`]), its listeners ([`bind`]), and
//! [`run`], which serves until a shutdown future completes and then drains.
//!
//! Each job is a module of its own, as mini-redis splits its server:
//!
//! * `listener`: accepting, under the connection cap, through accept errors;
//! * `connection`: one connection, from its first bytes to its close, every wait bounded;
//! * `detect`: telling HTTP/1.1 from HTTP/2 by the first bytes, and handing them on;
//! * `service`: one request: the core's answer, the delay, the access line, the metrics;
//! * `drain`: shutting down: refuse new connections, finish or cut off the ones in flight.
//!
//! The admin listener ([`crate::admin`]) and the metrics ([`crate::metrics`]) sit beside it.

mod connection;
mod detect;
mod drain;
mod listener;
mod service;

pub(crate) use drain::Requests;
pub(crate) use listener::Acceptor;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};

use crate::metrics::Metrics;

/// How the server is run; the answers themselves are configured by [`hello_edge::Config`].
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// What the core needs: the delay.
    pub app: hello_edge::Config,
    /// How long requests in flight may take to finish once shutdown starts.
    pub grace: Duration,
    /// How long a client may take to send a request's head (protocol detection included), and
    /// how long a connection with no request in flight stays open.
    pub header_read_timeout: Duration,
    /// The most connections served at once; past it, new clients wait in the listen backlog
    /// until a connection closes.
    pub max_connections: usize,
}

impl ServerConfig {
    /// The defaults, from which the command line takes its own.
    pub const DEFAULT: ServerConfig = ServerConfig {
        app: hello_edge::Config {
            delay: hello_edge::Delay::DEFAULT,
        },
        grace: Duration::from_secs(10),
        header_read_timeout: Duration::from_secs(10),
        max_connections: Self::DEFAULT_MAX_CONNECTIONS,
    };

    /// The default connection cap. What 10,000 waiting connections hold is measured by the
    /// benchmark (`bench/results/latest.md`, "RSS per connection"); the Kubernetes manifest
    /// (deploy/kubernetes) sizes the pod's memory limit on it.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

    /// The largest connection cap accepted: each connection is a file descriptor, and Linux
    /// lets one process hold at most `fs.nr_open` of them, 1,048,576 unless raised.
    pub const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;

    /// The longest grace period and header timeout accepted, in seconds: an hour.
    pub const MAX_TIMEOUT_SECS: u64 = 3600;
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The most a request head (request line and header fields) may take before the server refuses
/// it itself rather than hold it: on HTTP/1.1 hyper's read buffer (hyper's 431, and the connection
/// closes), on HTTP/2 the header list size (h2's 431 on that stream, which is reset; the
/// connection stays). Below this the core decides, with its own, smaller, limits
/// ([`hello_edge::MAX_HEADER_FIELDS`] and beside it); it is above 200 KiB so that a head of that size still reaches
/// the core and gets the same page as on a wasm host (whose hyper buffers up to about 400 KiB).
pub const MAX_HEAD_BYTES: usize = 256 * 1024;

/// HTTP/2 limits the server relies on against a client that opens and resets streams in a
/// burst (rapid reset, CVE-2023-44487): at most 200 streams open at once per connection (hyper's
/// default), and at most 20 streams reset by the client before the server has accepted them (h2's
/// default); past that, h2 ends the connection with GOAWAY (`ENHANCE_YOUR_CALM`).
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 200;
/// See [`H2_MAX_CONCURRENT_STREAMS`].
pub const H2_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// How [`run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Every request in flight was answered within the grace period.
    Drained,
    /// The grace period ran out with requests in flight; this many were cut off.
    GraceExpired {
        /// The requests cut off.
        aborted: usize,
    },
}

/// The pending connections the kernel keeps for us; many clients connect at once.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener with a backlog fit for thousands of clients connecting at once.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves hello-edge on `listener` (and liveness and metrics on `admin`, if given) until
/// `shutdown` completes, then stops accepting (new connections are refused), lets requests in
/// flight finish within `config.grace`, and returns.
///
/// It does not fail: accept errors (a client gone, descriptors running out) are logged and
/// retried, and a connection's error ends that connection only.
pub async fn run(
    listener: TcpListener,
    admin: Option<TcpListener>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Shutdown {
    let drain = drain::Drain::new();
    let metrics = Arc::new(Metrics::new(drain.requests()));
    let shared = Arc::new(Shared::new(&config, Arc::clone(&metrics)));
    let admin = admin.map(|admin| {
        tokio::spawn(crate::admin::serve(
            admin,
            Arc::clone(&metrics),
            config.header_read_timeout,
            drain.stopped(),
        ))
    });

    listener::accept(&listener, &shared, &drain, shutdown).await;
    // Closing the listener makes new connections fail at once rather than wait in the backlog.
    drop(listener);
    let outcome = drain.finish(config.grace, &metrics).await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    outcome
}

/// What every connection shares, set up once: the answers' configuration, the timeouts, the two
/// protocols it may speak and the metrics. A connection's task holds only an `Arc` of it.
struct Shared {
    /// The answers' configuration, as the core takes it: the command line's is always valid.
    app: Result<hello_edge::Config, hello_edge::VarError>,
    header_read_timeout: Duration,
    max_connections: usize,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn new(config: &ServerConfig, metrics: Arc<Metrics>) -> Shared {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(MAX_HEAD_BYTES);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEAD_BYTES as u32)
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESET_STREAMS)
            // A peer that stops answering pings while its requests wait is gone: end it.
            .keep_alive_interval(config.header_read_timeout)
            .keep_alive_timeout(config.header_read_timeout);
        Shared {
            app: Ok(config.app),
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections,
            http1,
            http2,
            metrics,
        }
    }
}
