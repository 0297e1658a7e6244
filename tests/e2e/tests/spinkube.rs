//! `deploy/spinkube/` on a live cluster, the way SpinKube's users deploy: the tests' own
//! single-node Kubernetes ([`Cluster`]), its containerd running the Spin shim (from
//! `HELLO_EDGE_SPIN_SHIM`) as its runtime `spin`, and spin-operator at the pinned version with
//! its CRDs, its admission webhooks, the RuntimeClass `wasmtime-spin-v2` and the
//! `containerd-shim-spin` executor ([`SpinOperator`]). The app goes to the cluster's registry
//! with `spin registry push`, and each manifest is applied as a user applies it (`sed` the
//! registry in, `kubectl apply -f -`). Then, on the one cluster:
//!
//! 1. `spinapp.yaml`: the operator makes its Deployment (on the RuntimeClass) and Service, the
//!    pods become Ready through the SpinApp's checks, and the Service passes the conformance
//!    table and answers 1,000 requests at once, all overlapping (each a fresh instance: in
//!    under 3 s on 2 cores);
//! 2. its HorizontalPodAutoscaler has no metrics to act on here (the shim reports no CPU for
//!    its container), and says so;
//! 3. with the HPA gone, `replicas` on the SpinApp sets the pods' count;
//! 4. with an `otel` section on the executor, as `spinapp.yaml`'s comment shows it, the shim's
//!    Spin traces: a request through the Service with a `traceparent` leaves Spin's span in the
//!    collector (Jaeger, taking OTLP on the pods' gateway), a child of the caller's;
//! 5. a new image on the SpinApp (the Containerfile's, FROM scratch) rolls it under a steady
//!    load: the shim drops what is in flight on SIGTERM and a SpinApp has no preStop pause, so
//!    this rollout loses requests, and the test asserts that it does;
//! 6. `deployment.yaml`, the plain Deployment on the same RuntimeClass with its preStop pause,
//!    serves the table and rolls under the same load losing none.
//!
//! The shim's log (in containerd's) and the operator's hold no failure. Then the cluster is
//! dropped, and nothing of it may be left on the machine.

use std::path::Path;
use std::time::{Duration, Instant};

use support::client::Protocol;
use support::cluster::{
    App, Cluster, Figures, Kubectl, NODE, NODE_IP, NodePort, PortForward, SpinOperator,
    assert_nothing_lost, run_as_a_user,
};
use support::conformance;
use support::host::{Host, assert_clean};
use support::jaeger::{Jaeger, PARENT_ID, parents, tag, traceparent};
use support::load::{Connections, Load};
use support::oci;
use support::process::raise_open_file_limit;
use support::scenarios::assert_overlap;
use support::tools::{root, workspace_version};

/// The manifests' delay, the default, baked into the app by `spin.toml`.
const DELAY: Duration = hello_edge::Delay::DEFAULT.as_duration();

/// `spinapp.yaml`: the operator names the Deployment and the Service after the SpinApp, and
/// labels the pods with its name.
const SPINAPP: App = App {
    name: "hello-edge",
    selector: "core.spinkube.dev/app-name=hello-edge",
    manifest: "deploy/spinkube/spinapp.yaml",
};

/// `deployment.yaml`: the same app as a plain Deployment on the shim's RuntimeClass.
const DEPLOYMENT: App = App {
    name: "hello-edge-spin",
    selector: "app.kubernetes.io/name=hello-edge-spin",
    manifest: "deploy/spinkube/deployment.yaml",
};

/// The repository both manifests name, `REGISTRY/hello-edge-spin`.
const REPOSITORY: &str = "hello-edge-spin";

/// What containerd 2 logs when the Spin shim 0.24.0 fails its `-info` query.
const SHIM_INFO_QUERY: &str = "failed to query deprecated runtime-allow-mounts annotation";

/// The clients of the steady load during a rollout, as in the native test: each sends a
/// request on a new connection, waits the delay for its answer, and sends the next.
const CLIENTS: usize = 200;

/// The kept-alive clients of the load under which the SpinApp's HPA is watched: 500 waiting on
/// each of its 2 pods, half the shim's instance pool.
const KEPT_ALIVE_CLIENTS: usize = 1_000;

/// The requests sent at once through the Service.
const AT_ONCE: usize = 1_000;

/// How long [`AT_ONCE`] requests may take, from the first sent to the last answered: the shim
/// makes a fresh instance of the WASI 0.2 component for each (1.6 to 1.8 s measured, both pods
/// sharing the machine's 2 cores), and the heavy tests give `spin up` the same 3 s.
const AT_ONCE_WITHIN: Duration = Duration::from_secs(3);

/// SpinKube as its users run it: `spin registry push`, a SpinApp, the operator; and the plain
/// Deployment beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinkube_serves_and_rolls_on_a_live_cluster() {
    raise_open_file_limit(12_000);
    let mut figures = Figures::new("spinkube");
    let cluster = Cluster::start().await;
    figures.say(format!("the cluster was ready in {:?}", cluster.ready_in));
    let footprint = cluster.footprint();
    let kubectl = cluster.kubectl().clone();
    let registry = cluster.registry().host();
    let work = root().join("target/spinkube-work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let containerd = cluster.containerd_log();
    let mark = containerd.mark();

    let installed = Instant::now();
    let operator = SpinOperator::install(&cluster).await;
    figures.say(format!(
        "spin-operator {} installed (CRDs, webhooks, RuntimeClass, executor) in {:?}",
        operator.version,
        installed.elapsed()
    ));
    // The commands docs/deploy.md gives, in its order: build, push, apply; then the other
    // manifest's.
    let blocks = documented_commands();
    let commands = &blocks[0];
    let expected = [
        "spin build".to_owned(),
        format!(
            "spin registry push \"$REGISTRY/{REPOSITORY}:{}\"",
            workspace_version()
        ),
        SPINAPP.apply_command(),
    ];
    assert_eq!(commands[..], expected, "docs/deploy.md's SpinKube commands");
    assert_eq!(
        blocks[1][..],
        [DEPLOYMENT.apply_command()],
        "docs/deploy.md's command for deployment.yaml"
    );
    // `spin build` runs spin.toml's build command, which the tests run in a target directory
    // of their own: its component is staged as `spin build` leaves it, and pushed from there.
    // The registry on loopback speaks plain HTTP, hence `--insecure`.
    let app = oci::stage_spin_app(&work);
    let push = commands[1].replacen("push ", "push --insecure ", 1);
    let pushed = run_as_a_user(&kubectl, &registry, &app, &push);
    let digest = pushed
        .lines()
        .find_map(|line| line.strip_prefix("Pushed with digest "))
        .unwrap_or_else(|| panic!("spin registry push said no digest:\n{pushed}"))
        .trim()
        .to_owned();
    assert!(digest.starts_with("sha256:"), "{pushed}");

    let service = the_spinapp_comes_up(&cluster, &operator, &digest, &mut figures).await;
    the_spinapps_autoscaler_has_no_metrics(&kubectl, &service, &mut figures).await;
    replicas_on_the_spinapp_take_effect(&kubectl, &mut figures).await;
    // Held to the end: the pods export to it until they are gone.
    let _collector =
        the_executors_otel_section_traces_the_spinapp(&kubectl, &service, &mut figures).await;
    a_spinapp_rollout_loses_requests(&kubectl, &registry, &work, &service, &mut figures).await;
    drop(service);
    the_deployment_rolls_losing_nothing(&cluster, &mut figures).await;

    // containerd 2 asks each runtime for its info (`SHIM -info`, for the deprecated
    // runtime-allow-mounts annotation); shim 0.24.0 panics there, finding no log pipe, and
    // containerd logs that and goes on. Not the guest's, nor the running shim's: left out.
    let log: String = containerd
        .since(mark)
        .lines()
        .filter(|line| !line.contains(SHIM_INFO_QUERY))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_clean("the Spin shim, in containerd's log", &log);
    // An update that lost a race with another writer is retried: not an error of the app's.
    let operator_log = operator.log().text();
    let errors: Vec<&str> = operator_log
        .lines()
        .filter(|line| line.contains("\tERROR\t"))
        .filter(|line| !line.contains("the object has been modified"))
        .collect();
    assert!(
        errors.is_empty(),
        "spin-operator logged errors: {errors:#?}"
    );
    drop(operator);
    drop(cluster);
    let left = footprint.left();
    assert!(left.is_empty(), "the cluster left behind: {left:?}");
    figures.print();
}

/// `spinapp.yaml` applied as a user does: the operator makes a Deployment on the executor's
/// RuntimeClass, running the pushed artifact, and a Service; the HPA's 2 pods become Ready
/// through the SpinApp's checks; the Service passes the table, and answers [`AT_ONCE`]
/// requests at once in about one delay.
async fn the_spinapp_comes_up(
    cluster: &Cluster,
    operator: &SpinOperator,
    digest: &str,
    figures: &mut Figures,
) -> NodePort {
    let kubectl = cluster.kubectl();
    let registry = cluster.registry().host();
    // Why the manifest's probes name an empty `httpHeaders`: without it, the operator's
    // defaulting webhook writes null there, and the CRD's schema refuses the SpinApp.
    let manifest = std::fs::read_to_string(root().join(SPINAPP.manifest))
        .unwrap()
        .replace("REGISTRY/", &format!("{registry}/"));
    let without: String = manifest
        .lines()
        .filter(|line| line.trim() != "httpHeaders: []")
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(without, manifest, "spinapp.yaml gives httpHeaders");
    let refused = kubectl
        .run_with_input(&["apply", "--dry-run=server", "-f", "-"], &without)
        .await
        .expect_err("the SpinApp without httpHeaders was admitted");
    assert!(
        refused.contains("httpHeaders in body must be of type array"),
        "{refused}"
    );

    let applied = Instant::now();
    SPINAPP.apply_as_a_user(kubectl, &registry);
    SPINAPP
        .wait_for_ready_pods(kubectl, 2, Duration::from_secs(120))
        .await;
    let ready_in = applied.elapsed();
    assert!(
        operator.validated(SPINAPP.name),
        "the operator's webhook did not validate the SpinApp:\n{}",
        operator.log().text()
    );
    kubectl
        .ok(&[
            "wait",
            "--for=jsonpath={.status.readyReplicas}=2",
            &format!("spinapp/{}", SPINAPP.name),
            "--timeout=60s",
        ])
        .await;

    // The operator's Deployment: owned by the SpinApp, on the shim's RuntimeClass.
    let deployment = kubectl.get(&["deployment", SPINAPP.name]).await;
    let owner = &deployment["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str()),
        (Some("SpinApp"), Some(SPINAPP.name)),
        "{deployment}"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["runtimeClassName"], "wasmtime-spin-v2", "{pod}");
    // The pods run the artifact `spin registry push` made.
    for name in SPINAPP.pods(kubectl).await.into_keys() {
        let status = kubectl.get(&["pod", &name]).await;
        let image = status["status"]["containerStatuses"][0]["imageID"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            image.ends_with(digest),
            "pod {name} runs {image}, not {digest}"
        );
    }

    let service = NodePort::expose(kubectl, SPINAPP.name).await;
    let report = conformance::run_on(&service, Protocol::Http1, DELAY).await;
    assert!(report.is_empty(), "{}:\n{report}", service.label());
    let at_once = assert_overlap(service.addr(), AT_ONCE, DELAY, AT_ONCE_WITHIN).await;
    let (peaks, raced) = memory_peaks(cluster, &SPINAPP).await;
    figures.say(format!(
        "spinapp.yaml: 2 pods Ready {ready_in:?} after the apply ({raced} restarted once, having \
         lost the shim's precompile race); the table passed through NodePort {}; {AT_ONCE} \
         requests at once took {at_once:?}; each pod's memory peak: {peaks:?} MiB",
        service.port()
    ));
    service
}

/// The SpinApp's HorizontalPodAutoscaler (`spinapp.yaml`, on the Deployment the operator names
/// after it) cannot scale it on this node: the shim (0.24.0, on cgroup v1) reports no CPU for
/// its container through the CRI (the kubelet's summary gives the container 0 ns of CPU, and
/// the pod, from its cgroup, more), so metrics-server has no metrics for the pods and the HPA
/// none to act on. Under [`KEPT_ALIVE_CLIENTS`] kept-alive clients for 30 s, it says so, and keeps
/// its 2 replicas. What docs/deploy.md says, asserted.
async fn the_spinapps_autoscaler_has_no_metrics(
    kubectl: &Kubectl,
    service: &NodePort,
    figures: &mut Figures,
) {
    let load = Load::start(
        service.addr(),
        "/hello/scale",
        KEPT_ALIVE_CLIENTS,
        Connections::KeptAlive,
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    let hpa = kubectl.get(&["hpa", SPINAPP.name]).await;
    let summary: serde_json::Value = serde_json::from_str(
        &kubectl
            .ok(&[
                "get",
                "--raw",
                &format!("/api/v1/nodes/{NODE}/proxy/stats/summary"),
            ])
            .await,
    )
    .expect("the kubelet's summary is JSON");
    let tally = load.stop().await;
    assert_nothing_lost("the steady load on the SpinApp", &tally);

    let active = hpa["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|condition| condition["type"] == "ScalingActive")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (active["status"].as_str(), active["reason"].as_str()),
        (Some("False"), Some("FailedGetResourceMetric")),
        "the SpinApp's HPA has CPU metrics now: docs/deploy.md says it has none: {hpa}"
    );
    assert_eq!(hpa["status"]["desiredReplicas"], 2, "{hpa}");
    let pods = summary["pods"].as_array().expect("the summary's pods");
    let mut seen = Vec::new();
    for pod in pods.iter().filter(|pod| {
        pod["podRef"]["name"]
            .as_str()
            .unwrap_or_default()
            .starts_with("hello-edge-")
    }) {
        let of_pod = pod["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap_or(0);
        let of_container = pod["containers"][0]["cpu"]["usageCoreNanoSeconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("the summary has no CPU for the pod's container: {pod}"));
        assert!(of_pod > 0, "{pod}");
        assert_eq!(
            of_container, 0,
            "the shim reports its container's CPU now: {pod}"
        );
        seen.push(format!("pod {of_pod} ns, container {of_container} ns"));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    figures.say(format!(
        "the SpinApp's HPA under {KEPT_ALIVE_CLIENTS} kept-alive clients for 30 s ({tally}): {} \
         (\"{}\"), 2 replicas kept; CPU in the kubelet's summary: {seen:?}",
        active["reason"].as_str().unwrap_or_default(),
        active["message"].as_str().unwrap_or_default()
    ));
}

/// Without its HPA, a SpinApp's `replicas` is the count of its pods: 3, then 2, all Ready.
async fn replicas_on_the_spinapp_take_effect(kubectl: &Kubectl, figures: &mut Figures) {
    kubectl.ok(&["delete", "hpa", SPINAPP.name]).await;
    let mut took = Vec::new();
    for replicas in [3, 2] {
        let changed = Instant::now();
        let patch = format!(r#"{{"spec":{{"enableAutoscaling":false,"replicas":{replicas}}}}}"#);
        kubectl.ok(&spinapp_patch(&patch)).await;
        SPINAPP
            .wait_for_ready_pods(kubectl, replicas, Duration::from_secs(120))
            .await;
        took.push(format!("{replicas} in {:?}", changed.elapsed()));
    }
    figures.say(format!(
        "replicas on the SpinApp, the HPA deleted: {}",
        took.join(", ")
    ));
}

/// The executor's `otel` section (in its `deploymentConfig`), as `spinapp.yaml`'s comment writes
/// it, reaches the shim's
/// Spin: once the operator has remade the SpinApp's Deployment (a change to the SpinApp makes it
/// read the executor again), the pods carry `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, and a request
/// through the Service with a `traceparent` leaves Spin's server span in the collector, a child
/// of the caller's span, with the HTTP attributes. Returns the collector, which must outlive the
/// pods that export to it.
async fn the_executors_otel_section_traces_the_spinapp(
    kubectl: &Kubectl,
    service: &NodePort,
    figures: &mut Figures,
) -> Jaeger {
    let jaeger = Jaeger::start_on(NODE_IP).await;
    let endpoint = format!("http://{}/v1/traces", jaeger.otlp_http);
    let executor = format!(
        r#"{{"spec":{{"deploymentConfig":{{"otel":{{"exporter_otlp_traces_endpoint":"{endpoint}"}}}}}}}}"#
    );
    kubectl
        .ok(&[
            "patch",
            "spinappexecutor",
            "containerd-shim-spin",
            "--type=merge",
            "-p",
            &executor,
        ])
        .await;
    let changed = Instant::now();
    kubectl
        .ok(&spinapp_patch(
            r#"{"spec":{"podAnnotations":{"hello-edge.test/otel":"1"}}}"#,
        ))
        .await;
    SPINAPP.settle(kubectl, 2, Duration::from_secs(120)).await;
    let rolled = changed.elapsed();
    let deployment = kubectl.get(&["deployment", SPINAPP.name]).await;
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array().into_iter().flatten().any(|var| {
            var["name"] == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" && var["value"] == endpoint.as_str()
        }),
        "the operator did not pass the executor's otel section to the pods: {env:#}"
    );

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4740";
    let answer = support::client::send(
        service.addr(),
        Protocol::Http1,
        http::Method::GET,
        "/hello/spinkube",
        &[("traceparent".to_owned(), traceparent(trace_id))],
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200);
    let is_server = |span: &serde_json::Value| tag(span, "span.kind").as_deref() == Some("server");
    let trace = jaeger
        .spans(trace_id, Duration::from_secs(30), is_server)
        .await;
    let server = trace.span(is_server);
    assert_eq!(parents(server), [PARENT_ID], "{server:#}");
    // The shim's Spin names no service of ours: `spin`, its default.
    assert_eq!(trace.service(server), "spin", "{server:#}");
    let component = trace.span(|span| span["operationName"] == "execute_wasm_component hello-edge");
    assert_eq!(
        parents(component),
        [server["spanID"].as_str().unwrap()],
        "{component:#}"
    );
    for (key, value) in [
        ("http.request.method", "GET"),
        ("url.path", "/hello/spinkube"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(
            tag(server, key).as_deref(),
            Some(value),
            "{key}: {server:#}"
        );
    }
    figures.say(format!(
        "traces: the executor's otel section reached the pods (rolled in {rolled:?}); Spin's \
         spans for a request through the Service, service {:?}: {:?}",
        trace.service(server),
        trace.summary()
    ));
    jaeger
}

/// A new image on the SpinApp (the same app as deploy/spinkube/Containerfile builds it, FROM
/// scratch) rolls its Deployment under a steady load. The Deployment is the operator's: no
/// preStop pause, so each old pod gets SIGTERM as it leaves the endpoints, and the shim drops the
/// requests it holds. The rollout completes and the new pods serve the table, but requests are
/// lost: this asserts that they are, as docs/deploy.md says.
async fn a_spinapp_rollout_loses_requests(
    kubectl: &Kubectl,
    registry: &str,
    work: &Path,
    service: &NodePort,
    figures: &mut Figures,
) {
    let image = format!("{registry}/{REPOSITORY}:{}-image", workspace_version());
    oci::push_spin_image(work, &image);
    let patch = format!(r#"{{"spec":{{"image":"{image}"}}}}"#);
    let rollout = SPINAPP
        .roll_under_load(kubectl, service, CLIENTS, &spinapp_patch(&patch))
        .await;
    figures.say(format!(
        "a SpinApp rollout (a new image) under {CLIENTS} clients: rolled in {:?}; {}; the old \
         pods' exit codes: {:?}",
        rollout.took, rollout.tally, rollout.exits
    ));
    assert!(rollout.tally.ok > 0, "{}", rollout.tally);
    // Each old pod's shim exited 0 on SIGTERM: what was lost was dropped in flight, not crashed.
    for (pod, code) in &rollout.exits {
        assert_eq!(
            code.as_deref(),
            Some("0"),
            "old pod {pod}: {:?}",
            rollout.exits
        );
    }
    assert!(
        rollout.tally.lost() > 0,
        "a SpinApp rollout lost no request: docs/deploy.md says it does ({})",
        rollout.tally
    );
    let deployment = kubectl.get(&["deployment", SPINAPP.name]).await;
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"], image,
        "{deployment}"
    );
    // The new image serves the table: asked of each new pod through a port-forward. (Through
    // the NodePort, a client port that had failed to reach a gone pod can still be mapped to
    // it by its conntrack entry for a while: "no route to host".)
    for pod in SPINAPP.pods(kubectl).await.into_keys() {
        let forward = PortForward::open(kubectl, &format!("pod/{pod}"), 80).await;
        let report = conformance::run(forward.addr, Protocol::Http1, DELAY).await;
        assert!(report.is_empty(), "pod {pod} after the rollout:\n{report}");
    }
}

/// `deployment.yaml` applied as a user does, on the pushed artifact: 2 Ready pods, the table
/// through its Service, and a rolling update under the same load that loses nothing, every old
/// pod exiting 0 after its preStop pause.
async fn the_deployment_rolls_losing_nothing(cluster: &Cluster, figures: &mut Figures) {
    let kubectl = cluster.kubectl();
    let registry = &cluster.registry().host();
    let applied = Instant::now();
    DEPLOYMENT.apply_as_a_user(kubectl, registry);
    DEPLOYMENT.rollout_status(kubectl).await;
    DEPLOYMENT
        .wait_for_ready_pods(kubectl, 2, Duration::from_secs(120))
        .await;
    let ready_in = applied.elapsed();
    let service = NodePort::expose(kubectl, DEPLOYMENT.name).await;
    let report = conformance::run_on(&service, Protocol::Http1, DELAY).await;
    assert!(report.is_empty(), "{}:\n{report}", service.label());
    let at_once = assert_overlap(service.addr(), AT_ONCE, DELAY, AT_ONCE_WITHIN).await;
    let (peaks, raced) = memory_peaks(cluster, &DEPLOYMENT).await;
    let rollout = DEPLOYMENT
        .roll_under_load(kubectl, &service, CLIENTS, &DEPLOYMENT.template_change())
        .await;
    figures.say(format!(
        "deployment.yaml: 2 pods Ready {ready_in:?} after the apply ({raced} restarted once, \
         having lost the shim's precompile race), the table passed, {AT_ONCE} at once took \
         {at_once:?}, memory peaks {peaks:?} MiB; rolling update under {CLIENTS} clients: \
         rolled in {:?}; {}",
        rollout.took, rollout.tally
    ));
    rollout.assert_drained("deployment.yaml's rolling update");
}

/// `kubectl patch` arguments that merge `patch` into the SpinApp, as a user edits it.
fn spinapp_patch(patch: &str) -> [&str; 6] {
    [
        "patch",
        "spinapp",
        SPINAPP.name,
        "--type=merge",
        "-p",
        patch,
    ]
}

/// Each of `app`'s pods' memory peak, in MiB, and how many of its containers' starts lost the
/// shim's precompile race, after asserting that no other restart happened: a burst past the
/// memory limit kills the shim (exit 137) and every request it held.
async fn memory_peaks(cluster: &Cluster, app: &App) -> (Vec<u64>, usize) {
    let list = cluster
        .kubectl()
        .get(&["pods", "--selector", app.selector])
        .await;
    let log = cluster.containerd_log().text();
    let mut peaks = Vec::new();
    let mut raced = 0;
    for pod in list["items"].as_array().unwrap() {
        let status = &pod["status"]["containerStatuses"][0];
        match status["restartCount"].as_u64() {
            Some(0) => {}
            Some(1) if lost_the_precompile_race(&log, status) => raced += 1,
            _ => panic!("{} was restarted: {status}", pod["metadata"]["name"]),
        }
        let uid = pod["metadata"]["uid"].as_str().unwrap();
        let peak = cluster
            .pod_memory_peak(uid)
            .unwrap_or_else(|| panic!("no memory cgroup for pod {uid}"));
        peaks.push(peak >> 20);
    }
    (peaks, raced)
}

/// Whether a container's last run ended at its start because shim 0.24.0 lost a race with
/// another pod of the same Spin OCI artifact starting at the same moment on the node: each
/// takes a lease to precompile the app; the second finds it taken ("already exists"), falls
/// back to the files inside the image, finds no `/spin.toml` in an artifact, and exits 137. The
/// kubelet starts it again, and then it runs.
fn lost_the_precompile_race(containerd_log: &str, status: &serde_json::Value) -> bool {
    let last = &status["lastState"]["terminated"];
    let id = last["containerID"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("containerd://");
    let said = |what: &str| {
        containerd_log
            .lines()
            .any(|line| line.contains(id) && line.contains(what))
    };
    !id.is_empty()
        && last["exitCode"] == 137
        && said("Error obtaining wasm layers")
        && said("precompile-runwasi.io/precompiled/spin/")
        && said("Failed to read Spin app manifest from \"/spin.toml\"")
}

/// The commands of each console block under docs/deploy.md's `## SpinKube`, without their
/// prompts and trailing comments.
fn documented_commands() -> Vec<Vec<String>> {
    let docs = std::fs::read_to_string(root().join("docs/deploy.md")).unwrap();
    let section = docs
        .split_once("\n## SpinKube\n")
        .expect("docs/deploy.md has a SpinKube section")
        .1;
    let section = section.split_once("\n## ").map_or(section, |(it, _)| it);
    section
        .split("```console\n")
        .skip(1)
        .map(|block| {
            block
                .split_once("```")
                .expect("a console block ends")
                .0
                .lines()
                .filter_map(|line| line.strip_prefix("$ "))
                .map(|line| {
                    line.split_once("  #")
                        .map_or(line, |(command, _)| command)
                        .trim()
                        .to_owned()
                })
                .collect()
        })
        .collect()
}
