//! The native server (tokio + hyper) in this process against the conformance table, over
//! HTTP/1.1 and HTTP/2, and its lifecycle: requests overlap, shutdown drains and gives up after
//! its grace period, the metrics count what was sent, slow and malformed clients are handled.

use std::time::{Duration, Instant};

use hello_edge::{Config, Delay};
use hello_edge_native::{ServerConfig, Shutdown};
use http::{Method, StatusCode};
use support::client::{self, Connection, HTTP2_EMPTY_SETTINGS, HTTP2_PREFACE, Protocol};
use support::conformance;
use support::host::Host;
use support::native::NativeServer;
use support::process::raise_open_file_limit;
use support::scenarios;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every case of the conformance table answers as a user expects over HTTP/1.1, with the
/// default 500 ms delay.
#[tokio::test]
async fn conforms_to_the_table_over_http1() {
    let server = NativeServer::start(ServerConfig::default()).await;
    let report = conformance::run_on(&server, Protocol::Http1, Delay::DEFAULT.as_duration()).await;
    assert!(report.is_empty(), "mismatches:\n{report}");
}

/// The same table over HTTP/2 (prior knowledge), each case on its own connection.
#[tokio::test]
async fn conforms_to_the_table_over_http2() {
    let server = NativeServer::start(ServerConfig::default()).await;
    let report = conformance::run_on(&server, Protocol::Http2, Delay::DEFAULT.as_duration()).await;
    assert!(report.is_empty(), "mismatches:\n{report}");
}

/// The seed's lesson: 1,000 requests that each wait 500 ms overlap, so together they take about
/// one delay, not 1,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_overlap() {
    raise_open_file_limit(4096);
    let server = NativeServer::start(ServerConfig::default()).await;

    scenarios::assert_overlap(
        server.addr(),
        1000,
        Delay::DEFAULT.as_duration(),
        Duration::from_secs(3),
    )
    .await;
}

/// Requests in flight when shutdown is signalled (mid-delay) all get their 200, a new
/// connection after the signal is refused, an idle keep-alive connection does not hold the
/// server up, and `run` returns having drained.
#[tokio::test]
async fn shutdown_drains_requests_in_flight() {
    let delay = Delay::from_millis(1000).unwrap();
    let mut server = NativeServer::start(ServerConfig {
        app: Config::with_delay(delay),
        ..ServerConfig::default()
    })
    .await;

    // An idle keep-alive connection: one answered request, then nothing.
    let mut idle = Connection::open(server.addr(), Protocol::Http1)
        .await
        .unwrap();
    let first = idle.send(Method::GET, "/hello/idle", &[]).await.unwrap();
    assert_eq!(first.status, StatusCode::OK);

    let started = Instant::now();
    let in_flight: Vec<_> = (0..20)
        .map(|i| {
            let addr = server.addr();
            tokio::spawn(async move { client::get(addr, &format!("/hello/{i}")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let refused = TcpStream::connect(server.addr()).await;
    assert!(
        refused.is_err(),
        "a new connection was accepted after shutdown"
    );

    for (i, request) in in_flight.into_iter().enumerate() {
        let answer = request.await.unwrap().expect("in-flight request answered");
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.text(), format!("<h1>hello, {i}!</h1>"));
    }
    let outcome = server.finished(Duration::from_secs(5)).await;
    assert_eq!(outcome, Shutdown::Drained);
    let delay = delay.as_duration();
    assert!(started.elapsed() >= delay);
    assert!(
        started.elapsed() < delay + Duration::from_secs(2),
        "the idle connection held shutdown up: {:?}",
        started.elapsed()
    );
    // The idle connection was closed by the server, not left open.
    idle.closed(Duration::from_secs(1))
        .await
        .expect("the idle connection closed");
}

/// A request still in flight when the grace period ends is cut off, and `run` says so.
#[tokio::test]
async fn shutdown_gives_up_after_the_grace_period() {
    let mut server = NativeServer::start(ServerConfig {
        app: Config::with_delay(Delay::from_millis(5000).unwrap()),
        grace: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr();
    let slow = tokio::spawn(async move { client::get(addr, "/").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown();

    let outcome = server.finished(Duration::from_secs(2)).await;
    assert_eq!(outcome, Shutdown::GraceExpired { aborted: 1 });
    assert!(
        slow.await.unwrap().is_err(),
        "the cut-off request got no answer"
    );
}

/// With a grace period of 0, shutdown cuts off a request in flight at once and says so, and an
/// idle keep-alive connection, which loses nothing, does not count as cut off.
#[tokio::test]
async fn shutdown_with_no_grace_cuts_off_at_once() {
    let no_grace = ServerConfig {
        app: Config::with_delay(Delay::from_millis(5000).unwrap()),
        grace: Duration::ZERO,
        ..ServerConfig::default()
    };

    // Only an idle keep-alive connection: nothing is cut off.
    let mut server = NativeServer::start(no_grace).await;
    let mut idle = Connection::open(server.addr(), Protocol::Http1)
        .await
        .unwrap();
    let answer = idle.send(Method::GET, "/healthz", &[]).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    server.shutdown();
    let outcome = server.finished(Duration::from_secs(2)).await;
    assert_eq!(outcome, Shutdown::Drained);

    // A request in flight: cut off at once, and counted.
    let mut server = NativeServer::start(no_grace).await;
    let addr = server.addr();
    let slow = tokio::spawn(async move { client::get(addr, "/hello/slow").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = Instant::now();
    server.shutdown();
    let outcome = server.finished(Duration::from_secs(2)).await;
    assert_eq!(outcome, Shutdown::GraceExpired { aborted: 1 });
    let cut = slow.await.unwrap();
    assert!(cut.is_err(), "the cut-off request got an answer: {cut:?}");
    // It is cut at once, not after the 1 s the server gives closed sockets to go.
    assert!(
        stopped.elapsed() < Duration::from_millis(500),
        "cut off {:?} after shutdown",
        stopped.elapsed()
    );
}

/// The admin listener's `/metrics` counts exactly what was sent: requests by route and status,
/// their latency, the connections open; and it answers its liveness route.
#[tokio::test]
async fn metrics_count_exactly_the_requests_sent() {
    let mut server = NativeServer::start_with_admin(ServerConfig {
        app: Config::with_delay(Delay::from_millis(20).unwrap()),
        ..ServerConfig::default()
    })
    .await;
    let admin = server.admin_addr().unwrap();
    let live = client::get(admin, hello_edge::HEALTH_PATH).await.unwrap();
    assert_eq!(
        (live.status, live.text().as_str()),
        (StatusCode::OK, "ok\n")
    );

    // A method a route does not answer: 405, saying which it does.
    for (method, path, allow) in [
        (Method::POST, "/healthz", "GET, HEAD"),
        (Method::DELETE, "/metrics", "GET"),
    ] {
        let answer = client::send(admin, Protocol::Http1, method.clone(), path, &[])
            .await
            .unwrap();
        assert_eq!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(answer.one("allow"), Some(allow), "{method} {path}");
    }

    let before = Scrape::take(admin).await;
    for path in [
        "/hello/a",
        "/hello/b",
        "/hello/c",
        "/nope",
        "/nope",
        "/hello/%ZZ",
    ] {
        client::get(server.addr(), path).await.unwrap();
    }
    client::send(server.addr(), Protocol::Http1, Method::POST, "/", &[])
        .await
        .unwrap();
    let after = Scrape::take(admin).await;

    let moved = |series: &str| after.value(series) - before.value(series);
    assert_eq!(
        moved(r#"hello_edge_requests_total{route="hello",status="200"}"#),
        3.0
    );
    assert_eq!(
        moved(r#"hello_edge_requests_total{route="none",status="404"}"#),
        2.0
    );
    assert_eq!(
        moved(r#"hello_edge_requests_total{route="hello",status="400"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"hello_edge_requests_total{route="index",status="405"}"#),
        1.0
    );
    assert_eq!(moved("hello_edge_request_duration_seconds_count"), 7.0);
    // The three greetings waited 20 ms each; the refusals did not wait.
    let waited = moved("hello_edge_request_duration_seconds_sum");
    assert!((0.06..1.0).contains(&waited), "{waited} s in all");
    assert!(
        after
            .0
            .lines()
            .any(|line| line == "hello_edge_requests_in_flight 0"),
        "{}",
        after.0
    );
    assert_eq!(after.get("hello_edge_requests_cut_off_total"), Some(0.0));
    assert_eq!(after.get("hello_edge_accept_errors_total"), Some(0.0));

    // A connection held open shows.
    let mut held = Connection::open(server.addr(), Protocol::Http1)
        .await
        .unwrap();
    held.send(Method::GET, "/healthz", &[]).await.unwrap();
    let open = Scrape::take(admin).await.get("hello_edge_connections_open");
    assert_eq!(open, Some(1.0));
    drop(held);
    server.shutdown();
}

/// The text of one `/metrics` scrape.
struct Scrape(String);

impl Scrape {
    async fn take(admin: std::net::SocketAddr) -> Scrape {
        let answer = client::get(admin, "/metrics").await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert!(
            answer
                .one("content-type")
                .is_some_and(|t| t.starts_with("application/openmetrics-text")),
            "{:?}",
            answer.headers
        );
        assert!(answer.text().ends_with("# EOF\n"), "{}", answer.text());
        Scrape(answer.text())
    }

    /// The value of one series (name and labels as written), if the scrape has it.
    fn get(&self, series: &str) -> Option<f64> {
        self.0
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|value| value.trim().parse().unwrap())
    }

    /// The value of one series, 0 when it is not there yet (a labelled series shows once it
    /// has counted something).
    fn value(&self, series: &str) -> f64 {
        self.get(series).unwrap_or(0.0)
    }
}

/// A client that connects and sends nothing, or sends half its headers, is disconnected after
/// the header timeout, and the server keeps serving.
#[tokio::test]
async fn slow_clients_are_disconnected() {
    let server = NativeServer::start(ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;

    for sent in [&b""[..], b"GET /hello/slow HTTP/1.1\r\nHost: x\r\n"] {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(sent).await.unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("server closes the connection after {sent:?}"));
        assert!(read.is_ok() || buf.is_empty());
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(250),
            "closed after {waited:?}"
        );
        assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    }

    let answer = client::get(server.addr(), "/hello/after").await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
}

/// Malformed requests get a 400 and the server stays up.
#[tokio::test]
async fn malformed_requests_get_400() {
    let server = NativeServer::start(ServerConfig::default()).await;
    let malformed: [&[u8]; 4] = [
        b"GARBAGE\r\n\r\n",
        b"GET /hello/<img src=x> HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /hello/x HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /hello/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    for request in malformed {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut buf))
            .await
            .expect("answered and closed")
            .unwrap();
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.starts_with("HTTP/1.1 400 Bad Request"),
            "{:?} got {text:?}",
            String::from_utf8_lossy(request)
        );
    }
    let answer = client::get(server.addr(), "/").await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
}

/// One keep-alive connection serves several requests in turn.
#[tokio::test]
async fn keep_alive_serves_requests_in_turn() {
    let server = NativeServer::start(ServerConfig {
        app: Config::with_delay(Delay::from_millis(0).unwrap()),
        ..ServerConfig::default()
    })
    .await;
    let mut connection = Connection::open(server.addr(), Protocol::Http1)
        .await
        .unwrap();
    for name in ["a", "b", "c"] {
        let path = format!("/hello/{name}");
        let answer = connection.send(Method::GET, &path, &[]).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.text(), format!("<h1>hello, {name}!</h1>"));
    }
}

/// A client that speaks HTTP/2 (prior knowledge) gets the same answers, multiplexed on one
/// connection: two delayed requests overlap.
#[tokio::test]
async fn http2_clients_are_served() {
    let server = NativeServer::start(ServerConfig::default()).await;
    let connection = Connection::open(server.addr(), Protocol::Http2)
        .await
        .unwrap();

    let started = Instant::now();
    let requests = ["/", "/hello/%E5%BC%A0%E4%B8%89"].map(|path| {
        let mut stream = connection.another_stream();
        async move {
            let answer = stream.send(Method::GET, path, &[]).await.unwrap();
            assert_eq!(answer.version, http::Version::HTTP_2);
            assert_eq!(answer.status, StatusCode::OK);
            answer.text()
        }
    });
    let [index, hello] = requests;
    let (index, hello) = tokio::join!(index, hello);
    assert_eq!(index, "<h1>Index</h1>");
    assert_eq!(hello, "<h1>hello, 张三!</h1>");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_millis(1000),
        "two multiplexed requests took {elapsed:?}"
    );
}

/// An HTTP/2 preface that arrives in two pieces is still recognised: the server answers with
/// its own SETTINGS frame, not an HTTP/1 400.
#[tokio::test]
async fn a_split_http2_preface_is_recognised() {
    let server = NativeServer::start(ServerConfig::default()).await;
    let preface = HTTP2_PREFACE;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(&preface[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.write_all(&preface[10..]).await.unwrap();
    stream.write_all(&HTTP2_EMPTY_SETTINGS).await.unwrap();

    let mut frame_header = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut frame_header))
        .await
        .expect("the server answers")
        .unwrap();
    assert_eq!(
        frame_header[3], 4,
        "first frame is SETTINGS: {frame_header:?}"
    );
}
