//! The conformance table: the requests a user sends and the answers they expect, the same on
//! every host. A runner sends each case over real TCP to a running server and reports every
//! mismatch at once.

#![allow(dead_code)] // Each test binary uses the part it needs.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What the body of an answer must be.
#[derive(Debug, Clone)]
pub enum Body {
    /// Exactly this text.
    Exact(String),
    /// Text containing this.
    Contains(&'static str),
    /// Nothing (HEAD).
    Empty,
}

/// One request and the answer a user expects.
#[derive(Debug, Clone)]
pub struct Case {
    pub method: Method,
    pub path: String,
    /// Header fields the request carries besides `host`.
    pub request_headers: Vec<(String, String)>,
    pub status: u16,
    /// Headers that must be present with these values (others may be present too).
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Body,
    /// Whether the answer waits the configured delay (otherwise it is immediate).
    pub waits: bool,
}

/// What every answer carries, whatever its status.
const EVERY_ANSWER: [(&str, &str); 3] = [
    ("content-type", "text/html; charset=utf-8"),
    ("x-content-type-options", "nosniff"),
    ("content-security-policy", "default-src 'none'"),
];

fn case(method: Method, path: impl Into<String>, status: u16, body: Body, waits: bool) -> Case {
    Case {
        method,
        path: path.into(),
        request_headers: Vec::new(),
        status,
        headers: EVERY_ANSWER.to_vec(),
        body,
        waits,
    }
}

/// The case with these header fields on its request, each `(name, value length)`; the value is
/// that many `v`s.
fn sending(mut case: Case, fields: &[(&str, usize)]) -> Case {
    for (name, len) in fields {
        case.request_headers
            .push((name.to_string(), "v".repeat(*len)));
    }
    case
}

fn with(mut case: Case, header: (&'static str, &'static str)) -> Case {
    case.headers.push(header);
    case
}

/// Every rule of the routing core, as a user sees it.
pub fn table() -> Vec<Case> {
    use Body::*;
    let get = || Method::GET;
    let ok = |path: &str, body: &str| case(get(), path, 200, Exact(body.to_owned()), true);
    vec![
        // The seed's two routes.
        ok("/", "<h1>Index</h1>"),
        ok("/hello/world", "<h1>hello, world!</h1>"),
        // Names are percent-decoded as UTF-8...
        ok("/hello/%E5%BC%A0%E4%B8%89", "<h1>hello, 张三!</h1>"),
        ok("/hello/J%C3%BCrgen%20M", "<h1>hello, Jürgen M!</h1>"),
        // ...then HTML-escaped, so a name is text and never markup.
        ok(
            "/hello/%3Cimg%20src=x%20onerror=alert(1)%3E",
            "<h1>hello, &lt;img src=x onerror=alert(1)&gt;!</h1>",
        ),
        ok("/hello/%26%22%27", "<h1>hello, &amp;&quot;&#x27;!</h1>"),
        // An encoded slash belongs to the name.
        ok("/hello/a%2Fb", "<h1>hello, a/b!</h1>"),
        // Queries are ignored.
        ok("/?x=1", "<h1>Index</h1>"),
        ok("/hello/world?greeting=hi", "<h1>hello, world!</h1>"),
        // The longest name greeted: 100 characters.
        ok(
            &format!("/hello/{}", "a".repeat(100)),
            &format!("<h1>hello, {}!</h1>", "a".repeat(100)),
        ),
        // The health check answers at once, whatever the delay.
        case(
            get(),
            "/healthz",
            200,
            Exact("<h1>ok</h1>".to_owned()),
            false,
        ),
        with(
            case(Method::HEAD, "/healthz", 200, Empty, false),
            ("content-length", "11"),
        ),
        with(
            case(Method::POST, "/healthz", 405, Contains("405"), false),
            ("allow", "GET, HEAD"),
        ),
        case(get(), "/healthz/", 404, Contains("404 Not Found"), false),
        // HEAD: the GET status and headers, no body.
        with(
            case(Method::HEAD, "/", 200, Empty, true),
            ("content-length", "14"),
        ),
        with(
            case(Method::HEAD, "/hello/world", 200, Empty, true),
            ("content-length", "22"),
        ),
        // Other methods on a route: 405 with Allow, at once.
        with(
            case(
                Method::POST,
                "/",
                405,
                Contains("405 Method Not Allowed"),
                false,
            ),
            ("allow", "GET, HEAD"),
        ),
        with(
            case(
                Method::PUT,
                "/hello/world",
                405,
                Contains("GET and HEAD only"),
                false,
            ),
            ("allow", "GET, HEAD"),
        ),
        with(
            case(Method::DELETE, "/hello/x", 405, Contains("405"), false),
            ("allow", "GET, HEAD"),
        ),
        // Unknown paths: 404, whatever the method.
        case(
            get(),
            "/nope",
            404,
            Contains("<h1>404 Not Found</h1>"),
            false,
        ),
        case(Method::POST, "/nope", 404, Contains("404 Not Found"), false),
        case(Method::HEAD, "/nope", 404, Empty, false),
        case(get(), "/hello", 404, Contains("404 Not Found"), false),
        case(get(), "/hello/", 404, Contains("404 Not Found"), false),
        case(get(), "/hello/a/b", 404, Contains("404 Not Found"), false),
        case(
            get(),
            "/hello/world/",
            404,
            Contains("404 Not Found"),
            false,
        ),
        case(get(), "/index.html", 404, Contains("404 Not Found"), false),
        // Bad names: a clear 4xx, at once.
        case(
            get(),
            "/hello/%ZZ",
            400,
            Contains("invalid percent-encoding"),
            false,
        ),
        case(get(), "/hello/%FF", 400, Contains("not valid UTF-8"), false),
        case(
            get(),
            "/hello/%00",
            400,
            Contains("control character"),
            false,
        ),
        case(
            get(),
            format!("/hello/{}", "a".repeat(101)),
            414,
            Contains("longer than 100 characters"),
            false,
        ),
        // Header fields within the limits pass: one of 8,000 bytes, 12,000 bytes in all, 90
        // fields.
        sending(
            ok("/hello/big", "<h1>hello, big!</h1>"),
            &[("x-pad", 8_000)],
        ),
        sending(
            ok("/hello/two", "<h1>hello, two!</h1>"),
            &[("x-pad-1", 6_000), ("x-pad-2", 6_000)],
        ),
        sending(
            ok("/hello/many", "<h1>hello, many!</h1>"),
            &(0..90).map(|_| ("x-n", 1)).collect::<Vec<_>>(),
        ),
        // Past them: 431, at once, whatever the route.
        sending(
            case(
                get(),
                "/",
                431,
                Contains("a header field larger than 8192 bytes"),
                false,
            ),
            &[("x-big", 200_000)],
        ),
        sending(
            case(
                get(),
                "/hello/world",
                431,
                Contains("a header field larger than 8192 bytes"),
                false,
            ),
            &[("x-pad", 8_300)],
        ),
        sending(
            case(
                get(),
                "/nope",
                431,
                Contains("header fields larger than 16384 bytes in all"),
                false,
            ),
            &[("x-pad-1", 6_000), ("x-pad-2", 6_000), ("x-pad-3", 6_000)],
        ),
    ]
}

/// A status, the headers and the body as they came back, and how long they took.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub elapsed: Duration,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one HTTP/1.1 request on a new connection and reads the whole answer; the time taken
/// includes connecting.
pub async fn send(addr: SocketAddr, method: Method, path: &str) -> Result<Answer, String> {
    send_with(addr, method, path, &[]).await
}

/// Like [`send`], with these header fields besides `host`.
pub async fn send_with(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(String, String)],
) -> Result<Answer, String> {
    let started = Instant::now();
    let sender = connect(addr).await?;
    let mut answer = request_with(sender, addr, method, path, headers).await?;
    answer.elapsed = started.elapsed();
    Ok(answer)
}

/// Opens an HTTP/1.1 connection.
pub async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends one request on an open connection and reads the whole answer.
pub async fn request(
    sender: SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    method: Method,
    path: &str,
) -> Result<Answer, String> {
    request_with(sender, addr, method, path, &[]).await
}

/// Like [`request`], with these header fields besides `host`.
pub async fn request_with(
    mut sender: SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(String, String)],
) -> Result<Answer, String> {
    let started = Instant::now();
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
        elapsed: started.elapsed(),
    })
}

/// Slack above the delay for an answer that waits: scheduling on a busy 2-core machine.
const LATE: Duration = Duration::from_secs(2);

/// Compares one answer with its case; returns what differs.
pub fn check(case: &Case, answer: &Answer, delay: Duration) -> Vec<String> {
    let mut wrong = Vec::new();
    if answer.status.as_u16() != case.status {
        wrong.push(format!("status {} (want {})", answer.status, case.status));
    }
    for (name, value) in &case.headers {
        let got = answer
            .headers
            .get(*name)
            .map(|v| v.to_str().unwrap_or("<binary>"));
        if got != Some(value) {
            wrong.push(format!("header {name}: {got:?} (want {value:?})"));
        }
    }
    let text = answer.text();
    let body_ok = match &case.body {
        Body::Exact(want) => text == *want,
        Body::Contains(part) => text.contains(part),
        Body::Empty => text.is_empty(),
    };
    if !body_ok {
        wrong.push(format!("body {text:?} (want {:?})", case.body));
    }
    let elapsed = answer.elapsed;
    if case.waits && !(elapsed >= delay && elapsed < delay + LATE) {
        wrong.push(format!(
            "took {elapsed:?}; want the delay, {delay:?} to {:?}",
            delay + LATE
        ));
    }
    if !case.waits && elapsed >= delay / 2 {
        wrong.push(format!(
            "took {elapsed:?}; want an immediate answer (under {:?})",
            delay / 2
        ));
    }
    wrong
}

/// Runs the whole table against a server at `addr` configured with `delay`, all cases at once,
/// and returns a report of every mismatch (empty when the server conforms).
pub async fn run(addr: SocketAddr, delay: Duration) -> String {
    let cases = table();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, case) in cases.iter().cloned().enumerate() {
        tasks.spawn(async move {
            let answer = send_with(addr, case.method.clone(), &case.path, &case.request_headers);
            (i, answer.await)
        });
    }
    let mut answers: Vec<_> = tasks.join_all().await;
    answers.sort_by_key(|(i, _)| *i);

    let mut report = String::new();
    for ((_, answer), case) in answers.iter().zip(&cases) {
        let wrong = match answer {
            Ok(answer) => check(case, answer, delay),
            Err(err) => vec![format!("no answer: {err}")],
        };
        if !wrong.is_empty() {
            let _ = writeln!(
                report,
                "{} {}: {}",
                case.method,
                case.path,
                wrong.join("; ")
            );
        }
    }
    report
}

/// The seed's lesson on any host: `count` clients, each on its own connection, ask
/// `/hello/{i}` all at once of a server that waits `delay` before each answer. Every one must
/// get its own greeting, and together they must take about one delay: at least `delay`, under
/// `limit`. Returns the wall time, from the moment the requests are released.
///
/// The connections are opened first, at most 50 connecting at a time, so the figure is the
/// overlap of the waits, not the host's listen backlog (`wasmtime serve` keeps 100; more
/// simultaneous connects are dropped and retried by TCP a second later).
pub async fn assert_overlap(
    addr: SocketAddr,
    count: usize,
    delay: Duration,
    limit: Duration,
) -> Duration {
    let connecting = Arc::new(tokio::sync::Semaphore::new(50));
    let release = Arc::new(tokio::sync::Barrier::new(count + 1));
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..count {
        let (connecting, release) = (Arc::clone(&connecting), Arc::clone(&release));
        requests.spawn(async move {
            let permit = connecting.acquire_owned().await.unwrap();
            let connected = connect(addr).await;
            drop(permit);
            release.wait().await;
            let answer = request(connected?, addr, Method::GET, &format!("/hello/{i}")).await?;
            Ok::<_, String>((i, answer, Instant::now()))
        });
    }
    release.wait().await;
    let started = Instant::now();
    let answers = requests.join_all().await;

    let mut last = started;
    for answer in &answers {
        let (i, answer, done) = answer.as_ref().expect("every request is answered");
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.text(), format!("<h1>hello, {i}!</h1>"));
        last = last.max(*done);
    }
    let elapsed = last - started;
    eprintln!("{count} overlapping requests with a {delay:?} delay took {elapsed:?}");
    assert!(elapsed >= delay, "took {elapsed:?}");
    assert!(elapsed < limit, "requests queued: took {elapsed:?}");
    elapsed
}
