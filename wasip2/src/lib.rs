//! The hello-edge component for WASI 0.2 hosts: the routing core behind
//! `wasi:http/incoming-handler@0.2`, through [wstd](https://docs.rs/wstd).
//!
//! WASI 0.2 is the world every wasm HTTP host serves today: Spin 2.x to 4.x (and the SpinKube
//! shim), Spin-based clouds, wasmCloud and `wasmtime serve`. Such a host makes an instance for
//! each request. For each one, this component asks the core
//! ([`hello_edge::respond_as_configured`]) for the answer, waits the delay on a
//! `wasi:clocks/monotonic-clock` pollable (the host parks the instance; no thread and no
//! spinning), and sends the response. It makes no routing, escaping, limit or status decision of
//! its own, and imports nothing Spin-only, so the one `.wasm` runs on Spin and on `wasmtime serve`
//! alike.
//!
//! The delay comes from the component's environment (`HELLO_EDGE_DELAY_MS`, parsed by the core),
//! as in the WASI 0.3 component beside it (`wasip3/`).

// On a non-wasm target (the host's `cargo build --workspace`) the component is empty.
#![cfg(target_family = "wasm")]

use std::sync::OnceLock;

use hello_edge::{Config, VarError};
use wstd::http::{Body, Error, Request, Response};

/// Answers one request: the core decides, the host's clock waits.
#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let reply = hello_edge::respond_as_configured(config(), &request);
    if !reply.delay.is_zero() {
        wstd::task::sleep(reply.delay.into()).await;
    }
    Ok(reply.into_response().map(Body::from))
}

/// The configuration, read from the environment once per instance. A WASI 0.2 host makes an
/// instance per request by default, but may reuse one for the next (`wasmtime serve
/// --max-instance-reuse-count`); then the host call that copies the environment in is not
/// repeated for every request.
fn config() -> &'static Result<Config, VarError> {
    static CONFIG: OnceLock<Result<Config, VarError>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let config = Config::from_lookup(|name| std::env::var(name).ok());
        if let Err(err) = &config {
            // Every request answers 500 until the variable is fixed; say why where the
            // operator looks.
            eprintln!("hello-edge: invalid configuration: {err}");
        }
        config
    })
}
