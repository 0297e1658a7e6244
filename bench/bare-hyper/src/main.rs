//! A benchmark reference, not part of hello-edge: the least a hyper 1 server on tokio does per
//! request (HTTP/1.1, and HTTP/2 with prior knowledge through hyper-util's auto builder; one
//! fixed body, an optional tokio sleep), so each figure of the native server has its limit
//! beside it.
//!
//! Usage: `bare-hyper ADDR DELAY_MS`; prints `Serving http://ADDR` once bound.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8000".into());
    let delay = Duration::from_millis(args.next().map_or(0, |ms| ms.parse().expect("DELAY_MS")));

    let listener = tokio::net::TcpSocket::new_v4().unwrap();
    listener.set_reuseaddr(true).unwrap();
    listener.bind(addr.parse().expect("ADDR")).unwrap();
    let listener = listener.listen(4096).unwrap();
    println!("Serving http://{}", listener.local_addr().unwrap());

    let builder = std::sync::Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = std::sync::Arc::clone(&builder);
        tokio::spawn(async move {
            let service = service_fn(move |_: Request<Incoming>| async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                    b"<h1>hello, bench!</h1>",
                ))))
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
