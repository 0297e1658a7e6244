//! Which route a path names, and the decoding of the name in `/hello/{name}`.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// The longest name greeted, in characters (Unicode scalar values) after decoding.
pub const MAX_NAME_CHARS: usize = 100;

/// Why a name in `/hello/{name}` cannot be greeted ([`decode_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
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
    TooLong,
}

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
    /// Every route's name, in the order of [`Route`]'s variants: what a host's metrics label.
    pub const NAMES: [&'static str; 3] = ["index", "hello", "healthz"];

    /// Every route's path template, in the order of [`Route::NAMES`]: what a trace names as its
    /// `http.route` (OpenTelemetry's HTTP semantic conventions).
    pub const TEMPLATES: [&'static str; 3] = ["/", "/hello/{name}", HEALTH_PATH];

    /// The template of the route named `name` (one of [`Route::NAMES`]).
    pub fn template_of(name: &str) -> Option<&'static str> {
        let at = Self::NAMES.iter().position(|known| *known == name)?;
        Some(Self::TEMPLATES[at])
    }

    /// The route's name, as a host labels what it served: one of [`Route::NAMES`].
    pub fn name(&self) -> &'static str {
        let [index, hello, health] = Self::NAMES;
        match self {
            Route::Index => index,
            Route::Hello(_) => hello,
            Route::Health => health,
        }
    }

    /// Matches a request path (without its query) to a route.
    ///
    /// Paths match exactly: `/hello/{name}` takes one non-empty segment, so `/hello/`,
    /// `/hello/a/b` and `/hello/a/` are not found, and neither is any other path.
    /// An encoded slash (`%2F`) is part of the name, not a separator. `None`: no route has
    /// this path.
    pub fn from_path(path: &'a str) -> Option<Route<'a>> {
        if path == "/" {
            return Some(Route::Index);
        }
        if path == HEALTH_PATH {
            return Some(Route::Health);
        }
        match path.strip_prefix("/hello/") {
            Some(name) if !name.is_empty() && !name.contains('/') => Some(Route::Hello(name)),
            _ => None,
        }
    }
}

/// Decodes a name as sent in the path: strict percent-decoding, then UTF-8, then the rules a
/// greeting has (no control characters, at most [`MAX_NAME_CHARS`] characters). A name with
/// nothing to decode is returned as it came, borrowed.
pub fn decode_name(raw: &str) -> Result<Cow<'_, str>, NameError> {
    // `percent_decode_str` passes a stray `%` through as it is; a client that sent one
    // has sent a malformed path, and hears so.
    let bytes = raw.as_bytes();
    for (i, _) in raw.match_indices('%') {
        let valid = bytes.len() > i + 2
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit();
        if !valid {
            return Err(NameError::InvalidPercentEncoding);
        }
    }
    let name = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| NameError::InvalidUtf8)?;
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(path: &str) -> Result<String, NameError> {
        match Route::from_path(path).expect("a route") {
            Route::Hello(raw) => decode_name(raw).map(Cow::into_owned),
            Route::Index | Route::Health => panic!("{path} is not a hello path"),
        }
    }

    #[test]
    fn each_route_has_its_template() {
        assert_eq!(Route::template_of("index"), Some("/"));
        assert_eq!(Route::template_of("hello"), Some("/hello/{name}"));
        assert_eq!(Route::template_of("healthz"), Some("/healthz"));
        assert_eq!(Route::template_of("nope"), None);
        // Each template names the paths of its route, and no other route's.
        for (template, name) in Route::TEMPLATES.iter().zip(Route::NAMES) {
            let path = template.replace("{name}", "x");
            assert_eq!(
                Route::from_path(&path).map(|route| route.name()),
                Some(name)
            );
        }
    }

    #[test]
    fn matches_the_two_routes() {
        assert_eq!(Route::from_path("/"), Some(Route::Index));
        assert_eq!(Route::from_path("/healthz"), Some(Route::Health));
        assert_eq!(
            Route::from_path("/hello/world"),
            Some(Route::Hello("world"))
        );
        assert_eq!(
            Route::from_path("/hello/a%2Fb"),
            Some(Route::Hello("a%2Fb"))
        );
    }

    #[test]
    fn each_route_has_a_name() {
        let names: Vec<_> = ["/", "/hello/x", "/healthz"]
            .iter()
            .map(|path| Route::from_path(path).unwrap().name())
            .collect();
        assert_eq!(names, ["index", "hello", "healthz"]);
        assert_eq!(names, Route::NAMES);
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
            assert_eq!(Route::from_path(path), None, "{path:?}");
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
                Err(NameError::InvalidPercentEncoding),
                "{path}"
            );
        }
    }

    #[test]
    fn names_that_are_not_utf8_are_refused() {
        for path in ["/hello/%FF", "/hello/%C3", "/hello/%E5%BC"] {
            assert_eq!(hello(path), Err(NameError::InvalidUtf8), "{path}");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        for path in ["/hello/%00", "/hello/a%0Ab", "/hello/%7F", "/hello/%C2%85"] {
            assert_eq!(hello(path), Err(NameError::ControlCharacter), "{path}");
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
            Err(NameError::TooLong)
        );
    }
}
