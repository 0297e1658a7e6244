//! A benchmark reference, not part of hello-edge: a WASI 0.2 component on the same bindings as
//! hello-edge's (`wasip2`) that answers a fixed body after an optional sleep
//! (`HELLO_EDGE_DELAY_MS`, default 0), so each figure of the hello-edge WASI 0.2 component has
//! the host's own limit beside it.

// On a non-wasm target (the host's `cargo build --workspace`) the component is empty.
#![cfg(target_family = "wasm")]

use wasip2::clocks::monotonic_clock;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Component;

wasip2::http::proxy::export!(Component);

impl wasip2::exports::http::incoming_handler::Guest for Component {
    /// Answers every request with the same body.
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let ms: u64 = std::env::var("HELLO_EDGE_DELAY_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0);
        if ms > 0 {
            monotonic_clock::subscribe_duration(ms * 1_000_000).block();
        }
        let response = OutgoingResponse::new(Fields::new());
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(stream) = body.write()
            && stream
                .blocking_write_and_flush(b"<h1>hello, bench!</h1>")
                .is_ok()
        {
            drop(stream);
            let _ = OutgoingBody::finish(body, None);
        }
    }
}
