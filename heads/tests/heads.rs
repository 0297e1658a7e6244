//! `hello-edge-heads`, run as a user runs it, against servers started here on loopback.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hello_edge_native::ServerConfig;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::host::Host;
use support::native::NativeServer;
use tokio::net::TcpListener;
use tokio::process::Command;

/// Three servers that each answer after 300 ms are fetched together in about 300 ms, not the
/// 900 ms a client fetching one at a time would need; every head is printed, prefixed by its host.
#[tokio::test]
async fn fetches_heads_concurrently() {
    let servers = [
        slow_server(1).await,
        slow_server(2).await,
        slow_server(3).await,
    ];
    let urls = servers.map(|addr| format!("http://{addr}/"));

    let started = Instant::now();
    let out = heads(&urls).await;
    let elapsed = started.elapsed();

    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = stdout(&out);
    for (i, addr) in servers.iter().enumerate() {
        assert!(
            stdout.contains(&format!("{addr} header > HTTP/1.1 200 OK\n")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("{addr} header > x-server: {}\n", i + 1)),
            "{stdout}"
        );
    }
    assert!(
        stderr(&out).contains("3 of 3 succeeded"),
        "{}",
        stderr(&out)
    );
    assert!(elapsed >= Duration::from_millis(300), "took {elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(800),
        "fetched one at a time: {elapsed:?}"
    );
}

/// A refused port and a server that never answers each get a one-line error, the other URL still
/// gets its head, and the exit status says something failed.
#[tokio::test]
async fn failures_are_reported_without_stopping_the_others() {
    let good = slow_server(7).await;
    let refused = free_port();
    let silent = silent_server().await;
    let args = [
        format!("http://{refused}/"),
        format!("http://{silent}/"),
        format!("http://{good}/"),
        "--timeout".into(),
        "500ms".into(),
    ];

    let started = Instant::now();
    let out = heads(&args).await;
    let elapsed = started.elapsed();

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stdout = stdout(&out);
    assert!(
        stdout.contains(&format!("{refused} error > connection refused\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{silent} error > timed out after 500ms\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{good} header > x-server: 7\n")),
        "{stdout}"
    );
    assert!(
        stderr(&out).contains("1 of 3 succeeded"),
        "{}",
        stderr(&out)
    );
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

/// A TLS failure (here, a certificate no public root signed) is named as one.
#[tokio::test]
async fn tls_failures_are_named() {
    let addr = tls_server().await;
    let out = heads(&[format!("https://localhost:{}/", addr.port())]).await;
    assert_eq!(out.status.code(), Some(1));
    let stdout = stdout(&out);
    let want = format!(
        "localhost:{} error > TLS: invalid peer certificate",
        addr.port()
    );
    assert!(stdout.starts_with(&want), "{stdout}");
}

/// `--json` prints one object per URL that parses and carries the headers the server sent.
#[tokio::test]
async fn json_output_parses() {
    let servers = [slow_server(4).await, slow_server(5).await];
    let refused = free_port();
    let mut args: Vec<String> = servers
        .iter()
        .map(|addr| format!("http://{addr}/x"))
        .collect();
    args.push(format!("http://{refused}/"));
    args.push("--json".into());
    let out = heads(&args).await;

    let objects: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(objects.len(), 3);
    for (i, addr) in servers.iter().enumerate() {
        let url = format!("http://{addr}/x");
        let object = objects
            .iter()
            .find(|o| o["url"] == url)
            .expect("an object per URL");
        assert_eq!(object["status"], 200);
        assert_eq!(object["status_line"], "HTTP/1.1 200 OK");
        assert!(object["error"].is_null());
        assert!(object["elapsed_ms"].as_f64().unwrap() >= 300.0);
        let headers = object["headers"].as_array().unwrap();
        let x_server = serde_json::json!(["x-server", (i + 4).to_string()]);
        assert!(headers.contains(&x_server), "{headers:?}");
    }
    let failed = objects.iter().find(|o| o["status"].is_null()).unwrap();
    assert_eq!(failed["error"], "connection refused");
}

/// Run against the hello-edge native server, it shows the server's headers; `--method head`
/// sends HEAD.
#[tokio::test]
async fn shows_the_native_servers_headers() {
    let server = NativeServer::start(ServerConfig::default()).await;
    let addr = server.addr();

    for method in ["get", "head"] {
        let out = heads(&[
            format!("http://{addr}/hello/world"),
            format!("http://{addr}/nope"),
            "--method".into(),
            method.into(),
        ])
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let stdout = stdout(&out);
        for line in [
            "header > HTTP/1.1 200 OK",
            "header > HTTP/1.1 404 Not Found",
            "header > content-type: text/html; charset=utf-8",
            "header > content-length: 22",
            "header > x-content-type-options: nosniff",
        ] {
            assert!(
                stdout.contains(&format!("{addr} {line}\n")),
                "{method}: {stdout}"
            );
        }
    }
}

async fn heads<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_hello-edge-heads"))
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(10), out)
        .await
        .expect("hello-edge-heads finishes")
        .expect("run hello-edge-heads")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A server that answers every request after 300 ms, saying which server it is in `x-server`.
async fn slow_server(id: u32) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |_: Request<Incoming>| async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let response = Response::builder()
                        .header("x-server", id.to_string())
                        .body(Full::new(Bytes::from_static(b"slow")))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A server that accepts connections and never answers.
async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// A TLS server with a self-signed certificate for `localhost`.
async fn tls_server() -> SocketAddr {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move { drop(acceptor.accept(stream).await) });
        }
    });
    addr
}

/// A loopback address with a port that was free a moment ago (so connecting is refused).
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
