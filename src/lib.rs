//! The routing core of hello-edge.
//!
//! hello-edge answers `GET /` with `<h1>Index</h1>` and `GET /hello/{name}` with
//! `<h1>hello, {name}!</h1>`, each after a delay. This crate decides everything about an answer
//! that can be decided without I/O: the route, the status, the headers, the body, and how long
//! to wait before sending it. It contains no networking code, no clock and no runtime; the delay
//! is data in the [`Reply`], and each host adapter (the native tokio server, the components)
//! sleeps it on its own event loop and does the I/O.
//!
//! The crate is laid out as:
//!
//! * [`respond`]: the one entry point, from a request's [`Parts`] and the host's [`Settings`]
//!   (its configuration, or why it is invalid) to a [`Reply`].
//! * `request`: the [`Parts`] of a request, built from an [`http::Request`] or from plain text,
//!   and its [`MethodClass`].
//! * `reply`: the [`Reply`], which gives its answer as an [`http::Response`], or as its status,
//!   fields and body.
//! * `route`: which [`Route`] a path names, and how a name is decoded ([`decode_name`]) or why
//!   it cannot be ([`NameError`]).
//! * `head`: the limits on header fields, the same on every host, and which one a request broke
//!   ([`HeaderLimit`]).
//! * `config`: the delay and its parser ([`Delay::from_millis_str`]), shared by every host, a
//!   variable's error ([`VarError`]), and the [`Settings`] a host serves with.
//! * `error`: each module's error composed into [`RequestError`], the one mapping to a status,
//!   and every status the core gives ([`STATUSES`]).
//!
//! A host's whole job, minus the I/O:
//!
//! ```
//! use std::time::Duration;
//! use hello_edge::{Config, Parts, Settings, respond};
//!
//! let settings = Settings::from(Config::default());
//! let request = http::Request::get("/hello/%E5%BC%A0%E4%B8%89").body(()).unwrap();
//! let reply = respond(&settings, Parts::from(&request));
//! assert_eq!(reply.response().status(), 200);
//! assert_eq!(reply.response().body().as_ref(), "<h1>hello, 张三!</h1>".as_bytes());
//! assert_eq!(reply.delay(), Duration::from_millis(500)); // the host sleeps this, then sends
//! ```

mod config;
mod error;
mod head;
mod reply;
mod request;
mod route;

pub use config::{Config, ConfigError, Delay, Settings, VarError};
pub use error::{RequestError, STATUSES};
pub use head::{
    HOST_ADDED_FIELDS, HeaderLimit, MAX_HEADER_BYTES, MAX_HEADER_FIELD_BYTES, MAX_HEADER_FIELDS,
};
pub use reply::{ALLOWED_METHODS, CONTENT_SECURITY_POLICY_VALUE, Reply, TEXT_HTML};
pub use request::{MethodClass, Parts};
pub use route::{HEALTH_PATH, MAX_NAME_CHARS, NameError, Route, decode_name};

use std::borrow::Cow;
use std::time::Duration;

/// Decides the answer to a request, under the host's settings as it read them.
///
/// In this order, so every host answers alike:
///
/// 1. settings that are invalid (a variable with a bad value) answer 500 naming the variable,
///    whatever the request;
/// 2. header fields past the limits answer 431, whatever the route;
/// 3. a path that names no route answers 404, whatever the method;
/// 4. a method other than `GET` and `HEAD` answers 405 with `Allow`;
/// 5. a name that cannot be greeted answers 400 or 414;
/// 6. `GET` and `HEAD` on `/` and `/hello/{name}` answer 200 after the configured delay, and
///    on `/healthz` at once.
///
/// Every refusal answers at once.
pub fn respond(settings: &Settings, request: Parts<'_>) -> Reply {
    let method = request.method;
    let config = match settings {
        Settings::Configured(config) => config,
        Settings::Misconfigured(err) => {
            return Reply::error(&err.clone().into(), method, None);
        }
    };
    if let Err(limit) = request.fields.check() {
        return Reply::error(&limit.into(), method, None);
    }
    let Some(route) = Route::from_path(request.path) else {
        return Reply::error(&RequestError::NotFound, method, None);
    };
    if method == MethodClass::Other {
        return Reply::error(&RequestError::MethodNotAllowed, method, Some(route.name()));
    }
    let waits = config.delay.as_duration();
    let page = match route {
        Route::Index => Ok((Cow::Borrowed(&b"<h1>Index</h1>"[..]), waits)),
        Route::Hello(raw) => decode_name(raw).map(|name| (greeting(&name), waits)),
        Route::Health => Ok((Cow::Borrowed(&b"<h1>ok</h1>"[..]), Duration::ZERO)),
    };
    match page {
        Ok((page, delay)) => Reply::page(page, delay, method, route.name()),
        Err(err) => Reply::error(&err.into(), method, Some(route.name())),
    }
}

/// The page that greets a decoded name, the name HTML-escaped.
fn greeting(name: &str) -> Cow<'static, [u8]> {
    let mut page = String::with_capacity(name.len() + 20);
    page.push_str("<h1>hello, ");
    html_escape::encode_quoted_attribute_to_string(name, &mut page);
    page.push_str("!</h1>");
    Cow::Owned(page.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};

    fn get(path: &str) -> Reply {
        call(&Method::GET, path)
    }

    fn call(method: &Method, path: &str) -> Reply {
        respond(
            &Config::default().into(),
            Parts::new(method.as_str(), path, []),
        )
    }

    /// The answer to `method path` with these header fields, under `config`.
    fn with_headers(config: &Config, method: &Method, path: &str, headers: &HeaderMap) -> Reply {
        let fields = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.len()));
        respond(&(*config).into(), Parts::new(method.as_str(), path, fields))
    }

    fn body(reply: &Reply) -> String {
        String::from_utf8(reply.response().into_body().to_vec()).unwrap()
    }

    fn header(reply: &Reply, name: &str) -> String {
        reply.response().headers()[name]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn index_answers_after_the_delay() {
        let reply = get("/");
        assert_eq!(reply.response().status(), StatusCode::OK);
        assert_eq!(body(&reply), "<h1>Index</h1>");
        assert_eq!(header(&reply, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&reply, "content-length"), "14");
        assert_eq!(reply.delay(), Duration::from_millis(500));
    }

    #[test]
    fn hello_greets_the_name() {
        let reply = get("/hello/world");
        assert_eq!(reply.response().status(), StatusCode::OK);
        assert_eq!(body(&reply), "<h1>hello, world!</h1>");
        assert_eq!(header(&reply, "content-type"), TEXT_HTML);
        assert_eq!(reply.delay(), Duration::from_millis(500));
    }

    #[test]
    fn the_health_check_answers_at_once() {
        let reply = get("/healthz");
        assert_eq!(reply.response().status(), StatusCode::OK);
        assert_eq!(body(&reply), "<h1>ok</h1>");
        assert_eq!(reply.delay(), Duration::ZERO);
        assert_eq!(call(&Method::HEAD, "/healthz").delay(), Duration::ZERO);
        let reply = call(&Method::POST, "/healthz");
        assert_eq!(reply.response().status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn the_delay_comes_from_the_config() {
        let config = Config::with_delay(Delay::from_millis(20).unwrap());
        let reply = with_headers(&config, &Method::GET, "/hello/x", &HeaderMap::new());
        assert_eq!(reply.delay(), Duration::from_millis(20));
    }

    #[test]
    fn utf8_names_are_greeted() {
        assert_eq!(
            body(&get("/hello/%E5%BC%A0%E4%B8%89")),
            "<h1>hello, 张三!</h1>"
        );
        assert_eq!(
            header(&get("/hello/%E5%BC%A0%E4%B8%89"), "content-length"),
            "23"
        );
    }

    #[test]
    fn names_are_html_escaped() {
        let reply = get("/hello/%3Cimg%20src=x%20onerror=alert(1)%3E");
        assert_eq!(
            body(&reply),
            "<h1>hello, &lt;img src=x onerror=alert(1)&gt;!</h1>"
        );
        assert_eq!(
            body(&get("/hello/%26%22%27")),
            "<h1>hello, &amp;&quot;&#x27;!</h1>"
        );
        assert_eq!(body(&get("/hello/a%2Fb")), "<h1>hello, a/b!</h1>");
    }

    #[test]
    fn head_has_the_get_headers_and_no_body() {
        for path in ["/", "/hello/world", "/nope"] {
            let get = get(path);
            let head = call(&Method::HEAD, path);
            assert_eq!(head.response().status(), get.response().status(), "{path}");
            assert_eq!(
                head.response().headers(),
                get.response().headers(),
                "{path}"
            );
            assert_eq!(head.delay(), get.delay(), "{path}");
            assert!(head.response().body().is_empty(), "{path}");
            assert!(!head.has_body() && get.has_body(), "{path}");
        }
    }

    #[test]
    fn other_methods_on_a_route_are_not_allowed() {
        for method in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::PATCH,
        ] {
            for path in ["/", "/hello/world", "/hello/%ZZ"] {
                let reply = call(&method, path);
                assert_eq!(reply.response().status(), StatusCode::METHOD_NOT_ALLOWED);
                assert_eq!(header(&reply, "allow"), "GET, HEAD");
                assert_eq!(reply.delay(), Duration::ZERO);
            }
        }
    }

    #[test]
    fn unknown_paths_are_not_found_whatever_the_method() {
        for method in [Method::GET, Method::POST] {
            let reply = call(&method, "/hello/");
            assert_eq!(reply.response().status(), StatusCode::NOT_FOUND);
            assert_eq!(header(&reply, "content-type"), TEXT_HTML);
            assert!(body(&reply).starts_with("<h1>404 Not Found</h1>"));
            assert!(!reply.response().headers().contains_key("allow"));
            assert_eq!(reply.delay(), Duration::ZERO);
        }
    }

    #[test]
    fn bad_names_are_refused_at_once() {
        let cases = [
            ("/hello/%ZZ", 400, "invalid percent-encoding"),
            ("/hello/%FF", 400, "not valid UTF-8"),
            ("/hello/%00", 400, "control character"),
        ];
        for (path, status, says) in cases {
            let reply = get(path);
            assert_eq!(reply.response().status().as_u16(), status, "{path}");
            assert!(body(&reply).contains(says), "{path}: {}", body(&reply));
            assert_eq!(reply.delay(), Duration::ZERO);
        }
        let reply = get(&format!("/hello/{}", "a".repeat(101)));
        assert_eq!(reply.response().status(), StatusCode::URI_TOO_LONG);
        assert!(body(&reply).contains("longer than 100 characters"));
    }

    #[test]
    fn a_misconfigured_host_answers_500_naming_the_variable() {
        let request = Request::get("/hello/x").body(()).unwrap();
        let config = Config::from_lookup(|_| Some("soon".into()));
        let reply = respond(&config.clone().into(), Parts::from(&request));
        assert_eq!(reply.response().status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body(&reply).contains("HELLO_EDGE_DELAY_MS"),
            "{}",
            body(&reply)
        );
        assert_eq!(reply.delay(), Duration::ZERO);

        let config = Config::from_lookup(|_| None);
        let reply = respond(&config.clone().into(), Parts::from(&request));
        assert_eq!(body(&reply), "<h1>hello, x!</h1>");
    }

    /// A misconfigured host answers 500 to every request, whatever its method, path or fields:
    /// no other rule comes first.
    #[test]
    fn a_misconfigured_host_answers_500_to_anything() {
        let config = Config::from_lookup(|_| Some("soon".into()));
        let big = [("x-big", MAX_HEADER_FIELD_BYTES)];
        for (method, path) in [
            ("BAD METHOD", "/"),
            ("BAD METHOD", "/nope"),
            ("PURGE", "/hello/x"),
            ("GET", "/nope"),
            ("HEAD", "/hello/%ZZ"),
        ] {
            let reply = respond(&config.clone().into(), Parts::new(method, path, big));
            assert_eq!(
                reply.status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{method} {path}"
            );
            assert_eq!(reply.route(), None);
        }
    }

    #[test]
    fn every_answer_forbids_sniffing_and_loading_anything() {
        for path in ["/", "/hello/world", "/nope", "/hello/%ZZ"] {
            for method in [Method::GET, Method::HEAD, Method::POST] {
                let reply = call(&method, path);
                assert_eq!(header(&reply, "x-content-type-options"), "nosniff");
                assert_eq!(
                    header(&reply, "content-security-policy"),
                    "default-src 'none'"
                );
            }
        }
    }

    #[test]
    fn oversized_header_fields_are_refused_before_routing() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-big",
            HeaderValue::from_str(&"a".repeat(200_000)).unwrap(),
        );
        for path in ["/", "/hello/world", "/nope"] {
            let reply = with_headers(&Config::default(), &Method::GET, path, &headers);
            assert_eq!(
                reply.response().status(),
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "{path}"
            );
            assert!(body(&reply).contains("larger than 8192 bytes"), "{path}");
            assert_eq!(reply.delay(), Duration::ZERO);
        }
    }

    #[test]
    fn a_request_is_read_through_its_parts() {
        let request = Request::get("/hello/there?x=1")
            .header("user-agent", "test")
            .body(())
            .unwrap();
        let reply = respond(&Config::default().into(), Parts::from(&request));
        assert_eq!(body(&reply), "<h1>hello, there!</h1>");
        let request = Request::head("/").body(()).unwrap();
        let reply = respond(&Config::default().into(), Parts::from(&request));
        assert_eq!(reply.response().status(), StatusCode::OK);
        assert!(reply.response().body().is_empty());
    }

    #[test]
    fn plain_parts_are_answered_as_a_request_is() {
        let config = Settings::from(Config::default());
        let fields = [("host", 14), ("user-agent", 10)];
        for (method, target) in [
            (Method::GET, "/hello/there?x=1"),
            (Method::HEAD, "/"),
            (Method::POST, "/"),
            (Method::GET, "/nope?a=b"),
        ] {
            let parts = respond(&config, Parts::new(method.as_str(), target, fields));
            let request = Request::builder()
                .method(method.clone())
                .uri(target)
                .header("host", "example.com:80")
                .header("user-agent", "0123456789")
                .body(())
                .unwrap();
            let whole = respond(&config, Parts::from(&request));
            assert_eq!(parts.response().status(), whole.response().status());
            assert_eq!(parts.response().headers(), whole.response().headers());
            assert_eq!(parts.response().body(), whole.response().body());
            assert_eq!(parts.delay(), whole.delay());
        }
        let big = [("x-big", MAX_HEADER_FIELD_BYTES)];
        let reply = respond(&config, Parts::new("GET", "/", big));
        assert_eq!(reply.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        // A method http cannot name: refused as any method the routes do not answer.
        let reply = respond(&config, Parts::new("BAD METHOD", "/", []));
        assert_eq!(reply.status(), StatusCode::METHOD_NOT_ALLOWED);
        let reply = respond(&config, Parts::new("BAD METHOD", "/nope", []));
        assert_eq!(reply.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_reply_names_its_route() {
        assert_eq!(get("/").route(), Some("index"));
        assert_eq!(get("/hello/x").route(), Some("hello"));
        assert_eq!(get("/hello/%ZZ").route(), Some("hello"));
        assert_eq!(call(&Method::POST, "/healthz").route(), Some("healthz"));
        assert_eq!(get("/nope").route(), None);
        assert_eq!(get("/hello/x").route_template(), Some("/hello/{name}"));
        assert_eq!(get("/").route_template(), Some("/"));
        assert_eq!(get("/nope").route_template(), None);
        let mut big = HeaderMap::new();
        big.insert("x-big", HeaderValue::from_str(&"a".repeat(9_000)).unwrap());
        assert_eq!(
            with_headers(&Config::default(), &Method::GET, "/", &big).route(),
            None
        );
    }

    #[test]
    fn the_fields_are_the_response_headers() {
        for (method, path) in [(Method::GET, "/"), (Method::HEAD, "/"), (Method::POST, "/")] {
            let reply = call(&method, path);
            let response = reply.response();
            let fields: Vec<_> = reply.fields().collect();
            assert_eq!(fields.len(), response.headers().len(), "{method} {path}");
            for (name, value) in fields {
                assert_eq!(response.headers()[name], value.as_ref(), "{method} {path}");
            }
            assert_eq!(reply.body(), response.body());
        }
    }

    #[test]
    fn error_pages_escape_what_they_quote() {
        let config = Config::from_lookup(|_| Some("<b>".into()));
        let reply = respond(&config.into(), Parts::new("GET", "/", []));
        assert_eq!(reply.response().status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body(&reply).contains("&quot;&lt;b&gt;&quot;"),
            "{}",
            body(&reply)
        );
    }
}
