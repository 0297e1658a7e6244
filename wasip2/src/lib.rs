//! The hello-edge component for WASI 0.2 hosts: the routing core behind
//! `wasi:http/incoming-handler@0.2`, on the WASI 0.2 bindings themselves (the
//! [`wasip2`](https://docs.rs/wasip2) crate).
//!
//! WASI 0.2 is the world every wasm HTTP host serves today: Spin 2.x to 4.x (and the SpinKube
//! shim), Spin-based clouds, wasmCloud and `wasmtime serve`. Such a host makes an instance for
//! each request. For each one, this component asks the core
//! ([`hello_edge::respond`]) for the answer, waits the delay on a
//! `wasi:clocks/monotonic-clock` pollable (the host parks the instance; no thread and no
//! spinning), and sends the response. It makes no routing, escaping, limit or status decision of
//! its own, and imports nothing Spin-only, so the one `.wasm` runs on Spin, wasmCloud and
//! `wasmtime serve` alike.
//!
//! Every exchange ends quietly, as a host's log should show it:
//!
//! * An answer without a body (HEAD) opens no body: the host sends the head as it is, with the
//!   `content-length` of the GET, and has no body to check against that length.
//! * A client that leaves before its answer is a normal end: the write fails, the component
//!   drops the body and returns, and logs nothing.
//!
//! The delay comes from the component's environment (`HELLO_EDGE_DELAY_MS`, parsed by the core),
//! as in the WASI 0.3 component beside it (`wasip3/`).

// On a non-wasm target (the host's `cargo build --workspace`) the component is empty.
#![cfg(target_family = "wasm")]

use hello_edge::{MethodClass, Parts, Reply, Settings};
use wasip2::clocks::monotonic_clock;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The component: one request in, one response out.
struct Component;

wasip2::http::proxy::export!(Component);

impl wasip2::exports::http::incoming_handler::Guest for Component {
    /// Answers one request: the core decides, the host's clock waits.
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        // What the request says is read and dropped here: nothing of it waits with the answer.
        let reply = {
            let target = request.path_with_query().unwrap_or_default();
            let fields = request.headers().entries();
            hello_edge::respond(
                settings(),
                Parts::new(
                    method(&request.method()),
                    &target,
                    fields
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.len())),
                ),
            )
        };
        drop(request);
        if !reply.delay().is_zero() {
            let nanos = u64::try_from(reply.delay().as_nanos()).unwrap_or(u64::MAX);
            monotonic_clock::subscribe_duration(nanos).block();
        }
        send(&reply, out);
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

/// Sends the answer: the head at once, then the body, if it has one. A client that has left
/// makes a write fail: the body is dropped unfinished, and the exchange ends there.
fn send(reply: &Reply, out: ResponseOutparam) {
    let Ok(headers) = Fields::from_list(&reply.field_list()) else {
        let why = "the host refused the answer's header fields".to_owned();
        ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some(why))));
        return;
    };
    let head = OutgoingResponse::new(headers);
    // Every status the core gives is a valid one.
    let _ = head.set_status_code(reply.status().as_u16());
    if !reply.has_body() {
        // HEAD: the head keeps the GET's content-length, and there is no body to open, so the
        // host has none to check against it.
        ResponseOutparam::set(out, Ok(head));
        return;
    }
    let page = reply.body();
    let Ok(body) = head.body() else {
        let why = "the host gave the answer no body".to_owned();
        ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some(why))));
        return;
    };
    ResponseOutparam::set(out, Ok(head));
    let written = match body.write() {
        // A blocking write takes at most 4,096 bytes at a time.
        Ok(stream) => page
            .chunks(4096)
            .all(|chunk| stream.blocking_write_and_flush(chunk).is_ok()),
        Err(()) => false,
    };
    if written {
        let _ = OutgoingBody::finish(body, None);
    }
}

/// The settings, read from the environment once per instance (a WASI 0.2 host makes an instance
/// per request by default, but may reuse one: `wasmtime serve --max-instance-reuse-count`). A
/// misconfiguration is logged through the binding, not std's stderr, whose machinery (and its
/// error messages) would be most of what this component carries beside the core.
fn settings() -> &'static Settings {
    Settings::from_env_once(|line| {
        let _ = wasip2::cli::stderr::get_stderr().blocking_write_and_flush(line.as_bytes());
    })
}
