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

use http::HeaderMap;

use crate::RequestError;

/// The most header fields a request may have.
pub const MAX_HEADER_FIELDS: usize = 100;
/// The largest one header field may be, in bytes (`name: value` and the line end).
pub const MAX_HEADER_FIELD_BYTES: usize = 8 * 1024;
/// The largest all header fields together may be, in bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Which limit on the header fields a request broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderLimit {
    /// More than [`MAX_HEADER_FIELDS`] fields.
    Fields,
    /// One field larger than [`MAX_HEADER_FIELD_BYTES`].
    Field,
    /// All fields together larger than [`MAX_HEADER_BYTES`].
    Total,
}

impl std::fmt::Display for HeaderLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderLimit::Fields => write!(f, "more than {MAX_HEADER_FIELDS} header fields"),
            HeaderLimit::Field => {
                write!(
                    f,
                    "a header field larger than {MAX_HEADER_FIELD_BYTES} bytes"
                )
            }
            HeaderLimit::Total => {
                write!(
                    f,
                    "header fields larger than {MAX_HEADER_BYTES} bytes in all"
                )
            }
        }
    }
}

/// Checks the header fields of a request against the limits.
pub fn check_headers(headers: &HeaderMap) -> Result<(), RequestError> {
    if headers.len() > MAX_HEADER_FIELDS {
        return Err(RequestError::HeadersTooLarge(HeaderLimit::Fields));
    }
    let mut total = 0;
    for (name, value) in headers {
        let field = name.as_str().len() + value.len() + 4;
        if field > MAX_HEADER_FIELD_BYTES {
            return Err(RequestError::HeadersTooLarge(HeaderLimit::Field));
        }
        total += field;
    }
    if total > MAX_HEADER_BYTES {
        return Err(RequestError::HeadersTooLarge(HeaderLimit::Total));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::HeaderName;

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
            Err(RequestError::HeadersTooLarge(HeaderLimit::Field))
        );

        let fields: Vec<_> = (0..MAX_HEADER_FIELDS).map(|_| ("x-n", 1)).collect();
        assert_eq!(check_headers(&headers(&fields)), Ok(()));
        let fields: Vec<_> = (0..=MAX_HEADER_FIELDS).map(|_| ("x-n", 1)).collect();
        assert_eq!(
            check_headers(&headers(&fields)),
            Err(RequestError::HeadersTooLarge(HeaderLimit::Fields))
        );
    }

    #[test]
    fn the_total_counts_every_field() {
        // Two fields of 8,000 bytes each pass alone; together with a third they are too many bytes.
        let two = headers(&[("a", 7_995), ("b", 7_995)]);
        assert_eq!(check_headers(&two), Ok(()));
        let three = headers(&[("a", 7_995), ("b", 7_995), ("c", 600)]);
        assert_eq!(
            check_headers(&three),
            Err(RequestError::HeadersTooLarge(HeaderLimit::Total))
        );
    }

    #[test]
    fn a_huge_field_is_refused() {
        assert_eq!(
            check_headers(&headers(&[("x-big", 200_000)])),
            Err(RequestError::HeadersTooLarge(HeaderLimit::Field))
        );
    }
}
