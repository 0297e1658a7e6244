//! How the server is run ([`ServerConfig`]), and the limits it holds every connection to.

use std::time::Duration;

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
