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
pub enum Connection {
    /// HTTP/1.1: one request at a time.
    Http1(SocketAddr, http1::SendRequest<Empty<Bytes>>),
    /// HTTP/2: requests multiplexed (clone the sender to send several at once).
    Http2(SocketAddr, http2::SendRequest<Empty<Bytes>>),
}

impl Connection {
    /// Connects to `addr` and completes the protocol's handshake.
    pub async fn open(addr: SocketAddr, protocol: Protocol) -> Result<Connection, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let io = TokioIo::new(stream);
        Ok(match protocol {
            Protocol::Http1 => {
                let (sender, conn) = http1::handshake(io)
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
                tokio::spawn(conn);
                Connection::Http1(addr, sender)
            }
            Protocol::Http2 => {
                let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
                tokio::spawn(conn);
                Connection::Http2(addr, sender)
            }
        })
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
        let addr = match self {
            Connection::Http1(addr, _) | Connection::Http2(addr, _) => *addr,
        };
        let mut request = match self {
            Connection::Http1(..) => Request::builder()
                .uri(path)
                .header("host", addr.to_string()),
            Connection::Http2(..) => Request::builder().uri(format!("http://{addr}{path}")),
        }
        .method(method);
        for (name, value) in fields {
            request = request.header(name, value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        let response = match self {
            Connection::Http1(_, sender) => sender.send_request(request).await,
            Connection::Http2(_, sender) => sender.send_request(request).await,
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
