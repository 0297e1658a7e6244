//! What the deploy path ships, and the real tools that ship it: the three images and their
//! names, a CNCF distribution registry on loopback, and the daemonless image tools (buildah,
//! skopeo, umoci) and `wash oci`. A missing tool fails the test with how to install it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{self, debian};

/// An image the project ships, by repository; every manifest and the push test use these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    /// The native server, static, FROM scratch (deploy/kubernetes/Containerfile).
    Native,
    /// The WASI 0.2 component with spin.toml, for the Spin shim (deploy/spinkube/Containerfile).
    Spin,
    /// The WASI 0.2 component as a wasm OCI artifact (`wash oci push`), for wasmCloud and the shim.
    Component,
}

impl Image {
    /// Its repository in a registry.
    pub fn repository(self) -> &'static str {
        match self {
            Image::Native => "hello-edge",
            Image::Spin => "hello-edge-spin",
            Image::Component => "hello-edge-component",
        }
    }

    /// `registry/repository:version`, the tag being the workspace's version.
    pub fn reference(self, registry: &str) -> String {
        format!(
            "{registry}/{}:{}",
            self.repository(),
            tools::workspace_version()
        )
    }
}

/// A CNCF distribution registry (Debian's `docker-registry`) on a loopback port it picks and
/// logs, storing in a temporary directory; stopped and removed on drop.
pub struct Registry {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Registry {
    /// Starts a registry that stores under `dir`.
    pub fn start(dir: &Path) -> Registry {
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:0\n  secret: hello-edge-test\n",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        let log = dir.join("registry.log");
        let mut child = debian("docker-registry", "docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start docker-registry");
        // It logs the port it bound: `msg="listening on 127.0.0.1:PORT"`.
        let started = Instant::now();
        let addr = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(addr) = text.lines().find_map(|line| {
                let (_, rest) = line.split_once("msg=\"listening on ")?;
                rest.split('"').next()?.parse().ok()
            }) {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("docker-registry exited with {status}:\n{text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "docker-registry did not say where it listens:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let registry = Registry {
            addr,
            child,
            dir: dir.to_owned(),
        };
        while registry.get("/v2/").is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the registry did not answer on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        registry
    }

    /// `127.0.0.1:PORT`, the host part of every reference pushed here.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The digest the registry holds for `repository:tag`, from the distribution API.
    pub fn digest(&self, image: Image) -> String {
        self.digest_of(image.repository())
    }

    /// `HOST/REPOSITORY@DIGEST`: the image as a node pulls it, by digest.
    pub fn by_digest(&self, image: Image) -> String {
        format!(
            "{}/{}@{}",
            self.host(),
            image.repository(),
            self.digest(image)
        )
    }

    /// The digest the registry holds for `repository:VERSION`, from the distribution API.
    pub fn digest_of(&self, repository: &str) -> String {
        let path = format!("/v2/{repository}/manifests/{}", tools::workspace_version());
        let head = self
            .request("HEAD", &path, ACCEPT_MANIFESTS)
            .expect("HEAD manifest");
        let digest = header(&head, "docker-content-digest")
            .unwrap_or_else(|| panic!("no digest for {path}: {head}"));
        assert!(digest.starts_with("sha256:"), "{digest}");
        digest
    }

    /// The manifest the registry holds for `repository@digest`, as JSON.
    pub fn manifest(&self, image: Image, digest: &str) -> serde_json::Value {
        let path = format!("/v2/{}/manifests/{digest}", image.repository());
        let answer = self
            .request("GET", &path, ACCEPT_MANIFESTS)
            .expect("GET manifest");
        let body = answer.split_once("\r\n\r\n").expect("a body").1;
        serde_json::from_str(body).unwrap_or_else(|err| panic!("{err}: {body}"))
    }

    fn get(&self, path: &str) -> std::io::Result<String> {
        self.request("GET", path, "*/*")
    }

    /// One HTTP/1.0 request to the registry; the whole answer, head and body.
    fn request(&self, method: &str, path: &str, accept: &str) -> std::io::Result<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nAccept: {accept}\r\n\r\n",
            self.addr
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        if !answer.starts_with("HTTP/1.0 200") && !answer.starts_with("HTTP/1.1 200") {
            return Err(std::io::Error::other(answer));
        }
        Ok(answer)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(self.dir.join("storage"));
    }
}

const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
                                application/vnd.docker.distribution.manifest.v2+json";

fn header(answer: &str, name: &str) -> Option<String> {
    answer.split("\r\n\r\n").next()?.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// Runs a command to success and returns its stdout; on failure, panics with its output.
pub fn run(command: &mut Command) -> String {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(
        out.status.success(),
        "{command:?} failed with {}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// buildah with its own storage under `dir` (vfs: no overlay mounts needed), so a test touches
/// nothing of the machine's.
pub fn buildah(dir: &Path) -> Command {
    let mut command = debian("buildah", "buildah");
    command
        .arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(["--storage-driver", "vfs"]);
    command
}

/// skopeo, which copies images between registries and layouts.
pub fn skopeo() -> Command {
    debian("skopeo", "skopeo")
}

/// umoci, which unpacks an OCI layout into a root filesystem.
pub fn umoci() -> Command {
    debian("umoci", "umoci")
}

/// The pinned `wash`, whose `wash oci push` and `wash oci pull` move a component as a wasm OCI
/// artifact (one `application/wasm` layer).
pub fn wash() -> Command {
    Command::new(tools::wash())
}

/// Builds `containerfile` in `context` with buildah (storage under `buildah`) and pushes it to
/// `reference` (`HOST/REPOSITORY:TAG`, a plain-HTTP registry).
pub fn build_and_push(buildah_dir: &Path, context: &Path, containerfile: &Path, reference: &str) {
    let local = format!(
        "localhost/{}",
        reference
            .split_once('/')
            .map_or(reference, |(_, path)| path)
    );
    run(buildah(buildah_dir)
        .args(["build", "--isolation", "chroot", "-f"])
        .arg(containerfile)
        .args(["-t", &local])
        .arg(context));
    run(buildah(buildah_dir)
        .args(["push", "--tls-verify=false"])
        .arg(&local)
        .arg(format!("docker://{reference}")));
}

/// The native server as deploy/kubernetes/Containerfile expects it: a static musl binary from
/// the `dist` profile, built in a target directory of the tests' own.
pub fn static_binary() -> PathBuf {
    const TARGET: &str = "x86_64-unknown-linux-musl";
    let target_dir = tools::root().join("target/deploy-tests");
    run(Command::new(env!("CARGO"))
        .current_dir(tools::root())
        .args(["build", "--profile", "dist", "--target", TARGET])
        .args(["--package", "hello-edge-native", "--target-dir"])
        .arg(&target_dir));
    target_dir.join(TARGET).join("dist/hello-edge")
}

/// Where deploy/kubernetes/Containerfile copies the static binary from, from the repository
/// root.
pub const NATIVE_BINARY: &str = "target/x86_64-unknown-linux-musl/dist/hello-edge";

/// Where deploy/spinkube/Containerfile copies the WASI 0.2 component from.
pub const COMPONENT: &str = "target/wasm32-wasip2/component/hello_edge_wasip2.wasm";

/// Copies `from` to `to` under a build `context`, making the folders between.
pub fn place(context: &Path, from: &Path, to: &str) {
    let to = context.join(to);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, &to).unwrap_or_else(|err| panic!("copy {from:?}: {err}"));
}

/// Builds the native image as its Containerfile says, from the static binary, in a context under
/// `work`, and pushes it to the registry at `host`; its reference.
pub fn push_native_image(work: &Path, host: &str) -> String {
    let reference = Image::Native.reference(host);
    push_staged(
        &work.join("hello-edge-context"),
        &work.join("buildah"),
        "deploy/kubernetes/Containerfile",
        &[(static_binary(), NATIVE_BINARY)],
        &reference,
    );
    reference
}

/// Builds the SpinKube image as deploy/spinkube/Containerfile says (spin.toml and the WASI 0.2
/// component, FROM scratch), in a context under `work`, and pushes it to `reference`.
pub fn push_spin_image(work: &Path, reference: &str) {
    push_staged(
        &work.join("hello-edge-spin-context"),
        &work.join("buildah"),
        "deploy/spinkube/Containerfile",
        &spin_app_files(),
        reference,
    );
}

/// The Spin app as `spin build` leaves it, for `spin registry push`: a folder under `work`
/// holding the repository's spin.toml and the WASI 0.2 component where its `source` says.
pub fn stage_spin_app(work: &Path) -> PathBuf {
    let app = work.join("hello-edge-spin-app");
    for (from, to) in spin_app_files() {
        place(&app, &from, to);
    }
    app
}

/// The files of the Spin app as `spin build` leaves them, from the repository root: spin.toml
/// and the component.
fn spin_app_files() -> Vec<(PathBuf, &'static str)> {
    vec![
        (crate::component::WASIP2.wasm(), COMPONENT),
        (tools::root().join("spin.toml"), "spin.toml"),
    ]
}

/// Places `files` and the repository's .dockerignore in `context`, builds it with
/// `containerfile` (from the repository root) and pushes it to `reference`.
fn push_staged(
    context: &Path,
    buildah_dir: &Path,
    containerfile: &str,
    files: &[(PathBuf, &str)],
    reference: &str,
) {
    for (from, to) in files {
        place(context, from, to);
    }
    place(
        context,
        &tools::root().join(".dockerignore"),
        ".dockerignore",
    );
    build_and_push(
        buildah_dir,
        context,
        &tools::root().join(containerfile),
        reference,
    );
}
