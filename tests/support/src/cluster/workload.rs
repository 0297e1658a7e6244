//! A workload of `deploy/` on the cluster, as its tests see it: the Deployment a manifest makes
//! (itself, or through an operator) and its pods, applied as a user applies it, watched as it
//! rolls, and what its clients saw meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Kubectl, NodePort, bin_dir};
use crate::host::Host;
use crate::load::{Connections, Load, Tally};
use crate::oci;
use crate::process::Process;
use crate::tools::root;

/// A manifest of `deploy/` and the Deployment it makes, whose Service is named alike.
#[derive(Debug, Clone, Copy)]
pub struct App {
    /// The Deployment's and the Service's name.
    pub name: &'static str,
    /// Its pods' selector, as a `kubectl --selector`.
    pub selector: &'static str,
    /// Its manifest, from the repository root.
    pub manifest: &'static str,
}

impl App {
    /// The command docs/deploy.md gives to apply it:
    /// `sed "s|REGISTRY/|$REGISTRY/|" MANIFEST | kubectl apply -f -`.
    pub fn apply_command(&self) -> String {
        format!(
            "sed \"s|REGISTRY/|$REGISTRY/|\" {} | kubectl apply -f -",
            self.manifest
        )
    }

    /// `kubectl patch` arguments that roll its Deployment, as any change to its pods' template
    /// does: an annotation.
    pub fn template_change(&self) -> [&'static str; 6] {
        [
            "patch",
            "deployment",
            self.name,
            "--type=merge",
            "-p",
            r#"{"spec":{"template":{"metadata":{"annotations":{"hello-edge.test/rollout":"1"}}}}}"#,
        ]
    }

    /// Runs [`App::apply_command`] as a user does, by bash from the repository root, with
    /// `REGISTRY` set and the cluster's `kubectl` on the `PATH`.
    pub fn apply_as_a_user(&self, kubectl: &Kubectl, registry: &str) {
        run_as_a_user(kubectl, registry, root(), &self.apply_command());
    }

    /// `kubectl rollout status` of its Deployment: returns once the rollout is complete.
    pub async fn rollout_status(&self, kubectl: &Kubectl) {
        kubectl
            .ok(&[
                "rollout",
                "status",
                &format!("deployment/{}", self.name),
                "--timeout=180s",
            ])
            .await;
    }

    /// Once a change to it: its rollout complete, `replicas` pods Ready within `timeout`, and
    /// its Service's endpoints (the Service is named as the app) those pods alone.
    pub async fn settle(&self, kubectl: &Kubectl, replicas: usize, timeout: Duration) {
        self.rollout_status(kubectl).await;
        self.wait_for_ready_pods(kubectl, replicas, timeout).await;
        self.wait_for_endpoints(kubectl, self.name).await;
    }

    /// Its pods that are not terminating, by name.
    pub async fn pods(&self, kubectl: &Kubectl) -> BTreeMap<String, Pod> {
        let list = kubectl.get(&["pods", "--selector", self.selector]).await;
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null())
            .map(|pod| {
                let condition = |kind: &str| {
                    pod["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == kind && c["status"] == "True")
                };
                let text =
                    |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
                (
                    text(&pod["metadata"]["name"]),
                    Pod {
                        ip: text(&pod["status"]["podIP"]),
                        container: text(&pod["status"]["containerStatuses"][0]["containerID"]),
                        ready: condition("Ready"),
                        restarts: pod["status"]["containerStatuses"][0]["restartCount"]
                            .as_u64()
                            .unwrap_or(0),
                    },
                )
            })
            .collect()
    }

    /// Waits until it has exactly `count` pods, all Ready.
    pub async fn wait_for_ready_pods(&self, kubectl: &Kubectl, count: usize, timeout: Duration) {
        let started = Instant::now();
        loop {
            let pods = self.pods(kubectl).await;
            if pods.len() == count && pods.values().all(|pod| pod.ready) {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "{}: not {count} Ready pods within {timeout:?}: {pods:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until its pod `name` is as `until` wants it.
    pub async fn wait_for_pod(
        &self,
        kubectl: &Kubectl,
        name: &str,
        timeout: Duration,
        until: impl Fn(&Pod) -> bool,
    ) {
        let started = Instant::now();
        loop {
            let pods = self.pods(kubectl).await;
            let pod = pods
                .get(name)
                .unwrap_or_else(|| panic!("pod {name} is gone: {pods:?}"));
            if until(pod) {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "pod {name} not as expected within {timeout:?}: {pod:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until the EndpointSlices of the Service `service` list its pods' addresses and no
    /// other, all ready; then gives kube-proxy 2 s to write its rules.
    pub async fn wait_for_endpoints(&self, kubectl: &Kubectl, service: &str) {
        let started = Instant::now();
        loop {
            let pods: BTreeSet<String> = self
                .pods(kubectl)
                .await
                .into_values()
                .map(|pod| pod.ip)
                .collect();
            let endpoints: BTreeSet<String> = endpoints(kubectl, service)
                .await
                .into_iter()
                .filter(|(_, ready)| *ready)
                .map(|(ip, _)| ip)
                .collect();
            if endpoints == pods {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "Service {service}'s ready endpoints {endpoints:?} are not its pods' {pods:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    /// Runs `kubectl CHANGE` (which must roll the Deployment) while `clients` clients send
    /// `/hello/rollout` through `service`, each on a new connection, and returns once the
    /// rollout is complete, every old pod is gone, the Service's endpoints are the new pods'
    /// and 2 s more have passed: what it took, what the clients saw and how each old pod's
    /// container exited. The caller asserts.
    pub async fn roll_under_load(
        &self,
        kubectl: &Kubectl,
        service: &NodePort,
        clients: usize,
        change: &[&str],
    ) -> Rollout {
        let old: BTreeSet<String> = self.pods(kubectl).await.into_keys().collect();
        let watch = PodWatch::start(kubectl, self);
        let load = Load::start(
            service.addr(),
            "/hello/rollout",
            clients,
            Connections::PerRequest,
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rolled = Instant::now();
        kubectl.ok(change).await;
        // The operator's Deployment changes a moment after the SpinApp does.
        let generation = Instant::now();
        while self.pods(kubectl).await.keys().all(|pod| old.contains(pod)) {
            assert!(
                generation.elapsed() < Duration::from_secs(60),
                "kubectl {} started no new pod within 60 s",
                change.join(" ")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.rollout_status(kubectl).await;
        let took = rolled.elapsed();
        // The last old pod's end, the Service's endpoints the new pods alone, and a little
        // steady load after that.
        watch.until_gone(&old, Duration::from_secs(60)).await;
        self.wait_for_endpoints(kubectl, service.name()).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let tally = load.stop().await;
        let exits = watch.exit_codes();
        let new = self.pods(kubectl).await;
        assert!(new.keys().all(|pod| !old.contains(pod)), "{new:?}");
        Rollout {
            took,
            tally,
            exits: old
                .into_iter()
                .map(|pod| {
                    let code = exits.get(&pod).cloned();
                    (pod, code)
                })
                .collect(),
        }
    }

    /// Sends `clients` kept-alive clients' `/hello/scale` through `service` until its
    /// HorizontalPodAutoscaler (named as the app) wants more than `from` replicas, or for
    /// 150 s; then stops the load. What the HPA wanted and saw meanwhile: the caller asserts.
    pub async fn scale_up_under_load(
        &self,
        kubectl: &Kubectl,
        service: &NodePort,
        clients: usize,
        from: u64,
    ) -> ScaleUp {
        let load = Load::start(
            service.addr(),
            "/hello/scale",
            clients,
            Connections::KeptAlive,
        );
        let started = Instant::now();
        let mut most = from;
        let mut seen = Vec::new();
        while started.elapsed() < Duration::from_secs(150) {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let hpa = kubectl.get(&["hpa", self.name]).await;
            let replicas = hpa["status"]["desiredReplicas"].as_u64().unwrap_or(0);
            let cpu =
                hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
                    .as_u64();
            seen.push(format!("{:?}: {cpu:?}% → {replicas}", started.elapsed()));
            most = most.max(replicas);
            if replicas > from {
                break;
            }
        }
        let took = started.elapsed();
        ScaleUp {
            most,
            took,
            seen,
            tally: load.stop().await,
        }
    }
}

/// What [`App::scale_up_under_load`] saw.
#[derive(Debug)]
pub struct ScaleUp {
    /// The most replicas the HPA wanted.
    pub most: u64,
    /// How long, from the load's start.
    pub took: Duration,
    /// Each look at the HPA: when, its CPU utilisation, the replicas it wanted.
    pub seen: Vec<String>,
    /// What the clients saw.
    pub tally: Tally,
}

/// The endpoints of the Service `service`, as its EndpointSlices list them: each address, and
/// whether it is ready.
pub async fn endpoints(kubectl: &Kubectl, service: &str) -> Vec<(String, bool)> {
    let slices = kubectl
        .get(&[
            "endpointslices",
            "--selector",
            &format!("kubernetes.io/service-name={service}"),
        ])
        .await;
    slices["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|slice| slice["endpoints"].as_array().cloned().unwrap_or_default())
        .filter_map(|endpoint| {
            let ip = endpoint["addresses"][0].as_str()?.to_owned();
            Some((ip, endpoint["conditions"]["ready"] == true))
        })
        .collect()
}

/// Runs `command` by bash in `dir` as a user types it, with `REGISTRY` set, the cluster's
/// kubeconfig, and its `kubectl` and the pinned tools (`spin`) on the `PATH`; what it printed.
pub fn run_as_a_user(kubectl: &Kubectl, registry: &str, dir: &Path, command: &str) -> String {
    oci::run(
        std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("set -o pipefail; {command}"))
            .current_dir(dir)
            .env("REGISTRY", registry)
            .envs(user_env(kubectl))
            // Spin's registry cache and data, in the cluster's folder rather than the user's.
            .env("XDG_CACHE_HOME", kubectl.cache().join("user-cache"))
            .env("SPIN_DATA_DIR", kubectl.cache().join("spin-data")),
    )
}

/// The environment a user's shell has for the cluster: its `kubectl` on the `PATH`, and the
/// cluster's kubeconfig.
fn user_env(kubectl: &Kubectl) -> Vec<(&'static str, std::ffi::OsString)> {
    let path = std::env::join_paths(
        std::iter::once(bin_dir())
            .chain(std::iter::once(crate::tools::tools_dir()))
            .chain(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            )),
    )
    .unwrap();
    vec![
        ("KUBECONFIG", kubectl.kubeconfig().into()),
        ("KUBECACHEDIR", kubectl.cache().into()),
        ("PATH", path),
    ]
}

/// A pod of a Deployment, as its status says.
#[derive(Debug, Clone)]
pub struct Pod {
    /// Its address on the pods' bridge.
    pub ip: String,
    /// Its container's id: another after a restart.
    pub container: String,
    /// Whether its Ready condition is true.
    pub ready: bool,
    /// Its container's restarts.
    pub restarts: u64,
}

/// A rollout under load, as [`App::roll_under_load`] saw it.
#[derive(Debug)]
pub struct Rollout {
    /// From the change to the rollout's completion.
    pub took: Duration,
    /// What the clients saw.
    pub tally: Tally,
    /// Each old pod's container's exit code, if one was seen.
    pub exits: BTreeMap<String, Option<String>>,
}

impl Rollout {
    /// Asserts that no request was lost and that every old pod's container exited 0: a drain.
    pub fn assert_drained(&self, what: &str) {
        assert_nothing_lost(what, &self.tally);
        for (pod, code) in &self.exits {
            assert_eq!(
                code.as_deref(),
                Some("0"),
                "{what}: old pod {pod} did not exit 0: {:?}",
                self.exits
            );
        }
    }
}

/// Asserts that requests were answered and none was lost.
pub fn assert_nothing_lost(during: &str, tally: &Tally) {
    assert!(tally.ok > 0, "{during}: no request was answered: {tally}");
    assert_eq!(tally.lost(), 0, "{during} lost requests: {tally}");
}

/// `kubectl get pods --watch`: every change to an app's pods, a line each, so that a pod's exit
/// code is seen in the moment between its container's end and its removal.
pub struct PodWatch {
    process: Process,
}

impl PodWatch {
    /// Starts watching `app`'s pods.
    pub fn start(kubectl: &Kubectl, app: &App) -> PodWatch {
        let mut command = kubectl.command();
        command.args([
            "get",
            "pods",
            "--selector",
            app.selector,
            "--watch",
            "--output-watch-events",
        ]);
        command.args([
            "-o",
            "jsonpath={.type} {.object.metadata.name} \
             exit={.object.status.containerStatuses[0].state.terminated.exitCode}{\"\\n\"}",
        ]);
        PodWatch {
            process: Process::spawn("kubectl get pods --watch", &mut command),
        }
    }

    /// Waits until every pod of `pods` has been deleted.
    pub async fn until_gone(&self, pods: &BTreeSet<String>, timeout: Duration) {
        let started = Instant::now();
        loop {
            let text = self.process.log().text();
            let deleted: BTreeSet<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("DELETED "))
                .filter_map(|rest| rest.split(' ').next())
                .collect();
            if pods.iter().all(|pod| deleted.contains(pod.as_str())) {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "{pods:?} not all deleted within {timeout:?}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Each pod's container's exit code, once it has one.
    pub fn exit_codes(&self) -> BTreeMap<String, String> {
        self.process
            .log()
            .text()
            .lines()
            .filter_map(|line| {
                let mut words = line.split(' ');
                let (_, pod, exit) = (words.next()?, words.next()?, words.next()?);
                let code = exit.strip_prefix("exit=")?;
                (!code.is_empty()).then(|| (pod.to_owned(), code.to_owned()))
            })
            .collect()
    }
}

/// What a run measured, printed as it goes and at its end, for the note.
#[derive(Debug)]
pub struct Figures {
    /// The test's name, before each line.
    name: &'static str,
    lines: Vec<String>,
}

impl Figures {
    /// Figures printed as `NAME: line`.
    pub fn new(name: &'static str) -> Figures {
        Figures {
            name,
            lines: Vec::new(),
        }
    }

    /// Prints a figure and keeps it.
    pub fn say(&mut self, line: String) {
        eprintln!("{}: {line}", self.name);
        self.lines.push(line);
    }

    /// Prints them all again.
    pub fn print(&self) {
        eprintln!("{} figures:\n{}", self.name, self.lines.join("\n"));
    }
}
