//! A benchmark reference, not part of hello-edge: a WASI 0.3 component on the same bindings as
//! hello-edge's (spin-sdk 7's `wasip3`) that sends the answer hello-edge sends to `/hello/bench`
//! (the same status, header fields and body length) after an optional sleep
//! (`HELLO_EDGE_DELAY_MS`, read once per instance, default 0), deciding nothing: each figure of
//! the hello-edge WASI 0.3 component has the host's own cost of that answer beside it. It reads
//! nothing of the request.

// On a non-wasm target (the host's `cargo build --workspace`) the component is empty.
#![cfg(target_family = "wasm")]

use std::sync::OnceLock;
use std::time::Duration;

use spin_sdk::wasip3::exports::http::handler::Guest;
use spin_sdk::wasip3::http::types::{ErrorCode, Fields, Request, Response};
use spin_sdk::wasip3::{wit_future, wit_stream};

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

spin_sdk::wasip3::http::service::export!(Component);

impl Guest for Component {
    /// Answers every request with the same answer.
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
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
        let fields: Vec<_> = FIELDS
            .iter()
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect();
        let headers = Fields::from_list(&fields)
            .map_err(|_| ErrorCode::InternalError(Some("header fields".into())))?;
        let (_, trailers) = wit_future::new(|| Ok(None));
        let (mut writer, contents) = wit_stream::new();
        spin_sdk::wasip3::spawn(async move {
            writer.write_all(BODY.to_vec()).await;
        });
        let (response, _sent) = Response::new(headers, Some(contents), trailers);
        Ok(response)
    }
}
