//! A component under the pinned `wasmtime serve` ([`serve`]): the reference host, wasmtime's own
//! (`WasmtimeServe` in the catalogue), and what it is told to serve many thousands of waiting
//! requests ([`TUNED`]).

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Command;

use crate::component::Component;
use crate::host::{BoxFuture, Host, Launch, Names, Served, WasmHost, wait_until_ready};
use crate::process::Process;
use crate::tools;

/// `wasmtime serve`, as a host of the catalogue.
pub struct WasmtimeServe;

/// A request count past which an instance is never retired in any run: "for good".
pub const REUSE_FOR_GOOD: u64 = 100_000_000;

/// What `wasmtime serve` is told to serve many thousands of waiting requests, the same for both
/// components. Its defaults admit 1,000 connections and 1,000 requests at a time, so 10,000
/// waiting clients queue behind them; lifting those caps alone is not enough, since the pooling
/// allocator holds 1,000 component instances, 1,000 core instances and 1,000 fibers (stacks) by
/// default.
///
/// * WASI 0.3: each request in flight runs on a fiber of its own, so 10,000 waiting requests
///   answer 500 ("maximum concurrent limit of 1000 for fibers reached", likewise for core and
///   component instances). An instance awaits up to 16 requests at once by default
///   (`--max-instance-concurrent-reuse-count`); the benchmark's sweep found no count that beats
///   it beyond the noise, so the default stays.
/// * WASI 0.2: each request in flight holds a whole instance (1 component instance, 3 core
///   instances: the program and wit-component's two shims, 1 memory), so even 1,000 waiting
///   requests exceed the 1,000 core instances. With the pools raised but a fresh instance per
///   request (the default for 0.2), instantiating is the ceiling; reusing an instance for the
///   next request once it has answered (`--max-instance-reuse-count`) lifts that.
///
/// The on-demand allocator (`-Opooling-allocator=n`) had no errors, but was no faster.
pub const TUNED: [&str; 8] = [
    "--max-concurrent-connections=20000",
    "--max-concurrent-requests=20000",
    "--max-instance-reuse-count=100000000",
    "-Opooling-total-component-instances=12000",
    "-Opooling-total-core-instances=36000",
    "-Opooling-total-memories=16000",
    "-Opooling-total-tables=36000",
    "-Opooling-total-stacks=12000",
];

impl WasmHost for WasmtimeServe {
    fn names(&self) -> Names {
        Names {
            name: "wasmtime",
            describe: "wasmtime serve",
            prefix: "",
        }
    }

    fn tuned(&self, _component: &Component) -> Option<Launch> {
        Some(Launch::default().and_flags(&TUNED))
    }

    fn serve<'a>(
        &'a self,
        _component: &'a Component,
        wasm: &'a Path,
        launch: &'a Launch,
    ) -> BoxFuture<'a, Box<dyn Host>> {
        Box::pin(async move { Box::new(serve(wasm, launch).await) as Box<dyn Host> })
    }
}

/// Serves `wasm` under the pinned `wasmtime serve`, with `-Scli` (the environment and stderr),
/// as `launch` says: where it listens (it prints the port it picked), the component's
/// environment (`--env`), the host's flags and environment. Stopped by SIGINT, on which
/// `wasmtime serve` finishes the requests in flight (SIGTERM kills it).
pub async fn serve(wasm: &Path, launch: &Launch) -> Served {
    let mut command = Command::new(tools::wasmtime());
    command
        .args(["serve", "-Scli"])
        .arg(format!("--addr={}", launch.listen))
        .args(&launch.flags);
    for (name, value) in &launch.env {
        command.arg(format!("--env={name}={value}"));
    }
    command.envs(launch.host_env.iter().map(|(name, value)| (name, value)));
    command.arg(wasm);
    let label = format!(
        "wasmtime serve {}, {}",
        tools::pinned_version("wasmtime"),
        wasm.file_name().unwrap().to_string_lossy()
    );
    let mut process = Process::spawn(label.clone(), &mut command);
    // It compiles the component, then says where it listens: "Serving HTTP on http://ADDR/".
    let addr = process
        .wait_for("where it serves", Duration::from_secs(60), |line| {
            line.strip_prefix("Serving HTTP on http://")?
                .trim_end_matches('/')
                .parse()
                .ok()
        })
        .await;
    wait_until_ready(addr, &mut process, Duration::from_secs(30)).await;
    Served::new(label, addr, process, Signal::SIGINT)
}
