//! Accepting connections, serving them with hyper, and draining them on shutdown.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            app: hello_edge::Config::default(),
            grace: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

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
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<Shutdown> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    builder.http2().timer(TokioTimer::new());

    // Every connection task holds a receiver; a send tells them all to finish up.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let conn = serve_connection(stream, peer, builder.clone(), config, stop_rx.clone());
                    connections.spawn(conn);
                }
                Err(err) => accept_error(err).await,
            },
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    // Closing the listener makes new connections fail at once rather than wait in the backlog.
    drop(listener);
    let _ = stop_tx.send(());
    let in_flight = connections.len();
    tracing::info!(connections = in_flight, grace = ?config.grace, "shutting down");

    let drained = tokio::time::timeout(config.grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    match drained {
        Ok(()) => {
            tracing::info!("all connections finished");
            Ok(Shutdown::Drained)
        }
        Err(_) => {
            let aborted = connections.len();
            tracing::warn!(aborted, "grace period over: closing unfinished connections");
            connections.shutdown().await;
            Ok(Shutdown::GraceExpired { aborted })
        }
    }
}

/// Serves one connection until it closes, finishing its requests in flight on shutdown.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    builder: auto::Builder<TokioExecutor>,
    config: ServerConfig,
    mut stop: watch::Receiver<()>,
) {
    // Small answers should leave at once, not wait for more to coalesce with.
    let _ = stream.set_nodelay(true);

    // hyper's header timeout starts once it knows the protocol, which it learns from the
    // first bytes; a client that connects and sends nothing is bounded here.
    let mut first_byte = [0u8; 1];
    tokio::select! {
        first = tokio::time::timeout(config.header_read_timeout, stream.peek(&mut first_byte)) => {
            if !matches!(first, Ok(Ok(1))) {
                tracing::debug!(%peer, "closing a connection that sent nothing");
                return;
            }
        }
        _ = stop.changed() => return,
    }

    let app = config.app;
    let service = service_fn(move |request: Request<Incoming>| answer(app, peer, request));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

/// Asks the core for the answer, sleeps its delay, and sends it.
async fn answer(
    config: hello_edge::Config,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let reply = hello_edge::respond(&config, request.method(), request.uri().path());
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    tracing::debug!(
        target: "hello_edge_native::access",
        %peer,
        method = %request.method(),
        path = request.uri().path(),
        version = ?request.version(),
        status = reply.response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
    );
    Ok(reply.response.map(Full::new))
}

/// Keeps the server up through accept errors: a client that left early is nothing, running out
/// of file descriptors passes once connections close.
async fn accept_error(err: io::Error) {
    match err.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionRefused => {}
        _ => {
            tracing::error!(error = %err, "accept failed; retrying shortly");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
