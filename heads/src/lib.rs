//! The `hello-edge-heads` client: fetch the response heads of many URLs at once, the seed's
//! client done on one event loop. A program of its own, apart from the server, so that the
//! server (and the image that ships it) carries no client, TLS or JSON code.
//!
//! Every URL is requested concurrently on one runtime (up to a cap), each under its own
//! timeout, so the whole run takes about as long as the slowest URL rather than the sum of them
//! all. Each result is handed over as soon as it completes; a failed URL (DNS, refused, timeout,
//! TLS) is one result among the others, never the end of the run.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How the URLs are fetched.
#[derive(Debug, Clone)]
pub struct Options {
    /// `GET` (the body is not read) or `HEAD`.
    pub method: Method,
    /// The longest one URL may take, from connecting to the end of its response head.
    pub timeout: Duration,
    /// How many URLs are fetched at once, at most.
    pub concurrency: usize,
}

/// The response head of one URL, or why there is none.
#[derive(Debug, Clone, Serialize)]
pub struct Head {
    /// The URL as given.
    pub url: String,
    /// The status code, when a response came.
    pub status: Option<u16>,
    /// The status line: `HTTP/1.1 200 OK`.
    pub status_line: Option<String>,
    /// The response headers in the order they came, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Milliseconds from the start of this request to its response head (or its failure).
    pub elapsed_ms: f64,
    /// A one-line reason when the URL failed: DNS, refused, timeout, TLS, ...
    pub error: Option<String>,
}

impl Head {
    /// The seed's output: each line of the head, prefixed by the host (and port, if given).
    pub fn to_text(&self) -> String {
        let host = self
            .url
            .parse::<Uri>()
            .ok()
            .and_then(|uri| uri.authority().map(|a| a.to_string()))
            .unwrap_or_else(|| self.url.clone());
        let mut text = String::new();
        if let Some(error) = &self.error {
            let _ = writeln!(text, "{host} error > {error}");
        }
        if let Some(line) = &self.status_line {
            let _ = writeln!(text, "{host} header > {line}");
        }
        for (name, value) in &self.headers {
            let _ = writeln!(text, "{host} header > {name}: {value}");
        }
        text
    }

    /// One JSON object, on one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Head always serialises")
    }
}

/// The totals of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// URLs that got a response head.
    pub succeeded: usize,
    /// URLs that did not.
    pub failed: usize,
    /// The wall time of the whole run.
    pub wall: Duration,
    /// The individual times added up: what a client fetching one URL at a time would wait.
    pub sum: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} succeeded in {} ms; one at a time they would have taken {} ms",
            self.succeeded,
            self.succeeded + self.failed,
            self.wall.as_millis(),
            self.sum.as_millis()
        )
    }
}

/// Fetches every URL's head concurrently and hands each [`Head`] to `each` as it completes.
pub async fn fetch_all(urls: Vec<Uri>, options: &Options, mut each: impl FnMut(&Head)) -> Summary {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));

    let started = Instant::now();
    let mut requests = JoinSet::new();
    for url in urls {
        let client = client.clone();
        let permits = Arc::clone(&permits);
        let options = options.clone();
        requests.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore stays open");
            fetch(&client, url, &options).await
        });
    }

    let mut summary = Summary {
        succeeded: 0,
        failed: 0,
        wall: Duration::ZERO,
        sum: Duration::ZERO,
    };
    while let Some(head) = requests.join_next().await {
        let head = head.expect("a fetch does not panic");
        if head.error.is_none() {
            summary.succeeded += 1;
        } else {
            summary.failed += 1;
        }
        summary.sum += Duration::from_secs_f64(head.elapsed_ms / 1000.0);
        each(&head);
    }
    summary.wall = started.elapsed();
    summary
}

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

async fn fetch(client: &HttpsClient, url: Uri, options: &Options) -> Head {
    let started = Instant::now();
    let request = Request::builder()
        .method(options.method.clone())
        .uri(url.clone())
        .header(
            http::header::USER_AGENT,
            concat!("hello-edge/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::new());
    let result = match request {
        Ok(request) => tokio::time::timeout(options.timeout, client.request(request))
            .await
            .map_err(|_| {
                format!(
                    "timed out after {}",
                    humantime::format_duration(options.timeout)
                )
            })
            .and_then(|response| response.map_err(|err| describe(&err))),
        Err(err) => Err(format!("invalid request: {err}")),
    };
    // The body is not read: dropping the response closes its connection.
    let elapsed_ms = (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;

    let mut head = Head {
        url: url.to_string(),
        status: None,
        status_line: None,
        headers: Vec::new(),
        elapsed_ms,
        error: None,
    };
    match result {
        Ok(response) => {
            let status = response.status();
            let reason = response
                .extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .map(|reason| String::from_utf8_lossy(reason.as_bytes()).into_owned())
                .or_else(|| status.canonical_reason().map(str::to_owned))
                .unwrap_or_default();
            let version = match response.version() {
                http::Version::HTTP_2 => "HTTP/2".to_owned(),
                version => format!("{version:?}"),
            };
            head.status = Some(status.as_u16());
            head.status_line = Some(
                format!("{version} {} {reason}", status.as_str())
                    .trim_end()
                    .to_owned(),
            );
            head.headers = response
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect();
        }
        Err(error) => head.error = Some(error),
    }
    head
}

/// One line saying why a request failed, naming the kind first: DNS, refused, TLS, ...
fn describe(err: &hyper_util::client::legacy::Error) -> String {
    let mut dns = false;
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return format!("TLS: {tls}");
        }
        if let Some(io) = error.downcast_ref::<io::Error>() {
            if dns {
                return format!("DNS: {io}");
            }
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return "connection refused".to_owned(),
                io::ErrorKind::ConnectionReset => return "connection reset".to_owned(),
                _ => {}
            }
        }
        // hyper-util names a failed lookup "dns error" and keeps the resolver's error as the cause.
        dns |= error.to_string() == "dns error";
        current = cause(error);
    }
    // No better name: the whole chain, outermost first.
    let mut chain = err.to_string();
    let mut current = cause(err);
    while let Some(error) = current {
        chain.push_str(": ");
        chain.push_str(&error.to_string());
        current = cause(error);
    }
    chain
}

/// The next error down the chain. An `io::Error` wrapping another error reports that error's
/// source as its own, skipping the wrapped error itself (where TLS errors live), so step into it.
fn cause<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match error
        .downcast_ref::<io::Error>()
        .and_then(io::Error::get_ref)
    {
        Some(inner) => Some(inner),
        None => error.source(),
    }
}
