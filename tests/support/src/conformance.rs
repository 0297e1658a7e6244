//! The conformance table: every rule of the routing core as a user sees it, one case a line,
//! its checker, and the runner that sends each case over real TCP to a host and reports every
//! mismatch at once. Every host answers the same table; a host that logs a guest failure while it
//! does so fails too, with the requests that made it fail. What a host is asked beyond single
//! requests (overlap, clients that leave, a stop while clients arrive) is in
//! [`crate::scenarios`].
//!
//! What every answer of the core must carry, whatever the case says: each of `content-type`,
//! `content-length`, `x-content-type-options` and `content-security-policy` exactly once (and
//! `allow` exactly once on a 405, never otherwise), no other field more than once,
//! `content-length` equal to the body on a GET and, on a HEAD, to the length the GET of the same
//! request has, with no body.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use hello_edge::{
    ALLOWED_METHODS, CONTENT_SECURITY_POLICY_VALUE, MAX_HEADER_BYTES, MAX_HEADER_FIELD_BYTES,
    MAX_HEADER_FIELDS, MAX_NAME_CHARS, TEXT_HTML,
};
use http::Method;

use crate::client::{self, Answer, Protocol};
use crate::host::{Host, guest_failures};

/// What the body of an answer must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Exactly this page.
    Page(String),
    /// A page saying this.
    Says(String),
    /// Nothing (HEAD).
    Empty,
}

/// The header fields a request carries besides the ones the protocol implies.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fields {
    /// Each field `(name, size)`: `size` bytes as the core counts a field (`name: value` and
    /// its line end), the value being `v`s.
    Sized(Vec<(&'static str, usize)>),
    /// As many small fields as make this many in all, the authority counted as one (as the
    /// core counts: `host` on HTTP/1.1, `:authority` on HTTP/2).
    InAll(usize),
    /// Fields, each within the core's limit for one, of this many bytes in all (the authority's
    /// are not counted).
    Totalling(usize),
}

/// One request, and the answer a user must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The request method.
    pub method: Method,
    /// The request path, as sent.
    pub path: String,
    fields: Fields,
    /// The status the answer must have.
    pub status: u16,
    /// The body the answer must have.
    pub body: Body,
    /// Whether the answer waits the configured delay; otherwise it is immediate.
    pub waits: bool,
    /// Whether the answer lists the allowed methods (405).
    pub allows: bool,
    /// Whether, over HTTP/1.1, every host's HTTP parser (hyper's) refuses the request itself,
    /// before the core sees it: 431 with no body, and none of the core's fields.
    pub refused_by_http1_parser: bool,
}

/// `GET path`: a 200 with no body and no wait, until the case says otherwise.
pub fn get(path: impl Into<String>) -> Case {
    request(Method::GET, path)
}

/// `HEAD path`.
pub fn head(path: impl Into<String>) -> Case {
    request(Method::HEAD, path).no_body()
}

/// `POST path`.
pub fn post(path: impl Into<String>) -> Case {
    request(Method::POST, path)
}

/// `PUT path`.
pub fn put(path: impl Into<String>) -> Case {
    request(Method::PUT, path)
}

/// `DELETE path`.
pub fn delete(path: impl Into<String>) -> Case {
    request(Method::DELETE, path)
}

fn request(method: Method, path: impl Into<String>) -> Case {
    Case {
        method,
        path: path.into(),
        fields: Fields::Sized(Vec::new()),
        status: 200,
        body: Body::Empty,
        waits: false,
        allows: false,
        refused_by_http1_parser: false,
    }
}

impl Case {
    /// The status the answer has.
    pub fn answers(mut self, status: u16) -> Case {
        self.status = status;
        self
    }

    /// The answer is exactly this page.
    pub fn page(mut self, page: impl Into<String>) -> Case {
        self.body = Body::Page(page.into());
        self
    }

    /// The answer is a page saying this.
    pub fn says(mut self, part: impl Into<String>) -> Case {
        self.body = Body::Says(part.into());
        self
    }

    /// The answer has no body.
    pub fn no_body(mut self) -> Case {
        self.body = Body::Empty;
        self
    }

    /// The answer comes after the configured delay.
    pub fn after_delay(mut self) -> Case {
        self.waits = true;
        self
    }

    /// The answer carries `allow: GET, HEAD`.
    pub fn allowing_get_and_head(mut self) -> Case {
        self.allows = true;
        self
    }

    /// The request carries a field `name` of `size` bytes as the core counts them.
    pub fn sending(mut self, name: &'static str, size: usize) -> Case {
        match &mut self.fields {
            Fields::Sized(fields) => fields.push((name, size)),
            _ => panic!("a case sends sized fields, a count or a total, not two of them"),
        }
        self
    }

    /// The request's fields, but its authority, are `bytes` bytes in all, as the core counts
    /// them.
    pub fn fields_totalling(mut self, bytes: usize) -> Case {
        self.fields = Fields::Totalling(bytes);
        self
    }

    /// The request has `count` header fields in all, its authority counted as one.
    pub fn fields_in_all(mut self, count: usize) -> Case {
        self.fields = Fields::InAll(count);
        self
    }

    /// Over HTTP/1.1, every host's hyper refuses the request before the core sees it.
    pub fn refused_by_the_http1_parser(mut self) -> Case {
        self.refused_by_http1_parser = true;
        self
    }

    /// The size of the request's head as HTTP/2 counts it against a peer's
    /// `SETTINGS_MAX_HEADER_LIST_SIZE` (RFC 9113 §6.5.2): each field's name and value and 32
    /// octets, the pseudo-header fields included, for a request to `authority`.
    pub fn http2_header_list_size(&self, authority: &str) -> usize {
        let pseudo = [
            (":method", self.method.as_str()),
            (":scheme", "http"),
            (":authority", authority),
            (":path", self.path.as_str()),
        ];
        let fields = self.request_fields();
        pseudo
            .iter()
            .map(|(name, value)| name.len() + value.len() + 32)
            .chain(
                fields
                    .iter()
                    .map(|(name, value)| name.len() + value.len() + 32),
            )
            .sum()
    }

    /// The header fields to send, besides the authority (which the client adds).
    pub fn request_fields(&self) -> Vec<(String, String)> {
        let sized = |name: String, size: usize| {
            let value = size
                .checked_sub(name.len() + 4)
                .expect("a field is at least its name and separators");
            (name, "v".repeat(value))
        };
        match &self.fields {
            Fields::Sized(fields) => fields
                .iter()
                .map(|(name, size)| sized(name.to_string(), *size))
                .collect(),
            Fields::InAll(count) => (1..*count)
                .map(|i| (format!("x-field-{i}"), "1".to_owned()))
                .collect(),
            Fields::Totalling(bytes) => {
                let left = *bytes;
                let count = left.div_ceil(MAX_HEADER_FIELD_BYTES);
                (0..count)
                    .map(|i| {
                        // As even as can be: the first ones take the remainder.
                        let size = left / count + usize::from(i < left % count);
                        sized(format!("x-pad-{i}"), size)
                    })
                    .collect()
            }
        }
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.len() > 60 {
            format!("{}... ({} bytes)", &self.path[..60], self.path.len())
        } else {
            self.path.clone()
        };
        write!(f, "{} {path}", self.method)?;
        match &self.fields {
            Fields::Sized(fields) if !fields.is_empty() => {
                let sizes: Vec<_> = fields.iter().map(|(n, s)| format!("{n} {s} B")).collect();
                write!(f, " [{}]", sizes.join(", "))
            }
            Fields::InAll(count) => write!(f, " [{count} fields in all]"),
            Fields::Totalling(bytes) => write!(f, " [fields of {bytes} B in all]"),
            Fields::Sized(_) => Ok(()),
        }
    }
}

/// Every rule of the routing core, as a user sees it.
#[rustfmt::skip]
pub fn table() -> Vec<Case> {
    let longest = "a".repeat(MAX_NAME_CHARS);
    let (field, total, count) = (MAX_HEADER_FIELD_BYTES, MAX_HEADER_BYTES, MAX_HEADER_FIELDS);
    let too_long = format!("longer than {MAX_NAME_CHARS} characters");
    let field_too_large = format!("a header field larger than {field} bytes");
    let all_too_large = format!("header fields larger than {total} bytes in all");
    let too_many = format!("more than {count} header fields");
    vec![
        // The seed's two routes.
        get("/").page("<h1>Index</h1>").after_delay(),
        get("/hello/world").page("<h1>hello, world!</h1>").after_delay(),
        // Names are percent-decoded as UTF-8...
        get("/hello/%E5%BC%A0%E4%B8%89").page("<h1>hello, 张三!</h1>").after_delay(),
        get("/hello/J%C3%BCrgen%20M").page("<h1>hello, Jürgen M!</h1>").after_delay(),
        // ...then HTML-escaped, so a name is text and never markup.
        get("/hello/%3Cimg%20src=x%20onerror=alert(1)%3E")
            .page("<h1>hello, &lt;img src=x onerror=alert(1)&gt;!</h1>")
            .after_delay(),
        get("/hello/%26%22%27").page("<h1>hello, &amp;&quot;&#x27;!</h1>").after_delay(),
        // An encoded slash belongs to the name.
        get("/hello/a%2Fb").page("<h1>hello, a/b!</h1>").after_delay(),
        // Queries are ignored.
        get("/?x=1").page("<h1>Index</h1>").after_delay(),
        get("/hello/world?greeting=hi").page("<h1>hello, world!</h1>").after_delay(),
        // The longest name greeted.
        get(format!("/hello/{longest}")).page(format!("<h1>hello, {longest}!</h1>")).after_delay(),
        // The health check answers at once, whatever the delay.
        get("/healthz").page("<h1>ok</h1>"),
        head("/healthz"),
        post("/healthz").answers(405).says("405").allowing_get_and_head(),
        get("/healthz/").answers(404).says("404 Not Found"),
        // HEAD: the GET status and headers, no body.
        head("/").after_delay(),
        head("/hello/world").after_delay(),
        // Other methods on a route: 405 with Allow, at once.
        post("/").answers(405).says("405 Method Not Allowed").allowing_get_and_head(),
        put("/hello/world").answers(405).says("GET and HEAD only").allowing_get_and_head(),
        delete("/hello/x").answers(405).says("405").allowing_get_and_head(),
        // Unknown paths: 404, whatever the method.
        get("/nope").answers(404).says("<h1>404 Not Found</h1>"),
        post("/nope").answers(404).says("404 Not Found"),
        head("/nope").answers(404),
        get("/hello").answers(404).says("404 Not Found"),
        get("/hello/").answers(404).says("404 Not Found"),
        get("/hello/a/b").answers(404).says("404 Not Found"),
        get("/hello/world/").answers(404).says("404 Not Found"),
        get("/index.html").answers(404).says("404 Not Found"),
        // Bad names: a clear 4xx, at once.
        get("/hello/%ZZ").answers(400).says("invalid percent-encoding"),
        get("/hello/%FF").answers(400).says("not valid UTF-8"),
        get("/hello/%00").answers(400).says("control character"),
        get(format!("/hello/{longest}a")).answers(414).says(too_long),
        // Header fields at the limits pass: one field, all fields together, the count.
        get("/hello/big").sending("x-pad", field).page("<h1>hello, big!</h1>").after_delay(),
        get("/hello/all").fields_totalling(total).page("<h1>hello, all!</h1>").after_delay(),
        get("/hello/many").fields_in_all(count).page("<h1>hello, many!</h1>").after_delay(),
        // Past them: 431, at once, whatever the route.
        get("/hello/world").sending("x-pad", field + 1).answers(431).says(&field_too_large),
        get("/nope").fields_totalling(total + 1).answers(431).says(all_too_large),
        // Over HTTP/1.1 hyper, in front of the core on every host, counts the fields first.
        get("/").fields_in_all(count + 1).answers(431).says(too_many).refused_by_the_http1_parser(),
        // A field far past the limit still reaches the core (every host reads a head of 256 KiB
        // or more), and gets its page.
        get("/").sending("x-big", 200_000).answers(431).says(field_too_large),
    ]
}

/// Every mismatch of a run, one line each; empty when the host conforms.
#[derive(Debug, Default)]
pub struct Report {
    lines: Vec<String>,
}

impl Report {
    /// Whether nothing differed.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Adds a mismatch.
    pub fn push(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// Slack above the delay for an answer that waits: scheduling on a busy 2-core machine.
pub const LATE: Duration = Duration::from_secs(2);

/// How long after its answer a guest may still log a failure (a trap once the response is out).
pub(crate) const SETTLE: Duration = Duration::from_millis(300);

/// The fields the core puts on every answer, with their values.
const EVERY_ANSWER: [(&str, &str); 3] = [
    ("content-type", TEXT_HTML),
    ("x-content-type-options", "nosniff"),
    ("content-security-policy", CONTENT_SECURITY_POLICY_VALUE),
];

/// Compares one answer with its case, over `protocol`, for a host configured with `delay`;
/// `get` is the answer to the GET of the same request, for a HEAD. Returns what differs.
pub fn check(
    case: &Case,
    protocol: Protocol,
    answer: &Answer,
    get: Option<&Answer>,
    delay: Duration,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let parser_refuses = case.refused_by_http1_parser && protocol == Protocol::Http1;
    if answer.status.as_u16() != case.status {
        wrong.push(format!("status {} (want {})", answer.status, case.status));
    }
    for (name, _) in &answer.headers {
        let count = answer.count(name.as_str());
        if count > 1 && !wrong.iter().any(|w| w.starts_with(&format!("{name} "))) {
            wrong.push(format!("{name} appears {count} times"));
        }
    }
    if parser_refuses {
        // The host's parser answered: nothing of the core's.
        if answer.headers.contains_key("content-security-policy") {
            wrong.push("the core answered; want the host's HTTP/1.1 parser to refuse".to_owned());
        }
        if !answer.body.is_empty() {
            wrong.push(format!("body {:?} (want none)", answer.text()));
        }
    } else {
        for (name, value) in EVERY_ANSWER {
            if answer.one(name) != Some(value) {
                wrong.push(format!(
                    "{name}: {:?} (want once, {value:?})",
                    all(answer, name)
                ));
            }
        }
        let allow = answer.one("allow");
        match (case.allows, allow) {
            (true, Some(ALLOWED_METHODS)) | (false, None) if answer.count("allow") <= 1 => {}
            (true, _) => wrong.push(format!(
                "allow: {:?} (want once, {ALLOWED_METHODS:?})",
                all(answer, "allow")
            )),
            (false, _) => wrong.push(format!("allow: {:?} (want none)", all(answer, "allow"))),
        }
        let length = answer.one("content-length");
        let want_length = match (&case.method, get) {
            (&Method::HEAD, Some(get)) => get.one("content-length").map(str::to_owned),
            _ => Some(answer.body.len().to_string()),
        };
        if length.is_none() || length.map(str::to_owned) != want_length {
            wrong.push(format!(
                "content-length: {:?} (want once, {want_length:?}: {})",
                all(answer, "content-length"),
                if case.method == Method::HEAD {
                    "the GET's"
                } else {
                    "the body's"
                }
            ));
        }
        if case.method == Method::HEAD
            && let Some(get) = get
        {
            for (name, _) in EVERY_ANSWER {
                if answer.one(name) != get.one(name) {
                    wrong.push(format!("{name} differs from the GET's"));
                }
            }
            if answer.status != get.status {
                wrong.push(format!(
                    "status {} differs from the GET's {}",
                    answer.status, get.status
                ));
            }
        }
        let text = answer.text();
        let body_ok = match &case.body {
            Body::Page(want) => text == *want,
            Body::Says(part) => text.contains(part.as_str()),
            Body::Empty => text.is_empty(),
        };
        if !body_ok {
            wrong.push(format!("body {text:?} (want {:?})", case.body));
        }
    }
    let elapsed = answer.elapsed;
    if case.waits && !(elapsed >= delay && elapsed < delay + LATE) {
        wrong.push(format!(
            "took {elapsed:?}; want the delay, {delay:?} to {:?}",
            delay + LATE
        ));
    }
    // Immediate is well under the delay: a busy machine may still take a while to answer.
    let immediate = delay * 4 / 5;
    if !case.waits && elapsed >= immediate {
        wrong.push(format!(
            "took {elapsed:?}; want an immediate answer (under {immediate:?})"
        ));
    }
    wrong
}

/// Every value of the field `name`, for a message.
fn all<'a>(answer: &'a Answer, name: &str) -> Vec<&'a str> {
    answer
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("<binary>"))
        .collect()
}

/// Sends `case` over `protocol` on a new connection, with the GET of the same request for a
/// HEAD; returns what differs.
async fn send_case(
    addr: SocketAddr,
    protocol: Protocol,
    case: &Case,
    delay: Duration,
) -> Vec<String> {
    let fields = case.request_fields();
    let answer = client::send(addr, protocol, case.method.clone(), &case.path, &fields).await;
    let get = match case.method {
        Method::HEAD => Some(client::send(addr, protocol, Method::GET, &case.path, &fields).await),
        _ => None,
    };
    let mut wrong = match (answer, get) {
        (Ok(answer), None) => check(case, protocol, &answer, None, delay),
        (Ok(answer), Some(Ok(get))) => check(case, protocol, &answer, Some(&get), delay),
        (Ok(_), Some(Err(err))) => vec![format!("no answer to its GET: {err}")],
        (Err(err), _) => vec![format!("no answer: {err}")],
    };
    // hyper's client reads no body after a HEAD, so look at the wire itself.
    if case.method == Method::HEAD && protocol == Protocol::Http1 {
        let mut request = format!("HEAD {} HTTP/1.1\r\nhost: {addr}\r\n", case.path);
        for (name, value) in &fields {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("connection: close\r\n\r\n");
        match client::raw_exchange(addr, request.as_bytes()).await {
            Ok(bytes) => {
                if let Err(why) = nothing_after_the_head(&bytes) {
                    wrong.push(why);
                }
            }
            Err(err) => wrong.push(format!("no answer to a raw HEAD: {err}")),
        }
    }
    wrong
}

/// Whether an answer on the wire ends with its head (a HEAD's answer must), or what follows.
fn nothing_after_the_head(bytes: &[u8]) -> Result<(), String> {
    match bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) if end + 4 == bytes.len() => Ok(()),
        Some(end) => Err(format!(
            "{} bytes after the HEAD answer's head: {:?}",
            bytes.len() - end - 4,
            String::from_utf8_lossy(&bytes[end + 4..])
        )),
        None => Err(format!(
            "no whole head in {:?}",
            String::from_utf8_lossy(bytes)
        )),
    }
}

/// Runs the whole table against a server at `addr` configured with `delay`, over `protocol`,
/// all cases at once, each on its own connection.
pub async fn run(addr: SocketAddr, protocol: Protocol, delay: Duration) -> Report {
    run_cases(addr, protocol, delay, &table()).await
}

/// [`run`] with these cases of the table only.
pub async fn run_cases(
    addr: SocketAddr,
    protocol: Protocol,
    delay: Duration,
    cases: &[Case],
) -> Report {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, case) in cases.iter().cloned().enumerate() {
        tasks.spawn(async move { (i, send_case(addr, protocol, &case, delay).await) });
    }
    let mut results = tasks.join_all().await;
    results.sort_by_key(|(i, _)| *i);
    let mut report = Report::default();
    for ((_, wrong), case) in results.iter().zip(cases) {
        if !wrong.is_empty() {
            report.push(format!("{protocol} {case}: {}", wrong.join("; ")));
        }
    }
    report
}

/// [`run`] on a host, then its log: a guest failure logged meanwhile fails the run, and the
/// report names the requests that cause one, found by sending each case again alone.
pub async fn run_on(host: &dyn Host, protocol: Protocol, delay: Duration) -> Report {
    run_cases_on(host, protocol, delay, &table()).await
}

/// [`run_on`] with these cases of the table only.
pub async fn run_cases_on(
    host: &dyn Host,
    protocol: Protocol,
    delay: Duration,
    cases: &[Case],
) -> Report {
    let log = host.log();
    let mark = log.mark();
    let mut report = run_cases(host.addr(), protocol, delay, cases).await;
    tokio::time::sleep(SETTLE).await;
    if guest_failures(&log.since(mark)).is_empty() {
        return report;
    }
    for case in cases {
        let mark = log.mark();
        let _ = send_case(host.addr(), protocol, case, delay).await;
        tokio::time::sleep(SETTLE).await;
        let since = log.since(mark);
        if let Some(first) = guest_failures(&since).first() {
            report.push(format!(
                "{protocol} {case}: the host logged a guest failure: {first}"
            ));
        }
    }
    report.push(format!("{}'s log:\n{}", host.label(), log.since(mark)));
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn a_body_after_a_heads_answer_is_seen() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\n";
        assert_eq!(nothing_after_the_head(head), Ok(()));
        let with_body = [&head[..], b"<h1>Index</h1>"].concat();
        assert!(nothing_after_the_head(&with_body).is_err());
        assert!(nothing_after_the_head(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[test]
    fn every_case_is_checked_for_what_it_says() {
        // A case's claims show in what `check` refuses.
        let answer = |status: u16, body: &str, elapsed_ms: u64| Answer {
            status: StatusCode::from_u16(status).unwrap(),
            version: http::Version::HTTP_11,
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::copy_from_slice(body.as_bytes()),
            elapsed: Duration::from_millis(elapsed_ms),
        };
        let delay = Duration::from_millis(500);
        let case = get("/").page("<h1>Index</h1>").after_delay();
        let wrong = check(
            &case,
            Protocol::Http1,
            &answer(200, "<h1>Index</h1>", 10),
            None,
            delay,
        );
        assert!(wrong.iter().any(|w| w.starts_with("took")), "{wrong:?}");
        assert!(
            wrong.iter().any(|w| w.starts_with("content-type")),
            "{wrong:?}"
        );
        assert!(
            wrong.iter().any(|w| w.starts_with("content-length")),
            "{wrong:?}"
        );
        let wrong = check(&case, Protocol::Http1, &answer(404, "x", 600), None, delay);
        assert!(wrong.iter().any(|w| w.starts_with("status")), "{wrong:?}");
        assert!(wrong.iter().any(|w| w.starts_with("body")), "{wrong:?}");
    }
}
