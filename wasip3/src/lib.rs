//! The hello-edge component for WASI 0.3 hosts: the routing core behind `wasi:http/handler@0.3.0`,
//! on spin-sdk 7's WASI 0.3 bindings, for Spin 4.1 and later and `wasmtime serve`.
//!
//! The host (Spin, or `wasmtime serve`) owns the listener and the event loop. For each request
//! this component asks the core ([`hello_edge::respond`]) for the answer, awaits the
//! host's monotonic clock for the delay (so a waiting request costs the host a timer, not a
//! thread), and returns the response. It makes no routing, escaping, limit or status decision of
//! its own.
//!
//! It speaks `wasi:http` itself rather than through spin-sdk's `http` conversions, for what a
//! host sees:
//!
//! * An answer without a body (HEAD) has no contents stream, so the host sends the head with the
//!   GET's `content-length` and has no body to hold against it. (Given an empty stream, a host
//!   checks it against that length and resets the HTTP/2 stream: Spin 4.1 did.)
//! * The request is read as it came (method, target, each field's name and length) and dropped
//!   before the wait: nothing is copied into an `http::Request` first.
//!
//! The delay comes from the component's environment (`HELLO_EDGE_DELAY_MS`, parsed by the
//! core); it imports nothing Spin-only, so the one `.wasm` runs on Spin and on `wasmtime serve`.

// On a non-wasm target (the host's `cargo build --workspace`) the component is empty.
#![cfg(target_family = "wasm")]

use hello_edge::{MethodClass, Parts, Reply, Settings};
use spin_sdk::wasip3::exports::http::handler::Guest;
use spin_sdk::wasip3::http::types::{ErrorCode, Fields, Method, Request, Response};
use spin_sdk::wasip3::{wit_future, wit_stream};

/// The component: one request in, one response out.
struct Component;

spin_sdk::wasip3::http::service::export!(Component);

impl Guest for Component {
    /// Answers one request: the core decides, the host's clock waits.
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        // What the request says is read and dropped here: nothing of it waits with the answer.
        let reply = {
            let target = request.get_path_with_query().unwrap_or_default();
            let fields = request.get_headers().copy_all();
            hello_edge::respond(
                settings(),
                Parts::new(
                    method(&request.get_method()),
                    &target,
                    fields
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.len())),
                ),
            )
        };
        drop(request);
        if !reply.delay().is_zero() {
            spin_sdk::time::sleep(reply.delay()).await;
        }
        response(&reply)
    }
}

/// The method, as the core tells methods apart: the binding has read it already.
fn method(method: &Method) -> MethodClass {
    match method {
        Method::Get => MethodClass::Get,
        Method::Head => MethodClass::Head,
        _ => MethodClass::Other,
    }
}

/// The answer as `wasi:http` has it: the head, and the page as the contents stream, written once
/// the host reads it; no contents at all when there is no body (HEAD).
fn response(reply: &Reply) -> Result<Response, ErrorCode> {
    let headers = Fields::from_list(&reply.field_list()).map_err(|err| {
        ErrorCode::InternalError(Some(format!("the answer's header fields: {err:?}")))
    })?;
    // No trailers: a dropped writer gives the reader this.
    let (_, trailers) = wit_future::new(|| Ok(None));
    let page = reply.body();
    let contents = reply.has_body().then(|| {
        let (mut writer, contents) = wit_stream::new();
        let page = page.to_vec();
        // A client that left closes the stream: what is not written is dropped with it.
        spin_sdk::wasip3::spawn(async move {
            writer.write_all(page).await;
        });
        contents
    });
    let (response, _sent) = Response::new(headers, contents, trailers);
    // Every status the core gives is a valid one.
    let _ = response.set_status_code(reply.status().as_u16());
    Ok(response)
}

/// The settings, read from the environment once per instance.
fn settings() -> &'static Settings {
    Settings::from_env_once(|line| eprint!("{line}"))
}
