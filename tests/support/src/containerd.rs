//! The piece of a Kubernetes node that runs containers: a containerd of the tests' own (Debian's
//! `containerd` and `runc`), started as root with its root, state and sockets under `target/`,
//! and the CRI plugin off; `ctr` drives it. Images are pulled from a registry by digest, as a
//! kubelet has containerd pull them, and run:
//!
//! * as a pod's container, from a runtime spec made as containerd's CRI plugin makes one for a
//!   kubelet ([`PodSpec`]): the image's entrypoint and environment, the manifest's environment
//!   over it, its user and group, no capabilities, no new privileges, a read-only root, its
//!   memory and CPU limits, and the open-file limit containerd itself has (the CRI plugin sets
//!   none: a node's containerd has `LimitNOFILE=infinity`). ctr 1.6 has no flag for a user or
//!   an rlimit, so the spec is given whole (`ctr run --config`), on the image's rootfs mounted
//!   writable, as containerd mounts it, and remounted read-only by runc;
//! * on a runtime shim (`ctr run --runtime io.containerd.spin.v2`), as a SpinKube node runs a
//!   SpinApp's image.
//!
//! Containers share the host's network here, on loopback: no CNI runs. containerd's own log
//! holds the shims' logs (they log at `RUST_LOG`, passed on from containerd's environment).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::host::{BoxFuture, Host, Stopped, wait_until_ready};
use crate::process::{Log, Process};
use crate::tools::{self, debian, root};

/// A containerd of the tests' own; its tasks killed and it stopped on drop.
pub struct Containerd {
    dir: PathBuf,
    socket: PathBuf,
    namespace: String,
    process: Process,
}

impl Containerd {
    /// Starts containerd with everything under `target/containerd-tests/PID`, the pinned tools'
    /// folder (where the Spin shim is) first on its `PATH`, and `RUST_LOG=info` for the shims.
    pub async fn start() -> Containerd {
        let dir = root()
            .join("target/containerd-tests")
            .join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("c.sock");
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{socket}\"\n[ttrpc]\n  address = \"{socket}.ttrpc\"\n\
             [debug]\n  address = \"{socket}.debug\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            socket = socket.display(),
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let path = std::env::join_paths(std::iter::once(tools::tools_dir()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        // The shims inherit containerd's open-file limit, and so do the containers.
        let _ = rlimit::increase_nofile_limit(u64::MAX);
        let mut command = Command::new(debian_path("containerd", "containerd"));
        command
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("PATH", path)
            .env("RUST_LOG", "info");
        let mut process = Process::spawn("containerd", &mut command);
        process
            .wait_for("that it serves", Duration::from_secs(30), |line| {
                line.contains("containerd successfully booted")
                    .then_some(())
            })
            .await;
        Containerd {
            dir,
            socket,
            // Its own namespace: runc's state (/run/containerd/runc/NAMESPACE) is shared with
            // any other containerd on the machine.
            namespace: format!("hello-edge-tests-{}", std::process::id()),
            process,
        }
    }

    /// containerd's log: its own lines and the shims'.
    pub fn log(&self) -> &Log {
        self.process.log()
    }

    /// `ctr` on this containerd, in the tests' namespace.
    pub fn ctr(&self) -> std::process::Command {
        let mut command = debian("ctr", "containerd");
        command
            .arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(&self.namespace);
        command
    }

    /// Runs `ctr ARGS` to success and returns its stdout.
    pub fn run_ctr(&self, args: &[&str]) -> String {
        crate::oci::run(self.ctr().args(args))
    }

    /// Pulls `reference` (`HOST/REPOSITORY@sha256:...`) from a plain-HTTP registry on loopback.
    pub fn pull(&self, reference: &str) {
        self.run_ctr(&["images", "pull", "--plain-http", reference]);
    }

    /// containerd's default runtime spec (`ctr oci spec`), which a pod's spec starts from.
    pub fn default_spec(&self) -> Value {
        serde_json::from_str(&self.run_ctr(&["oci", "spec"])).expect("ctr oci spec is JSON")
    }

    /// Runs `image` (pulled) as a pod's container from `spec` ([`PodSpec::spec`]): its rootfs
    /// is the image mounted writable for the container, and `ctr run` stays attached, its output
    /// the container's.
    pub async fn run_pod(&self, image: &str, spec: &PodSpec) -> Container<'_> {
        let id = container_id("pod");
        let rootfs = self.dir.join("rootfs").join(&id);
        std::fs::create_dir_all(&rootfs).unwrap();
        self.run_ctr(&["images", "mount", "--rw", image, rootfs.to_str().unwrap()]);
        let spec_file = self.dir.join(format!("{id}.json"));
        let cgroup = format!("/{}/{id}", self.namespace);
        let spec = spec.spec(self.default_spec(), &rootfs, &cgroup);
        std::fs::write(&spec_file, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
        let mut command = Command::from(self.ctr());
        command
            .args(["run", "--rm", "--config"])
            .arg(&spec_file)
            .arg(&id);
        Container::spawn(self, id, command, Some(rootfs), cgroup)
    }

    /// Runs `image` (pulled) on the runtime shim `runtime`, as ctr runs an image: on the host's
    /// network, with these environment variables and arguments.
    pub async fn run_on(
        &self,
        runtime: &str,
        image: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Container<'_> {
        let id = container_id("shim");
        let mut command = Command::from(self.ctr());
        command.args(["run", "--rm", "--net-host", "--runtime", runtime]);
        for (name, value) in env {
            command.arg("--env").arg(format!("{name}={value}"));
        }
        command.arg(image).arg(&id).args(args);
        let cgroup = format!("/{}/{id}", self.namespace);
        Container::spawn(self, id, command, None, cgroup)
    }
}

/// A fresh container name.
fn container_id(kind: &str) -> String {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    format!("{kind}-{}", RUNS.fetch_add(1, Ordering::Relaxed))
}

/// The path of a Debian tool, or a failure saying how to install it.
fn debian_path(name: &str, package: &str) -> PathBuf {
    let _ = debian(name, package);
    PathBuf::from(name)
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Containers are gone by now (each is removed on its own drop); stop the daemon.
        if self.process.is_running() {
            self.process.signal(nix::sys::signal::Signal::SIGTERM);
        }
        for _ in 0..100 {
            if !self.process.is_running() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Its images and snapshots: a run's, gone with it.
        let _ = std::fs::remove_dir_all(&self.dir);
        // runc removes each container's cgroup and state, not the namespace's above them.
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(hierarchy.path().join(&self.namespace));
        }
        let _ = std::fs::remove_dir(Path::new("/run/containerd/runc").join(&self.namespace));
    }
}

/// A container running attached to `ctr run`; killed and removed on drop. It is a [`Host`] once
/// it has said where it serves ([`Container::serving`]).
pub struct Container<'a> {
    containerd: &'a Containerd,
    id: String,
    process: Process,
    rootfs: Option<PathBuf>,
    cgroup: String,
    addr: Option<SocketAddr>,
}

impl<'a> Container<'a> {
    fn spawn(
        containerd: &'a Containerd,
        id: String,
        mut command: Command,
        rootfs: Option<PathBuf>,
        cgroup: String,
    ) -> Container<'a> {
        let process = Process::spawn(format!("container {id}"), &mut command);
        Container {
            containerd,
            id,
            process,
            rootfs,
            cgroup,
            addr: None,
        }
    }

    /// Waits until it says `Serving http://ADDR` (the native server and Spin both do) and answers
    /// `/healthz` from the core; then it serves at ADDR's port on loopback.
    pub async fn serving(&mut self) -> SocketAddr {
        let listens = self
            .wait_for("where it serves", Duration::from_secs(60), |line| {
                line.trim()
                    .strip_prefix("Serving http://")?
                    .parse::<SocketAddr>()
                    .ok()
            })
            .await;
        let addr = on_loopback(listens);
        wait_until_ready(addr, &mut self.process, Duration::from_secs(30)).await;
        self.addr = Some(addr);
        addr
    }

    /// Its name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What it has written (stdout and stderr, through `ctr run`).
    pub fn log(&self) -> &Log {
        self.process.log()
    }

    /// `ctr run`, to wait on.
    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }

    /// Waits for the line `find` picks from its output; panics with the output (and
    /// containerd's) if it exits first or `timeout` passes.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        find: impl Fn(&str) -> Option<T>,
    ) -> T {
        let containerd = self.containerd.log().clone();
        let log = self.process.log().clone();
        let found = tokio::select! {
            found = log.find(timeout, &find) => found,
            status = self.process.wait() => {
                panic!(
                    "container {} exited with {status} before {what}:\n{}\ncontainerd's log:\n{}",
                    self.id,
                    self.process.log().text(),
                    containerd.text()
                );
            }
        };
        found.unwrap_or_else(|| {
            panic!(
                "container {} did not say {what} within {timeout:?}:\n{}\ncontainerd's log:\n{}",
                self.id,
                self.process.log().text(),
                containerd.text()
            )
        })
    }

    /// The pid of its first process, on the host.
    pub fn task_pid(&self) -> u32 {
        let listed = self.containerd.run_ctr(&["tasks", "ls"]);
        listed
            .lines()
            .find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some(self.id.as_str())).then(|| words.next()?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no task {} in:\n{listed}", self.id))
    }

    /// A file of its cgroup (cgroup v1 memory controller): `memory.limit_in_bytes`, say.
    pub fn memory_cgroup_file(&self, name: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup/memory")
            .join(self.cgroup.trim_start_matches('/'))
            .join(name)
    }

    /// A future that sends its task `signal` with `ctr task kill` when awaited.
    pub fn kill_later(&self, signal: &str) -> impl Future<Output = ()> + Send + 'static {
        let mut command = self.containerd.ctr();
        command.args(["tasks", "kill", "--signal", signal, &self.id]);
        async move {
            let out = tokio::process::Command::from(command)
                .output()
                .await
                .expect("run ctr tasks kill");
            assert!(
                out.status.success(),
                "ctr tasks kill: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Sends `signal` (`SIGTERM`) with `ctr task kill`, waits up to `timeout` for the task to end
    /// and returns `ctr run`'s exit status, which is the task's.
    pub async fn signalled(&mut self, signal: &str, timeout: Duration) -> ExitStatus {
        self.kill_later(signal).await;
        self.exited(timeout).await
    }

    /// Waits up to `timeout` for the task to end; `ctr run`'s exit status, which is the task's.
    pub async fn exited(&mut self, timeout: Duration) -> ExitStatus {
        let containerd = self.containerd.log().clone();
        tokio::time::timeout(timeout, self.process.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "container {} did not exit within {timeout:?}:\n{}\ncontainerd's log:\n{}",
                    self.id,
                    self.process.log().text(),
                    containerd.text()
                )
            })
    }
}

impl Host for Container<'_> {
    fn label(&self) -> String {
        format!("container {}", self.id)
    }

    fn addr(&self) -> SocketAddr {
        self.addr
            .expect("the container serves (Container::serving)")
    }

    fn log(&self) -> Log {
        self.process.log().clone()
    }

    /// The task's first process (the server), on the host.
    fn pid(&self) -> Option<u32> {
        Some(self.task_pid())
    }

    /// SIGTERM with `ctr task kill`, as the kubelet sends it.
    fn stop(&mut self) -> BoxFuture<'_, Stopped> {
        Box::pin(async move {
            let status = self.signalled("SIGTERM", Duration::from_secs(30)).await;
            Stopped {
                status,
                log: self.process.log().text(),
            }
        })
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        if self.process.is_running() {
            let _ = self
                .containerd
                .ctr()
                .args(["tasks", "kill", "--signal", "SIGKILL", &self.id])
                .output();
            // `ctr run --rm` removes the container once its task has gone.
            for _ in 0..100 {
                if !self.process.is_running() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self
            .containerd
            .ctr()
            .args(["containers", "rm", &self.id])
            .output();
        if let Some(rootfs) = &self.rootfs {
            let _ = self
                .containerd
                .ctr()
                .args(["images", "unmount", "--rm"])
                .arg(rootfs)
                .output();
        }
    }
}

/// A pod's container as a kubelet asks for it, and the image it runs: what containerd's CRI
/// plugin turns into a runtime spec.
#[derive(Debug, Clone)]
pub struct PodSpec {
    /// The image's configuration (`config` of the OCI image config): `Entrypoint`, `Cmd`,
    /// `Env`, `WorkingDir`.
    pub image_config: Value,
    /// The container's environment, as the manifest gives it; over the image's.
    pub env: Vec<(String, String)>,
    /// The user and group it runs as (`runAsUser`, `runAsGroup`).
    pub user: (u32, u32),
    /// `readOnlyRootFilesystem`.
    pub read_only_root: bool,
    /// Capabilities it keeps of the runtime's defaults: none for `drop: ["ALL"]`.
    pub keep_capabilities: bool,
    /// `allowPrivilegeEscalation`.
    pub allow_privilege_escalation: bool,
    /// `resources.limits.memory`, in bytes.
    pub memory_limit: u64,
    /// `resources.limits.cpu`, in thousandths of a core.
    pub cpu_limit_millis: u64,
}

impl PodSpec {
    /// The runtime spec, from containerd's default one: as the CRI plugin makes it
    /// (`pkg/cri/server/container_create_linux.go`), but on the host's network (no CNI here).
    pub fn spec(&self, mut spec: Value, rootfs: &Path, cgroup: &str) -> Value {
        let strings = |value: &Value| -> Vec<String> {
            value
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let args: Vec<String> = strings(&self.image_config["Entrypoint"])
            .into_iter()
            .chain(strings(&self.image_config["Cmd"]))
            .collect();
        // The image's environment, then the container's: a name given twice takes the latter.
        let mut env: Vec<(String, String)> = strings(&self.image_config["Env"])
            .iter()
            .filter_map(|var| {
                let (name, value) = var.split_once('=')?;
                Some((name.to_owned(), value.to_owned()))
            })
            .collect();
        for (name, value) in &self.env {
            env.retain(|(existing, _)| existing != name);
            env.push((name.clone(), value.clone()));
        }
        let process = &mut spec["process"];
        process["args"] = json!(args);
        process["env"] = json!(
            env.iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
        );
        process["cwd"] = json!(
            self.image_config["WorkingDir"]
                .as_str()
                .filter(|d| !d.is_empty())
                .unwrap_or("/")
        );
        process["user"] = json!({"uid": self.user.0, "gid": self.user.1});
        process["noNewPrivileges"] = json!(!self.allow_privilege_escalation);
        if !self.keep_capabilities {
            process["capabilities"] = json!({});
        }
        // The CRI plugin removes the default rlimits: the container has containerd's.
        if let Some(process) = process.as_object_mut() {
            process.remove("rlimits");
        }
        spec["root"] = json!({"path": rootfs, "readonly": self.read_only_root});
        let linux = &mut spec["linux"];
        if let Some(namespaces) = linux["namespaces"].as_array_mut() {
            namespaces.retain(|ns| ns["type"] != "network");
        }
        linux["cgroupsPath"] = json!(cgroup);
        let period = 100_000;
        linux["resources"]["memory"] = json!({"limit": self.memory_limit});
        linux["resources"]["cpu"] = json!({
            "quota": self.cpu_limit_millis * period / 1000,
            "period": period,
        });
        spec
    }
}

/// A Kubernetes quantity of memory (`256Mi`, `1Gi`, `500M`, `1000`), in bytes.
pub fn memory_bytes(quantity: &str) -> u64 {
    let units = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(number) = quantity.strip_suffix(suffix) {
            return number.parse::<u64>().expect("a whole quantity") * factor;
        }
    }
    quantity.parse().expect("a whole number of bytes")
}

/// A Kubernetes quantity of CPU (`1`, `500m`), in thousandths of a core.
pub fn cpu_millis(quantity: &str) -> u64 {
    match quantity.strip_suffix('m') {
        Some(millis) => millis.parse().expect("whole millicores"),
        None => quantity.parse::<u64>().expect("whole cores") * 1000,
    }
}

/// Where a server in a container on the host's network is reached from here: loopback, at the
/// port of the address it listens on.
pub fn on_loopback(listens: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], listens.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_read_as_kubernetes_reads_them() {
        assert_eq!(memory_bytes("256Mi"), 256 << 20);
        assert_eq!(memory_bytes("1Gi"), 1 << 30);
        assert_eq!(memory_bytes("500M"), 500_000_000);
        assert_eq!(memory_bytes("4096"), 4096);
        assert_eq!(cpu_millis("1"), 1000);
        assert_eq!(cpu_millis("250m"), 250);
    }
}
