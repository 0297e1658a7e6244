//! A request as the core sees it ([`Parts`]): what every host can hand over, whatever it read
//! the request with.

use crate::head::FieldCount;

/// What the core makes of a request's method: the two the routes answer, or any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodClass {
    /// `GET`.
    Get,
    /// `HEAD`: the GET's answer without its body.
    Head,
    /// Any other method, whether or not the `http` crate has a name for it.
    Other,
}

impl MethodClass {
    /// The class of a method as sent (methods are case-sensitive, RFC 9110 §9.1).
    pub fn of(method: &str) -> MethodClass {
        match method {
            "GET" => MethodClass::Get,
            "HEAD" => MethodClass::Head,
            _ => MethodClass::Other,
        }
    }
}

impl From<&str> for MethodClass {
    fn from(method: &str) -> MethodClass {
        MethodClass::of(method)
    }
}

/// A request's parts, as the core decides on them: the method's class, the path (the target
/// without its query, which is ignored) and its header fields as the limits count them.
///
/// A host builds it from an [`http::Request`] ([`Parts::from_request`]), or from plain text
/// ([`Parts::new`]) when it has none (the components, which read `wasi:http`). It holds no
/// copy of the request: the path is borrowed and the fields are counted as they are read.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    /// The method's class.
    pub method: MethodClass,
    /// The path, without the query.
    pub path: &'a str,
    pub(crate) fields: FieldCount,
}

impl<'a> Parts<'a> {
    /// The parts of a request given as text: the method as sent (or its class, for a host that
    /// reads it as a binding's type), the request target as sent (the path and the query), and
    /// each header field as its name and the length of its value.
    pub fn new<'f>(
        method: impl Into<MethodClass>,
        target: &'a str,
        fields: impl IntoIterator<Item = (&'f str, usize)>,
    ) -> Parts<'a> {
        let path = target.split_once('?').map_or(target, |(path, _query)| path);
        Parts {
            method: method.into(),
            path,
            fields: FieldCount::of(fields),
        }
    }

    /// The parts of an [`http::Request`]: its method, the path of its URI, its header fields.
    pub fn from_request<B>(request: &'a http::Request<B>) -> Parts<'a> {
        Parts {
            method: MethodClass::of(request.method().as_str()),
            path: request.uri().path(),
            fields: FieldCount::of(
                request
                    .headers()
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.len())),
            ),
        }
    }
}

impl<'a, B> From<&'a http::Request<B>> for Parts<'a> {
    fn from(request: &'a http::Request<B>) -> Parts<'a> {
        Parts::from_request(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_classed_as_sent() {
        assert_eq!(MethodClass::of("GET"), MethodClass::Get);
        assert_eq!(MethodClass::of("HEAD"), MethodClass::Head);
        for other in ["get", "POST", "OPTIONS", "BAD METHOD", "", "G\u{e9}T"] {
            assert_eq!(MethodClass::of(other), MethodClass::Other, "{other:?}");
        }
    }

    #[test]
    fn the_query_is_not_the_path() {
        assert_eq!(Parts::new("GET", "/hello/x?a=b?c", []).path, "/hello/x");
        assert_eq!(Parts::new("GET", "/", []).path, "/");
        let request = http::Request::get("/hello/y?z").body(()).unwrap();
        assert_eq!(Parts::from_request(&request).path, "/hello/y");
    }

    #[test]
    fn both_ways_in_count_the_fields_alike() {
        let request = http::Request::get("/")
            .header("host", "example.com")
            .header("x-a", "12345")
            .body(())
            .unwrap();
        let text = Parts::new("GET", "/", [("host", 11), ("x-a", 5)]);
        assert_eq!(Parts::from_request(&request).fields, text.fields);
    }
}
