//! The Spin component under a real wasm host, `wasmtime serve`, against the same conformance
//! table as the native server, over real TCP.
//!
//! The component is built for wasm32-wasip2 from here (in its own target directory, so the build
//! does not wait on the outer cargo lock), exactly as spin.toml builds it. The host is the pinned
//! wasmtime CLI; when it is missing it is installed, and if that fails the test fails saying how
//! to install it: a missing host is never a silent skip.

mod conformance;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Every case of the conformance table answers on wasmtime as it does natively, with the
/// default delay (no variable set).
#[tokio::test]
async fn conforms_to_the_table() {
    let host = WasmHost::start(&[]).await;
    let report = conformance::run(host.addr, Duration::from_millis(500)).await;
    assert!(report.is_empty(), "mismatches on wasmtime serve:\n{report}");
}

/// 200 requests that each wait 500 ms overlap on the host's event loop: together they take
/// about one delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_requests_overlap() {
    let host = WasmHost::start(&[("HELLO_EDGE_DELAY_MS", "500")]).await;

    conformance::assert_overlap(
        host.addr,
        200,
        Duration::from_millis(500),
        Duration::from_secs(3),
    )
    .await;
}

/// The delay is read from the component's environment.
#[tokio::test]
async fn the_delay_comes_from_the_environment() {
    let host = WasmHost::start(&[("HELLO_EDGE_DELAY_MS", "50")]).await;
    let answer = conformance::send(host.addr, Method::GET, "/hello/quick")
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.elapsed >= Duration::from_millis(50) && answer.elapsed < Duration::from_millis(400),
        "took {:?} with a 50 ms delay",
        answer.elapsed
    );
}

/// An invalid delay is a clear 500 naming the variable, and is logged to stderr.
#[tokio::test]
async fn an_invalid_delay_is_a_clear_500() {
    let mut host = WasmHost::start(&[("HELLO_EDGE_DELAY_MS", "soon")]).await;
    let answer = conformance::send(host.addr, Method::GET, "/hello/x")
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let text = answer.text();
    assert!(
        text.contains("HELLO_EDGE_DELAY_MS: delay &quot;soon&quot; is not a whole number"),
        "{text}"
    );

    let stderr = host.stop_and_read_stderr().await;
    assert!(
        stderr.contains("hello-edge: invalid configuration: HELLO_EDGE_DELAY_MS"),
        "stderr: {stderr}"
    );
}

/// `wasmtime serve` hosting the component on a free loopback port; killed on drop.
struct WasmHost {
    addr: SocketAddr,
    shutdown_addr: SocketAddr,
    child: Child,
}

impl WasmHost {
    async fn start(env: &[(&str, &str)]) -> WasmHost {
        let component = component_wasm();
        // wasmtime buffers its stdout when it is a pipe, so the "Serving HTTP on" line cannot be
        // awaited: give it free ports and wait until it accepts.
        let (addr, shutdown_addr) = (free_port(), free_port());
        let wasmtime = wasmtime();
        let mut command = Command::new(wasmtime);
        command
            .args(["serve", "-Scli"])
            .arg(format!("--addr={addr}"))
            .arg(format!("--shutdown-addr={shutdown_addr}"));
        for (name, value) in env {
            command.arg(format!("--env={name}={value}"));
        }
        let mut child = command
            .arg(component)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", wasmtime.display()));

        // The host compiles the component before it listens.
        let started = Instant::now();
        while TcpStream::connect(addr).await.is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("wasmtime serve exited with {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "wasmtime serve did not listen on {addr} within a minute"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        WasmHost {
            addr,
            shutdown_addr,
            child,
        }
    }

    /// Shuts the host down gracefully (so it flushes its output) and returns its stderr.
    async fn stop_and_read_stderr(&mut self) -> String {
        drop(TcpStream::connect(self.shutdown_addr).await);
        let mut stderr = String::new();
        let mut pipe = self.child.stderr.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), pipe.read_to_string(&mut stderr))
            .await
            .expect("wasmtime serve shuts down")
            .unwrap();
        stderr
    }
}

/// A loopback address with a port that was free a moment ago.
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// spin.toml is a manifest v2 for one component that serves every path, built by the command
/// in its `build` table into the file its `source` names.
#[test]
fn spin_manifest_builds_what_it_serves() {
    let text = std::fs::read_to_string(root().join("spin.toml")).unwrap();
    assert!(text.starts_with("#:schema https://schemas.spinframework.dev/spin/manifest-v2/"));
    let manifest = SpinManifest::read();
    assert_eq!(
        manifest.value["spin_manifest_version"].as_integer(),
        Some(2)
    );
    assert_eq!(
        manifest.value["application"]["name"].as_str(),
        Some("hello-edge")
    );
    let trigger = &manifest.value["trigger"]["http"][0];
    assert_eq!(trigger["route"].as_str(), Some("/..."));
    assert_eq!(trigger["component"].as_str(), Some("hello-edge"));
    let component = manifest.component();
    assert_eq!(
        component["environment"]["HELLO_EDGE_DELAY_MS"].as_str(),
        Some("500")
    );
    // The tests build with that very command, so `source` names what was tested.
    assert!(
        root()
            .join(manifest.source())
            .starts_with(root().join("target"))
    );
    assert!(component_wasm().is_file());
}

/// The parts of spin.toml the tests rely on.
struct SpinManifest {
    value: toml::Table,
}

impl SpinManifest {
    fn read() -> SpinManifest {
        let text = std::fs::read_to_string(root().join("spin.toml")).expect("read spin.toml");
        SpinManifest {
            value: text.parse().expect("spin.toml is TOML"),
        }
    }

    fn component(&self) -> &toml::Value {
        &self.value["component"]["hello-edge"]
    }

    /// The component file, relative to the manifest.
    fn source(&self) -> PathBuf {
        PathBuf::from(
            self.component()["source"]
                .as_str()
                .expect("component source"),
        )
    }

    /// The build command's words.
    fn build_command(&self) -> Vec<String> {
        let command = self.component()["build"]["command"]
            .as_str()
            .expect("build command");
        command.split_whitespace().map(str::to_owned).collect()
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The component, built once per test run by spin.toml's build command, in a target directory
/// of its own so it does not wait on the cargo lock of the test run.
fn component_wasm() -> &'static Path {
    static COMPONENT: OnceLock<PathBuf> = OnceLock::new();
    COMPONENT.get_or_init(|| {
        let manifest = SpinManifest::read();
        let words = manifest.build_command();
        assert_eq!(
            words[..2],
            ["cargo", "build"],
            "spin.toml builds with cargo"
        );
        ensure_wasm_target();
        let target_dir = root().join("target").join("wasm-tests");
        let status = std::process::Command::new(env!("CARGO"))
            .current_dir(root())
            .args(&words[1..])
            .arg("--target-dir")
            .arg(&target_dir)
            .status()
            .expect("run cargo build for the component");
        assert!(
            status.success(),
            "building the component failed; is the target installed? \
             `rustup target add wasm32-wasip2`"
        );
        // `source` is under `target/`; the same path under the tests' target directory.
        let source = manifest.source();
        let under_target = source
            .strip_prefix("target")
            .expect("spin.toml's source is under target/");
        target_dir.join(under_target)
    })
}

/// Adds the wasm32-wasip2 target through rustup when it is missing, so the test command works
/// on a fresh machine; without rustup the build below says what is missing.
fn ensure_wasm_target() {
    let installed = std::process::Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    if let Ok(out) = installed
        && !String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|t| t == "wasm32-wasip2")
    {
        eprintln!("adding the wasm32-wasip2 target with rustup");
        let _ = std::process::Command::new("rustup")
            .args(["target", "add", "wasm32-wasip2"])
            .status();
    }
}

/// The wasmtime CLI version the tests run, pinned in the workspace's Cargo.toml
/// (`[workspace.metadata.tools]`). Hosts from wasmtime 46 on accept the component.
fn wasmtime_version() -> String {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let cargo: toml::Table = text.parse().unwrap();
    cargo["workspace"]["metadata"]["tools"]["wasmtime-cli"]
        .as_str()
        .expect("the wasmtime-cli pin in Cargo.toml")
        .to_owned()
}

/// The pinned wasmtime CLI: `$HELLO_EDGE_WASMTIME`, else `wasmtime` on the PATH or in cargo's
/// bin directory if it is the pinned version, else installed once into `target/tools`.
fn wasmtime() -> &'static Path {
    static WASMTIME: OnceLock<PathBuf> = OnceLock::new();
    WASMTIME.get_or_init(|| {
        if let Some(path) = std::env::var_os("HELLO_EDGE_WASMTIME") {
            return PathBuf::from(path);
        }
        let version = wasmtime_version();
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
        let tools = root().join("target/tools");
        let local = tools.join("bin/wasmtime");
        let candidates = [
            Some(PathBuf::from("wasmtime")),
            cargo_home.map(|home| home.join("bin/wasmtime")),
            Some(local.clone()),
        ];
        for candidate in candidates.into_iter().flatten() {
            if is_wasmtime(&candidate, &version) {
                return candidate;
            }
        }

        eprintln!(
            "wasmtime {version} not found: installing it into {} (about 15 minutes on 2 cores, \
             once)",
            tools.display()
        );
        let installed = std::process::Command::new(env!("CARGO"))
            .args(["install", "wasmtime-cli", "--locked", "--version", &version])
            .arg("--root")
            .arg(&tools)
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            installed && is_wasmtime(&local, &version),
            "the wasm host is missing: install it with \
             `cargo install wasmtime-cli --locked --version {version}`, \
             or point HELLO_EDGE_WASMTIME at a wasmtime {version} binary"
        );
        local
    })
}

fn is_wasmtime(path: &Path, version: &str) -> bool {
    std::process::Command::new(path)
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout).trim() == format!("wasmtime {version}")
        })
}
