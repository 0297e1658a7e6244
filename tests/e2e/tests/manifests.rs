//! The deploy manifests (`deploy/`), tested like code and offline: the Kubernetes objects against
//! the Kubernetes schemas (`kubernetes-validate`, strict), the custom resources (SpinApp,
//! WorkloadDeployment) against the facts their CRDs state, and every one against what the
//! server and the images really are: ports, probes, grace periods, image names.

use std::path::Path;
use std::process::Command;

use hello_edge_native::env;
use serde_json::Value;
use support::manifest::{Manifest, container_port, env_of};
use support::oci::Image;
use support::tools::{self, root};

/// The Kubernetes versions the manifests are validated against: the first with the `sleep`
/// preStop action on by default (1.30), and the newest the validator bundles.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

/// Every Kubernetes object (all but the custom resources) passes strict schema validation, so a
/// misspelt or misplaced field fails here rather than at `kubectl apply`.
#[test]
fn kubernetes_objects_pass_the_schemas() {
    let files = [
        "deploy/kubernetes/hello-edge.yaml",
        "deploy/spinkube/deployment.yaml",
    ];
    for version in KUBERNETES_VERSIONS {
        for file in files {
            validate(file, version);
        }
        // The SpinApp file also holds its HorizontalPodAutoscaler: validate that one alone.
        let spinapp = Manifest::read("deploy/spinkube/spinapp.yaml");
        let hpa = spinapp.kind("HorizontalPodAutoscaler");
        let path = std::env::temp_dir().join(format!("hello-edge-spinapp-hpa-{version}.yaml"));
        std::fs::write(&path, serde_json::to_string(hpa).unwrap()).unwrap();
        validate(path.to_str().unwrap(), version);
    }
}

/// The validator is strict enough to matter: the preStop `sleep` action is refused by the schema
/// of Kubernetes 1.28, which did not have it on.
#[test]
fn the_validator_refuses_what_a_cluster_would() {
    let out = kubernetes_validate(&["--strict", "--quiet", "-k", "1.28.0"])
        .arg(root().join("deploy/kubernetes/hello-edge.yaml"))
        .output()
        .expect("run kubernetes-validate");
    assert!(!out.status.success(), "1.28 accepted the sleep action");
}

/// The native server's pod runs as non-root on a read-only root filesystem, with requests and
/// limits, probes on the route that answers at once, and a grace period that covers the preStop
/// pause and the server's own drain; the Service, the autoscaler and the disruption budget point
/// at it.
#[test]
fn the_kubernetes_deployment_is_safe_and_drains() {
    let manifest = Manifest::read("deploy/kubernetes/hello-edge.yaml");
    let deployment = manifest.kind("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];

    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind][resource].is_string(),
                "{kind}.{resource}"
            );
        }
    }

    // The server listens where the container ports and the probes say: the app on `http`,
    // liveness and metrics on `admin`.
    let env = env_of(container);
    let port = |name: &str| u64::from(container_port(container, name));
    let listens_on = |var: &str| -> u64 {
        let addr: std::net::SocketAddr = env(var).unwrap().parse().unwrap();
        assert!(
            addr.ip().is_unspecified(),
            "{var} listens on every interface"
        );
        addr.port().into()
    };
    assert_eq!(listens_on(env::LISTEN), port("http"));
    assert_eq!(listens_on(env::ADMIN_LISTEN), port("admin"));
    // Readiness through the app's port: a pod at its cap takes no new traffic. Liveness
    // through the admin port, outside the cap: a full pod is not restarted.
    for (probe, port) in [("readinessProbe", "http"), ("livenessProbe", "admin")] {
        assert_eq!(container[probe]["httpGet"]["path"], hello_edge::HEALTH_PATH);
        assert_eq!(container[probe]["httpGet"]["port"], port, "{probe}");
    }
    // Prometheus finds /metrics on the admin port.
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(
        annotations["prometheus.io/port"].as_str().unwrap(),
        port("admin").to_string()
    );
    assert_eq!(env(env::LOG_FORMAT).as_deref(), Some("json"));

    // SIGTERM comes after the preStop pause; the server then drains for its grace period; both
    // must end before Kubernetes kills the pod.
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    let drain: u64 = env(env::SHUTDOWN_GRACE_SECS)
        .expect("the grace period is set")
        .parse()
        .unwrap();
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace > pause + drain,
        "terminationGracePeriodSeconds {grace} <= preStop {pause} + drain {drain}"
    );
    let cap: usize = env(env::MAX_CONNECTIONS).unwrap().parse().unwrap();
    assert_eq!(
        cap,
        hello_edge_native::ServerConfig::DEFAULT_MAX_CONNECTIONS
    );

    let labels = &pod_labels(deployment);
    let service = manifest.kind("Service");
    assert_eq!(&service["spec"]["selector"], labels);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    // The admin port is scraped per pod, not exposed on the Service's address.
    assert_eq!(service["spec"]["ports"].as_array().unwrap().len(), 1);
    let budget = manifest.kind("PodDisruptionBudget");
    assert_eq!(&budget["spec"]["selector"]["matchLabels"], labels);
    let hpa = manifest.kind("HorizontalPodAutoscaler");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 2);
    assert!(
        deployment["spec"]["replicas"].is_null(),
        "the autoscaler owns the count"
    );
}

/// The SpinApp fits the spin-operator's CRD and webhook (facts listed below), runs on the Spin
/// shim, probes the route that answers at once, and its autoscaler targets the Deployment the
/// operator creates.
#[test]
fn the_spinapp_fits_the_spin_operator() {
    // spin-operator, config/crd/bases/core.spinkube.dev_spinapps.yaml: `spec.required` is
    // [executor, image]; the SpinAppSpec fields (api/v1alpha1/spinapp_types.go) are these; a
    // health check's httpGet requires `path`. internal/webhook/spinapp_validating.go: replicas
    // may not be set with enableAutoscaling, and must be > 0 otherwise.
    const REQUIRED: [&str; 2] = ["executor", "image"];
    const SPEC_FIELDS: [&str; 18] = [
        "executor",
        "image",
        "imagePullSecrets",
        "checks",
        "replicas",
        "enableAutoscaling",
        "runtimeConfig",
        "volumes",
        "volumeMounts",
        "variables",
        "serviceAnnotations",
        "deploymentAnnotations",
        "podAnnotations",
        "podLabels",
        "resources",
        "components",
        "serviceAccountName",
        "invocationLimits",
    ];
    const PROBE_FIELDS: [&str; 6] = [
        "httpGet",
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ];

    let manifest = Manifest::read("deploy/spinkube/spinapp.yaml");
    let app = manifest.kind("SpinApp");
    assert_eq!(app["apiVersion"], "core.spinkube.dev/v1alpha1");
    let spec = app["spec"].as_object().expect("spec");
    for field in REQUIRED {
        assert!(spec.contains_key(field), "spec.{field} is required");
    }
    for field in spec.keys() {
        assert!(
            SPEC_FIELDS.contains(&field.as_str()),
            "spec.{field} is not a SpinApp field"
        );
    }
    assert_eq!(app["spec"]["executor"], "containerd-shim-spin");
    if app["spec"]["enableAutoscaling"] == true {
        assert!(
            app["spec"]["replicas"].is_null(),
            "replicas with autoscaling"
        );
    } else {
        assert!(app["spec"]["replicas"].as_u64().unwrap_or(1) > 0);
    }
    for check in ["readiness", "liveness"] {
        let probe = app["spec"]["checks"][check].as_object().expect(check);
        for field in probe.keys() {
            assert!(
                PROBE_FIELDS.contains(&field.as_str()),
                "checks.{check}.{field}"
            );
        }
        assert_eq!(probe["httpGet"]["path"], hello_edge::HEALTH_PATH);
    }

    let hpa = manifest.kind("HorizontalPodAutoscaler");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        app["metadata"]["name"]
    );
}

/// The shim Deployment (no operator) runs on the shim's RuntimeClass with the command the
/// operator gives it, and pauses before SIGTERM longer than a request waits, since the shim drops
/// requests in flight.
#[test]
fn the_shim_deployment_drains_before_sigterm() {
    let manifest = Manifest::read("deploy/spinkube/deployment.yaml");
    let deployment = manifest.kind("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(pod["runtimeClassName"], "wasmtime-spin-v2");
    assert_eq!(container["command"], serde_json::json!(["/"]));
    assert_eq!(container["ports"][0]["containerPort"], 80);
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    let delay_ms: u64 = spin_toml_delay_ms();
    assert!(
        pause * 1000 >= delay_ms + 5000,
        "preStop {pause} s for a {delay_ms} ms delay"
    );
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() > pause);
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], hello_edge::HEALTH_PATH);
    }
    assert_eq!(
        &manifest.kind("Service")["spec"]["selector"],
        &pod_labels(deployment)
    );
}

/// The wasmCloud WorkloadDeployment fits the runtime-operator's CRD (facts below) and gives the
/// component its delay through its environment.
#[test]
fn the_wasmcloud_workload_fits_its_crd() {
    // wasmCloud, charts/runtime-operator/crds/runtime.wasmcloud.dev_workloaddeployments.yaml: a
    // component requires [image, name]; a host interface requires [interfaces, namespace,
    // package], with at least one interface.
    let manifest = Manifest::read("deploy/wasmcloud/workload.yaml");
    let workload = manifest.kind("WorkloadDeployment");
    assert_eq!(workload["apiVersion"], "runtime.wasmcloud.dev/v1alpha1");
    let spec = &workload["spec"]["template"]["spec"];
    let component = &spec["components"][0];
    for field in ["image", "name"] {
        assert!(component[field].is_string(), "components[0].{field}");
    }
    let http = &spec["hostInterfaces"][0];
    for field in ["namespace", "package"] {
        assert!(http[field].is_string(), "hostInterfaces[0].{field}");
    }
    assert_eq!(http["namespace"], "wasi");
    assert_eq!(http["package"], "http");
    assert_eq!(http["interfaces"], serde_json::json!(["incoming-handler"]));
    let delay =
        &component["localResources"]["environment"]["config"][hello_edge::Config::DELAY_ENV];
    hello_edge::Delay::from_millis_str(delay.as_str().unwrap()).expect("a valid delay");
}

/// The hosts' instance pool for wasmCloud on Kubernetes is the one the tests measure under
/// `wash dev`: the host environment of `deploy/wasmcloud/host-values.yaml` (the runtime-operator
/// chart's `runtime.env`, which its values.yaml adds to every host group's container, in the
/// Kubernetes `env` shape) is `.wash/config.yaml`'s `dev.environment`, name for name.
#[test]
fn the_wasmcloud_hosts_get_the_pool_the_tests_measure() {
    let values = Manifest::read("deploy/wasmcloud/host-values.yaml");
    assert_eq!(values.objects.len(), 1);
    let env = values.objects[0]["runtime"]["env"]
        .as_array()
        .expect("runtime.env");
    let hosts: std::collections::BTreeMap<_, _> = env
        .iter()
        .map(|var| {
            let name = var["name"].as_str().expect("an env entry's name");
            let value = var["value"]
                .as_str()
                .expect("an env entry's value, a string");
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let dev = Manifest::read(".wash/config.yaml");
    let dev: std::collections::BTreeMap<_, _> = dev.objects[0]["dev"]["environment"]
        .as_object()
        .expect("dev.environment")
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(hosts, dev);
    let instances: u64 = hosts["WASMTIME_POOLING_TOTAL_CORE_INSTANCES"]
        .parse()
        .unwrap();
    // Three core instances a waiting request, and room for thousands.
    assert!(instances / 3 >= 1000, "{instances} core instances");
}

/// Every image a manifest names is one the deploy test (`tests/deploy.rs`) pushes: the same
/// repository and the workspace's version as the tag, under the REGISTRY placeholder.
#[test]
fn manifests_name_the_images_the_push_test_produces() {
    let expect = |file: &str, kind: &str, image: &Value, which: Image| {
        let want = which.reference("REGISTRY");
        assert_eq!(image.as_str(), Some(want.as_str()), "{file} {kind}");
    };
    let file = "deploy/kubernetes/hello-edge.yaml";
    let native = Manifest::read(file);
    let image = &native.kind("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"];
    expect(file, "Deployment", image, Image::Native);

    let file = "deploy/spinkube/spinapp.yaml";
    let spinapp = Manifest::read(file);
    let image = &spinapp.kind("SpinApp")["spec"]["image"];
    expect(file, "SpinApp", image, Image::Spin);

    let file = "deploy/spinkube/deployment.yaml";
    let shim = Manifest::read(file);
    let image = &shim.kind("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"];
    expect(file, "Deployment", image, Image::Spin);

    let file = "deploy/wasmcloud/workload.yaml";
    let wasmcloud = Manifest::read(file);
    let image =
        &wasmcloud.kind("WorkloadDeployment")["spec"]["template"]["spec"]["components"][0]["image"];
    expect(file, "WorkloadDeployment", image, Image::Component);
}

/// The delay spin.toml bakes into the shim image.
fn spin_toml_delay_ms() -> u64 {
    let text = std::fs::read_to_string(root().join("spin.toml")).unwrap();
    let manifest: toml::Table = text.parse().unwrap();
    let delay = manifest["component"]["hello-edge"]["environment"][hello_edge::Config::DELAY_ENV]
        .as_str()
        .unwrap();
    hello_edge::Delay::from_millis_str(delay)
        .unwrap()
        .as_duration()
        .as_millis() as u64
}

fn pod_labels(deployment: &Value) -> Value {
    let labels = deployment["spec"]["template"]["metadata"]["labels"].clone();
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], labels);
    labels
}

fn validate(file: &str, version: &str) {
    let path = if Path::new(file).is_absolute() {
        Path::new(file).to_path_buf()
    } else {
        root().join(file)
    };
    let out = kubernetes_validate(&["--strict", "-k", version])
        .arg(&path)
        .output()
        .expect("run kubernetes-validate");
    assert!(
        out.status.success(),
        "{file} fails Kubernetes {version}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The pinned `kubernetes-validate` (PyPI, with the Kubernetes schemas bundled) with these
/// arguments.
fn kubernetes_validate(args: &[&str]) -> Command {
    let mut command = tools::kubernetes_validate();
    command.args(args);
    command
}
