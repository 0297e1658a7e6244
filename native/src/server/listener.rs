//! The app's listener: bound with a backlog fit for thousands of clients connecting at once
//! ([`bind`]), and its accept loop ([`accept`]), which hands each connection to a task of its
//! own under the connection cap ([`crate::accept::Acceptor`]) until shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};

use super::connection;
use super::drain::Drain;
use super::shared::Shared;
use crate::accept::{Accepted, Acceptor, LISTEN_BACKLOG};

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

/// Accepts connections on `listener` and spawns a task for each, until `shutdown` completes;
/// then takes what the kernel has already queued ([`Acceptor::queued`]).
pub(super) async fn accept(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    drain: &Drain,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut acceptor = Acceptor::app(listener, shared.max_connections, &shared.metrics);
    let serve = |(stream, peer, slot): Accepted| {
        let task = connection::serve(
            stream,
            peer,
            Arc::clone(shared),
            drain.steps(),
            drain.requests(),
            slot,
        );
        drain.spawn(task);
    };
    while let Some(accepted) = acceptor.next(shutdown.as_mut()).await {
        serve(accepted);
    }
    let queued = acceptor.queued().await;
    if !queued.is_empty() {
        tracing::info!(
            connections = queued.len(),
            "accepted the connections queued before shutdown"
        );
    }
    queued.into_iter().for_each(serve);
}
