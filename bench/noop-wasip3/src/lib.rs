//! A benchmark reference, not part of hello-edge: a spin-sdk 7 component that answers a fixed
//! body after an optional sleep (`HELLO_EDGE_DELAY_MS`, read once per instance, default 0), so
//! each figure of the hello-edge component has the host's own limit beside it.

// On a non-wasm target (the host's `cargo build --workspace`) the component is empty.
#![cfg(target_family = "wasm")]

use std::sync::OnceLock;
use std::time::Duration;

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

/// Answers every request with the same body.
#[http_service]
async fn handle(_request: Request) -> impl IntoResponse {
    static DELAY: OnceLock<Duration> = OnceLock::new();
    let delay = *DELAY.get_or_init(|| {
        let ms = std::env::var("HELLO_EDGE_DELAY_MS")
            .ok()
            .and_then(|ms| ms.parse().ok());
        Duration::from_millis(ms.unwrap_or(0))
    });
    if !delay.is_zero() {
        spin_sdk::time::sleep(delay).await;
    }
    "<h1>hello, bench!</h1>"
}
