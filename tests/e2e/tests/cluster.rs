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
//! 7. with a collector named in the Deployment, as its comment says, each request through the
//!    Service with a `traceparent` leaves a span in the collector (Jaeger, taking OTLP on the
//!    pods' gateway), naming one of the pods.
//!
//! `deploy/spinkube/` has its own test on a cluster of its own, `spinkube.rs`.
//!
//! Then the cluster is dropped, and nothing of it may be left on the machine.
//!
//! Every request goes to 127.0.0.1: the Service through a NodePort on loopback, a single pod
//! through `kubectl port-forward`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::client::{self, Protocol};
use support::cluster::{
    self, App, Cluster, Figures, Kubectl, NODE, NODE_IP, NodePort, Pod, PodWatch, PortForward,
    ScaleUp, assert_nothing_lost,
};
use support::conformance;
use support::host::Host;
use support::jaeger::{Jaeger, PARENT_ID, parents, traceparent};
use support::load::{Connections, Load};
use support::oci;
use support::process::raise_open_file_limit;
use support::tools::root;

/// The manifest's delay, the default.
const DELAY: Duration = hello_edge::Delay::DEFAULT.as_duration();

/// The native server: its Deployment, Service, HPA and PDB are all named so.
const NATIVE: App = App {
    name: "hello-edge",
    selector: "app.kubernetes.io/name=hello-edge",
    manifest: "deploy/kubernetes/hello-edge.yaml",
};

/// The clients of the steady load: each sends a request, waits the delay for its answer, and
/// sends the next.
const CLIENTS: usize = 200;

/// The clients that raise the pods' CPU past the HPA's target (70% of a 100m request each):
/// kept alive, each sends a request and waits the delay, about 2 requests a second. 1,600 held
/// the two pods at 64-74%, under the target's 77% (70% and the HPA's 10% tolerance).
const SCALING_CLIENTS: usize = 3_000;

/// The manifests of `deploy/kubernetes` do on a live cluster what docs/deploy.md says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_manifests_hold_on_a_live_cluster() {
    // The load's connections and the port-forwards' are descriptors of this process.
    raise_open_file_limit(12_000);
    let mut figures = Figures::new("cluster");
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
    // Held to the end: the pods export to it until they are gone.
    let _collector = each_request_leaves_a_span_from_a_pod(&kubectl, &service, &mut figures).await;

    drop(service);
    drop(cluster);
    let left = footprint.left();
    assert!(left.is_empty(), "the cluster left behind: {left:?}");
    figures.print();
}

/// The Deployment becomes Available with both replicas Ready through the manifest's readiness
/// probe, and the Service answers the conformance table on its NodePort, from both pods.
async fn it_comes_up(cluster: &Cluster, registry: &str, figures: &mut Figures) -> NodePort {
    let kubectl = cluster.kubectl();
    let applied = Instant::now();
    NATIVE.apply_as_a_user(kubectl, registry);
    NATIVE.rollout_status(kubectl).await;
    kubectl
        .ok(&[
            "wait",
            "--for=condition=Available",
            &format!("deployment/{}", NATIVE.name),
            "--timeout=120s",
        ])
        .await;
    // The Deployment starts at one replica; the HPA makes it two at its first sync.
    NATIVE
        .wait_for_ready_pods(kubectl, 2, Duration::from_secs(60))
        .await;
    figures.say(format!(
        "applied to Available, 2 pods Ready, in {:?}",
        applied.elapsed()
    ));
    let pods = NATIVE.pods(kubectl).await;
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
    let rollout = NATIVE
        .roll_under_load(kubectl, service, CLIENTS, &NATIVE.template_change())
        .await;
    figures.say(format!(
        "rolling update under {CLIENTS} clients (a connection per request): rolled in {:?}; {}",
        rollout.took, rollout.tally
    ));
    rollout.assert_drained("the rolling update");
}

/// `kubectl delete pod` on one replica under load: the pod drains as in a rollout and the
/// ReplicaSet replaces it, and the clients see every request answered.
async fn a_pod_deleted_under_load_loses_nothing(
    kubectl: &Kubectl,
    service: &NodePort,
    figures: &mut Figures,
) {
    let before = NATIVE.pods(kubectl).await;
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
    NATIVE
        .wait_for_ready_pods(kubectl, 2, Duration::from_secs(60))
        .await;
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
    let before: BTreeSet<String> = NATIVE.pods(kubectl).await.into_keys().collect();
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
    let after = NATIVE.pods(kubectl).await;
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
    NATIVE
        .wait_for_ready_pods(kubectl, 2, Duration::from_secs(60))
        .await;
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
    let ScaleUp {
        most,
        took: up,
        seen,
        tally,
    } = NATIVE
        .scale_up_under_load(kubectl, service, SCALING_CLIENTS, 2)
        .await;
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
    NATIVE
        .wait_for_ready_pods(kubectl, 2, Duration::from_secs(60))
        .await;
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
    NATIVE.rollout_status(kubectl).await;
    NATIVE
        .wait_for_ready_pods(kubectl, 2, Duration::from_secs(60))
        .await;
    let pods_now = NATIVE.pods(kubectl).await;
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
    NATIVE
        .wait_for_pod(kubectl, &full, Duration::from_secs(60), |pod| !pod.ready)
        .await;
    let unready_in = started.elapsed();
    // Out of the Service's endpoints, then the Service's answers do not wait for it.
    let full_ip = NATIVE.pods(kubectl).await[&full].ip.clone();
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
    let pod = &NATIVE.pods(kubectl).await[&full];
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
    NATIVE
        .wait_for_pod(kubectl, &full, Duration::from_secs(60), |pod| pod.ready)
        .await;
    let back_in = unloaded.elapsed();
    let pod = &NATIVE.pods(kubectl).await[&full];
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

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set on the Deployment, as an operator sets it, each request
/// through the Service with a `traceparent` leaves one span in the collector: a child of the
/// caller's span, named for its route, from one of the pods then running, as the manifest's
/// `OTEL_RESOURCE_ATTRIBUTES` names it (`k8s.pod.name`). Returns the collector, which must
/// outlive the pods that export to it.
async fn each_request_leaves_a_span_from_a_pod(
    kubectl: &Kubectl,
    service: &NodePort,
    figures: &mut Figures,
) -> Jaeger {
    let jaeger = Jaeger::start_on(NODE_IP).await;
    let endpoint = format!("http://{}", jaeger.otlp_http);
    let rolled = Instant::now();
    kubectl
        .ok(&[
            "set",
            "env",
            &format!("deployment/{}", NATIVE.name),
            &format!("OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}"),
        ])
        .await;
    NATIVE.settle(kubectl, 2, Duration::from_secs(60)).await;
    let rolled = rolled.elapsed();
    let pods: BTreeSet<String> = NATIVE.pods(kubectl).await.into_keys().collect();
    let mut answered_by = BTreeMap::new();
    for i in 0..6 {
        let trace_id = format!("4bf92f3577b34da6a3ce929d0e0e47{i:02}");
        let answer = client::send(
            service.addr(),
            Protocol::Http1,
            http::Method::GET,
            "/hello/cluster",
            &[("traceparent".to_owned(), traceparent(&trace_id))],
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 200);
        let trace = jaeger
            .spans(&trace_id, Duration::from_secs(30), |_| true)
            .await;
        let span = trace.span(|_| true);
        assert_eq!(span["operationName"], "GET /hello/{name}", "{span:#}");
        assert_eq!(parents(span), [PARENT_ID], "{span:#}");
        assert_eq!(trace.service(span), "hello-edge", "{span:#}");
        let pod = trace.resource(span, "k8s.pod.name").unwrap_or_else(|| {
            panic!(
                "no k8s.pod.name on the span's resource: {:#}",
                trace.processes
            )
        });
        assert!(pods.contains(&pod), "{pod} is not one of the pods {pods:?}");
        *answered_by.entry(pod).or_insert(0) += 1;
    }
    figures.say(format!(
        "traces: with OTEL_EXPORTER_OTLP_ENDPOINT set, rolled out in {rolled:?}; 6 requests \
         through the Service, each a span in Jaeger, a child of the caller's, by pod: \
         {answered_by:?}"
    ));
    jaeger
}

/// Whether the Service's endpoint at `ip` is ready, as its EndpointSlice says; `None` while it
/// has none there.
async fn endpoint_ready(kubectl: &Kubectl, ip: &str) -> Option<bool> {
    cluster::endpoints(kubectl, NATIVE.name)
        .await
        .into_iter()
        .find(|(address, _)| address == ip)
        .map(|(_, ready)| ready)
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

/// Each pod's count of the `/hello/...` requests it answered (`hello_edge_requests_total`,
/// route `hello`, every status), read from its admin port through a port-forward: the probes'
/// `/healthz` are counted apart, under route `healthz`.
async fn requests_per_pod(kubectl: &Kubectl) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for pod in NATIVE.pods(kubectl).await.into_keys() {
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
