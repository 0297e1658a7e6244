//! The admin listener: liveness and the metrics, on a port of their own, apart from the app's
//! and outside its connection cap, so a kubelet's liveness probe or a Prometheus scrape is
//! answered at once even when the app's port holds every connection it may (linkerd and Envoy
//! keep their admin ports apart the same way).
//!
//! * `GET /healthz`: `ok`, while the server's event loop runs.
//! * `GET /metrics`: [`crate::metrics`], in the OpenMetrics text format.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, Metrics};

/// The most admin connections served at once; more wait in the listen backlog. A probe and a
/// scraper need one each.
pub const MAX_ADMIN_CONNECTIONS: usize = 32;

/// How long an admin client may take to send its request (and the longest an admin connection
/// lives, keep-alive being off), at most: a probe and a scraper send theirs at once, and a slot
/// held longer is one a probe may need.
pub const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves the admin routes on `listener` until `stopped` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    header_read_timeout: Duration,
    stopped: CancellationToken,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout.min(ADMIN_HEADER_TIMEOUT))
        .keep_alive(false);
    let slots = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = stopped.cancelled() => return,
            slot = Arc::clone(&slots).acquire_owned() => {
                let slot = slot.expect("the semaphore is never closed");
                tokio::select! {
                    () = stopped.cancelled() => return,
                    accepted = listener.accept() => accepted.map(|accepted| (accepted, slot)),
                }
            }
        };
        let ((stream, _), slot) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::debug!(error = %err, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = Arc::clone(&metrics);
        let conn = http.serve_connection(
            TokioIo::new(stream),
            service_fn(move |request| {
                std::future::ready(Ok::<_, Infallible>(answer(&metrics, &request)))
            }),
        );
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stopped.cancelled() => {}
            }
        });
    }
}

/// The answer to one admin request.
fn answer(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => {
            (StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into())
        }
        (&Method::GET, "/metrics") => (StatusCode::OK, metrics::CONTENT_TYPE, metrics.encode()),
        (_, "/healthz" | "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: the admin port serves /healthz and /metrics\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
