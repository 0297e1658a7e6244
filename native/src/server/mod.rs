//! Accepting connections, serving them with hyper, and draining them on shutdown.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// How the server is run; the answers themselves are configured by [`hello_edge::Config`].
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// What the core needs: the delay.
    pub app: hello_edge::Config,
    /// How long requests in flight may take to finish once shutdown starts.
    pub grace: Duration,
    /// How long a client may take to send a request's headers, and how long an idle
    /// connection is kept open.
    pub header_read_timeout: Duration,
    /// The most connections served at once; past it, new clients wait in the listen backlog
    /// until a connection closes.
    pub max_connections: usize,
}

impl ServerConfig {
    /// The default connection cap: 10,000 waiting connections hold about 120 MiB (the
    /// benchmark measures about 10 KiB each, 116.5 MiB at its peak), which fits the 256 MiB
    /// memory limit the Kubernetes manifest (deploy/kubernetes) gives a pod, with room to spare.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            app: hello_edge::Config::default(),
            grace: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The most a request head (request line and header fields) may take before the server refuses
/// it itself, with hyper's 431, and closes, rather than hold it: on HTTP/1.1 hyper's read buffer,
/// on HTTP/2 the header list size. Below this the core decides, with its own, smaller, limits
/// ([`hello_edge::check_headers`]); it is above 200 KiB so that a head of that size still reaches
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
    /// Every connection finished within the grace period.
    Drained,
    /// The grace period ran out; this many connections were closed unfinished.
    GraceExpired {
        /// The connections closed unfinished.
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

/// Serves hello-edge on `listener` until `shutdown` completes, then stops accepting (new
/// connections are refused), lets requests in flight finish within `config.grace`, and returns.
///
/// It does not fail: accept errors (a client gone, descriptors running out) are logged and
/// retried, and a connection's error ends that connection only.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Shutdown {
    let shared = Arc::new(Shared::new(&config));

    // Every connection task holds a receiver; each change of phase reaches them all.
    let (phase, phase_rx) = watch::channel(Phase::Serving);
    let mut shutdown = std::pin::pin!(shutdown);
    // One slot per connection, held by its task: taken before accepting, so at the cap the
    // server stops accepting and new clients wait in the kernel's listen backlog, not in an
    // error; and all slots free again means every connection has finished.
    let max = config.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    let (mut cap_log, mut accept_log) = (Throttle::every_minute(), Throttle::every_minute());

    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if cap_log.ready() {
                    tracing::warn!(
                        max_connections = max,
                        "connection cap reached: new clients wait in the listen backlog"
                    );
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
                }
            }
        };
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared = Arc::clone(&shared);
                    tokio::spawn(serve_connection(stream, peer, shared, phase_rx.clone(), slot));
                }
                Err(err) => accept_error(err, &mut accept_log).await,
            },
        }
    }

    // Closing the listener makes new connections fail at once rather than wait in the backlog.
    drop(listener);
    let open = |slots: &Semaphore| max - slots.available_permits();
    tracing::info!(connections = open(&slots), grace = ?config.grace, "shutting down");
    let _ = phase.send(Phase::Draining);

    let all_closed = |slots: Arc<Semaphore>| async move {
        let _ = slots.acquire_many(max.try_into().unwrap_or(u32::MAX)).await;
    };
    match tokio::time::timeout(config.grace, all_closed(Arc::clone(&slots))).await {
        Ok(()) => {
            tracing::info!("all connections finished");
            Shutdown::Drained
        }
        Err(_) => {
            let aborted = open(&slots);
            tracing::warn!(aborted, "grace period over: closing unfinished connections");
            let _ = phase.send(Phase::Closing);
            // They close at once; wait for their sockets to be gone.
            let _ = tokio::time::timeout(Duration::from_secs(1), all_closed(slots)).await;
            Shutdown::GraceExpired { aborted }
        }
    }
}

/// Where the server is in its life; connection tasks watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Shutting down: finish the requests in flight, take no new ones.
    Draining,
    /// The grace period is over: close now.
    Closing,
}

/// What every connection shares, set up once: the answers' configuration, the header timeout, and
/// the two protocols it may speak. A connection's task holds only an `Arc` of it.
struct Shared {
    app: hello_edge::Config,
    header_read_timeout: Duration,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Shared {
    fn new(config: &ServerConfig) -> Shared {
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
            .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESET_STREAMS);
        Shared {
            app: config.app,
            header_read_timeout: config.header_read_timeout,
            http1,
            http2,
        }
    }
}

/// Serves one connection until it closes, finishing its requests in flight on shutdown.
///
/// Thousands of these wait at once, so the task holds little beyond hyper's connection: the
/// socket, the peer's address, an `Arc` of what all connections share, the phase receiver and
/// the slot.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    // Held while the connection lives: its slot under the connection cap.
    _slot: OwnedSemaphorePermit,
) {
    // Small answers should leave at once, not wait for more to coalesce with.
    let _ = stream.set_nodelay(true);

    // The first bytes tell the protocol. A client that sends nothing within the header
    // timeout is closed here; hyper bounds the rest of its headers (HTTP/1).
    let protocol = tokio::select! {
        sniffed = tokio::time::timeout(shared.header_read_timeout, sniff(&stream)) => {
            match sniffed {
                Ok(Ok(Some(protocol))) => protocol,
                _ => {
                    tracing::debug!(%peer, "closing a connection that sent no request");
                    return;
                }
            }
        }
        _ = phase.changed() => return,
    };

    let app = shared.app;
    let service = service_fn(move |request: Request<Incoming>| answer(app, peer, request));
    let io = TokioIo::new(stream);
    let result = match protocol {
        Protocol::Http1 => {
            let conn = std::pin::pin!(shared.http1.serve_connection(io, service));
            drive(conn, &mut phase).await
        }
        // Rare here, and a larger state: kept out of the common task's size.
        Protocol::Http2 => {
            let mut conn = Box::pin(shared.http2.serve_connection(io, service));
            drive(conn.as_mut(), &mut phase).await
        }
    };
    if let Err(err) = result {
        // hyper's Display of an error leaves out its cause (an h2 GOAWAY reason, an I/O error).
        tracing::debug!(%peer, error = ?err, "connection ended with an error");
    }
}

/// What a connection speaks, told from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge: the connection opens with the preface (RFC 9113 §3.4).
    Http2,
}

/// Peeks (without consuming) at the first bytes until they tell the protocol; `None` when the
/// client closes first.
///
/// hyper-util's `auto` builder tells the same by reading into a buffer it then replays, at
/// about 5 KiB more per connection (measured with `bench/run`); peeking leaves the socket as it
/// was, so hyper's own HTTP/1 or HTTP/2 connection takes it directly.
async fn sniff(stream: &TcpStream) -> io::Result<Option<Protocol>> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut first = [0u8; PREFACE.len()];
    loop {
        let n = stream.peek(&mut first).await?;
        if n == 0 {
            return Ok(None);
        }
        if first[..n] != PREFACE[..n] {
            return Ok(Some(Protocol::Http1));
        }
        if n == PREFACE.len() {
            return Ok(Some(Protocol::Http2));
        }
        // Part of the preface so far. A peek returns at once while any byte is unread, so
        // wait a little for the rest rather than spin; the caller's timeout bounds this.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs a connection to its end. When the server starts draining, the connection finishes the
/// requests it has and closes; when the grace period is over, it is dropped (closed) as it is.
///
/// It takes the connection pinned where the caller holds it: passed by value, the connection
/// (about 700 bytes) was stored twice in the connection's task, once in each future.
async fn drive<C>(mut conn: Pin<&mut C>, phase: &mut watch::Receiver<Phase>) -> Result<(), C::Error>
where
    C: GracefulConnection,
{
    tokio::select! {
        result = conn.as_mut() => return result,
        _ = phase.changed() => conn.as_mut().graceful_shutdown(),
    }
    tokio::select! {
        result = conn.as_mut() => result,
        _ = phase.changed() => Ok(()),
    }
}

/// The target of the access lines: `RUST_LOG=hello_edge_native::access=debug` shows them.
const ACCESS: &str = "hello_edge_native::access";

/// Asks the core for the answer at once, then returns the future that sleeps its delay and
/// sends it.
///
/// Thousands of requests wait at once, so the waiting future holds only the decided response,
/// the timer and, when access lines are on, what they print: not the request, which is dropped
/// here.
fn answer(
    config: hello_edge::Config,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> {
    let reply = hello_edge::respond_to(&config, &request);
    // Boxed: off by default, it then costs a waiting request one pointer, not the whole line.
    let access = tracing::enabled!(target: ACCESS, tracing::Level::DEBUG).then(|| {
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        Box::new((method, path, request.version(), Instant::now()))
    });
    drop(request);
    async move {
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        if let Some(line) = access {
            let (method, path, version, started) = *line;
            tracing::debug!(
                target: ACCESS,
                %peer,
                %method,
                path,
                ?version,
                status = reply.status().as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
            );
        }
        Ok(reply.into_response().map(Full::new))
    }
}

/// Keeps the server up through accept errors: a client that left early is nothing; running out
/// of file descriptors passes once connections close, so wait a little and retry.
async fn accept_error(err: io::Error, log: &mut Throttle) {
    match err.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionRefused => {}
        _ => {
            if log.ready() {
                tracing::error!(error = %err, "accept failed; retrying every 50 ms (logged once a minute)");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Lets a recurring condition be logged once a minute at most, not once per event.
struct Throttle {
    last: Option<Instant>,
}

impl Throttle {
    fn every_minute() -> Throttle {
        Throttle { last: None }
    }

    /// Whether to log now; if so, the next minute is quiet.
    fn ready(&mut self) -> bool {
        let ready = self
            .last
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60));
        if ready {
            self.last = Some(Instant::now());
        }
        ready
    }
}
