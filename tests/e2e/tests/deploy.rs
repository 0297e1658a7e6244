//! The deploy path, the whole way, with the real tools: build the artifacts, push them to a real
//! OCI registry on loopback, pull each back by digest, check the bytes and the image
//! configuration, then run what was pulled as the engines run it, and pass the conformance table
//! on each:
//!
//! * the native image on containerd and runc, as a Kubernetes node runs the Deployment of
//!   `deploy/kubernetes/hello-edge.yaml`: its user, read-only root, capabilities, environment
//!   and limits read from that manifest, and seen in the running container;
//! * the SpinKube image on the Spin shim (`io.containerd.spin.v2`), as a SpinKube node runs it;
//!   and a WASI 0.3 one, which the shim refuses;
//! * the wasm OCI artifact under the pinned `wasmtime serve`.
//!
//! One test, because it is slow (a static release build of the native server); the fast checks
//! of the manifests are in `manifests.rs`, beside this file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;

use support::client::{self, Protocol};
use support::component::{WASIP2, WASIP3};
use support::conformance;
use support::containerd::{Containerd, PodSpec, cpu_millis, memory_bytes, on_loopback};
use support::host::{Host, Launch, assert_clean};
use support::manifest::{Manifest, container_env, container_port, env_of};
use support::native;
use support::oci::{self, Image, Registry};
use support::process::raise_open_file_limit;
use support::scenarios;
use support::tools::{self, root};
use support::wasmtime;

/// The delay the pulled artifacts run with: the default.
const DELAY: Duration = hello_edge::Delay::DEFAULT.as_duration();

/// The runtime a SpinKube node runs SpinApps on (the spin-operator's `containerd-shim-spin`
/// executor).
const SPIN_SHIM: &str = "io.containerd.spin.v2";

/// The WASI 0.3 build as a SpinKube image, made only to see the shim refuse it.
const WASIP3_SPIN_REPOSITORY: &str = "hello-edge-spin-wasip3";

/// build → push → pull back by digest → check the bytes → run as the engines run it →
/// conformance, for the native image, the Spin shim image and the wasm OCI artifact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_go_through_a_registry_and_run_as_their_engines_run_them() {
    // The cap's connections are descriptors here, and in the container.
    raise_open_file_limit(12_000);
    let work = tempdir("deploy");
    let registry = Registry::start(&work.join("registry"));
    let host = registry.host();

    // Build: the static binary and the components, each as its own documented command builds it.
    let binary = oci::static_binary();
    let component = WASIP2.wasm();
    let context = stage_context(&work.join("context"), &binary, &component);

    // Push: the two images with buildah (FROM scratch, nothing pulled), the component with
    // `wash oci`.
    let buildah_dir = work.join("buildah");
    for (image, containerfile) in [
        (
            Image::Native,
            root().join("deploy/kubernetes/Containerfile"),
        ),
        (Image::Spin, root().join("deploy/spinkube/Containerfile")),
    ] {
        oci::build_and_push(
            &buildah_dir,
            &context,
            &containerfile,
            &image.reference(&host),
        );
        assert_eq!(
            registry.digest_of(image.repository()),
            registry.digest(image),
            "{image:?}"
        );
    }
    oci::run(
        oci::wash()
            .args(["oci", "push", "--insecure"])
            .arg(Image::Component.reference(&host))
            .arg(&component),
    );
    // The WASI 0.3 component as the same kind of image: spin-wasip3.toml as /spin.toml.
    let wasip3_context = stage_wasip3_context(&work.join("context-wasip3"));
    oci::build_and_push(
        &buildah_dir,
        &wasip3_context,
        &wasip3_context.join("Containerfile"),
        &format!(
            "{host}/{WASIP3_SPIN_REPOSITORY}:{}",
            tools::workspace_version()
        ),
    );

    // Pull each back by digest, and check what came back is what was built.
    let native = pull_image(&registry, Image::Native, &work);
    assert_same_file(&native.rootfs.join("hello-edge"), &binary);
    let config = &native.config["config"];
    assert_eq!(config["Entrypoint"], serde_json::json!(["/hello-edge"]));
    assert_eq!(config["User"], "65532:65532");
    assert!(config["ExposedPorts"]["8000/tcp"].is_object(), "{config}");
    assert!(
        native
            .env()
            .contains(&"HELLO_EDGE_LISTEN=0.0.0.0:8000".to_owned()),
        "{config}"
    );

    let spin = pull_image(&registry, Image::Spin, &work);
    assert_same_file(&spin.rootfs.join("spin.toml"), &root().join("spin.toml"));
    // The shim loads /spin.toml and the component at the path its `source` names, from `/`.
    let manifest = WASIP2.manifest();
    assert_same_file(&spin.rootfs.join(manifest.source()), &component);

    let digest = registry.digest(Image::Component);
    let artifact = registry.manifest(Image::Component, &digest);
    // One layer of `application/wasm`: what wasmCloud pulls, and what the Spin shim runs as a
    // wkg package (containerd-shim-spin, OCI_LAYER_MEDIA_TYPE_WASM_WKG).
    assert_eq!(
        artifact["layers"].as_array().map(Vec::len),
        Some(1),
        "{artifact}"
    );
    assert_eq!(artifact["layers"][0]["mediaType"], "application/wasm");
    let pulled_component = work.join("pulled.wasm");
    oci::run(
        oci::wash()
            .args(["oci", "pull", "--insecure"])
            .arg(format!("{host}/{}@{digest}", Image::Component.repository()))
            .arg(&pulled_component),
    );
    assert_same_file(&pulled_component, &component);

    // Run what was pulled: the images on containerd, as a node runs them; the component under
    // wasmtime serve.
    let containerd = Containerd::start().await;
    native_image_as_the_deployment_runs_it(&containerd, &registry, &native.config).await;
    spinkube_image_on_the_spin_shim(&containerd, &registry).await;
    wasip3_image_refused_by_the_spin_shim(&containerd, &registry).await;
    drop(containerd);

    let mut wasmtime = wasmtime::serve(&pulled_component, &Launch::default()).await;
    let report = conformance::run_on(&wasmtime, Protocol::Http1, DELAY).await;
    assert!(report.is_empty(), "the pulled component:\n{report}");
    assert_clean(
        "the pulled component under wasmtime serve",
        &wasmtime.stop().await.log,
    );

    // What each artifact weighs in the registry (its layers, compressed as pushed).
    for image in [Image::Native, Image::Spin, Image::Component] {
        let manifest = registry.manifest(image, &registry.digest(image));
        let layers: u64 = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| layer["size"].as_u64().unwrap())
            .sum();
        eprintln!(
            "{}: {layers} bytes in layers",
            image.reference(&registry.host())
        );
    }
    eprintln!(
        "native binary {} bytes, component {} bytes",
        size(&binary),
        size(&component)
    );
    drop(registry);
    let _ = std::fs::remove_dir_all(&work);
}

/// The pod the native image runs as, for the downward API's `metadata.name`.
const POD_NAME: &str = "hello-edge-on-containerd";

/// The native image pulled by digest and run on containerd and runc as a node runs the
/// Deployment's container: with what `deploy/kubernetes/hello-edge.yaml` asks, read from it, and
/// seen in the running container. Then the table, the admin port, its JSON log, the connection
/// cap's connections under the memory limit, and SIGTERM while clients are still arriving.
async fn native_image_as_the_deployment_runs_it(
    containerd: &Containerd,
    registry: &Registry,
    image_config: &Value,
) {
    let manifest = Manifest::read("deploy/kubernetes/hello-edge.yaml");
    let pod = &manifest.kind("Deployment")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    // A container's securityContext overrides the pod's, field by field.
    let security = |field: &str| {
        let own = &container["securityContext"][field];
        if own.is_null() {
            pod["securityContext"][field].clone()
        } else {
            own.clone()
        }
    };
    let id = |field: &str| {
        security(field)
            .as_u64()
            .unwrap_or_else(|| panic!("{field}")) as u32
    };
    let user = (id("runAsUser"), id("runAsGroup"));
    let env = env_of(container);
    let mut vars = container_env(container, POD_NAME);
    // The pod's name reaches the traces' resource, as the kubelet expands it.
    assert!(
        vars.contains(&(
            "OTEL_RESOURCE_ATTRIBUTES".to_owned(),
            format!("k8s.pod.name={POD_NAME}")
        )),
        "{vars:?}"
    );
    // The one addition to the manifest's environment: the accepted connections, logged, for the
    // drain's check below (at debug, in JSON like the rest).
    vars.push((
        "RUST_LOG".into(),
        "hello_edge=info,hello_edge_native=info,hello_edge_native::server=debug".into(),
    ));
    let limits = &container["resources"]["limits"];
    let spec = PodSpec {
        image_config: image_config["config"].clone(),
        env: vars,
        user,
        read_only_root: security("readOnlyRootFilesystem") == true,
        keep_capabilities: !container["securityContext"]["capabilities"]["drop"]
            .as_array()
            .is_some_and(|drop| drop.iter().any(|cap| cap == "ALL")),
        allow_privilege_escalation: security("allowPrivilegeEscalation") != false,
        memory_limit: memory_bytes(limits["memory"].as_str().expect("a memory limit")),
        cpu_limit_millis: cpu_millis(limits["cpu"].as_str().expect("a CPU limit")),
    };
    let port = |name: &str| container_port(container, name);
    let delay = hello_edge::Delay::from_millis_str(&env(hello_edge_native::env::DELAY_MS).unwrap())
        .unwrap()
        .as_duration();
    let cap: usize = env(hello_edge_native::env::MAX_CONNECTIONS)
        .unwrap()
        .parse()
        .unwrap();

    let reference = registry.by_digest(Image::Native);
    containerd.pull(&reference);
    let started = Instant::now();
    let mut running = containerd.run_pod(&reference, &spec).await;
    let addr = running.serving().await;
    let first = client::get(addr, hello_edge::HEALTH_PATH)
        .await
        .expect("an answer");
    assert_eq!(first.status, StatusCode::OK);
    eprintln!(
        "native image: ctr run to the first 200 in {:?}",
        started.elapsed()
    );

    // It serves where the manifest's ports say, app and admin.
    assert_eq!(addr.port(), port("http"), "the app's port");
    let admin = on_loopback(
        running
            .wait_for("its admin address", Duration::from_secs(5), |line| {
                hello_edge_native::parse_admin_line(line)
            })
            .await,
    );
    assert_eq!(admin.port(), port("admin"), "the admin port");

    // What the node made of the manifest, seen in the running container.
    let pid = running.task_pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let image_user = image_config["config"]["User"].as_str().unwrap_or_default();
    assert_eq!(
        image_user,
        format!("{}:{}", user.0, user.1),
        "the image's USER and the manifest's runAsUser:runAsGroup differ"
    );
    assert_ne!(user.0, 0, "runAsNonRoot");
    assert_eq!(field("Uid"), [user.0.to_string().as_str(); 4], "its user");
    assert_eq!(field("Gid"), [user.1.to_string().as_str(); 4], "its group");
    for set in ["CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(set), ["0000000000000000"], "{set}: no capabilities");
    }
    assert_eq!(field("NoNewPrivs"), ["1"], "no privilege escalation");
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root_mount = mounts
        .lines()
        .find(|line| line.split_whitespace().nth(4) == Some("/"))
        .expect("the root mount");
    let options = root_mount.split_whitespace().nth(5).unwrap();
    assert!(
        options.split(',').any(|option| option == "ro"),
        "the root filesystem is not read-only: {root_mount}"
    );
    let cgroup_limit: u64 = read_number(&running.memory_cgroup_file("memory.limit_in_bytes"));
    assert_eq!(cgroup_limit, spec.memory_limit, "the memory limit");
    // The open-file limit the node gives (containerd's own) holds the connection cap.
    let limits_file = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files: u64 = limits_file
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .expect("Max open files");
    eprintln!("native image: open-file limit {open_files}, connection cap {cap}");
    assert!(
        open_files >= cap as u64 + 64,
        "the container's open-file limit ({open_files}) is below the connection cap ({cap})"
    );

    let report = conformance::run_on(&running, Protocol::Http1, delay).await;
    assert!(
        report.is_empty(),
        "the native image on containerd:\n{report}"
    );

    // Liveness and metrics on the admin port.
    let live = client::get(admin, hello_edge::HEALTH_PATH).await.unwrap();
    assert_eq!(
        (live.status, live.text().as_str()),
        (StatusCode::OK, "ok\n")
    );
    let metrics = client::get(admin, "/metrics").await.unwrap();
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .text()
            .contains(r#"hello_edge_requests_total{route="hello",status="200"}"#),
        "{}",
        metrics.text()
    );

    // The connection cap's connections, all waiting at once, within the memory limit.
    let took = scenarios::assert_overlap(addr, cap, delay, Duration::from_secs(30)).await;
    let peak = read_number(&running.memory_cgroup_file("memory.max_usage_in_bytes"));
    let failed = read_number(&running.memory_cgroup_file("memory.failcnt"));
    eprintln!(
        "native image: {cap} connections at once in {took:?}, peak memory {:.1} MiB of {:.0} MiB",
        peak as f64 / f64::from(1 << 20),
        spec.memory_limit as f64 / f64::from(1 << 20)
    );
    assert_eq!(failed, 0, "the container hit its memory limit");

    // SIGTERM, as the kubelet sends it after the preStop pause, while clients still arrive:
    // every connection it accepted is answered, and it exits 0. Only what it logs from here on
    // is about these clients: the ports of the connections before may come round again.
    let mark = running.log().mark();
    let arrivals = scenarios::arrive_through_a_stop(
        addr,
        scenarios::Arrivals::WHILE_CLIENTS_ARRIVE,
        running.kill_later("SIGTERM"),
    )
    .await;
    let exit = running.exited(Duration::from_secs(30)).await;
    let log = running.log().text();
    native::assert_answered_through_a_stop(
        "native image, SIGTERM while 300 clients arrive",
        &arrivals,
        &running.log().since(mark),
    );
    assert!(exit.success(), "exit status {exit} after SIGTERM:\n{log}");

    // Its log is JSON, a line an object (but the two lines that say where it serves).
    for line in log.lines() {
        if line.starts_with("Serving http://") || line.starts_with("Admin http://") {
            continue;
        }
        let object: Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line:?}"));
        assert!(object["level"].is_string(), "{line}");
    }
    assert!(
        !log.contains("the open-file limit is below the connection cap"),
        "{log}"
    );
}

/// The SpinKube image pulled by digest and run on the Spin shim, as a SpinKube node runs it: the
/// table, 200 requests overlapping, the shim's log and the guest's clean, and what SIGTERM does
/// with requests in flight (as the README says: the shim aborts, exits 0, answers none).
async fn spinkube_image_on_the_spin_shim(containerd: &Containerd, registry: &Registry) {
    let _ = tools::spin_shim();
    let reference = registry.by_digest(Image::Spin);
    containerd.pull(&reference);
    let mark = containerd.log().mark();
    let started = Instant::now();
    let listen = [("SPIN_HTTP_LISTEN_ADDR", "127.0.0.1:0")];
    let mut app = containerd
        .run_on(SPIN_SHIM, &reference, &listen, &["/"])
        .await;
    let addr = app.serving().await;
    let first = client::get(addr, hello_edge::HEALTH_PATH)
        .await
        .expect("an answer");
    assert_eq!(first.status, StatusCode::OK);
    eprintln!(
        "SpinKube image: ctr run to the first 200 in {:?}",
        started.elapsed()
    );

    let delay = spin_toml_delay();
    let report = conformance::run_on(&app, Protocol::Http1, delay).await;
    assert!(
        report.is_empty(),
        "the SpinKube image on the shim:\n{report}"
    );
    scenarios::assert_overlap(addr, 200, delay, Duration::from_secs(3)).await;

    // SIGTERM with 20 requests in flight.
    let requests: Vec<_> = (0..20)
        .map(|i| tokio::spawn(async move { client::get(addr, &format!("/hello/{i}")).await }))
        .collect();
    tokio::time::sleep(delay / 2).await;
    let signalled = Instant::now();
    let exit = app.signalled("SIGTERM", Duration::from_secs(20)).await;
    let took = signalled.elapsed();
    let mut answered = 0;
    for request in requests {
        if request.await.unwrap().is_ok() {
            answered += 1;
        }
    }
    eprintln!("SpinKube image, SIGTERM: {exit} after {took:?}, {answered} of 20 answered");
    assert!(exit.success(), "exit status {exit} after SIGTERM");
    assert_eq!(
        answered, 0,
        "the shim answered {answered} of 20 requests in flight on SIGTERM: it drains now, so the \
         README's host table and deploy/spinkube's preStop advice are out of date"
    );
    assert_clean(&app.label(), &app.log().text());
    assert_clean("containerd (the Spin shim)", &containerd.log().since(mark));
}

/// The WASI 0.3 component as a SpinKube image: the shim (Spin 3.6, which knows only a release
/// candidate of WASI 0.3) refuses it at start, saying why in containerd's log, and never serves.
async fn wasip3_image_refused_by_the_spin_shim(containerd: &Containerd, registry: &Registry) {
    let reference = format!(
        "{}/{WASIP3_SPIN_REPOSITORY}@{}",
        registry.host(),
        registry.digest_of(WASIP3_SPIN_REPOSITORY)
    );
    containerd.pull(&reference);
    let mark = containerd.log().mark();
    let listen = [("SPIN_HTTP_LISTEN_ADDR", "127.0.0.1:0")];
    let mut app = containerd
        .run_on(SPIN_SHIM, &reference, &listen, &["/"])
        .await;
    let exit = app.exited(Duration::from_secs(60)).await;
    let output = app.log().text();
    let log = containerd.log().since(mark);
    eprintln!(
        "WASI 0.3 SpinKube image on the shim: {exit}, saying:\n{}",
        log.lines()
            .filter(|line| line.contains("wasi:http"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !exit.success(),
        "the shim ran the WASI 0.3 component:\n{output}"
    );
    assert!(!output.contains("Serving http://"), "{output}");
    assert!(
        log.contains(
            "component imports instance `wasi:http/types@0.3.0`, but a matching implementation \
             was not found in the linker"
        ),
        "containerd's log does not say why:\n{log}\nthe container's output:\n{output}"
    );
}

/// A build context for the WASI 0.3 SpinKube image: spin-wasip3.toml as /spin.toml, and the
/// component at the path its `source` names, as deploy/spinkube/Containerfile lays out the
/// default one.
fn stage_wasip3_context(context: &Path) -> PathBuf {
    let manifest = WASIP3.manifest();
    let source = manifest.source();
    let target = context.join(&source);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(WASIP3.wasm(), &target).unwrap();
    std::fs::copy(
        root().join(WASIP3.manifest_file()),
        context.join("spin.toml"),
    )
    .unwrap();
    std::fs::write(
        context.join("Containerfile"),
        format!(
            "FROM scratch\nCOPY spin.toml /spin.toml\nCOPY {0} /{0}\n",
            source.display()
        ),
    )
    .unwrap();
    context.to_owned()
}

/// The delay spin.toml bakes into the SpinKube image.
fn spin_toml_delay() -> Duration {
    let manifest = WASIP2.manifest();
    let delay = manifest.component()["environment"][hello_edge::Config::DELAY_ENV]
        .as_str()
        .expect("spin.toml's delay");
    hello_edge::Delay::from_millis_str(delay)
        .unwrap()
        .as_duration()
}

/// A number in a file (a cgroup's).
fn read_number(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

/// An image pulled back by digest, unpacked: its root filesystem and its configuration.
struct Pulled {
    rootfs: PathBuf,
    config: serde_json::Value,
}

impl Pulled {
    fn env(&self) -> Vec<String> {
        self.config["config"]["Env"]
            .as_array()
            .map(|vars| {
                vars.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// skopeo copies `repository@digest` from the registry into an OCI layout, umoci unpacks it.
fn pull_image(registry: &Registry, image: Image, work: &Path) -> Pulled {
    let digest = registry.digest(image);
    let by_digest = format!("{}/{}@{digest}", registry.host(), image.repository());
    let layout = work.join(format!("{}-layout", image.repository()));
    oci::run(
        oci::skopeo()
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{by_digest}"))
            .arg(format!("oci:{}:pulled", layout.display())),
    );
    let bundle = work.join(format!("{}-bundle", image.repository()));
    oci::run(
        oci::umoci()
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:pulled", layout.display()))
            .arg(&bundle),
    );
    let config = oci::run(
        oci::skopeo()
            .args(["inspect", "--config", "--tls-verify=false"])
            .arg(format!("docker://{by_digest}")),
    );
    Pulled {
        rootfs: bundle.join("rootfs"),
        config: serde_json::from_str(&config).expect("the image config is JSON"),
    }
}

/// A build context laid out as the repository root is after the builds (the paths the
/// Containerfiles copy from), with the repository's .dockerignore, which must let them through.
fn stage_context(context: &Path, binary: &Path, component: &Path) -> PathBuf {
    let root = root();
    oci::place(context, binary, oci::NATIVE_BINARY);
    oci::place(context, component, oci::COMPONENT);
    oci::place(context, &root.join("spin.toml"), "spin.toml");
    oci::place(context, &root.join(".dockerignore"), ".dockerignore");
    context.to_owned()
}

fn assert_same_file(got: &Path, want: &Path) {
    let (got_bytes, want_bytes) = (
        std::fs::read(got).unwrap_or_else(|err| panic!("read {got:?}: {err}")),
        std::fs::read(want).unwrap_or_else(|err| panic!("read {want:?}: {err}")),
    );
    assert!(
        got_bytes == want_bytes,
        "{got:?} ({} bytes) is not {want:?} ({} bytes)",
        got_bytes.len(),
        want_bytes.len()
    );
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A fresh directory under target/, removed at the end of a passing run (kept for a look after
/// a failure).
fn tempdir(name: &str) -> PathBuf {
    let dir = root()
        .join("target/deploy-tests/work")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
