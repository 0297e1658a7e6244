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

/// Takes one file out of a wheel (a zip): `WHEEL MEMBER DESTINATION`.
const EXTRACT: &str = "import sys, zipfile; \
    open(sys.argv[3], 'wb').write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))";

/// Everything the tests need, in the order it is installed.
const STEPS: &[Step] = &[
    Step::Components(&["clippy", "rustfmt"]),
    // The components; the static native binary of the container image.
    Step::Targets(&["wasm32-wasip2", "x86_64-unknown-linux-musl"]),
    // cargo fuzz builds with sanitizers and -Z flags.
    Step::Toolchain("nightly"),
    // A CNCF distribution registry, daemonless image tools, the musl linker; pip and venv for
    // the wheels and the virtualenv below (a Debian python3 has neither).
    Step::Debian(&[
        "docker-registry",
        "buildah",
        "skopeo",
        "umoci",
        "musl-tools",
        "python3-pip",
        "python3-venv",
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
            println!("--- installing {} {}", missing.join(" "), self.source(step));
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

    /// Where a step installs from, for the line that says so before it does.
    fn source(&self, step: &Step) -> String {
        match step {
            Step::Components(_) | Step::Targets(_) | Step::Toolchain(_) => "with rustup".into(),
            Step::Debian(_) => match self.sudo {
                Some(sudo) => format!("with {sudo} apt-get"),
                None => "with apt-get".into(),
            },
            Step::Wheel(tool) => format!(
                "into target/tools/bin, from PyPI's {} (sha256 {}, checked by pip)",
                self.pinned(tool, "wheel"),
                self.pinned(tool, "sha256")
            ),
            Step::Pip(tool) => format!(
                "into target/tools/venv, from PyPI's {}",
                self.pinned(tool, "pip")
            ),
            Step::Crate(tool) => format!(
                "into target/tools/bin, with cargo install --locked {}",
                self.pinned(tool, "crate")
            ),
        }
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

    /// The commands a step runs, each as its words, to install `missing` (all of it, for the
    /// plan); run from the root. Debian's need root: [`Setup::run_words`] adds `sudo` when not.
    fn commands(&self, step: &Step, missing: &[String]) -> Vec<Vec<String>> {
        let words = |line: &str| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let with = |mut first: Vec<String>, rest: &[String]| {
            first.extend(rest.iter().cloned());
            first
        };
        match step {
            Step::Components(_) => vec![with(words("rustup component add"), missing)],
            Step::Targets(_) => vec![with(words("rustup target add"), missing)],
            Step::Toolchain(name) => {
                vec![words(&format!(
                    "rustup toolchain install {name} --profile minimal"
                ))]
            }
            Step::Debian(_) => vec![
                words("apt-get update -qq"),
                with(
                    words("env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq"),
                    missing,
                ),
            ],
            Step::Wheel(tool) => {
                let dir = format!("target/tools/wheels/{tool}");
                vec![
                    words(&format!(
                        "python3 -m pip download --quiet --disable-pip-version-check --no-deps \
                         --only-binary=:all: --require-hashes -r {dir}/requirements.txt --dest {dir}"
                    )),
                    vec![
                        "python3".into(),
                        "-c".into(),
                        EXTRACT.into(),
                        format!("{dir}/{}", self.wheel_pattern(tool)),
                        self.pinned(tool, "path"),
                        format!("{dir}/{tool}"),
                    ],
                ]
            }
            Step::Pip(tool) => vec![
                words("python3 -m venv target/tools/venv"),
                words(&format!(
                    "target/tools/venv/bin/pip install --quiet --disable-pip-version-check {}",
                    self.pinned(tool, "pip")
                )),
            ],
            Step::Crate(tool) => vec![words(&format!(
                "cargo install --locked --root target/tools {} --version {}",
                self.pinned(tool, "crate"),
                self.pinned(tool, "version")
            ))],
        }
    }

    /// The plan's lines for a step: its commands, and a comment for what is not a command.
    fn plan_lines(&self, step: &Step) -> Vec<String> {
        let all: Vec<String> = match step {
            Step::Components(names) | Step::Targets(names) | Step::Debian(names) => {
                names.iter().map(|name| name.to_string()).collect()
            }
            _ => Vec::new(),
        };
        let commands = self.commands(step, &all);
        let mut lines: Vec<String> = commands
            .iter()
            .map(|words| {
                words
                    .iter()
                    .map(|word| {
                        if word.contains(' ') {
                            format!("\"{word}\"")
                        } else {
                            word.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let note = match step {
            Step::Debian(_) => Some("with sudo unless root".to_owned()),
            Step::Wheel(tool) => Some(format!(
                "requirements.txt: {} --hash=sha256:{}; then linked as target/tools/bin/{tool}",
                self.pinned(tool, "wheel"),
                self.pinned(tool, "sha256")
            )),
            Step::Pip(tool) => Some(format!("then linked as target/tools/bin/{tool}")),
            _ => None,
        };
        if let (Some(note), Some(last)) = (note, lines.last_mut()) {
            last.push_str(&format!("  # {note}"));
        }
        lines
    }

    /// The wheel of a tool as pip names it, its platform tags left as `*`: the name with `_` for
    /// `-`, then the version.
    fn wheel_pattern(&self, tool: &str) -> String {
        let wheel = self.pinned(tool, "wheel");
        let (name, version) = wheel
            .split_once("==")
            .expect("a wheel pin is name==version");
        format!("{}-{version}-*.whl", name.replace('-', "_"))
    }

    /// The wheel pip downloaded for a tool.
    fn wheel_file(&self, tool: &str) -> Result<String, String> {
        let dir = self.root.join("target/tools/wheels").join(tool);
        std::fs::read_dir(&dir)
            .map_err(|err| format!("{}: {err}", dir.display()))?
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .find(|name| name.ends_with(".whl"))
            .ok_or_else(|| format!("pip left no wheel in {}", dir.display()))
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
        if let Step::Wheel(tool) = step {
            // pip checks the wheel against this before anything in it is used.
            let dir = self.root.join("target/tools/wheels").join(tool);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|err| err.to_string())?;
            let pin = format!(
                "{} --hash=sha256:{}\n",
                self.pinned(tool, "wheel"),
                self.pinned(tool, "sha256")
            );
            std::fs::write(dir.join("requirements.txt"), pin).map_err(|err| err.to_string())?;
        }
        let as_root = matches!(step, Step::Debian(_));
        for (i, words) in self.commands(step, missing).into_iter().enumerate() {
            let words = match step {
                // The wheel's own name is known once pip has downloaded it.
                Step::Wheel(tool) if i == 1 => {
                    let mut words = words;
                    words[3] = format!("target/tools/wheels/{tool}/{}", self.wheel_file(tool)?);
                    words
                }
                _ => words,
            };
            self.run_words(&words, as_root)?;
        }
        match step {
            Step::Wheel(tool) => {
                let binary = self.root.join("target/tools/wheels").join(tool).join(tool);
                set_executable(&binary)?;
                self.link(&binary, tool)
            }
            Step::Pip(tool) => self.link(&self.root.join("target/tools/venv/bin").join(tool), tool),
            _ => Ok(()),
        }
    }

    /// Runs a command's words from the root, with the setup's `PATH`; through sudo if it needs
    /// root and this is not.
    fn run_words(&self, words: &[String], as_root: bool) -> Result<(), String> {
        let mut command = match (as_root, self.sudo) {
            (true, Some(sudo)) => {
                let mut command = Command::new(sudo);
                command.args(words);
                command
            }
            _ => {
                let mut command = Command::new(&words[0]);
                command.args(&words[1..]);
                command
            }
        };
        run(command.current_dir(&self.root).env("PATH", self.path()))
    }

    /// Puts `target` in target/tools/bin as `name`.
    fn link(&self, target: &Path, name: &str) -> Result<(), String> {
        std::fs::create_dir_all(self.bin()).map_err(|err| err.to_string())?;
        let link = self.bin().join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link)
            .map_err(|err| format!("{}: {err}", link.display()))
    }
}

impl Setup {
    /// The setup's commands, one a line, as `cargo xtask plan` shows them.
    pub fn plan(&self) -> Vec<String> {
        STEPS
            .iter()
            .flat_map(|step| self.plan_lines(step))
            .collect()
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
