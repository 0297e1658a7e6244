//! Telling HTTP/1.1 from HTTP/2 (prior knowledge) by a connection's first bytes, without
//! consuming them: they are read once, as they arrive, then handed on before the rest.
//!
//! An HTTP/2 client opens with the connection preface (RFC 9113 §3.4); any other first bytes are
//! HTTP/1.1. Reading waits on the socket, so a client that stalls halfway through the preface
//! costs a pending read, not a loop. hyper-util's `auto` builder tells the same, reading into a
//! buffer it then replays, at several KiB more per waiting connection (`bench/results`, bare
//! hyper on the auto builder against plain HTTP/1.1); this keeps the 24 bytes of the preface
//! inline.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What a connection speaks, told from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge.
    Http2,
}

/// The HTTP/2 connection preface.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads the first bytes until they tell the protocol; `None` when the client closes first.
pub(super) async fn detect(mut stream: TcpStream) -> io::Result<Option<(Protocol, Replay)>> {
    let mut first = [0u8; PREFACE.len()];
    let mut len = 0;
    let protocol = loop {
        let n = stream.read(&mut first[len..]).await?;
        if n == 0 {
            return Ok(None);
        }
        len += n;
        if first[..len] != PREFACE[..len] {
            break Protocol::Http1;
        }
        if len == PREFACE.len() {
            break Protocol::Http2;
        }
    };
    Ok(Some((
        protocol,
        Replay {
            first,
            start: 0,
            end: len as u8,
            stream,
        },
    )))
}

/// The connection, with the bytes read to tell its protocol read again first.
pub(super) struct Replay {
    first: [u8; PREFACE.len()],
    start: u8,
    end: u8,
    stream: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.start < this.end {
            let left = &this.first[this.start as usize..this.end as usize];
            let n = left.len().min(buf.remaining());
            buf.put_slice(&left[..n]);
            this.start += n as u8;
            // What else has come goes in the same read: hyper sizes its read buffer by what a
            // read gives, and a first read of a few bytes alone made it reserve a second 8 KiB
            // for the rest (about 7 KiB more per waiting connection, measured at C=10,000).
            // Nothing more yet is fine: the bytes given are an answer.
            if buf.remaining() > 0 {
                let _ = Pin::new(&mut this.stream).poll_read(cx, buf);
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// Sends `sent` in pieces to a fresh connection and detects on the server side.
    async fn detect_sent(pieces: &[&[u8]]) -> (Option<Protocol>, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
        let client = tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            for piece in pieces {
                stream.write_all(&piece).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        let (stream, _) = listener.accept().await.unwrap();
        let detected = detect(stream).await.unwrap();
        client.await.unwrap();
        match detected {
            Some((protocol, mut replay)) => {
                let mut all = Vec::new();
                replay.read_to_end(&mut all).await.unwrap();
                (Some(protocol), all)
            }
            None => (None, Vec::new()),
        }
    }

    #[tokio::test]
    async fn the_preface_is_http2_and_is_replayed() {
        let (protocol, bytes) = detect_sent(&[&PREFACE[..3], &PREFACE[3..], b"rest"]).await;
        assert_eq!(protocol, Some(Protocol::Http2));
        assert_eq!(bytes, [&PREFACE[..], b"rest"].concat());
    }

    #[tokio::test]
    async fn anything_else_is_http1_and_is_replayed() {
        for sent in [&b"GET / HTTP/1.1\r\n\r\n"[..], b"PRO", b"P"] {
            let (protocol, bytes) = detect_sent(&[sent]).await;
            if sent == b"P" {
                // A lone `P` might still be the preface; the client closed, so it is none.
                assert_eq!(protocol, None);
            } else {
                assert_eq!(protocol, Some(Protocol::Http1), "{sent:?}");
                assert_eq!(bytes, sent);
            }
        }
    }
}
