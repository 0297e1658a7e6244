//! The Kubernetes manifests of `deploy/` on a live cluster: the tests' own single-node Kubernetes
//! ([`Cluster`]), built from its Go modules at the pinned versions, with the native image the
//! deploy path builds, pushed to the cluster's registry. The manifest is applied as a user
//! applies it (`sed` the registry in, `kubectl apply -f -`), then each promise `docs/deploy.md`
//! makes is checked in turn, on the one cluster:
//!
//! 1. it comes up, Ready through its own probes, and its Service passes the conformance table;
//! 2. a rolling update under load loses no request, and the old pods drain and exit 0;
//! 3. a pod deleted under load loses none either;
//! 4. the PodDisruptionBudget refuses to let a drain take both replicas;
//! 5. the HorizontalPodAutoscaler scales up under load, and back down once idle;
//! 6. a pod at its connection cap goes unready, leaves the Service, is not restarted, and comes
//!    back once its load goes;
//! 7. `deploy/spinkube/deployment.yaml`, the SpinKube image on the Spin shim's RuntimeClass,
//!    serves the table and rolls under load losing nothing.
//!
//! Then the cluster is dropped, and nothing of it may be left on the machine.
//!
//! Every request goes to 127.0.0.1: the Service through a NodePort on loopback, a single pod
//! through `kubectl port-forward`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use support::client::{self, Protocol};
use support::cluster::{self, Cluster, Kubectl, NODE, NodePort, PortForward};
use support::conformance;
use support::host::{Host, assert_clean};
use support::load::{Connections, Load, Tally};
use support::oci;
use support::process::{Process, raise_open_file_limit};
use support::tools::root;

/// The manifest's delay, the default.
const DELAY: Duration = hello_edge::Delay::DEFAULT.as_duration();

/// A Deployment of a manifest in `deploy/`, and its Service, named alike.
struct App {
    /// The Deployment's and the Service's name.
    name: &'static str,
    /// Its pods' selector, as a `kubectl --selector`.
    selector: &'static str,
    /// Its manifest.
    manifest: &'static str,
}

/// The native server: its Deployment, Service, HPA and PDB are all named so.
const NATIVE: App = App {
    name: "hello-edge",
    selector: "app.kubernetes.io/name=hello-edge",
    manifest: "deploy/kubernetes/hello-edge.yaml",
};

/// The SpinKube image as a plain Deployment on the Spin shim's RuntimeClass.
const SPIN: App = App {
    name: "hello-edge-spin",
    selector: "app.kubernetes.io/name=hello-edge-spin",
    manifest: "deploy/spinkube/deployment.yaml",
};

/// What containerd 2 logs when the Spin shim 0.24.0 fails its `-info` query.
const SHIM_INFO_QUERY: &str = "failed to query deprecated runtime-allow-mounts annotation";

/// The RuntimeClass spin-operator's samples install for the shim, whose handler the cluster's
/// containerd names `spin`.
const SPIN_RUNTIME_CLASS: &str = "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\n\
                                  metadata:\n  name: wasmtime-spin-v2\nhandler: spin\n";

/// The clients of the steady load: each sends a request, waits the delay for its answer, and
/// sends the next.
const CLIENTS: usize = 200;

/// The clients that raise the pods' CPU past the HPA's target (70% of a 100m request each):
/// kept alive, each sends a request and waits the delay, about 2 requests a second. 1,600 held
/// the two pods at 64-74%, under the target's 77% (70% and the HPA's 10% tolerance).
const SCALING_CLIENTS: usize = 3_000;

/// What the run measured, printed at its end for the note.
#[derive(Debug, Default)]
struct Figures(Vec<String>);

impl Figures {
    fn say(&mut self, line: String) {
        eprintln!("cluster: {line}");
        self.0.push(line);
    }
}

/// The manifests of `deploy/kubernetes` do on a live cluster what docs/deploy.md says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_manifests_hold_on_a_live_cluster() {
    // The load's connections and the port-forwards' are descriptors of this process.
    raise_open_file_limit(12_000);
    let mut figures = Figures::default();
    let cluster = Cluster::start().await;
    figures.say(format!("the cluster was ready in {:?}", cluster.ready_in));
    let footprint = cluster.footprint();
    let kubectl = cluster.kubectl().clone();

    let work = root().join("target/cluster-work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let registry = cluster.registry().host();
    oci::push_native_image(&work, &registry);

    let service = it_comes_up(&cluster, &registry, &mut figures).await;
    a_rolling_update_loses_nothing(&kubectl, &service, &mut figures).await;
    a_pod_deleted_under_load_loses_nothing(&kubectl, &service, &mut figures).await;
    the_budget_holds_a_drain(&kubectl, &service, &mut figures).await;
    the_autoscaler_scales(&kubectl, &service, &mut figures).await;
    a_full_pod_is_unready_but_not_restarted(&kubectl, &service, &mut figures).await;
    the_spin_shim_deployment_serves_and_rolls(&cluster, &work, &mut figures).await;

    drop(service);
    drop(cluster);
    let left = footprint.left();
    assert!(left.is_empty(), "the cluster left behind: {left:?}");
    eprintln!("cluster figures:\n{}", figures.0.join("\n"));
}

/// The Deployment becomes Available with both replicas Ready through the manifest's readiness
/// probe, and the Service answers the conformance table on its NodePort, from both pods.
async fn it_comes_up(cluster: &Cluster, registry: &str, figures: &mut Figures) -> NodePort {
    let kubectl = cluster.kubectl();
    let applied = Instant::now();
    apply_as_a_user(kubectl, registry, &NATIVE);
    rollout_status(kubectl, &NATIVE).await;
    kubectl
        .ok(&[
            "wait",
            "--for=condition=Available",
            &format!("deployment/{}", NATIVE.name),
            "--timeout=120s",
        ])
        .await;
    // The Deployment starts at one replica; the HPA makes it two at its first sync.
    wait_for_ready_pods(kubectl, &NATIVE, 2, Duration::from_secs(60)).await;
    figures.say(format!(
        "applied to Available, 2 pods Ready, in {:?}",
        applied.elapsed()
    ));
    let pods = pods(kubectl, &NATIVE).await;
    assert_eq!(pods.len(), 2, "the HPA's minimum: {pods:?}");
    for pod in pods.values() {
        assert!(pod.ready, "{pod:?}");
        assert_eq!(pod.restarts, 0, "{pod:?}");
    }

    let service = NodePort::expose(kubectl, NATIVE.name).await;
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let report = conformance::run_on(&service, protocol, DELAY).await;
        assert!(
            report.is_empty(),
            "{} over {protocol}:\n{report}",
            service.label()
        );
    }

    // Both replicas serve: each one's own count of requests rises as the Service is asked.
    let before = requests_per_pod(kubectl).await;
    for _ in 0..40 {
        let answer = client::get(service.addr(), "/hello/both").await.unwrap();
        assert_eq!(answer.status, 200);
    }
    let after = requests_per_pod(kubectl).await;
    for (pod, count) in &after {
        let rose = count - before.get(pod).copied().unwrap_or_default();
        assert!(
            rose > 0.0,
            "pod {pod} answered none of 40: {before:?} {after:?}"
        );
    }
    figures.say(format!(
        "the Service passed the conformance table on NodePort {}, both pods serving",
        service.port()
    ));
    service
}

/// A steady load runs while the Deployment rolls: every request is answered 200, and the old
/// pods drain and exit 0 (the preStop pause keeps them serving until kube-proxy has dropped
/// them, then SIGTERM starts the drain).
async fn a_rolling_update_loses_nothing(
    kubectl: &Kubectl,
    service: &NodePort,
    figures: &mut Figures,
) {
    let (took, tally) = roll_under_load(kubectl, &NATIVE, service).await;
    figures.say(format!(
        "rolling update under {CLIENTS} clients (a connection per request): rolled in {took:?}; {tally}"
    ));
}

/// Rolls `app`'s Deployment (an annotation on its pods) while [`CLIENTS`] clients send
/// `/hello/...` through `service`, each on a new connection; asserts the rollout completed, no
/// request was lost and every old pod's container exited 0. How long the rollout took, and what
/// the clients saw.
async fn roll_under_load(kubectl: &Kubectl, app: &App, service: &NodePort) -> (Duration, Tally) {
    let old: BTreeSet<String> = pods(kubectl, app).await.into_keys().collect();
    let watch = PodWatch::start(kubectl, app);
    let load = Load::start(
        service.addr(),
        "/hello/rollout",
        CLIENTS,
        Connections::PerRequest,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rolled = Instant::now();
    let patch =
        r#"{"spec":{"template":{"metadata":{"annotations":{"hello-edge.test/rollout":"1"}}}}}"#;
    kubectl
        .ok(&["patch", "deployment", app.name, "--type=merge", "-p", patch])
        .await;
    rollout_status(kubectl, app).await;
    let took = rolled.elapsed();
    // The last old pod's drain, and a little steady load after it.
    watch.until_gone(&old, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tally = load.stop().await;
    assert_nothing_lost(&format!("{}'s rolling update", app.name), &tally);
    let exits = watch.exit_codes();
    for pod in &old {
        assert_eq!(
            exits.get(pod).map(String::as_str),
            Some("0"),
            "old pod {pod} did not exit 0 after its drain: {exits:?}"
        );
    }
    let new = pods(kubectl, app).await;
    assert!(new.keys().all(|pod| !old.contains(pod)), "{new:?}");
    (took, tally)
}

/// The SpinKube image on the Spin shim through the cluster's CRI, without the operator: the
/// RuntimeClass spin-operator's samples install, and `deploy/spinkube/deployment.yaml` (the
/// plain Deployment with its preStop pause) applied as a user does. Its pods become Ready, its
/// Service passes the conformance table, a rolling update under load loses nothing, and the
/// shim's log (in containerd's) holds no guest failure.
async fn the_spin_shim_deployment_serves_and_rolls(
    cluster: &Cluster,
    work: &Path,
    figures: &mut Figures,
) {
    let kubectl = cluster.kubectl();
    let registry = cluster.registry().host();
    oci::push_spin_image(work, &registry);
    kubectl.apply(SPIN_RUNTIME_CLASS).await;
    let mark = cluster.containerd_log().mark();
    let applied = Instant::now();
    apply_as_a_user(kubectl, &registry, &SPIN);
    rollout_status(kubectl, &SPIN).await;
    wait_for_ready_pods(kubectl, &SPIN, 2, Duration::from_secs(120)).await;
    let ready_in = applied.elapsed();
    let service = NodePort::expose(kubectl, SPIN.name).await;
    let report = conformance::run_on(&service, Protocol::Http1, DELAY).await;
    assert!(report.is_empty(), "{}:\n{report}", service.label());
    let (took, tally) = roll_under_load(kubectl, &SPIN, &service).await;
    // containerd 2 asks each runtime for its info (`SHIM -info`, for the deprecated
    // runtime-allow-mounts annotation); shim 0.24.0 panics there, finding no log pipe, and
    // containerd logs that and goes on. Not the guest's, nor the running shim's: left out.
    let log: String = cluster
        .containerd_log()
        .since(mark)
        .lines()
        .filter(|line| !line.contains(SHIM_INFO_QUERY))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_clean("the Spin shim, in containerd's log", &log);
    figures.say(format!(
        "the SpinKube image on the shim's RuntimeClass: 2 pods Ready {ready_in:?} after the apply, \
         the table passed; rolling update under {CLIENTS} clients: rolled in {took:?}; {tally}"
    ));
}

/// `kubectl delete pod` on one replica under load: the pod drains as in a rollout and the
/// ReplicaSet replaces it, and the clients see every request answered.
async fn a_pod_deleted_under_load_loses_nothing(
    kubectl: &Kubectl,
    service: &NodePort,
    figures: &mut Figures,
) {
    let before = pods(kubectl, &NATIVE).await;
    let victim = before.keys().next().unwrap().clone();
    let watch = PodWatch::start(kubectl, &NATIVE);
    let load = Load::start(
        service.addr(),
        "/hello/delete",
        CLIENTS,
        Connections::PerRequest,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    kubectl
        .ok(&["delete", "pod", &victim, "--wait=false"])
        .await;
    watch
        .until_gone(&BTreeSet::from([victim.clone()]), Duration::from_secs(60))
        .await;
    wait_for_ready_pods(kubectl, &NATIVE, 2, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tally = load.stop().await;
    figures.say(format!("a pod deleted under {CLIENTS} clients: {tally}"));
    assert_nothing_lost("the pod's deletion", &tally);
    assert_eq!(
        watch.exit_codes().get(&victim).map(String::as_str),
        Some("0"),
        "the deleted pod did not exit 0"
    );
}

/// `kubectl drain` the node: the budget (`minAvailable: 1`) lets one replica go and refuses the
/// other, whose replacement cannot be scheduled on the cordoned node; the Service answers every
/// request meanwhile. Uncordoned, the Deployment is whole again.
async fn the_budget_holds_a_drain(kubectl: &Kubectl, service: &NodePort, figures: &mut Figures) {
    let before: BTreeSet<String> = pods(kubectl, &NATIVE).await.into_keys().collect();
    let load = Load::start(service.addr(), "/hello/drain", 50, Connections::PerRequest);
    let drain = kubectl
        .run(&[
            "drain",
            NODE,
            "--ignore-daemonsets",
            "--pod-selector",
            NATIVE.selector,
            "--timeout=25s",
        ])
        .await;
    let after = pods(kubectl, &NATIVE).await;
    let tally = load.stop().await;
    kubectl.ok(&["uncordon", NODE]).await;
    let refused = drain.expect_err("the drain evicted both replicas");
    assert!(
        refused.contains("disruption budget"),
        "the drain failed for another reason: {refused}"
    );
    let left: Vec<&String> = before
        .iter()
        .filter(|pod| after.contains_key(*pod))
        .collect();
    let serving: Vec<&Pod> = after.values().filter(|pod| pod.ready).collect();
    assert_eq!(left.len(), 1, "one replica evicted, one kept: {after:?}");
    assert_eq!(serving.len(), 1, "{after:?}");
    assert_nothing_lost("the drain", &tally);
    wait_for_ready_pods(kubectl, &NATIVE, 2, Duration::from_secs(60)).await;
    figures.say(format!(
        "drain: the budget refused the second eviction (\"{}\"); 50 clients meanwhile: {tally}",
        refused
            .lines()
            .find(|line| line.contains("disruption budget"))
            .unwrap_or_default()
            .trim()
    ));
}

/// Load that raises the pods' CPU above the HPA's target scales the Deployment past 2
/// replicas; idle again, it goes back to 2.
async fn the_autoscaler_scales(kubectl: &Kubectl, service: &NodePort, figures: &mut Figures) {
    let load = Load::start(
        service.addr(),
        "/hello/scale",
        SCALING_CLIENTS,
        Connections::KeptAlive,
    );
    let started = Instant::now();
    let mut most = 2;
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_secs(150) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let hpa = kubectl.get(&["hpa", NATIVE.name]).await;
        let replicas = hpa["status"]["desiredReplicas"].as_u64().unwrap_or(0);
        let cpu = hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
            .as_u64();
        seen.push(format!("{:?}: {cpu:?}% → {replicas}", started.elapsed()));
        most = most.max(replicas);
        if replicas > 2 {
            break;
        }
    }
    let up = started.elapsed();
    let tally = load.stop().await;
    assert!(
        most > 2,
        "the HPA did not scale past 2 within 150 s: {seen:?}; the load: {tally}"
    );
    let idle = Instant::now();
    let mut replicas = most;
    while idle.elapsed() < cluster::DOWNSCALE_STABILIZATION + Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let deployment = kubectl.get(&["deployment", NATIVE.name]).await;
        replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(0);
        if replicas == 2 {
            break;
        }
    }
    assert_eq!(replicas, 2, "the HPA did not scale back down once idle");
    wait_for_ready_pods(kubectl, &NATIVE, 2, Duration::from_secs(60)).await;
    figures.say(format!(
        "HPA: {most} replicas {up:?} into a load of {SCALING_CLIENTS} kept-alive clients ({tally}); back to 2 \
         {:?} after it stopped; utilisation seen: {seen:?}",
        idle.elapsed()
    ));
}

/// One pod held at its connection cap (lowered to 64 for the check, as an operator sets it):
/// its readiness probe, through the app's port, fails, so it leaves the Service's endpoints and
/// the Service's answers come from the other pod without waiting; its liveness probe, on the
/// admin port, keeps passing, so it is not restarted; when its load goes, it is Ready again.
async fn a_full_pod_is_unready_but_not_restarted(
    kubectl: &Kubectl,
    service: &NodePort,
    figures: &mut Figures,
) {
    const CAP: usize = 64;
    kubectl
        .ok(&[
            "set",
            "env",
            &format!("deployment/{}", NATIVE.name),
            &format!("HELLO_EDGE_MAX_CONNECTIONS={CAP}"),
        ])
        .await;
    rollout_status(kubectl, &NATIVE).await;
    wait_for_ready_pods(kubectl, &NATIVE, 2, Duration::from_secs(60)).await;
    let pods_now = pods(kubectl, &NATIVE).await;
    let (full, pod) = pods_now.iter().next().unwrap();
    let (full, container) = (full.clone(), pod.container.clone());

    let admin = PortForward::open(kubectl, &format!("pod/{full}"), 9090).await;
    let forward = PortForward::open(kubectl, &format!("pod/{full}"), 8000).await;
    let load = Load::start(forward.addr, "/hello/full", CAP * 2, Connections::KeptAlive);
    let started = Instant::now();
    // At its cap, as the server itself says.
    while gauge(admin.addr, "hello_edge_at_connection_cap").await != Some(1.0) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "pod {full} did not reach its cap of {CAP}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_pod(kubectl, &full, Duration::from_secs(60), |pod| !pod.ready).await;
    let unready_in = started.elapsed();
    // Out of the Service's endpoints, then the Service's answers do not wait for it.
    let full_ip = pods(kubectl, &NATIVE).await[&full].ip.clone();
    let out = Instant::now();
    while endpoint_ready(kubectl, &full_ip).await != Some(false) {
        assert!(
            out.elapsed() < Duration::from_secs(30),
            "the Service's endpoint {full_ip} stayed ready after pod {full} went unready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // kube-proxy writes its rules a moment after the endpoint changes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..20 {
        let answer = tokio::time::timeout(
            DELAY + Duration::from_secs(1),
            client::get(service.addr(), "/hello/other"),
        )
        .await
        .expect("an answer through the Service waited: it went to the full pod")
        .unwrap();
        assert_eq!(answer.status, 200);
    }
    // Past three liveness periods (3 × 10 s): the same container, and no liveness failure,
    // while the readiness probe failed.
    tokio::time::sleep(Duration::from_secs(35).saturating_sub(started.elapsed())).await;
    let held = started.elapsed();
    let pod = &pods(kubectl, &NATIVE).await[&full];
    assert_eq!(pod.restarts, 0, "the full pod was restarted: {pod:?}");
    assert_eq!(pod.container, container, "the full pod's container changed");
    let unhealthy = probe_failures(kubectl, &full).await;
    assert!(
        unhealthy
            .iter()
            .any(|m| m.starts_with("Readiness probe failed")),
        "{unhealthy:?}"
    );
    assert!(
        !unhealthy
            .iter()
            .any(|m| m.starts_with("Liveness probe failed")),
        "the full pod's liveness probe failed: {unhealthy:?}"
    );
    let tally = load.stop().await;
    drop((forward, admin));
    let unloaded = Instant::now();
    wait_for_pod(kubectl, &full, Duration::from_secs(60), |pod| pod.ready).await;
    let back_in = unloaded.elapsed();
    let pod = &pods(kubectl, &NATIVE).await[&full];
    assert_eq!(pod.restarts, 0, "{pod:?}");
    assert_eq!(pod.container, container);
    figures.say(format!(
        "a pod held at its cap ({CAP}, by {} kept-alive clients through a port-forward, the \
         ones past the cap waiting): unready in {unready_in:?}, held {held:?} with 0 restarts \
         and no liveness failure, Ready again {back_in:?} after the load went; its clients: \
         {tally}",
        CAP * 2
    ));
}

/// Whether the Service's endpoint at `ip` is ready, as its EndpointSlice says; `None` while it
/// has none there.
async fn endpoint_ready(kubectl: &Kubectl, ip: &str) -> Option<bool> {
    let slices = kubectl
        .get(&[
            "endpointslices",
            "--selector",
            &format!("kubernetes.io/service-name={}", NATIVE.name),
        ])
        .await;
    slices["items"]
        .as_array()?
        .iter()
        .flat_map(|slice| slice["endpoints"].as_array().cloned().unwrap_or_default())
        .find(|endpoint| endpoint["addresses"][0] == ip)?["conditions"]["ready"]
        .as_bool()
}

/// The messages of the kubelet's `Unhealthy` events for `pod`: its probes' failures.
async fn probe_failures(kubectl: &Kubectl, pod: &str) -> Vec<String> {
    let events = kubectl
        .get(&[
            "events",
            "--field-selector",
            &format!("involvedObject.name={pod},reason=Unhealthy"),
        ])
        .await;
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["message"].as_str().map(str::to_owned))
        .collect()
}

/// A gauge's value on a server's `/metrics`.
async fn gauge(admin: std::net::SocketAddr, name: &str) -> Option<f64> {
    let answer = client::get(admin, "/metrics").await.ok()?;
    answer
        .text()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `sed "s|REGISTRY/|$REGISTRY/|" deploy/kubernetes/hello-edge.yaml | kubectl apply -f -`, the
/// command docs/deploy.md gives, run by bash with the cluster's `kubectl` on the `PATH`.
fn apply_as_a_user(kubectl: &Kubectl, registry: &str, app: &App) {
    let path = std::env::join_paths(std::iter::once(cluster::bin_dir()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    oci::run(
        std::process::Command::new("bash")
            .arg("-c")
            .arg(
                "set -o pipefail; sed \"s|REGISTRY/|$REGISTRY/|\" \"$MANIFEST\" | kubectl apply -f -",
            )
            .current_dir(root())
            .env("MANIFEST", app.manifest)
            .env("REGISTRY", registry)
            .env("KUBECONFIG", kubectl.kubeconfig())
            .env("KUBECACHEDIR", kubectl.cache())
            .env("PATH", path),
    );
}

async fn rollout_status(kubectl: &Kubectl, app: &App) {
    kubectl
        .ok(&[
            "rollout",
            "status",
            &format!("deployment/{}", app.name),
            "--timeout=180s",
        ])
        .await;
}

fn assert_nothing_lost(during: &str, tally: &Tally) {
    assert!(tally.ok > 0, "{during}: no request was answered: {tally}");
    assert_eq!(tally.lost(), 0, "{during} lost requests: {tally}");
}

/// A pod of the Deployment, as its status says.
#[derive(Debug, Clone)]
struct Pod {
    ip: String,
    /// Its container's id: another after a restart.
    container: String,
    ready: bool,
    restarts: u64,
}

/// The Deployment's pods that are not terminating, by name.
async fn pods(kubectl: &Kubectl, app: &App) -> BTreeMap<String, Pod> {
    let list = kubectl.get(&["pods", "--selector", app.selector]).await;
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
            (
                pod["metadata"]["name"].as_str().unwrap().to_owned(),
                Pod {
                    ip: pod["status"]["podIP"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    container: pod["status"]["containerStatuses"][0]["containerID"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    ready: condition("Ready"),
                    restarts: pod["status"]["containerStatuses"][0]["restartCount"]
                        .as_u64()
                        .unwrap_or(0),
                },
            )
        })
        .collect()
}

async fn wait_for_ready_pods(kubectl: &Kubectl, app: &App, count: usize, timeout: Duration) {
    let started = Instant::now();
    loop {
        let pods = pods(kubectl, app).await;
        if pods.len() == count && pods.values().all(|pod| pod.ready) {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "not {count} Ready pods within {timeout:?}: {pods:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn wait_for_pod(
    kubectl: &Kubectl,
    name: &str,
    timeout: Duration,
    until: impl Fn(&Pod) -> bool,
) {
    let started = Instant::now();
    loop {
        let pods = pods(kubectl, &NATIVE).await;
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

/// Each pod's count of the `/hello/...` requests it answered (`hello_edge_requests_total`,
/// route `hello`, every status), read from its admin port through a port-forward: the probes'
/// `/healthz` are counted apart, under route `healthz`.
async fn requests_per_pod(kubectl: &Kubectl) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for pod in pods(kubectl, &NATIVE).await.into_keys() {
        let forward = PortForward::open(kubectl, &format!("pod/{pod}"), 9090).await;
        let answer = client::get(forward.addr, "/metrics").await.unwrap();
        let total: f64 = answer
            .text()
            .lines()
            .filter(|line| line.starts_with("hello_edge_requests_total{"))
            .filter(|line| line.contains("route=\"hello\""))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        counts.insert(pod, total);
    }
    counts
}

/// `kubectl get pods --watch`: every change to the Deployment's pods, a line each, so that a
/// pod's exit code is seen in the moment between its container's end and its removal.
struct PodWatch {
    process: Process,
}

impl PodWatch {
    fn start(kubectl: &Kubectl, app: &App) -> PodWatch {
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
    async fn until_gone(&self, pods: &BTreeSet<String>, timeout: Duration) {
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
    fn exit_codes(&self) -> BTreeMap<String, String> {
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
