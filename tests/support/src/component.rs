//! The components, as data: hello-edge's two, each named by the Spin manifest that builds it and
//! built once per process by that manifest's own build command, so the file a test serves is the
//! file `spin build` makes; and the benchmark's no-op references, built by the same command for
//! their own package.
//!
//! Components are built in a target directory of their own (`target/wasm-tests`), so the build
//! does not wait on the cargo lock of the test run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::tools::root;

/// The WASI release a component's world is of: what a host must serve to run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wasi {
    /// WASI 0.2: `wasi:http/incoming-handler@0.2`, which every wasm HTTP host serves.
    P2,
    /// WASI 0.3: `wasi:http/handler@0.3.0`, for Spin 4.1 and later and `wasmtime serve`.
    P3,
}

/// A component: hello-edge's, or a benchmark's reference.
#[derive(Debug, PartialEq, Eq)]
pub struct Component {
    /// Its short name, as in test names: the world it exports.
    pub name: &'static str,
    /// The WASI release of the world it exports.
    pub wasi: Wasi,
    /// What it is, in the benchmark's labels: `hello-edge WASI 0.2 component`.
    pub label: &'static str,
    /// The Spin manifest that builds and serves it; `None` for a reference, which has none.
    pub manifest: Option<&'static str>,
    /// The package it is built from.
    pub package: &'static str,
}

/// The WASI 0.2 component (`wasip2/`, `wasi:http/incoming-handler@0.2`): the default,
/// `spin.toml`.
pub const WASIP2: Component = Component {
    name: "wasip2",
    wasi: Wasi::P2,
    label: "hello-edge WASI 0.2 component",
    manifest: Some("spin.toml"),
    package: "hello-edge-wasip2",
};

/// The WASI 0.3 component (`wasip3/`, spin-sdk 7, `wasi:http/handler@0.3.0`):
/// `spin-wasip3.toml`.
pub const WASIP3: Component = Component {
    name: "wasip3",
    wasi: Wasi::P3,
    label: "hello-edge WASI 0.3 component",
    manifest: Some("spin-wasip3.toml"),
    package: "hello-edge-wasip3",
};

/// hello-edge's components.
pub const COMPONENTS: [&Component; 2] = [&WASIP2, &WASIP3];

/// The benchmark's reference beside [`WASIP2`]: a WASI 0.2 component on the same bindings that
/// sends hello-edge's answer to `/hello/bench` and decides nothing (`bench/noop-wasip2`).
pub const NOOP_WASIP2: Component = Component {
    name: "noop-wasip2",
    wasi: Wasi::P2,
    label: "no-op WASI 0.2 component",
    manifest: None,
    package: "hello-edge-bench-noop-wasip2",
};

/// The benchmark's reference beside [`WASIP3`] (`bench/noop-wasip3`).
pub const NOOP_WASIP3: Component = Component {
    name: "noop-wasip3",
    wasi: Wasi::P3,
    label: "no-op WASI 0.3 component",
    manifest: None,
    package: "hello-edge-bench-noop-wasip3",
};

/// The command that builds a component with no Spin manifest: the one hello-edge's manifests
/// give, for its package.
fn build_command(package: &str) -> Vec<String> {
    format!("cargo build --package {package} --target wasm32-wasip2 --profile component")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

impl Component {
    /// Its Spin manifest's file; panics for a reference, which has none.
    pub fn manifest_file(&self) -> &'static str {
        self.manifest
            .unwrap_or_else(|| panic!("{} has no Spin manifest", self.name))
    }

    /// Its Spin manifest, read; panics for a reference, which has none.
    pub fn manifest(&self) -> SpinManifest {
        SpinManifest::read(self.manifest_file())
    }

    /// Whether it is a benchmark's reference rather than hello-edge's.
    pub fn is_reference(&self) -> bool {
        self.manifest.is_none()
    }

    /// The built `.wasm`, built once per process: by its Spin manifest's build command, or a
    /// reference's by the same command for its package.
    pub fn wasm(&self) -> PathBuf {
        static BUILT: Mutex<BTreeMap<&str, PathBuf>> = Mutex::new(BTreeMap::new());
        // Held while building: one cargo build at a time, and each component once.
        let mut built = BUILT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        built
            .entry(self.name)
            .or_insert_with(|| match self.manifest {
                Some(_) => build(&self.manifest()),
                None => {
                    let file = format!("{}.wasm", self.package.replace('-', "_"));
                    run_build(&build_command(self.package), self.name);
                    wasm_target_dir().join("wasm32-wasip2/component").join(file)
                }
            })
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
    run_build(&manifest.build_command(), manifest.file);
    // `source` is under `target/`; the same path under the tests' target directory.
    let source = manifest.source();
    let under_target = source
        .strip_prefix("target")
        .unwrap_or_else(|_| panic!("{}'s source is under target/", manifest.file));
    wasm_target_dir().join(under_target)
}

/// Runs a `cargo build` command's words in the tests' own target directory.
fn run_build(words: &[String], what: &str) {
    assert_eq!(words[..2], ["cargo", "build"], "{what} builds with cargo");
    let status = std::process::Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()))
        .current_dir(root())
        .args(&words[1..])
        .arg("--target-dir")
        .arg(wasm_target_dir())
        .status()
        .expect("run cargo build for the component");
    assert!(
        status.success(),
        "building the component of {what} failed; is the target installed? \
         (`cargo xtask setup` adds it)"
    );
}

/// The target directory the components are built in for the tests.
pub fn wasm_target_dir() -> PathBuf {
    root().join("target").join("wasm-tests")
}

/// Whether `path` is under the root's `target/`.
pub fn is_under_target(path: &Path) -> bool {
    root().join(path).starts_with(root().join("target"))
}
