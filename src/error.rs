//! Why a request gets no greeting, and the one place that maps each reason to a status.

use http::StatusCode;

use crate::VarError;
use crate::head::HeaderLimit;
use crate::route::MAX_NAME_CHARS;

/// A request the core will not greet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No route has this path.
    #[error("there is nothing at this path")]
    NotFound,
    /// The route exists, but not for this method.
    #[error("this route answers GET and HEAD only")]
    MethodNotAllowed,
    /// A `%` in the name is not followed by two hex digits.
    #[error("the name has an invalid percent-encoding (a % must be followed by two hex digits)")]
    InvalidPercentEncoding,
    /// The percent-decoded name is not UTF-8.
    #[error("the name is not valid UTF-8 once percent-decoded")]
    InvalidUtf8,
    /// The decoded name holds a control character (such as a NUL or a line break).
    #[error("the name contains a control character")]
    ControlCharacter,
    /// The decoded name is longer than [`MAX_NAME_CHARS`].
    #[error("the name is longer than {MAX_NAME_CHARS} characters")]
    NameTooLong,
    /// The request's header fields are too many or too large (see [`crate::MAX_HEADER_FIELDS`] and the limits beside it).
    #[error("the request has {0}")]
    HeadersTooLarge(HeaderLimit),
    /// The host's configuration is invalid: no request can be served as configured.
    #[error("the server is misconfigured: {0}")]
    Misconfigured(#[from] VarError),
}

impl RequestError {
    /// The status line's code and reason for this error, as its page's heading shows them:
    /// `404 Not Found`. (Spelt out here rather than read from [`StatusCode`]'s tables, which a
    /// component would otherwise carry for six statuses.)
    pub fn title(&self) -> &'static str {
        match self {
            RequestError::NotFound => "404 Not Found",
            RequestError::MethodNotAllowed => "405 Method Not Allowed",
            RequestError::InvalidPercentEncoding
            | RequestError::InvalidUtf8
            | RequestError::ControlCharacter => "400 Bad Request",
            RequestError::NameTooLong => "414 URI Too Long",
            RequestError::HeadersTooLarge(_) => "431 Request Header Fields Too Large",
            RequestError::Misconfigured(_) => "500 Internal Server Error",
        }
    }

    /// The status a client sees for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::NotFound => StatusCode::NOT_FOUND,
            RequestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::InvalidPercentEncoding
            | RequestError::InvalidUtf8
            | RequestError::ControlCharacter => StatusCode::BAD_REQUEST,
            RequestError::NameTooLong => StatusCode::URI_TOO_LONG,
            RequestError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RequestError::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_its_status() {
        let cases = [
            (RequestError::NotFound, 404),
            (RequestError::MethodNotAllowed, 405),
            (RequestError::InvalidPercentEncoding, 400),
            (RequestError::InvalidUtf8, 400),
            (RequestError::ControlCharacter, 400),
            (RequestError::NameTooLong, 414),
            (RequestError::HeadersTooLarge(HeaderLimit::Total), 431),
            (RequestError::Misconfigured(misconfigured()), 500),
        ];
        for (err, status) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            // The page's heading is the status line's code and canonical reason.
            let code = err.status();
            let line = format!("{} {}", code.as_str(), code.canonical_reason().unwrap());
            assert_eq!(err.title(), line, "{err:?}");
        }
    }

    fn misconfigured() -> VarError {
        crate::Config::from_lookup(|_| Some("soon".into())).unwrap_err()
    }

    #[test]
    fn misconfiguration_names_the_variable() {
        assert_eq!(
            RequestError::from(misconfigured()).to_string(),
            "the server is misconfigured: HELLO_EDGE_DELAY_MS: delay \"soon\" is not a whole \
             number of milliseconds (expected 0 to 60000)"
        );
    }

    #[test]
    fn header_limits_say_which_limit() {
        assert_eq!(
            RequestError::HeadersTooLarge(HeaderLimit::Field).to_string(),
            "the request has a header field larger than 8192 bytes"
        );
        assert_eq!(
            RequestError::HeadersTooLarge(HeaderLimit::Fields).to_string(),
            "the request has more than 100 header fields"
        );
        assert_eq!(
            RequestError::HeadersTooLarge(HeaderLimit::Total).to_string(),
            "the request has header fields larger than 16384 bytes in all"
        );
    }

    #[test]
    fn the_length_limit_is_in_the_message() {
        assert_eq!(
            RequestError::NameTooLong.to_string(),
            "the name is longer than 100 characters"
        );
    }
}
