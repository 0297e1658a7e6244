//! The core's invariants (`tests/invariants/`) as `proptest` properties, so every `cargo test`
//! runs them on a few thousand generated requests; the fuzz target checks the same on
//! arbitrary bytes.

use hello_edge_invariants as invariants;

use hello_edge::{Config, Delay, Parts, Reply, respond};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use proptest::prelude::*;

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        4 => Just(Method::GET),
        2 => Just(Method::HEAD),
        1 => Just(Method::POST),
        1 => Just(Method::PUT),
        1 => Just(Method::DELETE),
        1 => Just(Method::OPTIONS),
        1 => "[A-Z]{1,10}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

/// Names as clients send them: plain, percent-encoded (valid or not), markup, any Unicode.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._~-]{1,40}",
        "[a-z<>\"'&%/ +?#]{0,20}",
        "(%[0-9A-Fa-f]{2}){1,40}",
        "(%[0-9A-Fa-fG-Zg-z]{0,2}[a-z]?){1,10}",
        any::<String>(),
        "a{95,105}",
        "(%E5%BC%A0){95,105}",
        any::<Vec<u8>>().prop_map(|bytes| {
            bytes
                .iter()
                .map(|b| format!("%{b:02X}"))
                .collect::<String>()
        }),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => name().prop_map(|name| format!("/hello/{name}")),
        1 => Just("/".to_owned()),
        1 => Just("/healthz".to_owned()),
        1 => any::<String>(),
        1 => "/[a-z/]{0,20}",
    ]
}

/// Header fields: usually few and small, sometimes many or large, around the limits; now and
/// then the authority (`host`) or a field a host adds, which the limits treat apart.
fn headers() -> impl Strategy<Value = HeaderMap> {
    let name = prop_oneof![
        8 => "[a-z][a-z0-9-]{0,15}",
        1 => Just("host".to_owned()),
        1 => prop::sample::select(&hello_edge::HOST_ADDED_FIELDS[..]).prop_map(str::to_owned),
    ];
    let field = (name, prop_oneof![8 => 0..100usize, 1 => 0..20_000usize]);
    prop_oneof![
        4 => prop::collection::vec(field.clone(), 0..6),
        1 => prop::collection::vec(field, 0..130),
    ]
    .prop_map(|fields| {
        let mut map = HeaderMap::new();
        for (name, len) in fields {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(&"v".repeat(len)).unwrap(),
            );
        }
        map
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    /// Every answer keeps the invariants: a documented status, the page for the decoded and
    /// escaped name on a 200, no raw markup from the name, no delay for an error.
    #[test]
    fn every_answer_keeps_the_invariants(
        method in method(),
        path in path(),
        headers in headers(),
        delay_ms in prop_oneof![Just(500u64), 0..60_000u64],
    ) {
        let config = Config::with_delay(Delay::from_millis(delay_ms).unwrap());
        let reply = answer(&config, &method, &path, &headers);
        let checked = invariants::check(&config, &method, &path, &headers, &reply);
        prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
    }

    /// HEAD answers as GET does, without the body.
    #[test]
    fn head_is_get_without_the_body(path in path(), headers in headers()) {
        let config = Config::default();
        let get = answer(&config, &Method::GET, &path, &headers);
        let head = answer(&config, &Method::HEAD, &path, &headers);
        let (get_response, head_response) = (get.response(), head.response());
        prop_assert_eq!(get_response.status(), head_response.status());
        prop_assert_eq!(get_response.headers(), head_response.headers());
        prop_assert_eq!(get.delay(), head.delay());
        prop_assert!(head_response.body().is_empty());
    }
}

/// The core's answer to `method path` with `headers`.
fn answer(config: &Config, method: &Method, path: &str, headers: &HeaderMap) -> Reply {
    let fields = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.len()));
    respond(&(*config).into(), Parts::new(method.as_str(), path, fields))
}

/// The invariants catch what they are for: a page with a raw `<` from the name, an error that
/// waits, an undocumented status.
#[test]
fn the_invariants_can_fail() {
    use bytes::Bytes;
    use http::{Response, StatusCode};
    use std::time::Duration;

    let config = Config::default();
    let answer = |status: u16, body: &'static str| {
        let mut response = Response::new(Bytes::from_static(body.as_bytes()));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        let headers = response.headers_mut();
        headers.insert(
            "content-type",
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            "content-security-policy",
            HeaderValue::from_static("default-src 'none'"),
        );
        headers.insert("content-length", HeaderValue::from(body.len()));
        response
    };
    let none = HeaderMap::new();
    let get = |path: &str, response: Response<Bytes>, delay_ms: u64| {
        let delay = Duration::from_millis(delay_ms);
        invariants::check_response(&config, &Method::GET, path, &none, &response, delay)
    };
    let escaped = answer(200, "<h1>hello, &lt;b&gt;!</h1>");
    assert!(get("/hello/%3Cb%3E", escaped, 500).is_ok());
    let raw = answer(200, "<h1>hello, <b>!</h1>");
    assert!(get("/hello/%3Cb%3E", raw, 500).is_err());
    assert!(get("/nope", answer(404, "<h1>404 Not Found</h1>"), 500).is_err());
    assert!(get("/nope", answer(418, "<h1>418</h1>"), 0).is_err());
    assert!(get("/hello/x", answer(404, "<h1>404 Not Found</h1>"), 0).is_err());
}
