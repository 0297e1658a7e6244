//! A component under wasmCloud's runtime: the pinned `wash dev` (`WashDev` in the catalogue),
//! serving the component the tests built, with the repository's own dev config
//! (`.wash/config.yaml`): its host environment (the instance pool) and its component
//! environment, the latter replaced by the launch's.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_yaml_ng::{Mapping, Value};
use tokio::process::Command;

use crate::component::Component;
use crate::host::{BoxFuture, Host, Launch, Names, Served, WasmHost, wait_until_ready};
use crate::process::Process;
use crate::tools::{self, root};

/// `wash dev`, as a host of the catalogue. It takes no flags: what it serves with is its dev
/// config.
pub struct WashDev;

impl WasmHost for WashDev {
    fn names(&self) -> Names {
        Names {
            name: "wash",
            describe: "wasmCloud wash dev",
            prefix: "wash-",
        }
    }

    fn note(&self) -> Option<String> {
        let config = repository_config();
        let environment: Vec<String> = config["dev"]["environment"]
            .as_mapping()
            .into_iter()
            .flatten()
            .map(|(name, value)| {
                let (name, value) = (name.as_str().unwrap_or("?"), value.as_str().unwrap_or("?"));
                format!("`{name}={value}`")
            })
            .collect();
        let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft);
        Some(format!(
            "wash dev: `{CONFIG}` with its host environment (`dev.environment`: {}), the component \
             served as built; wash dev caps its HTTP connections at a quarter of its open-file \
             limit ({limit} here).",
            environment.join(", ")
        ))
    }

    fn serve<'a>(
        &'a self,
        _component: &'a Component,
        wasm: &'a Path,
        launch: &'a Launch,
    ) -> BoxFuture<'a, Box<dyn Host>> {
        Box::pin(async move { Box::new(WashDev::launch(wasm, launch, &[]).await) as Box<dyn Host> })
    }
}

/// The repository's dev config for `wash dev`, from the root.
const CONFIG: &str = ".wash/config.yaml";

/// The repository's dev config, parsed.
fn repository_config() -> Value {
    let text = std::fs::read_to_string(root().join(CONFIG)).expect("read .wash/config.yaml");
    serde_yaml_ng::from_str(&text).expect(".wash/config.yaml is YAML")
}

impl WashDev {
    /// Serves `wasm` with these component environment variables, under the repository's dev
    /// config.
    pub async fn serve_with(wasm: &Path, env: &[(&str, &str)]) -> Served {
        Self::launch(wasm, &Launch::with_env(env), &[]).await
    }

    /// Like [`WashDev::serve_with`], with these variables left out of the dev config's host
    /// environment (`dev.environment`), to see what they do.
    pub async fn serve_without(wasm: &Path, env: &[(&str, &str)], without: &[&str]) -> Served {
        Self::launch(wasm, &Launch::with_env(env), without).await
    }

    /// Serves `wasm` as `launch` says (its host environment added to the dev config's), with
    /// the variables `without` names left out of the dev config's host environment, on a
    /// loopback port it picks and logs: stopped by SIGTERM (it stops at once, dropping the
    /// requests in flight), its project directory removed once it is gone.
    pub async fn launch(wasm: &Path, launch: &Launch, without: &[&str]) -> Served {
        assert!(
            launch.flags.is_empty(),
            "wash dev takes no flags: {:?}",
            launch.flags
        );
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let dir = root().join("target/wash-tests").join(format!(
            "{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join(".wash")).unwrap();
        std::fs::write(
            dir.join(".wash/config.yaml"),
            serde_yaml_ng::to_string(&dev_config(wasm, launch, without)).unwrap(),
        )
        .unwrap();

        // The host caps its HTTP connections at a quarter of its open-file limit: give it all
        // it may have.
        let _ = rlimit::increase_nofile_limit(u64::MAX);
        let mut command = Command::new(tools::wash());
        command
            .arg("-C")
            .arg(&dir)
            .args(["dev", "--non-interactive"])
            .current_dir(&dir);
        let label = format!(
            "wash dev {}, {}",
            tools::pinned_version("wash"),
            wasm.file_name().unwrap().to_string_lossy()
        );
        let mut process = Process::spawn(label.clone(), &mut command);
        // "HTTP server listening addr=127.0.0.1:PORT" comes first, with the port it bound;
        // "listening for HTTP requests" once the component is deployed.
        let addr = process
            .wait_for("where it listens", Duration::from_secs(30), |line| {
                let (_, rest) = line.split_once("HTTP server listening addr=")?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .await;
        process
            .wait_for(
                "that the component is deployed",
                Duration::from_secs(60),
                |line| line.contains("listening for HTTP requests").then_some(()),
            )
            .await;
        wait_until_ready(addr, &mut process, Duration::from_secs(30)).await;
        Served::new(label, addr, process, Signal::SIGTERM).removing(dir)
    }
}

/// The repository's `.wash/config.yaml`, made to serve `wasm` as it is (no build) where `launch`
/// listens, with its environment as the component's, its host environment added to the dev
/// config's, and without the host variables `without` names.
fn dev_config(wasm: &Path, launch: &Launch, without: &[&str]) -> Value {
    let mut config = repository_config();
    config["build"]["command"] = "true".into();
    config["build"]["component_path"] = wasm.to_string_lossy().into_owned().into();
    config["dev"]["address"] = launch.listen.to_string().into();
    if let Some(host_env) = config["dev"]["environment"].as_mapping_mut() {
        for name in without {
            assert!(
                host_env.remove(*name).is_some(),
                "{name} is not in .wash/config.yaml's dev.environment"
            );
        }
        for (name, value) in &launch.host_env {
            host_env.insert(name.as_str().into(), value.as_str().into());
        }
    }
    let component_env: Mapping = launch
        .env
        .iter()
        .map(|(name, value)| (name.as_str().into(), value.as_str().into()))
        .collect();
    config["workload"]["environment"]["config"] = component_env.into();
    config
}
