//! A benchmark reference, not part of hello-edge: a wstd (WASI 0.2) component that answers a
//! fixed body after an optional sleep (`HELLO_EDGE_DELAY_MS`, default 0), so each figure of the
//! hello-edge WASI 0.2 component has the host's own limit beside it.

// On a non-wasm target (the host's `cargo build --workspace`) the component is empty.
#![cfg(target_family = "wasm")]

use wstd::http::{Body, Error, Request, Response};
use wstd::time::Duration;

/// Answers every request with the same body.
#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>, Error> {
    let ms = std::env::var("HELLO_EDGE_DELAY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0);
    if ms > 0 {
        wstd::task::sleep(Duration::from_millis(ms)).await;
    }
    Ok(Response::new("<h1>hello, bench!</h1>".into()))
}
