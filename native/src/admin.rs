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
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accept::Acceptor;
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
    let mut acceptor = Acceptor::admin(&listener, MAX_ADMIN_CONNECTIONS);
    let mut stop = std::pin::pin!(stopped.cancelled());
    while let Some((stream, _, slot)) = acceptor.next(stop.as_mut()).await {
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

/// Where the admin port serves the metrics.
const METRICS_PATH: &str = "/metrics";

/// The answer to one admin request.
fn answer(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    // Each route, and the methods it answers, as sent in `Allow` when another comes.
    let path = request.uri().path();
    let allowed = match path {
        hello_edge::HEALTH_PATH => hello_edge::ALLOWED_METHODS,
        METRICS_PATH => "GET",
        _ => {
            let page = format!(
                "not found: {path:?}; the admin port serves {} and {METRICS_PATH}\n",
                hello_edge::HEALTH_PATH
            );
            return text(StatusCode::NOT_FOUND, TEXT, page);
        }
    };
    let method = request.method();
    if !allowed
        .split(", ")
        .any(|allowed| allowed == method.as_str())
    {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            format!("method not allowed: {path} answers {allowed}, not {method}\n"),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allowed));
        return response;
    }
    match path {
        METRICS_PATH => text(StatusCode::OK, metrics::CONTENT_TYPE, metrics.encode()),
        _ => text(StatusCode::OK, TEXT, "ok\n".to_owned()),
    }
}

/// An answer of `body`, as `content_type`.
fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
