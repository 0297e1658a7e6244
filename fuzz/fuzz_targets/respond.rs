//! Fuzzes the core's one decision, `hello_edge::respond`, on arbitrary methods, paths and header
//! fields, and checks every answer against the invariants the property tests check
//! (`tests/invariants`, the `hello-edge-invariants` crate): a documented status, the exact page for the decoded and escaped name,
//! no raw markup from the name, no delay for an error, 431 exactly past the header limits.
//!
//! `cargo +nightly fuzz run respond` (from the repository root).

#![no_main]

use arbitrary::Arbitrary;
use hello_edge::{Config, Parts, respond};
use hello_edge_invariants as invariants;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    method: &'a [u8],
    path: &'a [u8],
    headers: Vec<(&'a [u8], &'a [u8])>,
    /// A header field of this many bytes besides, to reach the size limits cheaply.
    padding: u16,
}

fuzz_target!(|input: Input<'_>| {
    // A method a request can carry, and a path as a host hands it over (text).
    let Ok(method) = Method::from_bytes(input.method) else {
        return;
    };
    let path = String::from_utf8_lossy(input.path);
    let mut headers = HeaderMap::new();
    for (name, value) in input.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    if input.padding > 0 {
        let value = "p".repeat(usize::from(input.padding));
        headers.append("x-padding", HeaderValue::from_str(&value).unwrap());
    }

    let config = Config::default();
    let fields = headers.iter().map(|(name, value)| (name.as_str(), value.len()));
    let reply = respond(&config.into(), Parts::new(method.as_str(), &path, fields));
    if let Err(why) = invariants::check(&config, &method, &path, &headers, &reply) {
        panic!("{why}");
    }
});
