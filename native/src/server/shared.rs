//! What every connection of the app's listener shares ([`Shared`]), built once from the
//! [`ServerConfig`].

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::config::{
    H2_MAX_CONCURRENT_STREAMS, H2_MAX_PENDING_ACCEPT_RESET_STREAMS, MAX_HEAD_BYTES, ServerConfig,
};
use crate::metrics::Metrics;

/// What every connection shares, set up once: the answers' settings, the timeouts, the two
/// protocols it may speak and the metrics. A connection's task holds only an `Arc` of it.
pub(super) struct Shared {
    /// The answers' settings, as the core takes them: the command line's are always valid.
    pub(super) app: hello_edge::Settings,
    pub(super) header_read_timeout: Duration,
    pub(super) max_connections: usize,
    pub(super) http1: http1::Builder,
    pub(super) http2: http2::Builder<TokioExecutor>,
    pub(super) metrics: Arc<Metrics>,
}

impl Shared {
    pub(super) fn new(config: &ServerConfig, metrics: Arc<Metrics>) -> Shared {
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
            app: config.app.into(),
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections,
            http1,
            http2,
            metrics,
        }
    }
}
