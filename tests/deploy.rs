//! The deploy path, the whole way, with the real tools: build the three artifacts, push them to a
//! real OCI registry on loopback, pull each back by digest, check the bytes and the image
//! configuration, then run what was pulled (the native binary as a process, the component under
//! the pinned `wasmtime serve`) and pass the conformance table on it.
//!
//! One test, because it is slow (a static release build of the native server); the fast checks
//! of the manifests are in `tests/manifests.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::client::Protocol;
use support::component::WASIP2;
use support::conformance;
use support::host::{ComponentHost, NativeBinary, Wasmtime};
use support::oci::{self, Image, Registry};
use support::tools::root;

/// The delay the pulled artifacts run with: the default.
const DELAY: Duration = Duration::from_millis(500);

/// build → push → pull back by digest → check the bytes → run → conformance, for the native
/// image, the Spin shim image and the wasm OCI artifact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_go_through_a_registry_and_still_conform() {
    let work = tempdir("deploy");
    let registry = Registry::start(&work.join("registry"));
    let host = registry.host();

    // Build: the static binary and the component, each as its own documented command builds it.
    let binary = static_binary();
    let component = WASIP2.wasm();
    let context = stage_context(&work.join("context"), &binary, &component);

    // Push: the two images with buildah (FROM scratch, nothing pulled), the component with
    // `wash oci`.
    let buildah_dir = work.join("buildah");
    for (image, containerfile) in [
        (Image::Native, "deploy/kubernetes/Containerfile"),
        (Image::Spin, "deploy/spinkube/Containerfile"),
    ] {
        let local = format!("localhost/{}:test", image.repository());
        oci::run(
            oci::buildah(&buildah_dir)
                .args(["build", "--isolation", "chroot", "-f"])
                .arg(root().join(containerfile))
                .args(["-t", &local])
                .arg(&context),
        );
        let digest_file = work.join(format!("{}.digest", image.repository()));
        oci::run(
            oci::buildah(&buildah_dir)
                .args(["push", "--tls-verify=false", "--digestfile"])
                .arg(&digest_file)
                .arg(&local)
                .arg(format!("docker://{}", image.reference(&host))),
        );
        let pushed = std::fs::read_to_string(&digest_file).unwrap();
        assert_eq!(pushed.trim(), registry.digest(image), "{image:?}");
    }
    oci::run(
        oci::wash()
            .args(["oci", "push", "--insecure"])
            .arg(Image::Component.reference(&host))
            .arg(&component),
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

    // Run what was pulled: the binary as the image would (its environment, on loopback), and
    // the component under wasmtime serve. Both pass the conformance table.
    let mut server = start_pulled_binary(&native).await;
    let report = conformance::run_on(&server, Protocol::Http1, DELAY).await;
    assert!(report.is_empty(), "the pulled native server:\n{report}");
    // SIGTERM, as Kubernetes sends it: the server drains and exits 0.
    let (status, log) = server.stop().await;
    assert!(
        status.success(),
        "exit status {status} after SIGTERM:\n{log}"
    );

    let host = Wasmtime::serve(&pulled_component, &[], &[]).await;
    let report = conformance::run_on(&host, Protocol::Http1, DELAY).await;
    assert!(report.is_empty(), "the pulled component:\n{report}");
    host.stop().await;

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

/// The native server as deploy/kubernetes/Containerfile expects it: a static musl binary from
/// the `dist` profile, built in a target directory of the tests' own.
fn static_binary() -> PathBuf {
    const TARGET: &str = "x86_64-unknown-linux-musl";
    let target_dir = root().join("target/deploy-tests");
    oci::run(
        std::process::Command::new(env!("CARGO"))
            .current_dir(root())
            .args(["build", "--profile", "dist", "--target", TARGET])
            .args(["--package", "hello-edge-native", "--target-dir"])
            .arg(&target_dir),
    );
    target_dir.join(TARGET).join("dist/hello-edge")
}

/// A build context laid out as the repository root is after the builds (the paths the
/// Containerfiles copy from), with the repository's .dockerignore, which must let them through.
fn stage_context(context: &Path, binary: &Path, component: &Path) -> PathBuf {
    let root = root();
    let place = |from: &Path, to: &str| {
        let to = context.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, &to).unwrap_or_else(|err| panic!("copy {from:?}: {err}"));
    };
    place(binary, "target/x86_64-unknown-linux-musl/dist/hello-edge");
    place(
        component,
        "target/wasm32-wasip2/component/hello_edge_wasip2.wasm",
    );
    place(&root.join("spin.toml"), "spin.toml");
    place(&root.join(".dockerignore"), ".dockerignore");
    context.to_owned()
}

/// The pulled binary, run as the image runs it (no arguments, the image's environment only) but
/// listening on port 0 of loopback.
async fn start_pulled_binary(image: &Pulled) -> NativeBinary {
    let mut command = tokio::process::Command::new(image.rootfs.join("hello-edge"));
    command.env_clear();
    for var in image.env() {
        if let Some((name, value)) = var.split_once('=') {
            command.env(name, value);
        }
    }
    command.env("HELLO_EDGE_LISTEN", "127.0.0.1:0");
    NativeBinary::from_command(command).await
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
