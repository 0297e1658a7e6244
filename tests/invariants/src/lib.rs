//! What must hold for every answer the core gives, whatever the request: checked by the
//! `proptest` properties (`tests/properties.rs`, every `cargo test`) and by the fuzz target
//! (`fuzz/fuzz_targets/respond.rs`, `cargo fuzz run respond`), which both depend on this crate
//! (`hello-edge-invariants`).
//!
//! The expected page is computed here independently of the core: its own percent-decoding and
//! its own HTML escaping, so a bug in the core's is not mirrored. Only the documented limits are
//! the core's own constants.

use std::time::Duration;

use bytes::Bytes;
use hello_edge::{
    Config, MAX_HEADER_BYTES, MAX_HEADER_FIELD_BYTES, MAX_HEADER_FIELDS, MAX_NAME_CHARS, Reply,
};
use http::{HeaderMap, Method, Response, StatusCode};

/// The statuses the README documents for a request (500 is for a misconfigured host only).
pub const DOCUMENTED: [u16; 6] = [200, 400, 404, 405, 414, 431];

/// Checks one answer of the core to `method target` (a path, and maybe a query, which is
/// ignored) with `headers`, under `config`; says what is
/// wrong, if anything.
pub fn check(
    config: &Config,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    reply: &Reply,
) -> Result<(), String> {
    let response = reply.response();
    if reply.status() != response.status() {
        return Err(format!(
            "the reply says {} but sends {}",
            reply.status(),
            response.status()
        ));
    }
    check_response(config, method, path, headers, &response, reply.delay())
}

/// [`check`] on the response a reply sends and the delay it waits.
pub fn check_response(
    config: &Config,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    response: &Response<Bytes>,
    delay: Duration,
) -> Result<(), String> {
    let status = response.status();
    let body = std::str::from_utf8(response.body()).map_err(|_| "the body is not UTF-8")?;
    let context = || format!("{method} {path:?} -> {status} {body:?}");
    // Queries are ignored: the page is the path's.
    let path = path.split_once('?').map_or(path, |(path, _query)| path);

    if !DOCUMENTED.contains(&status.as_u16()) {
        return Err(format!("undocumented status: {}", context()));
    }
    for (name, value) in [
        ("content-type", "text/html; charset=utf-8"),
        ("x-content-type-options", "nosniff"),
        ("content-security-policy", "default-src 'none'"),
    ] {
        if response.headers().get(name).map(|v| v.as_bytes()) != Some(value.as_bytes()) {
            return Err(format!("{name} is not {value:?}: {}", context()));
        }
    }
    if *method == Method::HEAD && !body.is_empty() {
        return Err(format!("a HEAD answer has a body: {}", context()));
    }

    // The header limits come first, whatever the route.
    if status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE {
        if !over_header_limits(headers) {
            return Err(format!("431 for headers within the limits: {}", context()));
        }
    } else if over_header_limits(headers) {
        return Err(format!(
            "headers over the limits were not refused: {}",
            context()
        ));
    }

    if status != StatusCode::OK {
        if !delay.is_zero() {
            return Err(format!("an error waits {delay:?}: {}", context()));
        }
        let greets = *method == Method::GET || *method == Method::HEAD;
        if greets && !over_header_limits(headers) && expected_page(path).is_some() {
            return Err(format!("a valid request was refused: {}", context()));
        }
        return Ok(());
    }

    // Every page waits the delay, but the health check, which answers at once.
    let expected = if path == "/healthz" {
        Duration::ZERO
    } else {
        config.delay.as_duration()
    };
    if delay != expected {
        return Err(format!("a 200 waits {delay:?}: {}", context()));
    }
    if *method != Method::GET && *method != Method::HEAD {
        return Err(format!(
            "200 for a method other than GET and HEAD: {}",
            context()
        ));
    }
    let page = expected_page(path).ok_or_else(|| format!("200 for no page: {}", context()))?;
    let length = response
        .headers()
        .get("content-length")
        .map(|v| v.as_bytes());
    if length != Some(page.len().to_string().as_bytes()) {
        return Err(format!(
            "content-length is not {}: {}",
            page.len(),
            context()
        ));
    }
    if *method == Method::GET && body != page {
        return Err(format!("the page should be {page:?}: {}", context()));
    }
    if let Some(greeted) = body
        .strip_prefix("<h1>hello, ")
        .and_then(|rest| rest.strip_suffix("!</h1>"))
    {
        check_escaped(greeted).map_err(|why| format!("{why}: {}", context()))?;
    }
    Ok(())
}

/// The page a 200 answer to a GET of `path` must be, if there is one: the index, the health
/// check, or the greeting for the decoded name (one path segment, UTF-8, no control character,
/// at most [`MAX_NAME_CHARS`] characters), escaped.
pub fn expected_page(path: &str) -> Option<String> {
    if path == "/" {
        return Some("<h1>Index</h1>".to_owned());
    }
    if path == "/healthz" {
        return Some("<h1>ok</h1>".to_owned());
    }
    let raw = path.strip_prefix("/hello/")?;
    if raw.is_empty() || raw.contains('/') {
        return None;
    }
    let name = percent_decode(raw)?;
    if name.chars().any(char::is_control) || name.chars().count() > MAX_NAME_CHARS {
        return None;
    }
    Some(format!("<h1>hello, {}!</h1>", escape(&name)))
}

/// A greeted name as it appears in the page: no raw `<`, `>`, `"` or `'`, and every `&` starts
/// one of the five entities the escaping writes.
fn check_escaped(greeted: &str) -> Result<(), String> {
    if let Some(c) = greeted
        .chars()
        .find(|c| matches!(c, '<' | '>' | '"' | '\''))
    {
        return Err(format!("a raw {c:?} from the name reached the page"));
    }
    for (i, _) in greeted.match_indices('&') {
        let rest = &greeted[i..];
        if !["&amp;", "&lt;", "&gt;", "&quot;", "&#x27;"]
            .iter()
            .any(|entity| rest.starts_with(entity))
        {
            return Err("a raw & from the name reached the page".to_owned());
        }
    }
    Ok(())
}

/// Strict percent-decoding to UTF-8: `None` for a stray `%` or bytes that are not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether the header fields break a documented limit: over [`MAX_HEADER_FIELDS`] fields with
/// the authority counted as one, a field over [`MAX_HEADER_FIELD_BYTES`], or over
/// [`MAX_HEADER_BYTES`] in all (each field counted as `name: value` and a line end). The first
/// `host` is the authority: one field, its bytes not counted. One of each field Spin adds is
/// not the client's: not counted at all. Written here from the README's words, not from the
/// core's code.
pub fn over_header_limits(headers: &HeaderMap) -> bool {
    const SPIN_ADDS: [&str; 7] = [
        "spin-path-info",
        "spin-full-url",
        "spin-matched-route",
        "spin-base-path",
        "spin-raw-component-route",
        "spin-component-route",
        "spin-client-addr",
    ];
    let mut left_out: Vec<&str> = Vec::new();
    let mut sizes = Vec::new();
    for (name, value) in headers {
        let name = name.as_str();
        let once = name == "host" || SPIN_ADDS.contains(&name);
        if once && !left_out.contains(&name) {
            left_out.push(name);
            continue;
        }
        sizes.push(name.len() + 2 + value.len() + 2);
    }
    1 + sizes.len() > MAX_HEADER_FIELDS
        || sizes.iter().any(|&s| s > MAX_HEADER_FIELD_BYTES)
        || sizes.iter().sum::<usize>() > MAX_HEADER_BYTES
}
