//! The components as the tests use them: each built for wasm32-wasip2 by its Spin manifest's own
//! build command, and hosted by the pinned `wasmtime serve` on a free loopback port.
//!
//! Components are built in a target directory of their own (`target/wasm-tests`), so the build
//! does not wait on the cargo lock of the test run. The host is the wasmtime CLI pinned in the
//! workspace's Cargo.toml; when it is missing it is installed, and if that fails the test fails
//! saying how to install it: a missing host is never a silent skip.

#![allow(dead_code)] // Each test binary uses the part it needs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A hello-edge component, named by the Spin manifest that builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// The WASI 0.2 component (`wasip2/`, wstd): the default, `spin.toml`.
    P2,
    /// The WASI 0.3 component (`wasip3/`, spin-sdk 7): `spin-wasip3.toml`.
    P3,
}

impl Component {
    pub const ALL: [Component; 2] = [Component::P2, Component::P3];

    /// The Spin manifest that builds and serves this component.
    pub fn manifest_file(self) -> &'static str {
        match self {
            Component::P2 => "spin.toml",
            Component::P3 => "spin-wasip3.toml",
        }
    }

    pub fn manifest(self) -> SpinManifest {
        SpinManifest::read(self.manifest_file())
    }

    /// The component, built once per test binary by its manifest's build command.
    pub fn wasm(self) -> &'static Path {
        static BUILT: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
        BUILT[self as usize].get_or_init(|| build(&self.manifest()))
    }
}

/// The parts of a Spin manifest the tests rely on.
pub struct SpinManifest {
    pub file: &'static str,
    pub text: String,
    pub value: toml::Table,
}

impl SpinManifest {
    pub fn read(file: &'static str) -> SpinManifest {
        let text = std::fs::read_to_string(root().join(file))
            .unwrap_or_else(|err| panic!("read {file}: {err}"));
        let value = text
            .parse()
            .unwrap_or_else(|err| panic!("{file} is not TOML: {err}"));
        SpinManifest { file, text, value }
    }

    pub fn component(&self) -> &toml::Value {
        &self.value["component"]["hello-edge"]
    }

    /// The component file, relative to the manifest.
    pub fn source(&self) -> PathBuf {
        PathBuf::from(
            self.component()["source"]
                .as_str()
                .expect("component source"),
        )
    }

    /// The build command's words.
    pub fn build_command(&self) -> Vec<String> {
        let command = self.component()["build"]["command"]
            .as_str()
            .expect("build command");
        command.split_whitespace().map(str::to_owned).collect()
    }
}

/// Runs the manifest's build command, in the tests' own target directory, and returns the file
/// its `source` names there.
fn build(manifest: &SpinManifest) -> PathBuf {
    let words = manifest.build_command();
    assert_eq!(
        words[..2],
        ["cargo", "build"],
        "{} builds with cargo",
        manifest.file
    );
    ensure_target("wasm32-wasip2");
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
        "building the component of {} failed; is the target installed? \
         `rustup target add wasm32-wasip2`",
        manifest.file
    );
    // `source` is under `target/`; the same path under the tests' target directory.
    let source = manifest.source();
    let under_target = source
        .strip_prefix("target")
        .unwrap_or_else(|_| panic!("{}'s source is under target/", manifest.file));
    target_dir.join(under_target)
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Adds a target through rustup when it is missing, so the test command works on a fresh
/// machine; without rustup the build says what is missing.
pub fn ensure_target(target: &str) {
    let installed = std::process::Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    if let Ok(out) = installed
        && !String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|t| t == target)
    {
        eprintln!("adding the {target} target with rustup");
        let _ = std::process::Command::new("rustup")
            .args(["target", "add", target])
            .status();
    }
}

/// `wasmtime serve` hosting a component on a free loopback port; killed on drop.
pub struct WasmHost {
    pub addr: SocketAddr,
    shutdown_addr: SocketAddr,
    child: Child,
}

impl WasmHost {
    /// Serves `component` with `-Scli` (environment and stderr) and these variables.
    pub async fn start(component: &Path, env: &[(&str, &str)]) -> WasmHost {
        Self::start_with(component, env, &[]).await
    }

    /// Like [`WasmHost::start`], with more flags for `wasmtime serve`.
    pub async fn start_with(component: &Path, env: &[(&str, &str)], flags: &[&str]) -> WasmHost {
        // wasmtime buffers its stdout when it is a pipe, so the "Serving HTTP on" line cannot be
        // awaited: give it free ports and wait until it accepts.
        let (addr, shutdown_addr) = (free_port(), free_port());
        let wasmtime = wasmtime();
        let mut command = Command::new(wasmtime);
        command
            .args(["serve", "-Scli"])
            .arg(format!("--addr={addr}"))
            .arg(format!("--shutdown-addr={shutdown_addr}"))
            .args(flags);
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
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr).await;
                }
                panic!("wasmtime serve exited with {status}: {stderr}");
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
    pub async fn stop_and_read_stderr(&mut self) -> String {
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
pub fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The wasmtime CLI version the tests run, pinned in the workspace's Cargo.toml
/// (`[workspace.metadata.tools]`). Hosts from wasmtime 46 on accept both components.
pub fn wasmtime_version() -> String {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let cargo: toml::Table = text.parse().unwrap();
    cargo["workspace"]["metadata"]["tools"]["wasmtime-cli"]
        .as_str()
        .expect("the wasmtime-cli pin in Cargo.toml")
        .to_owned()
}

/// The pinned wasmtime CLI: `$HELLO_EDGE_WASMTIME`, else `wasmtime` on the PATH or in cargo's
/// bin directory if it is the pinned version, else installed once into `target/tools`.
pub fn wasmtime() -> &'static Path {
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
            "wasmtime {version} not found: installing it into {} (about 8 to 15 minutes on 2 \
             cores, once)",
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
