//! What every host is asked beyond the table's single requests ([`crate::conformance`]): the
//! seed's lesson, many requests overlapping ([`assert_overlap`]); the delay it is configured
//! with, waited once ([`assert_waits_the_configured_delay`]); clients that leave before their
//! answer ([`leave_early`]); and clients still arriving when the host is stopped
//! ([`arrive_through_a_stop`], with what a stop must keep: [`unanswered`]).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::client::{self, Answer, Connection, Protocol};
use crate::conformance::{LATE, Report, SETTLE};
use crate::host::{Host, guest_failures};

/// A delay to configure a host with, to check it waits the one it is given, once: three times
/// the default, so an answer after the default is too early; and longer than the slack for one
/// request on its own (1 s), so an answer after twice the delay is too late.
pub const CONFIGURED_DELAY: Duration = Duration::from_millis(1500);

/// Slack above [`CONFIGURED_DELAY`] for one request on its own.
const LATE_ALONE: Duration = Duration::from_secs(1);

/// Asks a host configured with [`CONFIGURED_DELAY`] for `/hello/patient`: its greeting, after
/// that delay and within a second more.
pub async fn assert_waits_the_configured_delay(addr: SocketAddr, label: &str) {
    let (delay, by) = (CONFIGURED_DELAY, CONFIGURED_DELAY + LATE_ALONE);
    let answer = tokio::time::timeout(by + LATE, client::get(addr, "/hello/patient"))
        .await
        .unwrap_or_else(|_| panic!("on {label}, no answer within {:?}", by + LATE))
        .unwrap_or_else(|err| panic!("on {label}: {err}"));
    assert_eq!(answer.status, StatusCode::OK, "on {label}");
    assert_eq!(answer.text(), "<h1>hello, patient!</h1>", "on {label}");
    let elapsed = answer.elapsed;
    assert!(
        elapsed >= delay && elapsed < by,
        "on {label}, took {elapsed:?} with a {delay:?} delay; want {delay:?} to {by:?}"
    );
}

/// `count` clients ask `GET /hello/early{i}` of a host that waits `delay`, and leave (close
/// the connection) before the answer. The host's log must stay free of guest failures, and the
/// next client must be served as usual.
pub async fn leave_early(host: &dyn Host, count: usize, delay: Duration) -> Report {
    let log = host.log();
    let mark = log.mark();
    let mut report = Report::default();
    let mut clients = Vec::new();
    for i in 0..count {
        match TcpStream::connect(host.addr()).await {
            Ok(mut stream) => {
                let request = format!(
                    "GET /hello/early{i} HTTP/1.1\r\nhost: {}\r\n\r\n",
                    host.addr()
                );
                if let Err(err) = stream.write_all(request.as_bytes()).await {
                    report.push(format!("client {i} could not send: {err}"));
                }
                clients.push(stream);
            }
            Err(err) => report.push(format!("client {i} could not connect: {err}")),
        }
    }
    // Long enough for every request to have reached its guest, well before its answer.
    tokio::time::sleep(delay / 2).await;
    drop(clients);
    // Their answers were due a delay after they asked; give the guests that long and more.
    tokio::time::sleep(delay + SETTLE).await;
    let since = log.since(mark);
    let failures = guest_failures(&since);
    if !failures.is_empty() {
        report.push(format!(
            "{count} clients that left GET /hello/early{{i}} before the answer made the host log \
             {} guest failures, the first: {}\n{}'s log:\n{since}",
            failures.len(),
            failures[0],
            host.label()
        ));
    }
    match client::get(host.addr(), "/hello/next").await {
        Ok(answer)
            if answer.status == StatusCode::OK && answer.text() == "<h1>hello, next!</h1>" => {}
        Ok(answer) => report.push(format!(
            "the next client got {} {:?}",
            answer.status,
            answer.text()
        )),
        Err(err) => report.push(format!("the next client got no answer: {err}")),
    }
    report
}

/// `count` clients, each on its own HTTP/1.1 connection, ask `/hello/{i}` all at once. The
/// connections are opened first, at most 50 connecting at a time, so what is measured is the
/// overlap of the waits, not the host's listen backlog (`wasmtime serve` keeps 100; more
/// simultaneous connects are dropped and retried by TCP a second later). Returns when the
/// requests were released, and each one's answer with when it ended.
async fn at_once(
    addr: SocketAddr,
    count: usize,
) -> (Instant, Vec<Result<(usize, Answer, Instant), String>>) {
    let connecting = Arc::new(tokio::sync::Semaphore::new(50));
    let release = Arc::new(tokio::sync::Barrier::new(count + 1));
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..count {
        let (connecting, release) = (Arc::clone(&connecting), Arc::clone(&release));
        requests.spawn(async move {
            let permit = connecting.acquire_owned().await.unwrap();
            let connected = Connection::open(addr, Protocol::Http1).await;
            drop(permit);
            release.wait().await;
            let answer = connected?
                .send(Method::GET, &format!("/hello/{i}"), &[])
                .await?;
            Ok::<_, String>((i, answer, Instant::now()))
        });
    }
    release.wait().await;
    let started = Instant::now();
    (started, requests.join_all().await)
}

/// The status of each of `count` requests sent at once ([`at_once`]), `None` for no answer.
pub async fn statuses_at_once(addr: SocketAddr, count: usize) -> Vec<Option<StatusCode>> {
    let (_, answers) = at_once(addr, count).await;
    answers
        .into_iter()
        .map(|answer| answer.ok().map(|(_, answer, _)| answer.status))
        .collect()
}

/// The seed's lesson on any host: `count` clients ask `/hello/{i}` all at once ([`at_once`]) of
/// a server that waits `delay` before each answer. Every one must get its own greeting, and
/// together they must take about one delay: at least `delay`, under `limit`. Returns the wall
/// time, from the moment the requests are released.
pub async fn assert_overlap(
    addr: SocketAddr,
    count: usize,
    delay: Duration,
    limit: Duration,
) -> Duration {
    let (started, answers) = at_once(addr, count).await;
    let mut last = started;
    let mut failed = Vec::new();
    for answer in &answers {
        match answer {
            Ok((i, answer, done)) => {
                if answer.status != StatusCode::OK
                    || answer.text() != format!("<h1>hello, {i}!</h1>")
                {
                    failed.push(format!("/hello/{i}: {} {:?}", answer.status, answer.text()));
                }
                last = last.max(*done);
            }
            Err(err) => failed.push(err.clone()),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {count} requests were not answered with their greeting, the first: {}",
        failed.len(),
        failed[0]
    );
    let elapsed = last - started;
    eprintln!("{count} overlapping requests with a {delay:?} delay took {elapsed:?}");
    assert!(elapsed >= delay, "took {elapsed:?}");
    assert!(elapsed < limit, "requests queued: took {elapsed:?}");
    elapsed
}

/// What one client saw of a server that was stopped while clients were still arriving.
#[derive(Debug)]
pub struct Arrival {
    /// Which client: it asked for `/hello/c{i}`.
    pub i: usize,
    /// Its local port, once connected; `None` when the connection was refused.
    pub port: Option<u16>,
    /// Everything the server sent until it closed the connection, or why reading failed.
    pub answer: Result<Vec<u8>, String>,
}

impl Arrival {
    /// Whether the client got its greeting, whole, with `connection: close`.
    pub fn answered(&self) -> bool {
        let Ok(bytes) = &self.answer else {
            return false;
        };
        let text = String::from_utf8_lossy(bytes);
        text.starts_with("HTTP/1.1 200 OK\r\n")
            && text.contains("\r\nconnection: close\r\n")
            && text.ends_with(&format!("\r\n\r\n<h1>hello, c{}!</h1>", self.i))
    }
}

/// How clients arrive at a server that is stopped meanwhile ([`arrive_through_a_stop`]).
#[derive(Debug, Clone, Copy)]
pub struct Arrivals {
    /// How many clients.
    pub count: usize,
    /// One sets out every `pace`.
    pub pace: Duration,
    /// Each sends its request this long after it has connected.
    pub send_after: Duration,
    /// The stop comes this long after the first one set out.
    pub stop_after: Duration,
}

impl Arrivals {
    /// A stop as it comes in a rollout, and as the lost requests were first seen: 300 clients
    /// arriving over 0.6 s, SIGTERM 200 ms in, when some have connected and not yet sent, some
    /// are sending, and the later ones find the listener closed.
    pub const WHILE_CLIENTS_ARRIVE: Arrivals = Arrivals {
        count: 300,
        pace: Duration::from_millis(2),
        send_after: Duration::from_millis(30),
        stop_after: Duration::from_millis(200),
    };
}

/// Clients arrive at `addr` as `arrivals` says, each sending `GET /hello/c{i}` over HTTP/1.1
/// and reading until the server closes; `stop` runs when `arrivals` says. Returns what each
/// saw, once all are done.
pub async fn arrive_through_a_stop(
    addr: SocketAddr,
    arrivals: Arrivals,
    stop: impl Future<Output = ()>,
) -> Vec<Arrival> {
    use tokio::io::AsyncReadExt;
    let Arrivals {
        count,
        pace,
        send_after,
        stop_after,
    } = arrivals;
    let started = tokio::time::Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..count {
        clients.spawn(async move {
            tokio::time::sleep_until(started + pace * i as u32).await;
            let mut stream = match TcpStream::connect(addr).await {
                Ok(stream) => stream,
                Err(err) => {
                    let answer = Err(format!("connect: {err}"));
                    return Arrival {
                        i,
                        port: None,
                        answer,
                    };
                }
            };
            let port = stream.local_addr().ok().map(|local| local.port());
            tokio::time::sleep(send_after).await;
            let request = format!("GET /hello/c{i} HTTP/1.1\r\nhost: {addr}\r\n\r\n");
            let mut bytes = Vec::new();
            let answer = match stream.write_all(request.as_bytes()).await {
                Err(err) => Err(format!("send: {err}")),
                Ok(()) => {
                    let read = stream.read_to_end(&mut bytes);
                    match tokio::time::timeout(Duration::from_secs(20), read).await {
                        Ok(Ok(_)) => Ok(bytes),
                        Ok(Err(err)) => Err(format!("read: {err} after {} bytes", bytes.len())),
                        Err(_) => Err("no end within 20 s".to_owned()),
                    }
                }
            };
            Arrival { i, port, answer }
        });
    }
    tokio::time::sleep_until(started + stop_after).await;
    stop.await;
    let mut arrivals = clients.join_all().await;
    arrivals.sort_by_key(|arrival| arrival.i);
    arrivals
}

/// What went wrong for clients that arrived while a server stopped (see
/// [`arrive_through_a_stop`]): every connection the server accepted must have its answer, and
/// every client that connected must have been accepted, but for `unaccepted_allowed`: the kernel
/// completes handshakes until the listener closes, and one landing in the moment between the
/// server's last accept and the close is reset. Empty when all is well.
pub fn unanswered(
    arrivals: &[Arrival],
    accepted: &BTreeSet<u16>,
    unaccepted_allowed: usize,
) -> Report {
    let mut report = Report::default();
    let mut unaccepted = Vec::new();
    for arrival in arrivals {
        let Some(port) = arrival.port else { continue };
        if arrival.answered() {
            continue;
        }
        let saw = match &arrival.answer {
            Ok(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
            Err(err) => err.clone(),
        };
        if accepted.contains(&port) {
            report.push(format!(
                "client c{} was accepted but not answered: {saw}",
                arrival.i
            ));
        } else {
            unaccepted.push(format!("c{} ({saw})", arrival.i));
        }
    }
    if unaccepted.len() > unaccepted_allowed {
        report.push(format!(
            "{} clients connected but were never accepted: {}",
            unaccepted.len(),
            unaccepted.join(", ")
        ));
    }
    report
}
