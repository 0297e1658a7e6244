//! A benchmark reference, not part of hello-edge: a WASI 0.2 component on the same bindings as
//! hello-edge's (`wasip2`) that sends the answer hello-edge sends to `/hello/bench` (the same
//! status, header fields and body length) after an optional sleep (`HELLO_EDGE_DELAY_MS`, read
//! once per instance, default 0), deciding nothing: each figure of the hello-edge WASI 0.2
//! component has the host's own cost of that answer beside it. It reads nothing of the request.

// On a non-wasm target (the host's `cargo build --workspace`) the component is empty.
#![cfg(target_family = "wasm")]

use std::sync::OnceLock;

use wasip2::clocks::monotonic_clock;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The answer's body: as long as hello-edge's greeting of `bench`.
const BODY: &[u8] = b"<h1>hello, bench!</h1>";

/// The answer's header fields: hello-edge's.
const FIELDS: [(&str, &str); 4] = [
    ("content-type", "text/html; charset=utf-8"),
    ("x-content-type-options", "nosniff"),
    ("content-security-policy", "default-src 'none'"),
    ("content-length", "22"),
];

struct Component;

wasip2::http::proxy::export!(Component);

impl wasip2::exports::http::incoming_handler::Guest for Component {
    /// Answers every request with the same answer.
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        static DELAY_MS: OnceLock<u64> = OnceLock::new();
        let ms = *DELAY_MS.get_or_init(|| {
            std::env::var("HELLO_EDGE_DELAY_MS")
                .ok()
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(0)
        });
        if ms > 0 {
            monotonic_clock::subscribe_duration(ms * 1_000_000).block();
        }
        let fields: Vec<_> = FIELDS
            .iter()
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect();
        let Ok(headers) = Fields::from_list(&fields) else {
            return;
        };
        let response = OutgoingResponse::new(headers);
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(stream) = body.write()
            && stream.blocking_write_and_flush(BODY).is_ok()
        {
            drop(stream);
            let _ = OutgoingBody::finish(body, None);
        }
    }
}
