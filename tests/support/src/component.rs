//! The hello-edge components, as data: each is named by the Spin manifest that builds it, and
//! built once per test binary by that manifest's own build command, so the file a test serves
//! is the file `spin build` makes.
//!
//! Components are built in a target directory of their own (`target/wasm-tests`), so the build
//! does not wait on the cargo lock of the test run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::tools::root;

/// A component of hello-edge.
#[derive(Debug, PartialEq, Eq)]
pub struct Component {
    /// Its short name, as in test names: the world it exports.
    pub name: &'static str,
    /// The Spin manifest that builds and serves it.
    pub manifest: &'static str,
    /// The package its manifest builds.
    pub package: &'static str,
}

/// The WASI 0.2 component (`wasip2/`, `wasi:http/incoming-handler@0.2`): the default,
/// `spin.toml`.
pub const WASIP2: Component = Component {
    name: "wasip2",
    manifest: "spin.toml",
    package: "hello-edge-wasip2",
};

/// The WASI 0.3 component (`wasip3/`, spin-sdk 7, `wasi:http/handler@0.3.0`):
/// `spin-wasip3.toml`.
pub const WASIP3: Component = Component {
    name: "wasip3",
    manifest: "spin-wasip3.toml",
    package: "hello-edge-wasip3",
};

/// Every component.
pub const COMPONENTS: [&Component; 2] = [&WASIP2, &WASIP3];

impl Component {
    /// Its Spin manifest, read.
    pub fn manifest(&self) -> SpinManifest {
        SpinManifest::read(self.manifest)
    }

    /// The built `.wasm`, built once per test binary by its manifest's build command.
    pub fn wasm(&self) -> PathBuf {
        static BUILT: Mutex<BTreeMap<&str, PathBuf>> = Mutex::new(BTreeMap::new());
        // Held while building: one cargo build at a time, and each component once.
        let mut built = BUILT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        built
            .entry(self.name)
            .or_insert_with(|| build(&self.manifest()))
            .clone()
    }
}

/// The parts of a Spin manifest the tests rely on.
pub struct SpinManifest {
    /// The file, relative to the root.
    pub file: &'static str,
    /// Its text.
    pub text: String,
    /// Its TOML.
    pub value: toml::Table,
}

impl SpinManifest {
    /// Reads a manifest from the root.
    pub fn read(file: &'static str) -> SpinManifest {
        let text = std::fs::read_to_string(root().join(file))
            .unwrap_or_else(|err| panic!("read {file}: {err}"));
        let value = text
            .parse()
            .unwrap_or_else(|err| panic!("{file} is not TOML: {err}"));
        SpinManifest { file, text, value }
    }

    /// The one component it declares.
    pub fn component(&self) -> &toml::Value {
        &self.value["component"]["hello-edge"]
    }

    /// The component file, relative to the manifest.
    pub fn source(&self) -> PathBuf {
        PathBuf::from(
            self.component()["source"]
                .as_str()
                .expect("component source"),
        )
    }

    /// The build command's words.
    pub fn build_command(&self) -> Vec<String> {
        let command = self.component()["build"]["command"]
            .as_str()
            .expect("build command");
        command.split_whitespace().map(str::to_owned).collect()
    }
}

/// Runs the manifest's build command, in the tests' own target directory, and returns the file
/// its `source` names there.
fn build(manifest: &SpinManifest) -> PathBuf {
    let words = manifest.build_command();
    assert_eq!(
        words[..2],
        ["cargo", "build"],
        "{} builds with cargo",
        manifest.file
    );
    let target_dir = wasm_target_dir();
    let status = std::process::Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()))
        .current_dir(root())
        .args(&words[1..])
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .expect("run cargo build for the component");
    assert!(
        status.success(),
        "building the component of {} failed; is the target installed? \
         (`cargo xtask setup` adds it)",
        manifest.file
    );
    // `source` is under `target/`; the same path under the tests' target directory.
    let source = manifest.source();
    let under_target = source
        .strip_prefix("target")
        .unwrap_or_else(|_| panic!("{}'s source is under target/", manifest.file));
    target_dir.join(under_target)
}

/// The target directory the components are built in for the tests.
pub fn wasm_target_dir() -> PathBuf {
    root().join("target").join("wasm-tests")
}

/// Whether `path` is under the root's `target/`.
pub fn is_under_target(path: &Path) -> bool {
    root().join(path).starts_with(root().join("target"))
}
