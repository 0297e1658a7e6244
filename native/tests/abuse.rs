//! The native server under abuse, on loopback and bounded in time: many slow clients, HTTP/2
//! rapid reset, pipelining, heads past every limit, a connection cap, and running out of file
//! descriptors. Each test proves the server stays up and keeps serving well-behaved clients.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use hello_edge::{Config, Delay};
use hello_edge_native::ServerConfig;
use http::{Method, Request, StatusCode};
use support::client::{self, Connection, Protocol};
use support::host::{Host, NativeBinary, NativeServer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// 1,000 clients that send their headers one byte a second do not keep a well-behaved client
/// from its answer, which comes in about one delay; the slow ones are cut off at the header
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_do_not_lock_others_out() {
    raise_open_file_limit(4096);
    let timeout = Duration::from_secs(2);
    let server = NativeServer::start(ServerConfig {
        header_read_timeout: timeout,
        ..ServerConfig::default()
    })
    .await;

    let started = Instant::now();
    let slow: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(dribble(server.addr())))
        .collect();
    // Let them all connect and start dribbling.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let asked = Instant::now();
    let answer = send(server.addr(), "/hello/patient").await;
    let waited = asked.elapsed();
    assert_eq!(answer.0, StatusCode::OK);
    assert_eq!(answer.1, "<h1>hello, patient!</h1>");
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_millis(1500),
        "a well-behaved client waited {waited:?} beside 1,000 slow ones"
    );

    // Every slow client is cut off, at the header timeout, not before.
    let mut cut_at = Vec::new();
    for client in slow {
        let (sent, ended) = tokio::time::timeout(Duration::from_secs(10), client)
            .await
            .expect("a slow client is cut off within 10 s")
            .unwrap();
        assert!(sent >= 1, "the client sent nothing");
        cut_at.push(ended - started);
    }
    let first = cut_at.iter().min().unwrap();
    let last = cut_at.iter().max().unwrap();
    eprintln!("1,000 slow clients cut off between {first:?} and {last:?}");
    assert!(*first >= timeout - Duration::from_millis(200), "{first:?}");
    assert!(*last < timeout * 3, "{last:?}");
}

/// Sends a request head one byte a second until the server closes the connection; returns how
/// many bytes went out and when the connection ended.
async fn dribble(addr: SocketAddr) -> (usize, Instant) {
    let head = b"GET /hello/slow HTTP/1.1\r\nHost: x\r\nX-Slow: 1234567890123456789\r\n\r\n";
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut sent = 0;
    let mut buf = [0u8; 256];
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        sent += 1;
        // A read that ends (EOF or reset) within the second means the server closed.
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => panic!("a slow client got an answer"),
            Err(_) => {}
        }
    }
    (sent, Instant::now())
}

/// An HTTP/2 client that opens streams and resets them in a burst (rapid reset) is cut off by
/// the server's stream limits (`hello_edge_native::server::H2_*`) with GOAWAY; the server stays
/// up and another HTTP/2 client is served.
#[tokio::test]
async fn http2_rapid_reset_leaves_the_server_serving() {
    let mut server = binary(&[], None).await;

    let stream = TcpStream::connect(server.addr()).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut opened = 0;
    let burst = async {
        for i in 0..10_000 {
            let request = Request::get(format!("http://{}/hello/{i}", server.addr()))
                .body(())
                .unwrap();
            match client.send_request(request, true) {
                Ok((_response, mut stream)) => {
                    stream.send_reset(h2::Reason::CANCEL);
                    opened += 1;
                }
                Err(_) => break,
            }
            // Let the connection task write the frames and read what the server says.
            tokio::task::yield_now().await;
            match client.clone().ready().await {
                Ok(ready) => client = ready,
                Err(_) => break,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), burst)
        .await
        .expect("the burst ends");
    // The server ends the abusive connection long before the burst is done.
    let ended = tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("the abusive connection is closed")
        .unwrap();
    eprintln!(
        "rapid reset: {opened} streams opened and reset before the connection ended: {ended:?}"
    );
    assert!(opened < 10_000, "the server took all 10,000 resets");
    // The client sees the GOAWAY, or, when the server closed while it was still writing, a
    // broken pipe; the server's log says which limit ended it.
    let ended = ended.expect_err("the server ended the connection");
    assert!(ended.is_go_away() || ended.is_io(), "{ended:?}");

    // Another client, on HTTP/2, is served as usual.
    let mut sender = http2_client(server.addr()).await;
    let started = Instant::now();
    let answer = sender.send(Method::GET, "/hello/after", &[]).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "<h1>hello, after!</h1>");
    assert!(started.elapsed() < Duration::from_millis(1500));

    assert!(server.process().is_running());
    let (_, log) = server.stop().await;
    // h2's limit on streams reset before they were accepted (20) ended it.
    assert!(
        log.contains("GoAway(") && log.contains("ENHANCE_YOUR_CALM"),
        "{log}"
    );
}

/// Pipelined HTTP/1.1 requests, written in one go on one connection, are answered in order.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = NativeServer::start(ServerConfig {
        app: Config::with_delay(Delay::from_millis_str("50").unwrap()),
        ..ServerConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let names = ["first", "second", "third", "fourth"];
    let mut pipeline = String::new();
    for name in names {
        pipeline.push_str(&format!("GET /hello/{name} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    pipeline.push_str("HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(pipeline.as_bytes()).await.unwrap();

    let mut answers = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answers))
        .await
        .expect("all answered, then closed")
        .unwrap();
    let statuses = answers.matches("HTTP/1.1 200 OK").count();
    assert_eq!(statuses, 5, "{answers}");
    let mut from = 0;
    for name in names {
        let page = format!("<h1>hello, {name}!</h1>");
        let at = answers[from..]
            .find(&page)
            .unwrap_or_else(|| panic!("{page} missing or out of order in {answers}"));
        from += at + page.len();
    }
    // The HEAD answer comes last, with the length and no body.
    assert!(answers[from..].contains("content-length: 14"), "{answers}");
    assert!(!answers[from..].contains("<h1>Index</h1>"), "{answers}");
}

/// A head too large to hold (over 256 KiB) is refused by the server itself, 431, and the
/// connection closed; one over the core's limits but under that gets the core's 431 page.
#[tokio::test]
async fn huge_heads_are_refused_before_they_are_held() {
    let server = NativeServer::start(ServerConfig::default()).await;

    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(300 * 1024)
    );
    // The server may close before it has read all of it.
    let _ = stream.write_all(huge.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{answer:?}"
    );

    let big = [("x-big".to_owned(), "a".repeat(200 * 1024))];
    let (status, body) = send_with(server.addr(), "/", &big).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(
        body.contains("a header field larger than 8192 bytes"),
        "{body}"
    );
    assert_eq!(send(server.addr(), "/hello/after").await.0, StatusCode::OK);
}

/// Over HTTP/2, where hyper's HTTP/1 count of 100 fields does not apply, the core's own count
/// does: 120 small fields get its 431.
#[tokio::test]
async fn http2_requests_with_too_many_fields_get_the_core_431() {
    let server = NativeServer::start(ServerConfig::default()).await;
    let mut sender = http2_client(server.addr()).await;
    let fields: Vec<_> = (0..120)
        .map(|i| (format!("x-field-{i}"), "1".to_owned()))
        .collect();
    let answer = sender.send(Method::GET, "/", &fields).await.unwrap();
    assert_eq!(answer.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(
        answer.text().contains("more than 100 header fields"),
        "{}",
        answer.text()
    );
}

/// With `--max-connections 2`, two open connections fill the server: a third client connects
/// (the kernel's backlog takes it) but is served only once one of the two closes, and then at
/// once. The cap is logged once, not once per waiting client.
#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_their_turn() {
    let mut server = binary(&["--max-connections", "2", "--delay-ms", "300"], None).await;
    let addr = server.addr();

    // Two clients hold the only two slots, idle after one answer each.
    let mut holders = Vec::new();
    for i in 0..2 {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(format!("GET /hello/{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut reader = BufReader::new(conn);
        let mut status = String::new();
        reader.read_line(&mut status).await.unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        holders.push(reader);
    }

    // Five more clients ask now; none can be served while both slots are held.
    let asked = Instant::now();
    let waiting: Vec<_> = (0..5)
        .map(|i| tokio::spawn(async move { send(addr, &format!("/hello/queued{i}")).await }))
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        waiting.iter().all(|task| !task.is_finished()),
        "a client was served past the cap"
    );

    // One holder leaves: the queued clients go through its slot, one after another.
    drop(holders.pop());
    for (i, task) in waiting.into_iter().enumerate() {
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("a queued client is served once a slot frees")
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, format!("<h1>hello, queued{i}!</h1>"));
    }
    let waited = asked.elapsed();
    assert!(waited >= Duration::from_millis(800) + Duration::from_millis(300));
    assert!(waited < Duration::from_secs(8), "{waited:?}");

    let (_, log) = server.stop().await;
    assert_eq!(
        log.matches("connection cap reached").count(),
        1,
        "the cap is logged once:\n{log}"
    );
}

/// With only 32 file descriptors, clients past what the server can open wait; the server logs
/// the failed accepts (once), stays up, and serves them all once descriptors free up.
#[tokio::test]
async fn running_out_of_descriptors_is_survived() {
    let mut server = binary(&["--header-timeout-secs", "30"], Some(32)).await;
    let addr = server.addr();

    // More idle connections than the server has descriptors.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let patient = tokio::spawn(async move { send(addr, "/hello/patient").await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !patient.is_finished(),
        "served with no descriptor to spare?"
    );
    assert!(
        server.process().is_running(),
        "the server died out of descriptors"
    );

    drop(idle);
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), patient)
        .await
        .expect("served once descriptors are free")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "<h1>hello, patient!</h1>");
    assert_eq!(send(addr, "/").await.0, StatusCode::OK);

    let (_, log) = server.stop().await;
    assert!(log.contains("Too many open files"), "{log}");
    assert!(
        log.matches("accept failed").count() <= 2,
        "accept errors are logged once a minute, not per try:\n{log}"
    );
}

/// The `hello-edge` binary with these flags, under an open-file limit when given, logging why
/// each connection ended (`hello_edge_native::server` at debug).
async fn binary(flags: &[&str], open_files: Option<u32>) -> NativeBinary {
    let env = [
        ("RUST_LOG", "hello_edge_native::server=debug"),
        ("NO_COLOR", "1"),
    ];
    NativeBinary::start_with(
        Path::new(env!("CARGO_BIN_EXE_hello-edge")),
        flags,
        &env,
        open_files,
    )
    .await
}

/// An HTTP/2 connection (prior knowledge) to the server.
async fn http2_client(addr: SocketAddr) -> Connection {
    Connection::open(addr, Protocol::Http2).await.unwrap()
}

/// GET `path` on a new HTTP/1.1 connection: the status and the body.
async fn send(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    send_with(addr, path, &[]).await
}

async fn send_with(
    addr: SocketAddr,
    path: &str,
    fields: &[(String, String)],
) -> (StatusCode, String) {
    let answer = client::send(addr, Protocol::Http1, Method::GET, path, fields)
        .await
        .expect("answered");
    (answer.status, answer.text())
}

/// Client and server share this process: each connection is two descriptors.
fn raise_open_file_limit(want: u64) {
    let got = rlimit::increase_nofile_limit(want).expect("raise the open-file limit");
    assert!(got >= want, "open-file limit is {got}, need {want}");
}
