//! The native server: how it is configured ([`ServerConfig`]), its listeners ([`bind`]), and
//! [`run`], which serves until a shutdown future completes and then drains.
//!
//! Each job is a module of its own, as mini-redis splits its server:
//!
//! * `config`: how it is run ([`ServerConfig`]) and the limits it holds connections to;
//! * `shared`: what every connection shares, built once from the configuration;
//! * `listener`: binding the app's listener ([`bind`]) and its accept loop, under the
//!   connection cap ([`crate::accept`]);
//! * `connection`: one connection, from its first bytes to its close, every wait bounded;
//! * `detect`: telling HTTP/1.1 from HTTP/2 by the first bytes, and handing them on;
//! * `service`: one request: the core's answer, the delay, the access line, the metrics;
//! * `drain`: shutting down: refuse new connections, finish or cut off the ones in flight.
//!
//! [`run`] starts the admin listener ([`crate::admin`]) beside the app's, and the metrics
//! ([`crate::metrics`]) count what both do; neither uses anything of this module.

mod config;
mod connection;
mod detect;
mod drain;
mod listener;
mod service;
mod shared;

pub use config::{
    H2_MAX_CONCURRENT_STREAMS, H2_MAX_PENDING_ACCEPT_RESET_STREAMS, MAX_HEAD_BYTES, ServerConfig,
};
pub use drain::Shutdown;
pub use listener::bind;

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::metrics::Metrics;

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
    let shared = Arc::new(shared::Shared::new(&config, Arc::clone(&metrics)));
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
