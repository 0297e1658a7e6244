//! hello-edge's own tasks, in the `cargo xtask` convention (rust-analyzer, wasmtime): plain Rust,
//! run with `cargo xtask TASK` from anywhere in the repository (`.cargo/config.toml`).
//!
//! * `cargo xtask setup`: installs what the tests need beyond Rust, saying what before it
//!   does, and nothing that is already there ([`setup`]).
//! * `cargo xtask test`: the setup, then every check and test: the README's test command, and
//!   what CI runs.
//! * `cargo xtask plan`: prints the commands `test` runs, one a line; the list in
//!   docs/testing.md is exactly this (a test checks it).
//! * `cargo xtask check-run`: runs the README's run command as a newcomer would and checks that
//!   it serves ([`check_run`]).

mod check_run;
mod setup;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// The README's run command.
pub const RUN_COMMAND: &str = "cargo run";
/// The README's test command.
pub const TEST_COMMAND: &str = "cargo xtask test";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = root();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::Setup::new(&root).and_then(|setup| setup.run()),
        Some("test") => test(&root),
        Some("plan") => plan(&root).map(|lines| {
            for line in lines {
                println!("{line}");
            }
        }),
        Some("check-run") => check_run::check(&root),
        _ => {
            eprintln!(
                "usage: cargo xtask setup | test | plan | check-run\n\n\
                 setup      install what the tests need beyond Rust\n\
                 test       setup, then every check and test (what CI runs)\n\
                 plan       print the commands `test` runs\n\
                 check-run  run the README's run command and check that it serves"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root (this crate is xtask/).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ is below the root")
        .to_owned()
}

/// The checks and tests `cargo xtask test` runs after the setup, each as its command's words.
fn checks(root: &Path) -> Vec<Vec<String>> {
    let words = |line: &str| {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let mut wasm_clippy = words("cargo clippy --target wasm32-wasip2");
    for package in wasm_packages(root) {
        wasm_clippy.extend(["--package".to_owned(), package]);
    }
    wasm_clippy.extend(words("-- -D warnings"));
    vec![
        words("cargo fmt --all -- --check"),
        words("cargo clippy --workspace --all-targets -- -D warnings"),
        wasm_clippy,
        words("cargo test --workspace"),
        // The benchmark's parsers, on what its tools print, and its table.
        words("target/tools/bin/pytest -c bench/pytest.ini bench/tests"),
        // A minute of the core's invariants on arbitrary requests.
        words("cargo +nightly fuzz run respond -- -max_total_time=60"),
    ]
}

/// Every command `cargo xtask test` runs, in order: the setup's, then the checks.
fn plan(root: &Path) -> Result<Vec<String>, String> {
    let mut lines = setup::Setup::new(root)?.plan();
    lines.extend(checks(root).iter().map(|words| words.join(" ")));
    Ok(lines)
}

/// `cargo xtask test`: the setup, then each check; stops at the first that fails.
fn test(root: &Path) -> Result<(), String> {
    let started = Instant::now();
    let setup = setup::Setup::new(root)?;
    setup.run()?;
    for words in checks(root) {
        let line = words.join(" ");
        println!("--- {line}");
        let step = Instant::now();
        let status = Command::new(&words[0])
            .args(&words[1..])
            .current_dir(root)
            .env("PATH", setup.path())
            .status()
            .map_err(|err| format!("cannot run `{line}`: {err}"))?;
        let took = step.elapsed().as_secs_f64();
        if !status.success() {
            return Err(format!("`{line}` failed ({status}) after {took:.1} s"));
        }
        println!("ok: {line} ({took:.1} s)");
    }
    println!(
        "every check and test passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The workspace's component crates: the members with dependencies for a wasm target only.
fn wasm_packages(root: &Path) -> Vec<String> {
    let manifest = read_toml(&root.join("Cargo.toml"));
    let members = manifest["workspace"]["members"]
        .as_array()
        .expect("workspace members");
    let mut packages = Vec::new();
    for member in members {
        let member = read_toml(&root.join(member.as_str().unwrap()).join("Cargo.toml"));
        let for_wasm = member
            .get("target")
            .and_then(|targets| targets.get("cfg(target_family = \"wasm\")"))
            .is_some();
        if for_wasm {
            packages.push(member["package"]["name"].as_str().unwrap().to_owned());
        }
    }
    packages
}

/// A TOML file, parsed.
fn read_toml(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    text.parse()
        .unwrap_or_else(|err| panic!("{} is not TOML: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first ```sh block under a README heading.
    fn block_under(readme: &str, heading: &str) -> Vec<String> {
        let section = readme
            .split_once(&format!("\n{heading}\n"))
            .unwrap_or_else(|| panic!("no `{heading}` in README.md"))
            .1;
        let block = section
            .split_once("```sh\n")
            .and_then(|(_, rest)| rest.split_once("\n```"))
            .unwrap_or_else(|| panic!("no ```sh block under `{heading}`"))
            .0;
        block.lines().map(str::to_owned).collect()
    }

    fn readme() -> String {
        std::fs::read_to_string(root().join("README.md")).unwrap()
    }

    /// The README's run and test commands are the ones CI proves (`.ci/run` runs
    /// `cargo xtask test` and `cargo xtask check-run`).
    #[test]
    fn the_readme_shows_the_commands_ci_proves() {
        let readme = readme();
        assert_eq!(block_under(&readme, "## Run it"), [RUN_COMMAND]);
        assert_eq!(block_under(&readme, "## Test it"), [TEST_COMMAND]);
        let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
        for task in [TEST_COMMAND, "cargo xtask check-run"] {
            assert!(
                ci.lines().any(|line| line.trim() == task),
                "{task} in .ci/run"
            );
        }
    }

    /// The list in docs/testing.md is exactly what `cargo xtask test` runs.
    #[test]
    fn the_docs_list_what_the_test_command_runs() {
        let testing = std::fs::read_to_string(root().join("docs/testing.md")).unwrap();
        assert_eq!(
            block_under(&testing, "## What `cargo xtask test` runs"),
            plan(&root()).unwrap(),
            "regenerate it with `cargo xtask plan`"
        );
    }

    /// Every component crate is linted for its own target.
    #[test]
    fn the_wasm_packages_are_the_components() {
        let packages = wasm_packages(&root());
        for package in ["hello-edge-wasip2", "hello-edge-wasip3"] {
            assert!(packages.iter().any(|p| p == package), "{packages:?}");
        }
        assert!(!packages.iter().any(|p| p == "hello-edge-native"));
    }
}
