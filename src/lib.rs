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
//! * [`respond_to`]: the one entry point, from a request to a [`Reply`]
//!   ([`respond_as_configured`] for hosts whose configuration may be invalid); [`respond`] takes
//!   the parts it looks at (method, path, header fields) one by one, and [`respond_to_parts`]
//!   takes them as plain text, for a host that has no [`http::Request`]. A [`Reply`] gives its
//!   answer as an [`http::Response`], or as its status, fields and body.
//! * `route`: which route a path names ([`Route`]) and how a name is decoded ([`decode_name`]).
//! * `head`: the limits on header fields ([`check_headers`]), the same on every host.
//! * `error`: why a request is refused ([`RequestError`]) and the one mapping to a status.
//! * `config`: the delay and its parser ([`Delay::from_millis_str`]), shared by every host.
//!
//! A host's whole job, minus the I/O:
//!
//! ```
//! use std::time::Duration;
//! use hello_edge::{Config, respond_to};
//!
//! let request = http::Request::get("/hello/%E5%BC%A0%E4%B8%89").body(()).unwrap();
//! let reply = respond_to(&Config::default(), &request);
//! assert_eq!(reply.response().status(), 200);
//! assert_eq!(reply.response().body().as_ref(), "<h1>hello, 张三!</h1>".as_bytes());
//! assert_eq!(reply.delay, Duration::from_millis(500)); // the host sleeps this, then sends
//! ```

mod config;
mod error;
mod head;
mod route;

pub use config::{Config, ConfigError, Delay, VarError};
pub use error::RequestError;
pub use head::{
    HOST_ADDED_FIELDS, HeaderLimit, MAX_HEADER_BYTES, MAX_HEADER_FIELD_BYTES, MAX_HEADER_FIELDS,
    check_fields, check_headers,
};
pub use route::{HEALTH_PATH, MAX_NAME_CHARS, Route, decode_name};

use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};

/// The content type of every answer.
pub const TEXT_HTML: &str = "text/html; charset=utf-8";
/// The methods the two routes answer, as sent in `Allow`.
pub const ALLOWED_METHODS: &str = "GET, HEAD";
/// The content security policy of every answer: the pages load nothing (no scripts, styles or
/// images), so a browser may load nothing for them, whatever a name holds.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'";

/// The fields every answer carries, with their values; each answer adds its `content-length`,
/// and a 405 its `allow`.
const EVERY_ANSWER: [(&str, &str); 3] = [
    ("content-type", TEXT_HTML),
    ("x-content-type-options", "nosniff"),
    ("content-security-policy", CONTENT_SECURITY_POLICY_VALUE),
];

/// The names of [`EVERY_ANSWER`], made once, for [`Reply::into_response`].
const EVERY_ANSWER_NAMES: [HeaderName; 3] = [
    HeaderName::from_static(EVERY_ANSWER[0].0),
    HeaderName::from_static(EVERY_ANSWER[1].0),
    HeaderName::from_static(EVERY_ANSWER[2].0),
];

/// An answer decided by the core: the status and page to send, and how long to wait first.
///
/// It is compact on purpose: a host holds one for every request that waits, thousands at once,
/// so it keeps the decision (a status, a page, two flags) and builds the [`Response`], headers
/// and all, only when it sends it ([`Reply::into_response`]).
#[derive(Debug, Clone)]
pub struct Reply {
    /// How long the host waits before sending the response; zero for errors.
    pub delay: Duration,
    status: StatusCode,
    /// The page, also for `HEAD`, whose answer keeps its length but not its body.
    page: Bytes,
    head: bool,
    /// Whether the answer lists the allowed methods (405).
    allow: bool,
    /// The route the path named, if any.
    route: Option<route::RouteKind>,
}

impl Reply {
    /// The immediate answer for a refused request, as every host shows it.
    ///
    /// Hosts use this for errors of their own too (see [`RequestError::Misconfigured`]), so the
    /// page and the status of an error are decided here only.
    pub fn error(err: &RequestError, method: &Method) -> Reply {
        let status = err.status();
        let mut page = String::with_capacity(96);
        page.push_str("<h1>");
        page.push_str(status.as_str());
        page.push(' ');
        page.push_str(status.canonical_reason().unwrap_or(""));
        page.push_str("</h1>\n<p>");
        html_escape::encode_quoted_attribute_to_string(err.to_string(), &mut page);
        page.push_str(".</p>\n");
        Reply {
            delay: Duration::ZERO,
            status,
            page: Bytes::from(page),
            head: method == Method::HEAD,
            allow: matches!(err, RequestError::MethodNotAllowed),
            route: None,
        }
    }

    /// The route the request's path named (`index`, `hello`, `healthz`), whatever the status,
    /// or `None` when it named none or was refused before routing (431): what a host labels
    /// its metrics with.
    pub fn route(&self) -> Option<&'static str> {
        self.route.map(route::RouteKind::name)
    }

    /// The status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The header fields of the answer, each once, as names and values: the ones every answer
    /// carries, its `content-length` (the page's, also for `HEAD`), and `allow` on a 405.
    /// [`Reply::into_response`] sends exactly these.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, std::borrow::Cow<'static, str>)> {
        let every = EVERY_ANSWER
            .iter()
            .map(|(name, value)| (*name, (*value).into()));
        let length = ("content-length", self.page.len().to_string().into());
        let allow = self.allow.then(|| ("allow", ALLOWED_METHODS.into()));
        every.chain(std::iter::once(length)).chain(allow)
    }

    /// The body of the answer: the page, or nothing for `HEAD` (which keeps the page's
    /// `content-length`, as RFC 9110 §9.3.2 allows).
    pub fn body(&self) -> &Bytes {
        static NONE: Bytes = Bytes::new();
        if self.head { &NONE } else { &self.page }
    }

    /// The response to send once the delay has passed: the status, the [fields](Reply::fields)
    /// and the [body](Reply::body).
    pub fn into_response(self) -> Response<Bytes> {
        let mut response = Response::new(self.body().clone());
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.reserve(5);
        for (name, (_, value)) in EVERY_ANSWER_NAMES.into_iter().zip(EVERY_ANSWER) {
            headers.insert(name, HeaderValue::from_static(value));
        }
        headers.insert(CONTENT_LENGTH, HeaderValue::from(self.page.len()));
        if self.allow {
            headers.insert(ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
        }
        response
    }

    /// The response [`Reply::into_response`] will send, for a look before sending.
    pub fn response(&self) -> Response<Bytes> {
        self.clone().into_response()
    }
}

/// Decides the answer to a request: [`respond`] on its method, path and header fields.
pub fn respond_to<B>(config: &Config, request: &Request<B>) -> Reply {
    respond(
        config,
        request.method(),
        request.uri().path(),
        request.headers(),
    )
}

/// Like [`respond_to`], for a host whose configuration was read at run time (from its
/// environment, say) and may be invalid: then every request answers 500 naming the variable,
/// the same on every such host.
pub fn respond_as_configured<B>(config: &Result<Config, VarError>, request: &Request<B>) -> Reply {
    match config {
        Ok(config) => respond_to(config, request),
        Err(err) => Reply::error(&RequestError::Misconfigured(err.clone()), request.method()),
    }
}

/// Like [`respond_as_configured`], for a host that hands a request over as plain parts rather
/// than an [`http::Request`] (a WASI 0.2 component): the method as sent, the request target as
/// sent (the path and the query, which is ignored), and each header field as its name and the
/// length of its value.
///
/// A method [`http::Method`] cannot name is refused as any method the routes do not answer is.
pub fn respond_to_parts<'a>(
    config: &Result<Config, VarError>,
    method: &str,
    target: &str,
    fields: impl IntoIterator<Item = (&'a str, usize)>,
) -> Reply {
    let path = target.split_once('?').map_or(target, |(path, _query)| path);
    let fields = check_fields(fields);
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        let err = match fields {
            Err(err) => err,
            Ok(()) if Route::from_path(path).is_ok() => RequestError::MethodNotAllowed,
            Ok(()) => RequestError::NotFound,
        };
        // Any method but HEAD: the answer has its page.
        return Reply::error(&err, &Method::OPTIONS);
    };
    match config {
        Ok(config) => decide(config, &method, path, fields),
        Err(err) => Reply::error(&RequestError::Misconfigured(err.clone()), &method),
    }
}

/// Decides the answer to a request from its method, its path (without the query) and its header
/// fields.
///
/// Header fields past the limits ([`check_headers`]) answer 431, whatever the route. Then `GET`
/// and `HEAD` on `/` and `/hello/{name}` answer 200 after `config.delay`; everything else
/// answers at once with the error status the [`RequestError`] names.
pub fn respond(config: &Config, method: &Method, path: &str, headers: &HeaderMap) -> Reply {
    decide(config, method, path, check_headers(headers))
}

/// The answer, once the header fields are checked.
fn decide(config: &Config, method: &Method, path: &str, fields: Result<(), RequestError>) -> Reply {
    let route = fields
        .as_ref()
        .ok()
        .and_then(|()| Route::from_path(path).ok())
        .map(|route| route.kind());
    let mut reply = match fields.and_then(|()| page(method, path)) {
        Ok(Page { body, waits }) => Reply {
            delay: if waits {
                config.delay.as_duration()
            } else {
                Duration::ZERO
            },
            status: StatusCode::OK,
            page: body,
            head: method == Method::HEAD,
            allow: false,
            route: None,
        },
        Err(err) => Reply::error(&err, method),
    };
    reply.route = route;
    reply
}

/// A successful answer's body, and whether it waits the configured delay.
struct Page {
    body: Bytes,
    waits: bool,
}

/// The page of a successful answer, or why there is none.
fn page(method: &Method, path: &str) -> Result<Page, RequestError> {
    let route = Route::from_path(path)?;
    if method != Method::GET && method != Method::HEAD {
        return Err(RequestError::MethodNotAllowed);
    }
    let waiting = |body| Page { body, waits: true };
    match route {
        Route::Index => Ok(waiting(Bytes::from_static(b"<h1>Index</h1>"))),
        Route::Hello(raw) => {
            let name = decode_name(raw)?;
            let mut page = String::with_capacity(name.len() + 20);
            page.push_str("<h1>hello, ");
            html_escape::encode_quoted_attribute_to_string(&name, &mut page);
            page.push_str("!</h1>");
            Ok(waiting(Bytes::from(page)))
        }
        Route::Health => Ok(Page {
            body: Bytes::from_static(b"<h1>ok</h1>"),
            waits: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Reply {
        call(&Method::GET, path)
    }

    fn call(method: &Method, path: &str) -> Reply {
        respond(&Config::default(), method, path, &HeaderMap::new())
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
        assert_eq!(reply.delay, Duration::from_millis(500));
    }

    #[test]
    fn hello_greets_the_name() {
        let reply = get("/hello/world");
        assert_eq!(reply.response().status(), StatusCode::OK);
        assert_eq!(body(&reply), "<h1>hello, world!</h1>");
        assert_eq!(header(&reply, "content-type"), TEXT_HTML);
        assert_eq!(reply.delay, Duration::from_millis(500));
    }

    #[test]
    fn the_health_check_answers_at_once() {
        let reply = get("/healthz");
        assert_eq!(reply.response().status(), StatusCode::OK);
        assert_eq!(body(&reply), "<h1>ok</h1>");
        assert_eq!(reply.delay, Duration::ZERO);
        assert_eq!(call(&Method::HEAD, "/healthz").delay, Duration::ZERO);
        let reply = call(&Method::POST, "/healthz");
        assert_eq!(reply.response().status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn the_delay_comes_from_the_config() {
        let config = Config::with_delay(Delay::from_millis_str("20").unwrap());
        let reply = respond(&config, &Method::GET, "/hello/x", &HeaderMap::new());
        assert_eq!(reply.delay, Duration::from_millis(20));
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
            assert_eq!(head.delay, get.delay, "{path}");
            assert!(head.response().body().is_empty(), "{path}");
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
                assert_eq!(reply.delay, Duration::ZERO);
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
            assert_eq!(reply.delay, Duration::ZERO);
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
            assert_eq!(reply.delay, Duration::ZERO);
        }
        let reply = get(&format!("/hello/{}", "a".repeat(101)));
        assert_eq!(reply.response().status(), StatusCode::URI_TOO_LONG);
        assert!(body(&reply).contains("longer than 100 characters"));
    }

    #[test]
    fn a_misconfigured_host_answers_500_naming_the_variable() {
        let request = Request::get("/hello/x").body(()).unwrap();
        let config = Config::from_lookup(|_| Some("soon".into()));
        let reply = respond_as_configured(&config, &request);
        assert_eq!(reply.response().status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body(&reply).contains("HELLO_EDGE_DELAY_MS"),
            "{}",
            body(&reply)
        );
        assert_eq!(reply.delay, Duration::ZERO);

        let config = Config::from_lookup(|_| None);
        let reply = respond_as_configured(&config, &request);
        assert_eq!(body(&reply), "<h1>hello, x!</h1>");
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
            let reply = respond(&Config::default(), &Method::GET, path, &headers);
            assert_eq!(
                reply.response().status(),
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "{path}"
            );
            assert!(body(&reply).contains("larger than 8192 bytes"), "{path}");
            assert_eq!(reply.delay, Duration::ZERO);
        }
    }

    #[test]
    fn respond_to_reads_the_request() {
        let request = Request::get("/hello/there?x=1")
            .header("user-agent", "test")
            .body(())
            .unwrap();
        let reply = respond_to(&Config::default(), &request);
        assert_eq!(body(&reply), "<h1>hello, there!</h1>");
        let request = Request::head("/").body(()).unwrap();
        let reply = respond_to(&Config::default(), &request);
        assert_eq!(reply.response().status(), StatusCode::OK);
        assert!(reply.response().body().is_empty());
    }

    #[test]
    fn plain_parts_are_answered_as_a_request_is() {
        let config = Ok(Config::default());
        let fields = [("host", 14), ("user-agent", 10)];
        for (method, target) in [
            (Method::GET, "/hello/there?x=1"),
            (Method::HEAD, "/"),
            (Method::POST, "/"),
            (Method::GET, "/nope?a=b"),
        ] {
            let parts = respond_to_parts(&config, method.as_str(), target, fields);
            let request = Request::builder()
                .method(method.clone())
                .uri(target)
                .body(())
                .unwrap();
            let whole = respond_as_configured(&config, &request);
            assert_eq!(parts.response().status(), whole.response().status());
            assert_eq!(parts.response().headers(), whole.response().headers());
            assert_eq!(parts.response().body(), whole.response().body());
            assert_eq!(parts.delay, whole.delay);
        }
        let big = [("x-big", MAX_HEADER_FIELD_BYTES)];
        let reply = respond_to_parts(&config, "GET", "/", big);
        assert_eq!(reply.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let misconfigured = Config::from_lookup(|_| Some("soon".into()));
        let reply = respond_to_parts(&misconfigured, "GET", "/", []);
        assert_eq!(reply.status(), StatusCode::INTERNAL_SERVER_ERROR);
        // A method http cannot name: refused as a method the routes do not answer.
        let reply = respond_to_parts(&config, "BAD METHOD", "/", []);
        assert_eq!(reply.status(), StatusCode::METHOD_NOT_ALLOWED);
        let reply = respond_to_parts(&config, "BAD METHOD", "/nope", []);
        assert_eq!(reply.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_reply_names_its_route() {
        assert_eq!(get("/").route(), Some("index"));
        assert_eq!(get("/hello/x").route(), Some("hello"));
        assert_eq!(get("/hello/%ZZ").route(), Some("hello"));
        assert_eq!(call(&Method::POST, "/healthz").route(), Some("healthz"));
        assert_eq!(get("/nope").route(), None);
        let mut big = HeaderMap::new();
        big.insert("x-big", HeaderValue::from_str(&"a".repeat(9_000)).unwrap());
        assert_eq!(
            respond(&Config::default(), &Method::GET, "/", &big).route(),
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
        let err: RequestError = Config::from_lookup(|_| Some("<b>".into()))
            .unwrap_err()
            .into();
        let reply = Reply::error(&err, &Method::GET);
        assert_eq!(reply.response().status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body(&reply).contains("&quot;&lt;b&gt;&quot;"),
            "{}",
            body(&reply)
        );
    }
}
