//! The clients the tests speak through: one for HTTP/1.1 and one for HTTP/2 (prior knowledge),
//! both on hyper over a real TCP connection, and the [`Answer`] they read back whole.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// The protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1, with a `host` header.
    Http1,
    /// HTTP/2 with prior knowledge (RFC 9113 §3.3), the authority in `:authority`.
    Http2,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Http1 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2",
        })
    }
}

/// An answer as it came back: the status, every header field (repeated ones too), the whole
/// body, and how long it took.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The protocol version the server answered in.
    pub version: Version,
    /// Every header field, as many times as each was sent.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// From sending (or, for [`send`], from connecting) to the end of the body.
    pub elapsed: Duration,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// How many times the header `name` appears.
    pub fn count(&self, name: &str) -> usize {
        self.headers.get_all(name).iter().count()
    }

    /// The value of the header `name`, if it appears exactly once and is text.
    pub fn one(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().ok(),
            _ => None,
        }
    }
}

/// An open connection, HTTP/1.1 or HTTP/2, that sends requests and reads their answers.
pub struct Connection {
    addr: SocketAddr,
    sender: Sender,
    /// hyper's task for the connection, which ends when the connection does; only the first
    /// handle on a connection holds it.
    task: Option<tokio::task::JoinHandle<Result<(), hyper::Error>>>,
}

/// The sending half of a [`Connection`].
enum Sender {
    /// HTTP/1.1: one request at a time.
    Http1(http1::SendRequest<Empty<Bytes>>),
    /// HTTP/2: requests multiplexed.
    Http2(http2::SendRequest<Empty<Bytes>>),
}

/// The HTTP/2 connection preface a client opens with (RFC 9113 §3.4), for tests that speak
/// HTTP/2 by hand.
pub const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An empty HTTP/2 SETTINGS frame: length 0, type 0x4, no flags, stream 0; what a client sends
/// after the preface.
pub const HTTP2_EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

impl Connection {
    /// Connects to `addr` and completes the protocol's handshake.
    pub async fn open(addr: SocketAddr, protocol: Protocol) -> Result<Connection, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let io = TokioIo::new(stream);
        let (sender, task) = match protocol {
            Protocol::Http1 => {
                let (sender, conn) = http1::handshake(io)
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
                (Sender::Http1(sender), tokio::spawn(conn))
            }
            Protocol::Http2 => {
                let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
                (Sender::Http2(sender), tokio::spawn(conn))
            }
        };
        Ok(Connection {
            addr,
            sender,
            task: Some(task),
        })
    }

    /// Another handle on the same HTTP/2 connection, for a request beside this one's, which
    /// HTTP/2 multiplexes. (An HTTP/1.1 connection sends one request at a time: no such handle.)
    pub fn another_stream(&self) -> Connection {
        let Sender::Http2(sender) = &self.sender else {
            panic!("an HTTP/1.1 connection sends one request at a time");
        };
        Connection {
            addr: self.addr,
            sender: Sender::Http2(sender.clone()),
            task: None,
        }
    }

    /// Waits, up to `timeout`, for the server to end the connection; `Err` if it did not, or
    /// ended it with an error. Only the handle that opened the connection can wait for that.
    pub async fn closed(self, timeout: Duration) -> Result<(), String> {
        let task = self
            .task
            .expect("closed() on the handle that opened the connection, not another_stream()'s");
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(err))) => Err(format!("the connection failed: {err}")),
            Ok(Err(err)) => Err(format!("the connection's task: {err}")),
            Err(_) => Err(format!("still open after {timeout:?}")),
        }
    }

    /// Sends `method path` with these header fields (besides `host` on HTTP/1.1) and reads the
    /// whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        fields: &[(String, String)],
    ) -> Result<Answer, String> {
        let started = Instant::now();
        let addr = self.addr;
        let mut request = match self.sender {
            Sender::Http1(_) => Request::builder()
                .uri(path)
                .header("host", addr.to_string()),
            Sender::Http2(_) => Request::builder().uri(format!("http://{addr}{path}")),
        }
        .method(method);
        for (name, value) in fields {
            request = request.header(name, value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        let response = match &mut self.sender {
            Sender::Http1(sender) => sender.send_request(request).await,
            Sender::Http2(sender) => sender.send_request(request).await,
        }
        .map_err(|e| format!("send: {e:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
            elapsed: started.elapsed(),
        })
    }
}

/// Sends one request on a new connection and reads the whole answer; the time taken includes
/// connecting.
pub async fn send(
    addr: SocketAddr,
    protocol: Protocol,
    method: Method,
    path: &str,
    fields: &[(String, String)],
) -> Result<Answer, String> {
    let started = Instant::now();
    let mut connection = Connection::open(addr, protocol).await?;
    let mut answer = connection.send(method, path, fields).await?;
    answer.elapsed = started.elapsed();
    Ok(answer)
}

/// `GET path` over HTTP/1.1 on a new connection.
pub async fn get(addr: SocketAddr, path: &str) -> Result<Answer, String> {
    send(addr, Protocol::Http1, Method::GET, path, &[]).await
}

/// Writes `request` (a whole HTTP/1.1 request, `connection: close` in it) on a new connection
/// and reads everything the server sends until it closes: what is on the wire, which hyper's
/// client would not show (it reads no body after a HEAD, for one).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Result<Vec<u8>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .map_err(|_| "no end within 10 s".to_owned())?
        .map_err(|e| format!("read: {e}"))?;
    Ok(answer)
}
