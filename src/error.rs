//! Why a request gets no greeting: each module's own error, composed ([`RequestError`]), and the
//! one match that gives each its status and the title its page shows.

use http::StatusCode;

use crate::config::VarError;
use crate::head::HeaderLimit;
use crate::route::NameError;

/// A request the core will not greet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No route has this path.
    #[error("there is nothing at this path")]
    NotFound,
    /// The route exists, but not for this method.
    #[error("this route answers GET and HEAD only")]
    MethodNotAllowed,
    /// The name in `/hello/{name}` cannot be greeted.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The request's header fields are too many or too large (see [`crate::MAX_HEADER_FIELDS`]
    /// and the limits beside it).
    #[error("the request has {0}")]
    HeadersTooLarge(#[from] HeaderLimit),
    /// The host's configuration is invalid: no request can be served as configured.
    #[error("the server is misconfigured: {0}")]
    Misconfigured(#[from] VarError),
}

/// Every status the core answers with: 200 for a page, and each of [`RequestError`]'s. What a
/// host's metrics label, listed once here.
pub const STATUSES: [StatusCode; 7] = [
    StatusCode::OK,
    StatusCode::BAD_REQUEST,
    StatusCode::NOT_FOUND,
    StatusCode::METHOD_NOT_ALLOWED,
    StatusCode::URI_TOO_LONG,
    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    StatusCode::INTERNAL_SERVER_ERROR,
];

impl RequestError {
    /// The status a client sees for this error, and its status line's code and reason as the
    /// error's page shows them in its heading: `404 Not Found`. (The reason is spelt out here
    /// rather than read from [`StatusCode`]'s tables, which a component would otherwise carry for
    /// six statuses.)
    pub fn status_line(&self) -> (StatusCode, &'static str) {
        match self {
            RequestError::NotFound => (StatusCode::NOT_FOUND, "404 Not Found"),
            RequestError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed")
            }
            RequestError::Name(NameError::TooLong) => {
                (StatusCode::URI_TOO_LONG, "414 URI Too Long")
            }
            RequestError::Name(
                NameError::InvalidPercentEncoding
                | NameError::InvalidUtf8
                | NameError::ControlCharacter,
            ) => (StatusCode::BAD_REQUEST, "400 Bad Request"),
            RequestError::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "431 Request Header Fields Too Large",
            ),
            RequestError::Misconfigured(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error",
            ),
        }
    }

    /// The status a client sees for this error.
    pub fn status(&self) -> StatusCode {
        self.status_line().0
    }

    /// The heading of this error's page: its [status line](RequestError::status_line).
    pub fn title(&self) -> &'static str {
        self.status_line().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_error() -> [(RequestError, u16); 8] {
        [
            (RequestError::NotFound, 404),
            (RequestError::MethodNotAllowed, 405),
            (NameError::InvalidPercentEncoding.into(), 400),
            (NameError::InvalidUtf8.into(), 400),
            (NameError::ControlCharacter.into(), 400),
            (NameError::TooLong.into(), 414),
            (HeaderLimit::Total.into(), 431),
            (RequestError::Misconfigured(misconfigured()), 500),
        ]
    }

    #[test]
    fn every_error_maps_to_its_status() {
        for (err, status) in every_error() {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            // The page's heading is the status line's code and canonical reason.
            let code = err.status();
            let line = format!("{} {}", code.as_str(), code.canonical_reason().unwrap());
            assert_eq!(err.title(), line, "{err:?}");
        }
    }

    #[test]
    fn the_list_of_statuses_is_every_one_the_core_gives() {
        let mut given: Vec<_> = every_error().iter().map(|(err, _)| err.status()).collect();
        given.push(StatusCode::OK);
        for status in &given {
            assert!(STATUSES.contains(status), "{status} is not in STATUSES");
        }
        for status in STATUSES {
            assert!(
                given.contains(&status),
                "{status} is in STATUSES, but no answer has it"
            );
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
    fn a_name_s_error_is_its_own_message() {
        assert_eq!(
            RequestError::from(NameError::TooLong).to_string(),
            "the name is longer than 100 characters"
        );
        assert_eq!(
            RequestError::from(NameError::InvalidPercentEncoding).to_string(),
            "the name has an invalid percent-encoding (a % must be followed by two hex digits)"
        );
    }
}
