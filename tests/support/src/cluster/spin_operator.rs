//! SpinKube's control plane on the cluster, as its users install it, but run beside the cluster
//! rather than in it (no image can be pulled here): spin-operator, built by `cargo xtask setup`
//! from its Go module at the pinned version, with the admission webhooks it serves.
//!
//! Everything it installs comes from that module, read from the Go module cache at test time,
//! never copied into the repository:
//!
//! * its CRDs (SpinApp, SpinAppExecutor) from `config/crd/bases`;
//! * its webhook configurations from `config/webhook/manifests.yaml`, each webhook's Service
//!   swapped for the operator's address on 127.0.0.1 and the cluster's CA;
//! * the RuntimeClass `wasmtime-spin-v2` (handler `spin`, the runtime the cluster's containerd
//!   names for the Spin shim) and the `containerd-shim-spin` SpinAppExecutor, from
//!   `config/samples`, as its quick start applies them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio::process::Command;

use super::{Cluster, bin};
use crate::catalogue::free_port;
use crate::client;
use crate::manifest::objects;
use crate::oci;
use crate::process::{Log, Process};
use crate::tools::{pinned_version, workspace_manifest};

/// Where controller-runtime's webhook server listens (its default; the operator has no flag for
/// it): every interface, port 9443. The apiserver calls it on 127.0.0.1. Something else on the
/// port fails the operator's start, and so the wait for its webhooks.
const WEBHOOK_PORT: u16 = 9443;

/// The operator, running; stopped on drop.
pub struct SpinOperator {
    process: Process,
    /// Its version, as pinned.
    pub version: &'static str,
}

impl SpinOperator {
    /// Installs the CRDs, starts the operator with its webhooks, registers them with the
    /// apiserver, and applies the samples' RuntimeClass and executor: returns once the
    /// operator has validated the executor through its webhook.
    pub async fn install(cluster: &Cluster) -> SpinOperator {
        let version = pinned_version("spin-operator");
        let module = module_dir();
        let kubectl = cluster.kubectl();
        kubectl
            .ok(&[
                "apply",
                "--server-side",
                "-f",
                &module.join("config/crd/bases").display().to_string(),
            ])
            .await;
        kubectl
            .ok(&[
                "wait",
                "--for=condition=Established",
                "crd/spinapps.core.spinkube.dev",
                "crd/spinappexecutors.core.spinkube.dev",
                "--timeout=60s",
            ])
            .await;

        // controller-runtime reads its serving certificate from
        // $TMPDIR/k8s-webhook-server/serving-certs.
        let home = cluster.dir().join("spin-operator");
        let certs = home.join("k8s-webhook-server/serving-certs");
        std::fs::create_dir_all(&certs).unwrap();
        for (from, to) in [("webhook.crt", "tls.crt"), ("webhook.key", "tls.key")] {
            std::fs::copy(cluster.pki().file(from), certs.join(to)).unwrap();
        }
        let probes = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            free_port(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        );
        let mut command = Command::new(bin("spin-operator"));
        // Its command line names the cluster's folder (the kubeconfig), which is how the
        // cluster's sweep finds it if a run is killed.
        command
            .arg("--kubeconfig")
            .arg(kubectl.kubeconfig())
            .arg("--enable-webhooks")
            .arg("--metrics-bind-address=0")
            .arg(format!("--health-probe-bind-address={probes}"))
            .env("TMPDIR", &home);
        let process = Process::spawn("spin-operator", &mut command);
        let started = Instant::now();
        while !client::get(probes, "/readyz")
            .await
            .is_ok_and(|answer| answer.status == 200)
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "spin-operator was not ready within 60 s:\n{}",
                process.log().text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let operator = SpinOperator { process, version };

        let ca = std::fs::read(cluster.pki().file("ca.crt")).unwrap();
        let webhooks = std::fs::read_to_string(module.join("config/webhook/manifests.yaml"))
            .expect("the module's webhook configurations");
        for document in objects("config/webhook/manifests.yaml", &webhooks) {
            kubectl.apply(&served_here(document, &ca).to_string()).await;
        }
        let samples = module.join("config/samples");
        kubectl
            .apply(&read(&samples.join("spin-runtime-class.yaml")))
            .await;
        // The webhooks are called once the apiserver has their configuration: a dry run of the
        // executor until the operator says it validated one, then the executor itself.
        let executor = read(&samples.join("spin-shim-executor.yaml"));
        let name = &objects("spin-shim-executor.yaml", &executor)[0]["metadata"]["name"];
        let name = name.as_str().expect("the executor has a name").to_owned();
        let started = Instant::now();
        while !operator.validated(&name) {
            let tried = kubectl
                .run_with_input(&["apply", "--dry-run=server", "-f", "-"], &executor)
                .await;
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the operator's webhooks did not validate the executor within 60 s: {tried:?}\n{}",
                operator.log().text()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        kubectl.apply(&executor).await;
        operator
    }

    /// Whether its validating webhook has validated a new object named `name` (a SpinApp or a
    /// SpinAppExecutor), as it logs each: `validate create {"name": "NAME"}`.
    pub fn validated(&self, name: &str) -> bool {
        let quoted = format!("\"{name}\"");
        self.log()
            .text()
            .lines()
            .any(|line| line.contains("validate create") && line.contains(&quoted))
    }

    /// Its log: controller-runtime's, a line each.
    pub fn log(&self) -> &Log {
        self.process.log()
    }
}

/// The module's folder in the Go module cache, where `cargo xtask setup` put it when it built
/// the operator (`[workspace.metadata.tools.spin-operator]`'s `go` at its `go-version`); the
/// cache alone is asked, never the network.
fn module_dir() -> PathBuf {
    let pin = &workspace_manifest()["workspace"]["metadata"]["tools"]["spin-operator"];
    let module = format!(
        "{}@{}",
        pin["go"].as_str().expect("spin-operator's module"),
        pin["go-version"].as_str().expect("its version")
    );
    let out = oci::run(
        std::process::Command::new("go")
            .args(["mod", "download", "-json", &module])
            .env("GOPROXY", "off")
            .env("GOFLAGS", "-mod=mod"),
    );
    let info: Value = serde_json::from_str(&out).expect("go mod download -json prints JSON");
    PathBuf::from(info["Dir"].as_str().unwrap_or_else(|| {
        panic!("{module} is not in the Go module cache (cargo xtask setup puts it there): {info}")
    }))
}

/// A webhook configuration of the module's, with each webhook's Service
/// (`webhook-service` in the operator's namespace, which does not exist here: the operator runs
/// beside the cluster) replaced by the operator's address on 127.0.0.1 with the cluster's CA,
/// which signed its certificate; named apart, as the chart prefixes them.
fn served_here(mut configuration: Value, ca: &[u8]) -> Value {
    let name = configuration["metadata"]["name"]
        .as_str()
        .expect("a webhook configuration has a name")
        .to_owned();
    configuration["metadata"]["name"] = json!(format!("spin-operator-{name}"));
    for webhook in configuration["webhooks"]
        .as_array_mut()
        .expect("a webhook configuration has webhooks")
    {
        let path = webhook["clientConfig"]["service"]["path"]
            .as_str()
            .expect("each webhook names its path")
            .to_owned();
        webhook["clientConfig"] = json!({
            "url": format!("https://127.0.0.1:{WEBHOOK_PORT}{path}"),
            "caBundle": base64::engine::general_purpose::STANDARD.encode(ca),
        });
    }
    configuration
}

/// A file of the module.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}
