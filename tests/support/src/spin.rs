//! A component under Spin, the host hello-edge is for: `spin up` on the component's own Spin
//! manifest, as a user runs it, on a loopback port Spin picks and prints.
//!
//! Each run has a directory of its own under `target/spin-tests`: its `SPIN_DATA_DIR`, its
//! `--log-dir`, and a copy of the manifest whose `source` names the `.wasm` the tests built
//! (everything else, the route and the environment, is the repository's). The environment goes
//! through `spin up -e`. The host's log is both what Spin writes (stdout and stderr) and what it
//! writes for the component under the log directory (`hello-edge_stdout.txt`,
//! `hello-edge_stderr.txt`), read as it grows.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Command;

use crate::component::{Component, SpinManifest, Wasi};
use crate::host::{BoxFuture, Host, Launch, Names, Served, WasmHost, wait_until_ready};
use crate::process::{LogFiles, Process};
use crate::tools::{self, root};
use crate::wasmtime::REUSE_FOR_GOOD;

/// `spin up` on one Spin build, as a host of the catalogue. Which build is plain data: its
/// pinned tool, and what it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpinUp {
    /// What it is called; its name is its pinned tool's, in `[workspace.metadata.tools]`:
    /// `spin`, `spin-4.0`.
    pub names: Names,
    /// Whether it serves the WASI 0.3 component.
    pub serves_wasi_0_3: bool,
}

impl SpinUp {
    /// The Spin the tests are for (4.1.0-pre0): it serves both components.
    pub const LATEST: SpinUp = SpinUp {
        names: Names {
            name: "spin",
            describe: "spin up",
            prefix: "spin-",
        },
        serves_wasi_0_3: true,
    };

    /// Spin 4.0, the newest tagged release: it serves the WASI 0.2 component only (WASI 0.3
    /// there is a release candidate).
    pub const V4_0: SpinUp = SpinUp {
        names: Names {
            name: "spin-4.0",
            describe: "spin up 4.0",
            prefix: "spin-4.0-",
        },
        serves_wasi_0_3: false,
    };

    /// Its binary.
    pub fn binary(&self) -> &'static Path {
        tools::pinned_binary(self.names.name)
    }

    /// Serves `wasm` with `manifest`'s route and environment, plus `env` (the component's, given
    /// with `-e`) and `host_env` (Spin's own process environment).
    pub async fn serve(
        &self,
        manifest: &SpinManifest,
        wasm: &Path,
        env: &[(&str, &str)],
        host_env: &[(&str, &str)],
    ) -> Served {
        let launch = Launch::with_env(env).and_host_env(host_env);
        self.launch(manifest, wasm, &launch).await
    }

    /// Serves `wasm` with `manifest`'s route and environment, as `launch` says: where it
    /// listens, the component's environment (`-e`), Spin's flags and process environment.
    pub async fn launch(&self, manifest: &SpinManifest, wasm: &Path, launch: &Launch) -> Served {
        let dir = run_dir(self.names.name);
        let file = dir.join("spin.toml");
        std::fs::write(&file, manifest_for(manifest, wasm)).unwrap();
        let label = format!(
            "spin up {}, {}",
            tools::pinned_version(self.names.name),
            manifest.file
        );
        let mut command = Command::new(self.binary());
        command
            .arg("up")
            .arg("-f")
            .arg(&file)
            .arg("--listen")
            .arg(launch.listen.to_string())
            .arg("--log-dir")
            .arg(dir.join("logs"))
            .args(&launch.flags);
        for (name, value) in &launch.env {
            command.arg("-e").arg(format!("{name}={value}"));
        }
        command.envs(launch.host_env.iter().map(|(name, value)| (name, value)));
        spawn(command, &dir, label).await
    }
}

impl WasmHost for SpinUp {
    fn names(&self) -> Names {
        self.names
    }

    fn serves(&self, component: &Component) -> bool {
        component.wasi == Wasi::P2 || self.serves_wasi_0_3
    }

    /// Its pools lifted (a waiting WASI 0.2 request holds a component instance, a WASI 0.3 one a
    /// stack): `SPIN_MAX_INSTANCE_COUNT` raises every pool at once. For WASI 0.3, instances are
    /// reused for good, as `wasmtime serve`'s tuning does (Spin's default retires one after 128
    /// requests; it takes 16 at once, as the benchmark's sweep found best).
    fn tuned(&self, component: &Component) -> Option<Launch> {
        let tuned = Launch::default().and_host_env(&[("SPIN_MAX_INSTANCE_COUNT", "12000")]);
        Some(match component.wasi {
            Wasi::P2 => tuned,
            Wasi::P3 => tuned.and_flags(&[&format!("--max-instance-reuse-count={REUSE_FOR_GOOD}")]),
        })
    }

    fn serve<'a>(
        &'a self,
        component: &'a Component,
        wasm: &'a Path,
        launch: &'a Launch,
    ) -> BoxFuture<'a, Box<dyn Host>> {
        Box::pin(async move {
            Box::new(self.launch(&component.manifest(), wasm, launch).await) as Box<dyn Host>
        })
    }
}

/// Runs `command` (a `spin up` or `spin build --up` listening on loopback, logging to
/// `dir/logs`) with `dir/data` as its data directory, labelled `label`, and waits until it
/// answers. Its log is Spin's output and the component's log files; it is stopped by SIGINT, as
/// Ctrl-C in the terminal a user runs `spin up` in (Spin stops at once either way, dropping the
/// requests in flight: `tests/e2e/tests/wasm_hosts.rs` measures it), and `dir` is removed once it
/// is gone.
///
/// What Spin logs for its own exit is left out of its log ([`without_exit_drops`]).
pub async fn spawn(mut command: Command, dir: &Path, label: String) -> Served {
    command.env("SPIN_DATA_DIR", dir.join("data"));
    let mut process = Process::spawn(label.clone(), &mut command);
    let files = LogFiles::follow(dir.join("logs"), process.log().clone());
    // It loads the app, then says where it serves: "Serving http://127.0.0.1:PORT".
    let addr = process
        .wait_for("where it serves", Duration::from_secs(120), |line| {
            line.trim().strip_prefix("Serving http://")?.parse().ok()
        })
        .await;
    wait_until_ready(addr, &mut process, Duration::from_secs(30)).await;
    Served::new(label, addr, process, Signal::SIGINT)
        .with_log_files(files)
        .without_exit_noise(without_exit_drops)
        .removing(dir.to_owned())
}

/// `log` without the lines Spin writes for a worker it drops as it exits: `worker failed: worker
/// panicked` and the backtrace under it (its indented lines).
///
/// When Spin exits with a WASI 0.3 instance still kept for reuse, it drops that instance's worker
/// unfinished, and wasmtime-wasi-http reports every worker dropped so as `worker failed: worker
/// panicked` (wasmtime v47.0.2, `crates/wasi-http/src/handler.rs:708`, the worker's `Dropper`;
/// Spin prints it, `crates/trigger-http/src/server.rs:792`). No guest code runs then; the same
/// line before the signal is a failure like any other.
pub fn without_exit_drops(log: &str) -> String {
    let mut kept = String::new();
    let mut dropping = false;
    for line in log.lines() {
        if line == "worker failed: worker panicked" {
            dropping = true;
            continue;
        }
        if dropping && (line == "Stack backtrace:" || line.starts_with(' ')) {
            continue;
        }
        dropping = false;
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

/// A fresh directory for one run under `target/spin-tests`.
pub fn run_dir(tool: &str) -> PathBuf {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let dir = root().join("target/spin-tests").join(format!(
        "{tool}-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    dir
}

/// The manifest's text, with its component's `source` naming `wasm` (absolute): the one line
/// the tests change.
pub fn manifest_for(manifest: &SpinManifest, wasm: &Path) -> String {
    let source = manifest.source();
    let line = format!("source = \"{}\"", source.display());
    assert_eq!(
        manifest.text.matches(&line).count(),
        1,
        "{} has one `{line}`",
        manifest.file
    );
    manifest
        .text
        .replace(&line, &format!("source = \"{}\"", wasm.display()))
}

/// A copy of the repository as a fresh clone has it: the files git tracks, and those it does not
/// ignore, without `target/`, under `target/spin-build-tests/PID`.
pub fn fresh_copy() -> PathBuf {
    let copy = root()
        .join("target/spin-build-tests")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&copy);
    let listed = std::process::Command::new("git")
        .current_dir(root())
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .expect("run git ls-files");
    assert!(listed.status.success(), "git ls-files failed");
    for file in listed.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let file = Path::new(std::str::from_utf8(file).expect("a UTF-8 path"));
        let (from, to) = (root().join(file), copy.join(file));
        if !from.is_file() {
            continue; // Deleted in the working tree.
        }
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap_or_else(|err| panic!("copy {}: {err}", file.display()));
    }
    copy
}
