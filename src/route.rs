//! Which route a path names, and the decoding of the name in `/hello/{name}`.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use crate::RequestError;

/// The longest name greeted, in characters (Unicode scalar values) after decoding.
pub const MAX_NAME_CHARS: usize = 100;

/// A route, as far as the path alone decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/`
    Index,
    /// `/hello/{name}`, with the name still percent-encoded as it came.
    Hello(&'a str),
    /// `/healthz`: the health check, answered at once whatever the delay, so a probe (a
    /// Kubernetes liveness or readiness probe, a load balancer's check) never waits on it.
    Health,
}

/// The path of the health check.
pub const HEALTH_PATH: &str = "/healthz";

impl<'a> Route<'a> {
    /// The route's name, as a host labels what it served: `index`, `hello` or `healthz`.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Index => "index",
            Route::Hello(_) => "hello",
            Route::Health => "healthz",
        }
    }

    /// Matches a request path (without its query) to a route.
    ///
    /// Paths match exactly: `/hello/{name}` takes one non-empty segment, so `/hello/`,
    /// `/hello/a/b` and `/hello/a/` are not found, and neither is any other path.
    /// An encoded slash (`%2F`) is part of the name, not a separator.
    pub fn from_path(path: &'a str) -> Result<Route<'a>, RequestError> {
        if path == "/" {
            return Ok(Route::Index);
        }
        if path == HEALTH_PATH {
            return Ok(Route::Health);
        }
        match path.strip_prefix("/hello/") {
            Some(name) if !name.is_empty() && !name.contains('/') => Ok(Route::Hello(name)),
            _ => Err(RequestError::NotFound),
        }
    }
}

/// Decodes a name as sent in the path: strict percent-decoding, then UTF-8, then the rules a
/// greeting has (no control characters, at most [`MAX_NAME_CHARS`] characters). A name with
/// nothing to decode is returned as it came, borrowed.
pub fn decode_name(raw: &str) -> Result<Cow<'_, str>, RequestError> {
    // `percent_decode_str` passes a stray `%` through as it is; a client that sent one
    // has sent a malformed path, and hears so.
    let bytes = raw.as_bytes();
    for (i, _) in raw.match_indices('%') {
        let valid = bytes.len() > i + 2
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit();
        if !valid {
            return Err(RequestError::InvalidPercentEncoding);
        }
    }
    let name = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| RequestError::InvalidUtf8)?;
    if name.chars().any(char::is_control) {
        return Err(RequestError::ControlCharacter);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(RequestError::NameTooLong);
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(path: &str) -> Result<String, RequestError> {
        match Route::from_path(path)? {
            Route::Hello(raw) => decode_name(raw).map(Cow::into_owned),
            Route::Index | Route::Health => panic!("{path} is not a hello path"),
        }
    }

    #[test]
    fn matches_the_two_routes() {
        assert_eq!(Route::from_path("/"), Ok(Route::Index));
        assert_eq!(Route::from_path("/healthz"), Ok(Route::Health));
        assert_eq!(Route::from_path("/hello/world"), Ok(Route::Hello("world")));
        assert_eq!(Route::from_path("/hello/a%2Fb"), Ok(Route::Hello("a%2Fb")));
    }

    #[test]
    fn each_route_has_a_name() {
        let names: Vec<_> = ["/", "/hello/x", "/healthz"]
            .iter()
            .map(|path| Route::from_path(path).unwrap().name())
            .collect();
        assert_eq!(names, ["index", "hello", "healthz"]);
    }

    #[test]
    fn anything_else_is_not_found() {
        for path in [
            "",
            "//",
            "/index.html",
            "/healthz/",
            "/health",
            "/hello",
            "/hello/",
            "/hello/a/b",
            "/hello/world/",
            "/HELLO/world",
            "/hello//world",
            "*",
        ] {
            assert_eq!(
                Route::from_path(path),
                Err(RequestError::NotFound),
                "{path:?}"
            );
        }
    }

    #[test]
    fn names_are_percent_decoded_as_utf8() {
        assert_eq!(hello("/hello/world").unwrap(), "world");
        assert_eq!(hello("/hello/%E5%BC%A0%E4%B8%89").unwrap(), "张三");
        assert_eq!(hello("/hello/J%C3%BCrgen%20M").unwrap(), "Jürgen M");
        assert_eq!(hello("/hello/a%2Fb").unwrap(), "a/b");
        // `+` is a plain character in a path, not a space.
        assert_eq!(hello("/hello/a+b").unwrap(), "a+b");
    }

    #[test]
    fn malformed_percent_encoding_is_refused() {
        for path in [
            "/hello/%",
            "/hello/%4",
            "/hello/%ZZ",
            "/hello/a%G1",
            "/hello/ok%2",
        ] {
            assert_eq!(
                hello(path),
                Err(RequestError::InvalidPercentEncoding),
                "{path}"
            );
        }
    }

    #[test]
    fn names_that_are_not_utf8_are_refused() {
        for path in ["/hello/%FF", "/hello/%C3", "/hello/%E5%BC"] {
            assert_eq!(hello(path), Err(RequestError::InvalidUtf8), "{path}");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        for path in ["/hello/%00", "/hello/a%0Ab", "/hello/%7F", "/hello/%C2%85"] {
            assert_eq!(hello(path), Err(RequestError::ControlCharacter), "{path}");
        }
    }

    #[test]
    fn names_are_limited_in_characters_not_bytes() {
        let longest = "a".repeat(MAX_NAME_CHARS);
        assert_eq!(hello(&format!("/hello/{longest}")).unwrap(), longest);
        // 100 three-byte characters are still 100 characters.
        let wide = "%E5%BC%A0".repeat(MAX_NAME_CHARS);
        assert_eq!(
            hello(&format!("/hello/{wide}")).unwrap().chars().count(),
            100
        );

        let too_long = "a".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(
            hello(&format!("/hello/{too_long}")),
            Err(RequestError::NameTooLong)
        );
    }
}
