//! A live single-node Kubernetes cluster of the tests' own, from the binaries `cargo xtask
//! setup` builds from their Go modules at pinned versions (`target/tools/go/bin`): etcd, the
//! apiserver, the controller-manager and the scheduler; containerd 2 with its CRI plugin and
//! runc; the kubelet on it, with a bridge CNI; kube-proxy in its iptables mode; metrics-server.
//! All run as root, with their data, sockets and state under `target/cluster`, and stop when
//! the [`Cluster`] is dropped, pass or fail; then one sweep ([`clean`]) removes what they made
//! elsewhere (mounts, cgroups, the bridge, iptables chains, the files no setting moves) and puts
//! back the kernel settings they changed. One cluster runs at a time on a machine.
//!
//! Traffic stays on this machine:
//!
//! * every control-plane port is on 127.0.0.1;
//! * the node's address is the pods' gateway on the cluster's own bridge ([`NODE_IP`]), which
//!   only the kubelet (for metrics-server and the apiserver) and metrics-server (for the
//!   aggregated API) listen on;
//! * a Service is reached through a NodePort that kube-proxy serves on 127.0.0.1 alone
//!   ([`NodePort`]); the pods' addresses are in network namespaces the kubelet made, and carry
//!   only its probes and kube-proxy's forwarding.
//!
//! No image can be pulled here, so the cluster starts with a registry on loopback, where its
//! pause image goes (`cluster/pause.c`, built static, FROM scratch) and where the tests push
//! theirs; containerd reaches it as a plain-HTTP mirror.

mod clean;
mod pki;
mod service;
mod spin_operator;
mod workload;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

pub use clean::Footprint;
pub use pki::{Client, Pki};
pub use service::NodePort;
pub use spin_operator::SpinOperator;
pub use workload::{
    App, Figures, Pod, PodWatch, Rollout, ScaleUp, assert_nothing_lost, endpoints, run_as_a_user,
};

use crate::catalogue::free_port;
use crate::client;
use crate::oci::{self, Registry};
use crate::process::Process;
use crate::tools::{self, root};

/// The one node's name.
pub const NODE: &str = "hello-edge-node";
/// The node's address: the gateway of the pods' bridge, which the cluster makes.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 245, 0, 1);
/// The pods' addresses, on the bridge.
pub const POD_SUBNET: &str = "10.245.0.0/24";
/// The Services' cluster addresses (never a target: a test reaches a Service by its NodePort).
pub const SERVICE_RANGE: &str = "10.97.0.0/16";
/// The first of them, the `kubernetes` Service's, which the apiserver's certificate names.
const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 1);
/// The bridge the pods' veths join.
const BRIDGE: &str = "hello-edge0";
/// The kubelet's cgroup root, under each hierarchy.
const CGROUP: &str = "hello-edge-cluster";
/// The lock that keeps one cluster at a time on the machine: the bridge, the cgroup and the
/// chains have machine-wide names.
const LOCK: &str = "/tmp/hello-edge-cluster.lock";
/// The controller-manager's wait before scaling down: its default is 5 minutes, which the tests
/// cannot spend; an HPA's `behavior.scaleDown.stabilizationWindowSeconds` sets it for one HPA.
pub const DOWNSCALE_STABILIZATION: Duration = Duration::from_secs(30);
/// The longest one `kubectl` may run.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the cluster has to come up.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// The cluster; stopped, and the machine cleaned, on drop.
pub struct Cluster {
    footprint: Footprint,
    /// Held while the cluster lives ([`LOCK`]).
    _lock: std::fs::File,
    pki: Pki,
    registry: Registry,
    kubectl: Kubectl,
    /// In the order they started.
    processes: Vec<Process>,
    /// How long it took to come up: from its certificates, registry and pause image to a Ready
    /// node and the metrics API.
    pub ready_in: Duration,
}

/// The ports the components listen on, each picked free.
#[derive(Debug, Clone, Copy)]
struct Ports {
    etcd: u16,
    etcd_peer: u16,
    etcd_metrics: u16,
    apiserver: u16,
    controller_manager: u16,
    scheduler: u16,
    kubelet: u16,
    kubelet_healthz: u16,
    proxy_healthz: u16,
    proxy_metrics: u16,
    metrics_server: u16,
}

impl Ports {
    fn pick() -> Ports {
        let port = || free_port(IpAddr::V4(Ipv4Addr::LOCALHOST));
        Ports {
            etcd: port(),
            etcd_peer: port(),
            etcd_metrics: port(),
            apiserver: port(),
            controller_manager: port(),
            scheduler: port(),
            kubelet: port(),
            kubelet_healthz: port(),
            proxy_healthz: port(),
            proxy_metrics: port(),
            metrics_server: port(),
        }
    }
}

impl Cluster {
    /// Cleans what an earlier run left, then starts every component in turn, each once the one
    /// before answers, and returns once the node is Ready and the metrics API is Available.
    pub async fn start() -> Cluster {
        assert!(
            Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists(),
            "the cluster's kubelet is set up for cgroup v1 (cgroupfs), which this machine does \
             not mount"
        );
        let lock = std::fs::File::create(LOCK).unwrap();
        lock.lock().unwrap();
        let dir = root().join("target/cluster");
        let footprint = Footprint {
            dir: dir.clone(),
            cgroup: CGROUP.into(),
            bridge: BRIDGE.into(),
            kube_proxy: bin("kube-proxy"),
        };
        footprint.clean();
        std::fs::create_dir_all(&dir).unwrap();
        let started = Instant::now();
        let ports = Ports::pick();
        let pki = Pki::write(&dir, NODE, NODE_IP, SERVICE_IP, ports.apiserver);
        let registry = Registry::start(&dir.join("registry"));
        push_pause_image(&dir, &registry.host());
        let kubectl = Kubectl {
            kubeconfig: pki.kubeconfig(Client::Admin),
            cache: dir.join("kubectl-cache"),
        };
        // From here on, whatever fails, the drop cleans the machine.
        let mut cluster = Cluster {
            footprint,
            _lock: lock,
            pki,
            registry,
            kubectl,
            processes: Vec::new(),
            ready_in: Duration::ZERO,
        };
        // kube-proxy sets route_localnet, the bridge plugin ip_forward, the kubelet its own.
        cluster.footprint.save_sysctls();
        // The bridge, with the node's address, before anything listens on it.
        run(&["ip", "link", "add", BRIDGE, "type", "bridge"]);
        run(&["ip", "addr", "add", &format!("{NODE_IP}/24"), "dev", BRIDGE]);
        run(&["ip", "link", "set", BRIDGE, "up"]);
        // The kubelet's cgroup root must exist in every hierarchy.
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            if hierarchy.path().join("cgroup.procs").exists() {
                std::fs::create_dir_all(hierarchy.path().join(CGROUP)).unwrap();
            }
        }
        cluster.start_control_plane(ports).await;
        cluster.start_node(ports).await;
        cluster.start_metrics_server(ports).await;
        cluster.ready_in = started.elapsed();
        cluster
    }

    /// The registry the node pulls from: push a test's images here.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Its folder, `target/cluster`.
    pub fn dir(&self) -> &Path {
        &self.footprint.dir
    }

    /// Its certificates and kubeconfigs.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// `kubectl`, as the cluster's admin.
    pub fn kubectl(&self) -> &Kubectl {
        &self.kubectl
    }

    /// containerd's log: its own lines and its shims' (the Spin shim's, with its guests').
    pub fn containerd_log(&self) -> crate::process::Log {
        self.processes
            .iter()
            .find(|process| process.name() == "containerd")
            .expect("containerd runs")
            .log()
            .clone()
    }

    /// The most memory the pod with `uid` has used, as its cgroup (v1) says, whatever its QoS
    /// class; `None` if it has no cgroup here.
    pub fn pod_memory_peak(&self, uid: &str) -> Option<u64> {
        let kubepods = Path::new("/sys/fs/cgroup/memory")
            .join(CGROUP)
            .join("kubepods");
        ["burstable", "besteffort", ""].iter().find_map(|qos| {
            let file = kubepods
                .join(qos)
                .join(format!("pod{uid}"))
                .join("memory.max_usage_in_bytes");
            std::fs::read_to_string(file).ok()?.trim().parse().ok()
        })
    }

    /// What the cluster made, by name, to check it is gone after a drop.
    pub fn footprint(&self) -> Footprint {
        self.footprint.clone()
    }

    async fn start_control_plane(&mut self, ports: Ports) {
        let dir = self.footprint.dir.clone();
        let mut etcd = Command::new(bin("etcd"));
        etcd.arg("--name")
            .arg("hello-edge")
            .arg("--data-dir")
            .arg(dir.join("etcd"))
            .arg("--listen-client-urls")
            .arg(loopback_url("http", ports.etcd))
            .arg("--advertise-client-urls")
            .arg(loopback_url("http", ports.etcd))
            .arg("--listen-peer-urls")
            .arg(loopback_url("http", ports.etcd_peer))
            .arg("--initial-advertise-peer-urls")
            .arg(loopback_url("http", ports.etcd_peer))
            .arg("--initial-cluster")
            .arg(format!(
                "hello-edge={}",
                loopback_url("http", ports.etcd_peer)
            ))
            .arg("--listen-metrics-urls")
            .arg(loopback_url("http", ports.etcd_metrics));
        let mut etcd = Process::spawn("etcd", &mut etcd);
        etcd.wait_for("that it serves", START_TIMEOUT, |line| {
            line.contains("ready to serve client requests")
                .then_some(())
        })
        .await;
        self.processes.push(etcd);

        let pki = self.pki.clone();
        let mut apiserver = Command::new(bin("kube-apiserver"));
        apiserver
            .arg(format!(
                "--etcd-servers={}",
                loopback_url("http", ports.etcd)
            ))
            .args([
                "--bind-address=127.0.0.1",
                &format!("--secure-port={}", ports.apiserver),
            ])
            .arg(format!("--advertise-address={NODE_IP}"))
            .arg(format!("--service-cluster-ip-range={SERVICE_RANGE}"))
            .args(files("--tls-cert-file", pki.file("apiserver.crt")))
            .args(files("--tls-private-key-file", pki.file("apiserver.key")))
            .args(files("--client-ca-file", pki.file("ca.crt")))
            .args(files(
                "--kubelet-client-certificate",
                pki.file("apiserver-kubelet-client.crt"),
            ))
            .args(files(
                "--kubelet-client-key",
                pki.file("apiserver-kubelet-client.key"),
            ))
            .args(files(
                "--service-account-key-file",
                pki.file("service-accounts.pub"),
            ))
            .args(files(
                "--service-account-signing-key-file",
                pki.file("service-accounts.key"),
            ))
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg("--authorization-mode=Node,RBAC")
            // The node's name resolves nowhere: reach its kubelet (logs, port-forward) by address.
            .arg("--kubelet-preferred-address-types=InternalIP")
            // The aggregation layer, for metrics.k8s.io: the front proxy's identity, and its
            // requests sent to the APIService's endpoint (the node), not its cluster address.
            .args(files("--requestheader-client-ca-file", pki.file("ca.crt")))
            .arg("--requestheader-allowed-names=front-proxy-client")
            .arg("--requestheader-username-headers=X-Remote-User")
            .arg("--requestheader-group-headers=X-Remote-Group")
            .arg("--requestheader-extra-headers-prefix=X-Remote-Extra-")
            .args(files(
                "--proxy-client-cert-file",
                pki.file("front-proxy-client.crt"),
            ))
            .args(files(
                "--proxy-client-key-file",
                pki.file("front-proxy-client.key"),
            ))
            .arg("--enable-aggregator-routing=true");
        self.processes
            .push(Process::spawn("kube-apiserver", &mut apiserver));
        self.until("the apiserver is ready", || async {
            self.kubectl.run(&["get", "--raw", "/readyz"]).await.is_ok()
        })
        .await;

        let kubeconfig = pki.kubeconfig(Client::ControllerManager);
        let mut controller_manager = Command::new(bin("kube-controller-manager"));
        controller_manager
            .args(controller_flags(&kubeconfig, ports.controller_manager))
            .args(files("--root-ca-file", pki.file("ca.crt")))
            .args(files(
                "--service-account-private-key-file",
                pki.file("service-accounts.key"),
            ))
            .arg("--use-service-account-credentials")
            .args(files(
                "--flex-volume-plugin-dir",
                dir.join("volume-plugins"),
            ))
            .arg(format!(
                "--horizontal-pod-autoscaler-downscale-stabilization={}s",
                DOWNSCALE_STABILIZATION.as_secs()
            ));
        self.processes.push(Process::spawn(
            "kube-controller-manager",
            &mut controller_manager,
        ));

        let kubeconfig = pki.kubeconfig(Client::Scheduler);
        let mut scheduler = Command::new(bin("kube-scheduler"));
        scheduler.args(controller_flags(&kubeconfig, ports.scheduler));
        self.processes
            .push(Process::spawn("kube-scheduler", &mut scheduler));
        // Pods are admitted only once their namespace's default service account exists.
        self.until("the default service account exists", || async {
            self.kubectl
                .run(&["get", "serviceaccount", "default"])
                .await
                .is_ok()
        })
        .await;
    }

    async fn start_node(&mut self, ports: Ports) {
        let dir = self.footprint.dir.clone();
        let registry = self.registry.host();
        let fill = |template: &str| {
            template
                .replace("@DIR@", &dir.to_string_lossy())
                .replace("@BIN@", &bin_dir().to_string_lossy())
                .replace("@REGISTRY@", &registry)
                .replace("@BRIDGE@", BRIDGE)
                .replace("@NODE_IP@", &NODE_IP.to_string())
                .replace("@POD_SUBNET@", POD_SUBNET)
                .replace("@CGROUP@", CGROUP)
                .replace("@KUBELET_PORT@", &ports.kubelet.to_string())
                .replace("@KUBELET_HEALTHZ_PORT@", &ports.kubelet_healthz.to_string())
        };
        let template = |name: &str| {
            let path = root().join("tests/support/cluster").join(name);
            fill(&std::fs::read_to_string(&path).unwrap())
        };

        let mirror = dir.join("containerd/certs.d").join(&registry);
        std::fs::create_dir_all(&mirror).unwrap();
        std::fs::write(
            mirror.join("hosts.toml"),
            format!(
                "server = \"http://{registry}\"\n\n[host.\"http://{registry}\"]\n  \
                 capabilities = [\"pull\", \"resolve\"]\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("containerd/config.toml"),
            template("containerd.toml"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("cni")).unwrap();
        std::fs::write(
            dir.join("cni/10-hello-edge.conflist"),
            template("cni.conflist"),
        )
        .unwrap();
        // The Go tools, then the pinned ones (the Spin shim), then the machine's.
        let path = std::env::join_paths([bin_dir(), tools::tools_dir()].into_iter().chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        let mut containerd = Command::new(bin("containerd"));
        containerd
            .arg("--config")
            .arg(dir.join("containerd/config.toml"))
            .env("PATH", &path)
            // The Spin shim logs at RUST_LOG, into containerd's log.
            .env("RUST_LOG", "info");
        let mut containerd = Process::spawn("containerd", &mut containerd);
        containerd
            .wait_for("that it serves", START_TIMEOUT, |line| {
                line.contains("containerd successfully booted")
                    .then_some(())
            })
            .await;
        self.processes.push(containerd);

        std::fs::create_dir_all(dir.join("kubelet")).unwrap();
        std::fs::write(dir.join("kubelet/config.yaml"), template("kubelet.yaml")).unwrap();
        let mut kubelet = Command::new(bin("kubelet"));
        kubelet
            .args(files("--config", dir.join("kubelet/config.yaml")))
            .args(files("--kubeconfig", self.pki.kubeconfig(Client::Kubelet)))
            .args(files("--root-dir", dir.join("kubelet/root")))
            .args(files("--cert-dir", dir.join("kubelet/pki")))
            .arg(format!("--hostname-override={NODE}"))
            .arg(format!("--node-ip={NODE_IP}"))
            .env("PATH", &path);
        self.processes.push(Process::spawn("kubelet", &mut kubelet));
        self.until("the node is Ready", || async {
            self.kubectl
                .run(&[
                    "get",
                    "node",
                    NODE,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ])
                .await
                .is_ok_and(|status| status == "True")
        })
        .await;

        let mut proxy = Command::new(bin("kube-proxy"));
        proxy
            .args(files("--kubeconfig", self.pki.kubeconfig(Client::Proxy)))
            .arg("--proxy-mode=iptables")
            // NodePorts on loopback alone (which needs route_localnet).
            .arg("--nodeport-addresses=127.0.0.1/32")
            .arg(format!("--cluster-cidr={POD_SUBNET}"))
            .arg(format!("--hostname-override={NODE}"))
            .arg(format!(
                "--healthz-bind-address=127.0.0.1:{}",
                ports.proxy_healthz
            ))
            .arg(format!(
                "--metrics-bind-address=127.0.0.1:{}",
                ports.proxy_metrics
            ))
            // Leave the machine's conntrack settings alone.
            .arg("--conntrack-max-per-core=0")
            .arg("--conntrack-tcp-timeout-established=0")
            .arg("--conntrack-tcp-timeout-close-wait=0");
        self.processes
            .push(Process::spawn("kube-proxy", &mut proxy));
        // Its health check answers 200 once it has written its rules.
        let healthz = SocketAddr::from((Ipv4Addr::LOCALHOST, ports.proxy_healthz));
        self.until("kube-proxy has synced its rules", || async {
            client::get(healthz, "/healthz")
                .await
                .is_ok_and(|answer| answer.status == 200)
        })
        .await;
    }

    async fn start_metrics_server(&mut self, ports: Ports) {
        let dir = self.footprint.dir.clone();
        let manifest =
            std::fs::read_to_string(root().join("tests/support/cluster/metrics-server.yaml"))
                .unwrap()
                .replace("@NODE_IP@", &NODE_IP.to_string())
                .replace("@METRICS_PORT@", &ports.metrics_server.to_string());
        self.kubectl.apply(&manifest).await;
        let kubeconfig = self.pki.kubeconfig(Client::MetricsServer);
        let mut metrics = Command::new(bin("metrics-server"));
        metrics
            .arg(format!("--secure-port={}", ports.metrics_server))
            .arg(format!("--bind-address={NODE_IP}"))
            .args(files("--cert-dir", dir.join("metrics-server")))
            .args(files("--kubeconfig", &kubeconfig))
            .args(files("--authentication-kubeconfig", &kubeconfig))
            .args(files("--authorization-kubeconfig", &kubeconfig))
            // The kubelet's serving certificate is its own, self-signed (no CSR approver here),
            // as in kind's and minikube's metrics-server.
            .arg("--kubelet-insecure-tls")
            .arg("--kubelet-preferred-address-types=InternalIP")
            .arg("--kubelet-use-node-status-port")
            .arg("--metric-resolution=15s");
        self.processes
            .push(Process::spawn("metrics-server", &mut metrics));
        self.kubectl
            .ok(&[
                "wait",
                "--for=condition=Available",
                "apiservice/v1beta1.metrics.k8s.io",
                "--timeout=120s",
            ])
            .await;
    }

    /// Polls `check` every 200 ms until it says yes; panics, with the components' logs' last
    /// lines, after [`START_TIMEOUT`] or if a component stops.
    async fn until<F: Future<Output = bool>>(&self, what: &str, check: impl Fn() -> F) {
        let started = Instant::now();
        while !check().await {
            if started.elapsed() > START_TIMEOUT {
                panic!("{what}: not within {START_TIMEOUT:?}\n{}", self.tails());
            }
            let exited = self
                .processes
                .iter()
                .find(|process| process.pid().is_none_or(clean::has_exited));
            if let Some(process) = exited {
                panic!("{what}: {} exited first\n{}", process.name(), self.tails());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last lines of every component's log, for a failure message.
    fn tails(&self) -> String {
        let mut out = String::new();
        for process in &self.processes {
            let text = process.log().text();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {} (last 30 lines)\n", process.name()));
            for line in &lines[lines.len().saturating_sub(30)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The pods first, through the CRI as the kubelet would remove them (each sandbox's
        // network torn down by its CNI plugins), while containerd runs; then the rest.
        for process in self.processes.iter().rev() {
            if process.name() == "containerd" {
                break;
            }
            if let Some(pid) = process.pid() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let crictl = std::process::Command::new(bin_dir().join("crictl"))
            .arg("--runtime-endpoint")
            .arg(format!(
                "unix://{}",
                self.footprint
                    .dir
                    .join("containerd/containerd.sock")
                    .display()
            ))
            .args(["--timeout", "30s", "rmp", "--all", "--force"])
            .output();
        // The sweep below removes what this could not, the hard way.
        match &crictl {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "crictl rmp: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(err) => eprintln!("crictl rmp: {err}"),
        }
        self.processes.clear();
        let cleaned = std::panic::catch_unwind(|| self.footprint.clean());
        if let Err(panic) = cleaned {
            if std::thread::panicking() {
                eprintln!("the cluster's cleanup failed too");
            } else {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// `kubectl` as one client of the cluster, with its discovery cache under the cluster's folder.
#[derive(Debug, Clone)]
pub struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    /// The admin's kubeconfig, for a `kubectl` run as a user runs it.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Its discovery cache, for the same.
    pub fn cache(&self) -> &Path {
        &self.cache
    }

    /// `kubectl` with the kubeconfig and cache set; add the arguments.
    pub fn command(&self) -> Command {
        let mut command = Command::new(bin("kubectl"));
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .kill_on_drop(true);
        command
    }

    /// Runs `kubectl ARGS`: its output, or what it said when it failed.
    pub async fn run(&self, args: &[&str]) -> Result<String, String> {
        self.run_with(args, None).await
    }

    /// Runs `kubectl ARGS`, panicking with what it said if it fails.
    pub async fn ok(&self, args: &[&str]) -> String {
        self.run(args)
            .await
            .unwrap_or_else(|err| panic!("kubectl {}: {err}", args.join(" ")))
    }

    /// `kubectl apply -f -` with `manifest`, as a user applies one.
    pub async fn apply(&self, manifest: &str) -> String {
        self.run_with_input(&["apply", "-f", "-"], manifest)
            .await
            .unwrap_or_else(|err| panic!("kubectl apply: {err}\n{manifest}"))
    }

    /// Runs `kubectl ARGS` with `input` on its standard input: its output, or what it said
    /// when it failed.
    pub async fn run_with_input(&self, args: &[&str], input: &str) -> Result<String, String> {
        self.run_with(args, Some(input)).await
    }

    /// `kubectl get ARGS -o json`, parsed.
    pub async fn get(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&all).await).expect("kubectl prints JSON")
    }

    async fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut command = self.command();
        command
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|err| err.to_string())?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes())
                .await
                .map_err(|err| err.to_string())?;
        }
        // Longer than any wait the tests ask of kubectl itself: a wedged apiserver fails the
        // test rather than hanging it.
        let out = tokio::time::timeout(KUBECTL_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| format!("no answer within {KUBECTL_TIMEOUT:?}"))?
            .map_err(|err| err.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// Where `cargo xtask setup` links the tools it builds from Go modules.
pub fn bin_dir() -> PathBuf {
    root().join("target/tools/go/bin")
}

/// One of those tools; a failure saying how to build it if it is missing.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo xtask setup` builds it from its Go module",
        path.display()
    );
    path
}

/// The pause image: pause.c built static with musl-gcc, FROM scratch, pushed as
/// `REGISTRY/pause:hello-edge`.
fn push_pause_image(dir: &Path, registry: &str) {
    let context = dir.join("pause-image");
    std::fs::create_dir_all(&context).unwrap();
    let source = root().join("tests/support/cluster");
    oci::run(
        std::process::Command::new("musl-gcc")
            .args(["-static", "-Os", "-o"])
            .arg(context.join("pause"))
            .arg(source.join("pause.c")),
    );
    oci::build_and_push(
        &dir.join("buildah"),
        &context,
        &source.join("Containerfile.pause"),
        &format!("{registry}/pause:hello-edge"),
    );
}

/// What the controller-manager and the scheduler share: their one kubeconfig for the apiserver
/// and for checking their own clients, their secure port on loopback, and no leader election
/// (there is one of each).
fn controller_flags(kubeconfig: &Path, port: u16) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--kubeconfig",
        "--authentication-kubeconfig",
        "--authorization-kubeconfig",
    ]
    .iter()
    .flat_map(|flag| files(flag, kubeconfig))
    .collect();
    flags.push("--bind-address=127.0.0.1".into());
    flags.push(format!("--secure-port={port}"));
    flags.push("--leader-elect=false".into());
    flags
}

fn loopback_url(scheme: &str, port: u16) -> String {
    format!("{scheme}://127.0.0.1:{port}")
}

/// `--flag=PATH`.
fn files(flag: &str, path: impl AsRef<Path>) -> [String; 1] {
    [format!("{flag}={}", path.as_ref().display())]
}

fn run(args: &[&str]) {
    oci::run(std::process::Command::new(args[0]).args(&args[1..]));
}

/// A NodePort's address: 127.0.0.1, where kube-proxy serves it.
fn node_port_addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// `kubectl port-forward`: one pod's port on a loopback port of its own, for the checks of a
/// single pod (the load goes through a Service); closed on drop.
pub struct PortForward {
    /// Where it listens: 127.0.0.1.
    pub addr: SocketAddr,
    _process: Process,
}

impl PortForward {
    /// Forwards a port of `target` (`pod/NAME`) to a free loopback port.
    pub async fn open(kubectl: &Kubectl, target: &str, port: u16) -> PortForward {
        let mut command = kubectl.command();
        command.args([
            "port-forward",
            "--address",
            "127.0.0.1",
            target,
            &format!(":{port}"),
        ]);
        let mut process = Process::spawn(format!("kubectl port-forward {target}"), &mut command);
        // `Forwarding from 127.0.0.1:PORT -> 9090`
        let addr = process
            .wait_for("where it forwards from", Duration::from_secs(30), |line| {
                line.strip_prefix("Forwarding from ")?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .await;
        PortForward {
            addr,
            _process: process,
        }
    }
}
