//! An answer decided by the core ([`Reply`]): its status, its page, how long to wait, and the
//! header fields every answer carries.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::error::RequestError;
use crate::request::MethodClass;

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
/// so it keeps the decision (a status, a page, a route's name, two flags) and builds the
/// [`Response`], headers and all, only when it sends it ([`Reply::into_response`]). The page is
/// plain bytes, borrowed for the fixed pages: a component that never builds an
/// [`http::Response`] carries no `Bytes` machinery for it.
#[derive(Debug, Clone)]
pub struct Reply {
    delay: Duration,
    status: StatusCode,
    /// The page, also for `HEAD`, whose answer keeps its length but not its body.
    page: Cow<'static, [u8]>,
    head: bool,
    /// Whether the answer lists the allowed methods (405).
    allow: bool,
    /// The name of the route the path named, if any.
    route: Option<&'static str>,
}

impl Reply {
    /// A successful answer: `page` after `delay`.
    pub(crate) fn page(
        page: Cow<'static, [u8]>,
        delay: Duration,
        method: MethodClass,
        route: &'static str,
    ) -> Reply {
        Reply {
            delay,
            status: StatusCode::OK,
            page,
            head: method == MethodClass::Head,
            allow: false,
            route: Some(route),
        }
    }

    /// The immediate answer for a refused request, as every host shows it: the error's status
    /// and a small page saying why; `route` is the route the path named, if it got that far.
    pub(crate) fn error(
        err: &RequestError,
        method: MethodClass,
        route: Option<&'static str>,
    ) -> Reply {
        let (status, title) = err.status_line();
        let mut page = String::with_capacity(96);
        page.push_str("<h1>");
        page.push_str(title);
        page.push_str("</h1>\n<p>");
        html_escape::encode_quoted_attribute_to_string(err.to_string(), &mut page);
        page.push_str(".</p>\n");
        Reply {
            delay: Duration::ZERO,
            status,
            page: Cow::Owned(page.into_bytes()),
            head: method == MethodClass::Head,
            allow: matches!(err, RequestError::MethodNotAllowed),
            route,
        }
    }

    /// The route the request's path named (`index`, `hello`, `healthz`), whatever the status,
    /// or `None` when it named none or was refused before routing (431, a misconfigured host):
    /// what a host labels its metrics with.
    pub fn route(&self) -> Option<&'static str> {
        self.route
    }

    /// The path template of the route the request's path named ([`Route::TEMPLATES`]:
    /// `/hello/{name}`), when [`Reply::route`] names one: a trace's `http.route`.
    ///
    /// [`Route::TEMPLATES`]: crate::Route::TEMPLATES
    pub fn route_template(&self) -> Option<&'static str> {
        crate::Route::template_of(self.route?)
    }

    /// How long the host waits before sending the answer: the configured delay for a page,
    /// zero for the health check and every refusal.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The header fields of the answer, each once, as names and values: the ones every answer
    /// carries, its `content-length` (the page's, also for `HEAD`), and `allow` on a 405.
    /// [`Reply::into_response`] sends exactly these.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, Cow<'static, str>)> {
        let every = EVERY_ANSWER
            .iter()
            .map(|(name, value)| (*name, (*value).into()));
        let length = ("content-length", self.page.len().to_string().into());
        let allow = self.allow.then(|| ("allow", ALLOWED_METHODS.into()));
        every.chain(std::iter::once(length)).chain(allow)
    }

    /// The [fields](Reply::fields) as owned names and values, the list `wasi:http`'s
    /// `fields.from-list` takes (a name is a `string`, a value a `list<u8>`), for a component to
    /// hand its binding.
    pub fn field_list(&self) -> Vec<(String, Vec<u8>)> {
        self.fields()
            .map(|(name, value)| (name.to_owned(), value.into_owned().into_bytes()))
            .collect()
    }

    /// Whether the answer has a body to send: every answer but one to `HEAD`, whose head keeps
    /// the page's `content-length` and which a host should open no body for.
    pub fn has_body(&self) -> bool {
        !self.head
    }

    /// The body of the answer: the page, or nothing for `HEAD` (which keeps the page's
    /// `content-length`, as RFC 9110 §9.3.2 allows).
    pub fn body(&self) -> &[u8] {
        if self.head { &[] } else { &self.page }
    }

    /// The response to send once the delay has passed: the status, the [fields](Reply::fields)
    /// and the [body](Reply::body).
    pub fn into_response(self) -> Response<Bytes> {
        let length = self.page.len();
        let body = match (self.head, self.page) {
            (true, _) => Bytes::new(),
            (false, Cow::Borrowed(page)) => Bytes::from_static(page),
            (false, Cow::Owned(page)) => Bytes::from(page),
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.reserve(5);
        for (name, (_, value)) in EVERY_ANSWER_NAMES.into_iter().zip(EVERY_ANSWER) {
            headers.insert(name, HeaderValue::from_static(value));
        }
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
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
