//! The native server under abuse, on loopback and bounded in time: many slow clients, HTTP/2
//! rapid reset, pipelining, heads past every limit, a connection cap, and running out of file
//! descriptors. Each test proves the server stays up and keeps serving well-behaved clients.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use hello_edge::{Config, Delay};
use hello_edge_native::ServerConfig;
use http::{Method, Request, StatusCode};
use support::client::{self, Connection, HTTP2_EMPTY_SETTINGS, HTTP2_PREFACE, Protocol};
use support::host::{Host, Served, Stopped};
use support::native::{NativeBinary, NativeServer};
use support::process::raise_open_file_limit;
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
    let log = server.stop().await.log;
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
        app: Config::with_delay(Delay::from_millis(50).unwrap()),
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

    // Over HTTP/2 the same head is h2's 431 on its stream, and the connection goes on.
    let mut h2 = http2_client(server.addr()).await;
    let huge = [("x-huge".to_owned(), "a".repeat(300 * 1024))];
    match h2.send(Method::GET, "/", &huge).await {
        Ok(answer) => assert_eq!(answer.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(err) => assert!(
            err.contains("REFUSED_STREAM") || err.contains("431"),
            "{err}"
        ),
    }
    let after = h2.send(Method::GET, "/hello/after", &[]).await.unwrap();
    assert_eq!(after.status, StatusCode::OK);
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

    let log = server.stop().await.log;
    assert_eq!(
        log.matches("connection cap reached").count(),
        1,
        "the cap is logged once:\n{log}"
    );
}

/// With a grace period of 0, SIGTERM cuts off every request in flight at once: 500 waiting
/// requests all see their connection closed without an answer, and the server exits 1 within a
/// moment, none of them left waiting for a step of the shutdown it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_no_grace_cuts_off_every_request_at_once() {
    raise_open_file_limit(2048);
    let mut server = binary(&["--shutdown-grace-secs", "0", "--delay-ms", "5000"], None).await;
    let addr = server.addr();
    let mut waiting = Vec::new();
    for i in 0..500 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET /hello/{i} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        waiting.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    let Stopped { status, log } = server.stop().await;
    let exited = signalled.elapsed();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("cut off 500 unfinished requests"), "{log}");
    // The old drain took about a second here when connections missed a step; this takes
    // milliseconds.
    assert!(
        exited < Duration::from_millis(800),
        "exited {exited:?} after SIGTERM"
    );
    for mut stream in waiting {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }
}

/// At the connection cap the app's port makes new clients wait, but the admin port, outside
/// the cap, answers liveness at once (a kubelet does not restart a pod for being full), and the
/// metrics show the time spent at the cap.
#[tokio::test]
async fn at_the_cap_liveness_still_answers_on_the_admin_port() {
    let mut server = binary(
        &["--max-connections", "2", "--admin-listen", "127.0.0.1:0"],
        None,
    )
    .await;
    let (addr, admin) = (server.addr(), NativeBinary::admin_addr(&mut server).await);
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut held = Connection::open(addr, Protocol::Http1).await.unwrap();
        held.send(Method::GET, "/healthz", &[]).await.unwrap();
        holders.push(held);
    }
    let waiting = tokio::spawn(async move { send(addr, "/healthz").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "served past the cap");

    let asked = Instant::now();
    let live = client::get(admin, "/healthz").await.unwrap();
    assert_eq!(
        (live.status, live.text().as_str()),
        (StatusCode::OK, "ok\n")
    );
    assert!(
        asked.elapsed() < Duration::from_millis(250),
        "{:?}",
        asked.elapsed()
    );
    let metrics = client::get(admin, "/metrics").await.unwrap().text();
    assert!(
        metrics
            .lines()
            .any(|line| line == "hello_edge_at_connection_cap 1"),
        "the cap shows while it binds:\n{metrics}"
    );

    drop(holders.pop());
    let (status, _) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a slot frees")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let metrics = client::get(admin, "/metrics").await.unwrap().text();
    let at_cap: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("hello_edge_connection_cap_wait_seconds_total "))
        .expect("the cap's time is a metric")
        .parse()
        .unwrap();
    assert!(at_cap >= 0.25, "{at_cap} s at the cap\n{metrics}");
    server.stop().await;
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

    let log = server.stop().await.log;
    assert!(log.contains("Too many open files"), "{log}");
    assert!(
        log.matches("accept failed").count() <= 2,
        "accept errors are logged once a minute, not per try:\n{log}"
    );
}

/// HTTP/2 clients that send the preface and an empty SETTINGS frame, then nothing, do not hold
/// the server: with a cap of 20 and a 2 s header timeout, 20 such clients are closed by the
/// timeout, and a well-behaved client asking meanwhile is answered within one delay plus the
/// timeout.
#[tokio::test]
async fn idle_http2_connections_do_not_lock_the_cap() {
    let timeout = Duration::from_secs(2);
    let mut server = binary(
        &["--max-connections", "20", "--header-timeout-secs", "2"],
        None,
    )
    .await;
    let addr = server.addr();
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(HTTP2_PREFACE).await.unwrap();
        stream.write_all(&HTTP2_EMPTY_SETTINGS).await.unwrap();
        idle.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let asked = Instant::now();
    let (status, body) = tokio::time::timeout(timeout * 5, send(addr, "/hello/patient"))
        .await
        .expect("a well-behaved client is answered while 20 idle HTTP/2 clients hold the cap");
    let waited = asked.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "<h1>hello, patient!</h1>");
    assert!(
        waited < Duration::from_millis(500) + timeout + Duration::from_secs(1),
        "waited {waited:?} behind 20 idle HTTP/2 connections"
    );

    // Each idle one was closed.
    for mut stream in idle {
        let ended = read_until_closed(&mut stream, timeout * 3).await;
        assert!(ended.is_some(), "an idle HTTP/2 connection was left open");
    }
    assert!(server.process().is_running());
    server.stop().await;
}

/// 500 clients that send the first three bytes of the HTTP/2 preface and stall cost the server
/// no CPU while it waits for the rest: detecting the protocol waits on the socket, it does not
/// poll. Measured from the server process's own CPU time, over the second the clients wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_partial_preface_costs_no_cpu() {
    raise_open_file_limit(2048);
    let mut server = binary(&["--header-timeout-secs", "10"], None).await;
    let addr = server.addr();
    let mut stalled = Vec::new();
    for _ in 0..500 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&HTTP2_PREFACE[..3]).await.unwrap();
        stalled.push(stream);
    }
    // Let the server take them all in.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.process().cpu_time();
    let window = Duration::from_secs(1);
    tokio::time::sleep(window).await;
    let used = server.process().cpu_time() - before;
    eprintln!("500 stalled partial prefaces: {used:?} of server CPU in {window:?}");
    // A clock tick is 10 ms; polling 500 sockets every 5 ms cost about 0.6 s a second.
    assert!(
        used <= Duration::from_millis(50),
        "the server used {used:?} of CPU in {window:?} on stalled clients"
    );
    assert_eq!(send(addr, "/hello/after").await.0, StatusCode::OK);
    drop(stalled);
    server.stop().await;
}

/// The first request head, protocol detection included, gets one header timeout in all: a
/// client that sends one byte just before the timeout and then the rest slowly is closed at
/// the timeout, not a timeout after its first byte.
#[tokio::test]
async fn detection_and_the_first_head_share_one_timeout() {
    let timeout = Duration::from_secs(2);
    let server = NativeServer::start(ServerConfig {
        header_read_timeout: timeout,
        ..ServerConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let connected = Instant::now();
    tokio::time::sleep(timeout - Duration::from_millis(500)).await;
    stream.write_all(b"G").await.unwrap();
    let mut rest = b"ET /hello/late HTTP/1.1\r\nHost: x\r\n".iter();
    let closed = loop {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break connected.elapsed(),
            Ok(Ok(_)) => panic!("answered a head that came too late"),
            Err(_) => {}
        }
        if let Some(byte) = rest.next() {
            let _ = stream.write_all(&[*byte]).await;
        }
        assert!(connected.elapsed() < timeout * 3, "never closed");
    };
    assert!(
        closed >= timeout - Duration::from_millis(100) && closed < timeout + Duration::from_secs(1),
        "closed {closed:?} after connecting, with a {timeout:?} header timeout"
    );
}

/// An HTTP/2 connection that has been served and then has no stream open for the header
/// timeout is ended with GOAWAY.
#[tokio::test]
async fn an_idle_http2_connection_is_ended_with_goaway() {
    let timeout = Duration::from_secs(1);
    let server = NativeServer::start(ServerConfig {
        header_read_timeout: timeout,
        app: Config::with_delay(Delay::from_millis(0).unwrap()),
        ..ServerConfig::default()
    })
    .await;
    let stream = TcpStream::connect(server.addr()).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = Request::get(format!("http://{}/hello/once", server.addr()))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), StatusCode::OK);
    let answered = Instant::now();

    let ended = tokio::time::timeout(timeout * 4, connection)
        .await
        .expect("the idle connection is ended")
        .unwrap();
    let after = answered.elapsed();
    assert!(
        after >= timeout - Duration::from_millis(100) && after < timeout * 3,
        "ended {after:?} after its last answer"
    );
    // GOAWAY with NO_ERROR ends the client's connection cleanly; a new stream is refused.
    assert!(ended.is_ok(), "{ended:?}");
    let refused = client.ready().await;
    assert!(
        refused.as_ref().is_err_and(|err| err.is_go_away()),
        "{refused:?}"
    );
}

/// A client that pipelines requests and never reads the answers does not hold its connection
/// (and its slot under the cap) for good: once the server's writes stall and the connection has
/// no request in flight for the header timeout, it gets one more timeout to finish, then is
/// closed. The metrics show the connection gone.
#[tokio::test]
async fn a_client_that_never_reads_is_closed() {
    let timeout = Duration::from_secs(1);
    let server = NativeServer::start_with_admin(ServerConfig {
        header_read_timeout: timeout,
        ..ServerConfig::default()
    })
    .await;
    let admin = server.admin_addr().unwrap();
    let stream = TcpStream::connect(server.addr()).await.unwrap();
    let (_reader, mut writer) = stream.into_split();
    // Far more answers than the sockets' buffers hold: the server's writes stall.
    let flood = tokio::spawn(async move {
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
        for _ in 0..100 {
            if writer.write_all(&request).await.is_err() {
                break;
            }
        }
        writer
    });
    let open = || async {
        let metrics = client::get(admin, "/metrics").await.unwrap().text();
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("hello_edge_connections_open "))
            .map(|value| value.trim().parse::<f64>().unwrap())
            .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(open().await, 1.0, "the flooding connection is open");
    let started = Instant::now();
    while open().await > 0.0 {
        assert!(
            started.elapsed() < timeout * 5,
            "a connection whose answers are never read is still open after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the never-reading client was closed {:?} in",
        started.elapsed()
    );
    drop(flood);
}

/// Reads and drops whatever the server sends until it closes the connection; when, or `None`
/// after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Instant> {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// The `hello-edge` binary with these flags, under an open-file limit when given, logging why
/// each connection ended (`hello_edge_native::server` at debug).
async fn binary(flags: &[&str], open_files: Option<u32>) -> Served {
    let binary = Path::new(env!("CARGO_BIN_EXE_hello-edge"));
    NativeBinary::start_logging_connections(binary, flags, open_files).await
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
