//! The hello-edge component for WASI 0.3 hosts: the routing core behind spin-sdk 7's WASI 0.3 HTTP
//! handler (`wasi:http/handler@0.3.0`), for Spin 4.1 and later and `wasmtime serve`.
//!
//! The host (Spin, or `wasmtime serve`) owns the listener and the event loop. For each request
//! this component asks the core ([`hello_edge::respond_as_configured`]) for the answer, awaits
//! the host's monotonic clock for the delay (so a waiting request costs the host a timer, not a
//! thread), and returns the response. It makes no routing, escaping, limit or status decision of
//! its own.
//!
//! The delay comes from the component's environment (`HELLO_EDGE_DELAY_MS`, parsed by the
//! core); it imports nothing Spin-only, so the one `.wasm` runs on Spin and on `wasmtime serve`.

// On a non-wasm target (the host's `cargo build --workspace`) the component is empty.
#![cfg(target_family = "wasm")]

use std::sync::OnceLock;

use hello_edge::{Config, VarError};
use http_body_util::Full;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

/// Answers one request: the core decides, the host's clock waits.
#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    let reply = hello_edge::respond_as_configured(config(), &request);
    if !reply.delay.is_zero() {
        spin_sdk::time::sleep(reply.delay).await;
    }
    reply.into_response().map(Full::new)
}

/// The configuration, read from the environment once per instance.
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
