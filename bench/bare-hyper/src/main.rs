//! A benchmark reference, not part of hello-edge: the least a hyper 1 server on tokio does per
//! request to send hello-edge's answer to `/hello/bench` (the same header fields, the same body
//! length, fixed; an optional tokio sleep), so each figure of the native server has its limit
//! beside it, for the same bytes on the wire. It speaks HTTP/1.1 (`http1`, the default), HTTP/2 with prior knowledge
//! (`http2`), or either, told apart by hyper-util's auto builder (`auto`), so that builder's own
//! cost per connection can be measured against plain HTTP/1.1.
//!
//! Usage: `bare-hyper ADDR DELAY_MS [http1|http2|auto]`; prints `Serving http://ADDR` once bound.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS,
};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8000".into());
    let delay = Duration::from_millis(args.next().map_or(0, |ms| ms.parse().expect("DELAY_MS")));
    let protocol = args.next().unwrap_or_else(|| "http1".into());

    let listener = tokio::net::TcpSocket::new_v4().unwrap();
    listener.set_reuseaddr(true).unwrap();
    listener.bind(addr.parse().expect("ADDR")).unwrap();
    let listener = listener.listen(4096).unwrap();
    println!("Serving http://{}", listener.local_addr().unwrap());

    let auto = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (auto, protocol) = (Arc::clone(&auto), protocol.clone());
        tokio::spawn(async move {
            let service = service_fn(move |_: Request<Incoming>| async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok::<_, Infallible>(answer())
            });
            let io = TokioIo::new(stream);
            let _ = match protocol.as_str() {
                "http2" => http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await
                    .map_err(Into::into),
                "auto" => auto.serve_connection(io, service).await,
                _ => http1::Builder::new()
                    .serve_connection(io, service)
                    .await
                    .map_err(Into::into),
            };
        });
    }
}

/// hello-edge's answer to `/hello/bench`, fixed: its four header fields, its body.
fn answer() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"<h1>hello, bench!</h1>")));
    let headers = response.headers_mut();
    for (name, value) in [
        (CONTENT_TYPE, "text/html; charset=utf-8"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (CONTENT_SECURITY_POLICY, "default-src 'none'"),
        (CONTENT_LENGTH, "22"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
