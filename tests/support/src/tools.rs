//! Where the tools beyond Rust are: the pinned ones (`[workspace.metadata.tools]` in the root
//! Cargo.toml) in `target/tools/bin`, where `cargo xtask setup` installs them, or on the `PATH`
//! at the pinned version; the Debian ones on the `PATH`. A missing tool fails the test that needs
//! it, saying how to install it: none is skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The repository root.
pub fn root() -> &'static Path {
    // This crate is tests/support.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("tests/support is two levels below the root")
}

/// The root Cargo.toml, parsed.
pub fn workspace_manifest() -> &'static toml::Table {
    static MANIFEST: OnceLock<toml::Table> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        let text = std::fs::read_to_string(root().join("Cargo.toml")).expect("read Cargo.toml");
        text.parse().expect("Cargo.toml is TOML")
    })
}

/// The version pinned for `tool` in `[workspace.metadata.tools]`.
pub fn pinned_version(tool: &str) -> &'static str {
    workspace_manifest()["workspace"]["metadata"]["tools"][tool]["version"]
        .as_str()
        .unwrap_or_else(|| panic!("no version for {tool} in [workspace.metadata.tools]"))
}

/// The workspace's version, which tags every image.
pub fn workspace_version() -> &'static str {
    workspace_manifest()["workspace"]["package"]["version"]
        .as_str()
        .expect("[workspace.package] version")
}

/// Where `cargo xtask setup` puts the tools it installs.
pub fn tools_dir() -> PathBuf {
    root().join("target/tools/bin")
}

/// The pinned wasmtime CLI, for `wasmtime serve`.
pub fn wasmtime() -> &'static Path {
    pinned_binary("wasmtime")
}

/// The pinned `wash`, wasmCloud's CLI with its host runtime, for `wash dev`.
pub fn wash() -> &'static Path {
    pinned_binary("wash")
}

/// The pinned Spin CLI, for `spin up` and `spin build`: the Spin the tests are for.
pub fn spin() -> &'static Path {
    pinned_binary("spin")
}

/// The pinned Spin containerd shim, SpinKube's runtime (`io.containerd.spin.v2`).
pub fn spin_shim() -> &'static Path {
    pinned_with("containerd-shim-spin-v2", &["-v"])
}

/// The pinned `tool` (one that prints its version for `--version`), found once per process: in
/// `target/tools/bin`, else on the `PATH` at the pinned version; a failure saying how to install
/// it otherwise.
pub fn pinned_binary(tool: &str) -> &'static Path {
    pinned_with(tool, &["--version"])
}

/// [`pinned_binary`], for a tool that prints its version for `version_args`.
fn pinned_with(tool: &str, version_args: &[&str]) -> &'static Path {
    static FOUND: Mutex<BTreeMap<String, &'static Path>> = Mutex::new(BTreeMap::new());
    let mut found = FOUND
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    found
        .entry(tool.to_owned())
        .or_insert_with(|| Box::leak(pinned(tool, version_args).into_boxed_path()))
}

/// The pinned `kubernetes-validate`, with the Kubernetes schemas bundled.
pub fn kubernetes_validate() -> Command {
    Command::new(pinned_binary("kubernetes-validate"))
}

/// A Debian tool on the `PATH`, from `package`.
pub fn debian(name: &str, package: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        found,
        "{name} is missing: `cargo xtask setup` installs it (Debian's {package})"
    );
    Command::new(name)
}

/// The pinned `tool`: in `target/tools/bin`, else on the `PATH`, if `tool VERSION_ARGS` prints
/// the pinned version.
fn pinned(tool: &str, version_args: &[&str]) -> PathBuf {
    let version = pinned_version(tool);
    let candidates = [tools_dir().join(tool), PathBuf::from(tool)];
    for candidate in candidates {
        let printed = Command::new(&candidate)
            .args(version_args)
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default();
        if printed.split_whitespace().any(|word| word == version) {
            return candidate;
        }
    }
    let pin = &workspace_manifest()["workspace"]["metadata"]["tools"][tool];
    let from = match pin.get("env").and_then(toml::Value::as_str) {
        // No registry carries it: the setup takes it from the file the variable names.
        Some(var) => format!(
            " from the file ${var} names (a binary or an .xz of one); {}",
            pin["install"].as_str().unwrap_or_default()
        ),
        None => String::new(),
    };
    panic!(
        "{tool} {version} is missing: `cargo xtask setup` installs it into {}{from}",
        tools_dir().display()
    );
}
