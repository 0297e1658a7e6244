//! One request: the core decides the answer at once, the future returned sleeps its delay on
//! tokio's timer and sends it; the access line, the metrics and the end of the request's span
//! ([`crate::traces`]) are written when it is sent.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;

use super::shared::Shared;
use crate::traces;

/// The target of the access lines: `RUST_LOG=hello_edge_native::access=debug` shows them.
const ACCESS: &str = "hello_edge_native::access";

/// Asks the core for the answer at once, then returns the future that sleeps its delay and
/// sends it.
///
/// Thousands of requests wait at once, so the waiting future holds only the decided reply, the
/// timer, the request's span when traces are exported, and, when access lines are on, what they
/// print: not the request, which is dropped here.
pub(super) fn answer(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + use<> {
    let started = Instant::now();
    let reply = hello_edge::respond(&shared.app, hello_edge::Parts::from(&request));
    // Held until the answer is sent, so that it lasts the delay; without an exporter, a
    // disabled span of no size.
    let span = traces::request_span(&request, &reply, peer);
    // Boxed: off by default, it then costs a waiting request one pointer, not the whole line
    // (the peer's address and the trace's ids included).
    let access = tracing::enabled!(target: ACCESS, tracing::Level::DEBUG).then(|| {
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        let (trace_id, span_id) = traces::ids(&span).unzip();
        Box::new((peer, method, path, request.version(), trace_id, span_id))
    });
    drop(request);
    let shared = Arc::clone(shared);
    async move {
        if !reply.delay().is_zero() {
            tokio::time::sleep(reply.delay()).await;
        }
        let elapsed = started.elapsed();
        shared.metrics.answered(&reply, elapsed);
        if let Some(line) = access {
            let (peer, method, path, version, trace_id, span_id) = *line;
            tracing::debug!(
                target: ACCESS,
                %peer,
                %method,
                path,
                ?version,
                status = reply.status().as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                trace_id = trace_id.as_deref(),
                span_id = span_id.as_deref(),
            );
        }
        // The span ends as the answer leaves.
        traces::answered(&span, reply.status());
        drop(span);
        Ok(reply.into_response().map(Full::new))
    }
}
