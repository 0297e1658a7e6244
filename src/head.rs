//! Limits on a request's header fields, the same on every host.
//!
//! A host hands the core the header fields as it parsed them; the core refuses, with 431 Request
//! Header Fields Too Large, a request whose fields are too many or too large. The limits follow
//! what servers in front of such a service already enforce, so a client that passes one of them
//! passes hello-edge too:
//!
//! * at most [`MAX_HEADER_FIELDS`] fields: hyper's default (which `wasmtime serve` and Spin run
//!   with) and Apache's `LimitRequestFields`;
//! * at most [`MAX_HEADER_FIELD_BYTES`] for one field: nginx's 8 KiB header buffer
//!   (`large_client_header_buffers`) and Apache's `LimitRequestFieldSize`;
//! * at most [`MAX_HEADER_BYTES`] for all fields together: Node.js's `--max-http-header-size`.
//!
//! A field's size is counted as HTTP/1.1 sends it, `name: value` and the line end: its name and
//! value in bytes, plus 4. The request line (method, path) is not counted here: the path has its
//! own limit, on the name it carries ([`crate::MAX_NAME_CHARS`]).
//!
//! The request's authority is one field in the count, whatever form it comes in, and its bytes
//! are not counted: HTTP/1.1 sends it as `host`, HTTP/2 as the `:authority` pseudo-header, and a
//! host hands it over either as a field or as the request's authority (`wasmtime serve` passes
//! `host` to a WASI 0.2 component, not to a WASI 0.3 one). So 100 fields means what hyper, in
//! front of every host, means on HTTP/1.1: the `host` line and 99 others. Only the first `host`
//! is the authority: a second one is an ordinary field.
//!
//! The fields a host adds for the component's own use are not the client's, so they are not
//! counted either: Spin hands a WASI 0.2 component its request with seven fields of its own
//! ([`HOST_ADDED_FIELDS`]). One of each name is left out, so a client cannot hide more behind
//! them.

use http::header::HOST;

/// The most header fields a request may have, its authority (`host`) counted as one.
pub const MAX_HEADER_FIELDS: usize = 100;
/// The largest one header field may be, in bytes (`name: value` and the line end).
pub const MAX_HEADER_FIELD_BYTES: usize = 8 * 1024;
/// The largest all header fields together may be, in bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The fields Spin adds to every request it hands a WASI 0.2 component, after the client's (Spin
/// v4.0.2, `crates/trigger-http/src/headers.rs`, `compute_default_headers`, appended by
/// `prepare_request` in `crates/trigger-http/src/wasi.rs`). hello-edge's route, `/...`, names no
/// wildcard, so Spin adds no `spin-path-match-*` field.
pub const HOST_ADDED_FIELDS: [&str; 7] = [
    "spin-path-info",
    "spin-full-url",
    "spin-matched-route",
    "spin-base-path",
    "spin-raw-component-route",
    "spin-component-route",
    "spin-client-addr",
];

/// Which limit on the header fields a request broke: what the request has too much of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderLimit {
    /// More than [`MAX_HEADER_FIELDS`] fields.
    #[error("more than {MAX_HEADER_FIELDS} header fields")]
    Fields,
    /// One field larger than [`MAX_HEADER_FIELD_BYTES`].
    #[error("a header field larger than {MAX_HEADER_FIELD_BYTES} bytes")]
    Field,
    /// All fields together larger than [`MAX_HEADER_BYTES`].
    #[error("header fields larger than {MAX_HEADER_BYTES} bytes in all")]
    Total,
}

/// A request's header fields as the limits count them: how many, the largest, and all
/// together, the authority and the fields a host adds left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldCount {
    count: usize,
    largest: usize,
    total: usize,
}

impl FieldCount {
    /// Counts header fields given as each one's name and the length of its value.
    pub(crate) fn of<'a>(fields: impl IntoIterator<Item = (&'a str, usize)>) -> FieldCount {
        let mut counted = FieldCount {
            count: 1, // The authority, as a field or not.
            largest: 0,
            total: 0,
        };
        let (mut authority, mut added) = (false, [false; HOST_ADDED_FIELDS.len()]);
        for (name, value) in fields {
            if !authority && name.eq_ignore_ascii_case(HOST.as_str()) {
                authority = true;
                continue;
            }
            if let Some(i) = HOST_ADDED_FIELDS
                .iter()
                .position(|added| name.eq_ignore_ascii_case(added))
                && !added[i]
            {
                added[i] = true;
                continue;
            }
            let field = name.len() + value + 4;
            counted.count += 1;
            counted.largest = counted.largest.max(field);
            counted.total += field;
        }
        counted
    }

    /// Whether the fields are within the limits, or which one they break: the count first, then
    /// one field, then all, the first limit a reader meets.
    pub(crate) fn check(&self) -> Result<(), HeaderLimit> {
        if self.count > MAX_HEADER_FIELDS {
            return Err(HeaderLimit::Fields);
        }
        if self.largest > MAX_HEADER_FIELD_BYTES {
            return Err(HeaderLimit::Field);
        }
        if self.total > MAX_HEADER_BYTES {
            return Err(HeaderLimit::Total);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use http::header::{HeaderName, HeaderValue};

    /// The verdict on fields given as names and value lengths, through an [`HeaderMap`] as a
    /// host that parsed them hands them over.
    fn check_headers(headers: &HeaderMap) -> Result<(), HeaderLimit> {
        FieldCount::of(
            headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.len())),
        )
        .check()
    }

    fn headers(fields: &[(&str, usize)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, len) in fields {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(&"v".repeat(*len)).unwrap(),
            );
        }
        map
    }

    #[test]
    fn ordinary_requests_pass() {
        assert_eq!(check_headers(&HeaderMap::new()), Ok(()));
        assert_eq!(
            check_headers(&headers(&[("host", 14), ("user-agent", 80)])),
            Ok(())
        );
    }

    #[test]
    fn the_limits_are_inclusive() {
        // "x: " + value + CRLF is exactly the field limit.
        let exact = MAX_HEADER_FIELD_BYTES - "x".len() - 4;
        assert_eq!(check_headers(&headers(&[("x", exact)])), Ok(()));
        assert_eq!(
            check_headers(&headers(&[("x", exact + 1)])),
            Err(HeaderLimit::Field)
        );

        // The authority is one of the fields counted, sent as `host` or not.
        let others = MAX_HEADER_FIELDS - 1;
        let fields: Vec<_> = (0..others).map(|_| ("x-n", 1)).collect();
        assert_eq!(check_headers(&headers(&fields)), Ok(()));
        let with_host: Vec<_> = [("host", 14)].into_iter().chain(fields.clone()).collect();
        assert_eq!(check_headers(&headers(&with_host)), Ok(()));
        let fields: Vec<_> = (0..=others).map(|_| ("x-n", 1)).collect();
        assert_eq!(check_headers(&headers(&fields)), Err(HeaderLimit::Fields));
    }

    #[test]
    fn only_the_first_host_is_the_authority() {
        let others = MAX_HEADER_FIELDS - 1;
        let mut fields: Vec<_> = (0..others).map(|_| ("x-n", 1)).collect();
        fields.push(("host", 14));
        assert_eq!(check_headers(&headers(&fields)), Ok(()));
        // A second host is a field like any other: one more is one too many.
        fields.push(("host", 14));
        assert_eq!(check_headers(&headers(&fields)), Err(HeaderLimit::Fields));
        // And a thousand of them do not pass as one.
        let hosts: Vec<_> = (0..1000).map(|_| ("host", 1)).collect();
        assert_eq!(check_headers(&headers(&hosts)), Err(HeaderLimit::Fields));
    }

    #[test]
    fn the_fields_spin_adds_are_not_the_clients() {
        // What a client sent that passes everywhere else, as Spin hands it over: the client's
        // fields, then Spin's own, one of which repeats the whole URL.
        let client: Vec<_> = [("host", 14)]
            .into_iter()
            .chain((0..MAX_HEADER_FIELDS - 1).map(|_| ("x-n", 1)))
            .collect();
        let spin: Vec<_> = HOST_ADDED_FIELDS
            .iter()
            .map(|name| (*name, 4_000))
            .collect();
        let both: Vec<_> = client.iter().chain(&spin).copied().collect();
        assert_eq!(check_headers(&headers(&both)), Ok(()));
        // One of each is left out, no more: a client's own copies count.
        let mut twice = both.clone();
        twice.push(("spin-full-url", 1));
        assert_eq!(check_headers(&headers(&twice)), Err(HeaderLimit::Fields));
    }

    #[test]
    fn the_authority_is_not_counted_in_bytes() {
        // The fields but `host` are exactly the total: a host that passes `host` on and one
        // that does not decide alike.
        let exact = headers(&[("a", 8_000), ("b", 8_000), ("c", 16_384 - 16_010 - 5)]);
        assert_eq!(check_headers(&exact), Ok(()));
        let mut with_host = exact.clone();
        with_host.insert(HOST, http::HeaderValue::from_static("example.com:8000"));
        assert_eq!(check_headers(&with_host), Ok(()));
        with_host.insert("d", http::HeaderValue::from_static(""));
        assert_eq!(check_headers(&with_host), Err(HeaderLimit::Total));
    }

    #[test]
    fn the_total_counts_every_field() {
        // Two fields of 8,000 bytes each pass alone; together with a third they are too many bytes.
        let two = headers(&[("a", 7_995), ("b", 7_995)]);
        assert_eq!(check_headers(&two), Ok(()));
        let three = headers(&[("a", 7_995), ("b", 7_995), ("c", 600)]);
        assert_eq!(check_headers(&three), Err(HeaderLimit::Total));
    }

    #[test]
    fn a_huge_field_is_refused() {
        assert_eq!(
            check_headers(&headers(&[("x-big", 200_000)])),
            Err(HeaderLimit::Field)
        );
    }
}
