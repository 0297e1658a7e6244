//! `cargo xtask setup`: what the tests need beyond Rust, installed on a fresh Debian machine with
//! rustup, each step saying what it installs before it does and skipped when already there (a
//! second run installs nothing), with its time.
//!
//! Every step is plain data, a [`Step`]: what it provides and its [`Source`]. The sources:
//!
//! * the Rust components and targets, and nightly for the fuzzer (rustup);
//! * the image tools, the registry and the container runtime (Debian's packages; `sudo` only
//!   when not root);
//! * the pinned tools of `[workspace.metadata.tools]` in the root Cargo.toml, into
//!   `target/tools/bin`, each pin's keys naming its source: a release binary from a PyPI
//!   `wheel` whose sha256 pip checks, a Python tool from `pip` in a virtualenv, a `crate` with
//!   `cargo install --locked`, a binary no registry carries from the `file` an `env` variable
//!   names, checked against its sha256, and programs built from a `go` module at an exact
//!   version, its go.sum lines pinned, into a cache outside the clone (`$HOME/.cache/hello-edge`)
//!   that every clone on the machine shares.
//!
//! Each source is one variant of [`Source`] and one function that plans it ([`Plan`]): whether it
//! is installed, where from, and the exact commands that install it. `cargo xtask plan` prints
//! those very commands, and `setup` runs them: there is no second copy of a command to drift from
//! the first, and no script inside one: what a command reads from stdin or writes to stdout is
//! part of it, and printed as a shell would take it.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// One word of a command: as written, or the value of an environment variable, which the plan
/// shows as `"$NAME"` and a run reads when it runs.
#[derive(Debug, Clone)]
enum Word {
    Text(String),
    Env(String),
    /// A path under the home directory: `"$HOME/PATH"` in the plan.
    Home(String),
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Word::Text(text) => f.write_str(&quoted(text)),
            Word::Env(name) => write!(f, "\"${name}\""),
            Word::Home(path) => write!(f, "\"$HOME/{path}\""),
        }
    }
}

/// `text` as a POSIX shell reads it back: bare, in single quotes, or in double quotes with what
/// they would expand escaped.
fn quoted(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| SAFE.contains(c) || c.is_ascii_alphanumeric())
    {
        return text.to_owned();
    }
    if !text.contains('\'') {
        return format!("'{text}'");
    }
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '\\' | '"' | '$' | '`' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

/// The characters besides letters and digits that a shell reads as themselves in a bare word.
const SAFE: &str = "-_./=:,+@%";

/// One command a step runs from the repository root, as the plan prints it and as it runs.
#[derive(Debug, Clone)]
struct Cmd {
    words: Vec<Word>,
    /// The lines it reads on stdin: printed as `printf '%s\n' LINE... | COMMAND`.
    stdin: Option<Vec<String>>,
    /// The file its stdout goes to: printed as `COMMAND > FILE`.
    stdout: Option<String>,
    /// Run through `sudo` unless the setup is root already.
    as_root: bool,
    /// A note for the plan, after the command: what it does that the words do not say.
    note: Option<String>,
}

impl Cmd {
    /// A command from one line of words split at spaces.
    fn line(line: &str) -> Cmd {
        Cmd {
            words: line
                .split_whitespace()
                .map(|word| Word::Text(word.to_owned()))
                .collect(),
            stdin: None,
            stdout: None,
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

    fn env_arg(mut self, name: &str) -> Cmd {
        self.words.push(Word::Env(name.to_owned()));
        self
    }

    fn stdin(mut self, line: impl Into<String>) -> Cmd {
        self.stdin = Some(vec![line.into()]);
        self
    }

    fn stdin_lines(mut self, lines: Vec<String>) -> Cmd {
        self.stdin = Some(lines);
        self
    }

    fn home_arg(mut self, path: impl Into<String>) -> Cmd {
        self.words.push(Word::Home(path.into()));
        self
    }

    fn stdout(mut self, file: impl Into<String>) -> Cmd {
        self.stdout = Some(file.into());
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
                Word::Home(path) => home().join(path).into_os_string(),
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
        command.current_dir(&setup.root).env("PATH", setup.path());
        if let Some(file) = &self.stdout {
            let out = File::create(setup.root.join(file))
                .map_err(|err| format!("cannot write {file}: {err}"))?;
            command.stdout(out);
        }
        match &self.stdin {
            None => run(&mut command),
            Some(lines) => {
                use std::io::Write;
                let mut child = command
                    .stdin(Stdio::piped())
                    .spawn()
                    .map_err(|err| format!("cannot run {command:?}: {err}"))?;
                let mut input = child.stdin.take().expect("stdin is piped");
                input
                    .write_all(
                        lines
                            .iter()
                            .map(|line| format!("{line}\n"))
                            .collect::<String>()
                            .as_bytes(),
                    )
                    .map_err(|err| format!("{command:?}: stdin: {err}"))?;
                drop(input);
                let status = child.wait().map_err(|err| format!("{command:?}: {err}"))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("{command:?} failed: {status}"))
                }
            }
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(lines) = &self.stdin {
            let lines: Vec<String> = lines.iter().map(|line| quoted(line)).collect();
            write!(f, "printf '%s\\n' {} | ", lines.join(" "))?;
        }
        let words: Vec<String> = self.words.iter().map(Word::to_string).collect();
        f.write_str(&words.join(" "))?;
        if let Some(file) = &self.stdout {
            write!(f, " > {}", quoted(file))?;
        }
        if let Some(note) = &self.note {
            write!(f, "  # {note}")?;
        }
        Ok(())
    }
}

/// One thing the tests need: what it provides, and where it comes from.
struct Step {
    /// What it provides, for its lines: `rustup targets wasm32-wasip2 ...`, `wash 2.10.3`.
    what: String,
    source: Source,
}

/// Where a step comes from: one variant each, planned by one function ([`Step::plan`]).
enum Source {
    /// Components of the default toolchain.
    RustupComponents(Vec<String>),
    /// Targets of the default toolchain.
    RustupTargets(Vec<String>),
    /// A toolchain, minimal.
    RustupToolchain(String),
    /// Debian packages, with apt-get.
    Debian(Vec<String>),
    /// A pinned tool's binary, taken from a PyPI wheel whose sha256 pip checks.
    Wheel(Pin),
    /// A pinned Python tool, in the tools' virtualenv.
    Pip(Pin),
    /// A pinned crate's binary, with `cargo install --locked`.
    Crate(Pin),
    /// A pinned binary no registry carries, from the file (a binary, or an `.xz` of one) its
    /// `env` variable names, installed only if its sha256 is the pinned one.
    File(Pin),
    /// Pinned programs built from a Go module at an exact version, in a module of the project's
    /// own under `target/go`, into a cache outside the clone.
    Go(Pin),
}

/// A tool pinned in `[workspace.metadata.tools]`: its name and its keys.
struct Pin {
    tool: String,
    table: toml::Table,
}

impl Pin {
    fn get(&self, key: &str) -> &str {
        self.table
            .get(key)
            .and_then(toml::Value::as_str)
            .unwrap_or_else(|| panic!("no {key} for {} in [workspace.metadata.tools]", self.tool))
    }

    fn version(&self) -> &str {
        self.get("version")
    }
}

/// What a step is now, and what it takes to install it.
struct Plan {
    /// Where it installs from, for the line that says so before it does.
    from: String,
    /// What of it is not installed yet.
    missing: Vec<String>,
    /// The commands that install what is missing (all of it, when the plan is for all), in
    /// order.
    commands: Vec<Cmd>,
    /// Why it cannot be installed on this machine, and how to install it by hand; `None` when
    /// its commands can run.
    unavailable: Option<String>,
}

impl Step {
    /// Where it stands on this machine, and the commands that install what is missing; with
    /// `all`, the commands that install the whole of it, as the plan prints them.
    fn plan(&self, setup: &Setup, all: bool) -> Plan {
        match &self.source {
            Source::RustupComponents(names) => rustup(names, "component", "-", all),
            Source::RustupTargets(names) => rustup(names, "target", "", all),
            Source::RustupToolchain(name) => toolchain(name, all),
            Source::Debian(packages) => debian(setup, packages, all),
            Source::Wheel(pin) => wheel(setup, pin),
            Source::Pip(pin) => pip(setup, pin),
            Source::Crate(pin) => krate(setup, pin),
            Source::File(pin) => file(setup, pin),
            Source::Go(pin) => go(setup, pin, all),
        }
    }
}

/// Rustup components (`component`, listed as `NAME-TRIPLE`) or targets (`target`).
fn rustup(names: &[String], kind: &str, suffix: &str, all: bool) -> Plan {
    let installed =
        output(Command::new("rustup").args([kind, "list", "--installed"])).unwrap_or_default();
    let missing: Vec<String> = names
        .iter()
        .filter(|name| {
            all || !installed
                .lines()
                .any(|line| line.starts_with(&format!("{name}{suffix}")))
        })
        .cloned()
        .collect();
    let commands = vec![Cmd::line(&format!("rustup {kind} add")).args(missing.clone())];
    Plan {
        from: "with rustup".into(),
        missing,
        commands,
        unavailable: None,
    }
}

/// A rustup toolchain, minimal.
fn toolchain(name: &str, all: bool) -> Plan {
    let installed = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    let there = installed
        .lines()
        .any(|line| line.starts_with(&format!("{name}-")));
    Plan {
        from: "with rustup".into(),
        missing: if all || !there {
            vec![name.to_owned()]
        } else {
            vec![]
        },
        commands: vec![Cmd::line("rustup toolchain install").args([name, "--profile", "minimal"])],
        unavailable: None,
    }
}

/// Debian packages, with apt-get.
fn debian(setup: &Setup, packages: &[String], all: bool) -> Plan {
    let missing: Vec<String> = packages
        .iter()
        .filter(|package| {
            all || output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
                .is_none_or(|status| status.trim() != "install ok installed")
        })
        .cloned()
        .collect();
    let commands = vec![
        Cmd::line("apt-get update -qq").with_sudo(),
        Cmd::line("env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq")
            .args(missing.clone())
            .with_sudo()
            .note("with sudo unless root"),
    ];
    Plan {
        from: match setup.sudo {
            Some(sudo) => format!("with {sudo} apt-get"),
            None => "with apt-get".into(),
        },
        missing,
        commands,
        unavailable: None,
    }
}

/// A pinned tool with a `wheel`: its binary (`path` in the wheel), from a wheel pip checks
/// against its `sha256`. unzip takes the wheel by a pattern, since its platform tags are pip's
/// to choose.
fn wheel(setup: &Setup, pin: &Pin) -> Plan {
    let (tool, wheel, sha256) = (&pin.tool, pin.get("wheel"), pin.get("sha256"));
    let dir = format!("target/tools/wheels/{tool}");
    let (name, version) = wheel
        .split_once("==")
        .map(|(name, version)| (name.replace('-', "_"), version))
        .expect("a wheel pin is name==version");
    let member = pin.get("path");
    let inside = Path::new(member)
        .file_name()
        .expect("a path in the wheel")
        .to_string_lossy();
    Plan {
        from: format!(
            "into target/tools/bin, from PyPI's {wheel} (sha256 {sha256}, checked by pip)"
        ),
        missing: setup.missing_at_version(pin),
        commands: vec![
            Cmd::line(&format!("rm -rf {dir}")),
            Cmd::line(&format!("mkdir -p {dir} target/tools/bin")),
            Cmd::line(&format!(
                "python3 -m pip download --quiet --disable-pip-version-check --no-deps \
                 --only-binary=:all: --require-hashes -r /dev/stdin --dest {dir}"
            ))
            .stdin(format!("{wheel} --hash=sha256:{sha256}")),
            Cmd::line("unzip -q -o -j")
                .arg(format!("{dir}/{name}-{version}-*.whl"))
                .args([member, "-d", &dir]),
            Cmd::line(&format!("chmod +x {dir}/{inside}")),
            Cmd::line(&format!(
                "ln -sf ../wheels/{tool}/{inside} target/tools/bin/{tool}"
            )),
        ],
        unavailable: None,
    }
}

/// A pinned tool with `pip`: installed in the tools' virtualenv.
fn pip(setup: &Setup, pin: &Pin) -> Plan {
    let (tool, requirement) = (&pin.tool, pin.get("pip"));
    Plan {
        from: format!("into target/tools/venv, from PyPI's {requirement}"),
        missing: setup.missing_at_version(pin),
        commands: vec![
            Cmd::line("python3 -m venv target/tools/venv"),
            Cmd::line(&format!(
                "target/tools/venv/bin/pip install --quiet --disable-pip-version-check {requirement}"
            )),
            Cmd::line("mkdir -p target/tools/bin"),
            Cmd::line(&format!(
                "ln -sf ../venv/bin/{tool} target/tools/bin/{tool}"
            )),
        ],
        unavailable: None,
    }
}

/// A pinned tool with a `crate`: `cargo install --locked`.
fn krate(setup: &Setup, pin: &Pin) -> Plan {
    let name = pin.get("crate");
    Plan {
        from: format!("into target/tools/bin, with cargo install --locked {name}"),
        missing: setup.missing_at_version(pin),
        commands: vec![Cmd::line(&format!(
            "cargo install --locked --root target/tools {name} --version {}",
            pin.version()
        ))],
        unavailable: None,
    }
}

/// A pinned tool with an `env` variable naming its file: unpacked (`xz -dcf` copies a file that
/// is not an `.xz` as it is), checked against its `sha256`, then moved into place.
fn file(setup: &Setup, pin: &Pin) -> Plan {
    let (tool, var, sha256) = (&pin.tool, pin.get("env"), pin.get("sha256"));
    let part = format!("target/tools/bin/{tool}.part");
    let binary = setup.bin().join(tool);
    let sha = output(Command::new("sha256sum").arg(&binary)).unwrap_or_default();
    let missing = if sha.split_whitespace().next() == Some(sha256) {
        vec![]
    } else {
        vec![setup.tool_line(pin)]
    };
    let unavailable = match std::env::var_os(var) {
        Some(file) if Path::new(&file).is_file() => None,
        given => Some(format!(
            "{tool} {} is not installed: no package registry carries it. {} (its binary's \
             sha256 must be {sha256}, as pinned in Cargo.toml's [workspace.metadata.tools]), \
             then run `cargo xtask setup` again. {}",
            pin.version(),
            match given {
                Some(file) => format!("{var} names {file:?}, which is not a file: name"),
                None => format!("Set {var} to"),
            } + " a binary of it, or an .xz of one",
            pin.get("install")
        )),
    };
    Plan {
        from: format!(
            "into target/tools/bin, from {} (${var}, sha256 {sha256})",
            std::env::var(var).unwrap_or_default(),
        ),
        missing,
        commands: vec![
            Cmd::line("mkdir -p target/tools/bin"),
            Cmd::line("xz -dcf --").env_arg(var).stdout(&part),
            Cmd::line("sha256sum --check --quiet --strict").stdin(format!("{sha256}  {part}")),
            Cmd::line(&format!("chmod +x {part}")),
            Cmd::line(&format!("mv {part} target/tools/bin/{tool}")),
        ],
        unavailable,
    }
}

/// A pinned tool with a `go` module: the programs of its `packages`, built from the module at its
/// `go-version` in a module of the project's own (`target/go/TOOL`), as its upstream releases them
/// (`-trimpath`, its `ldflags`, `CGO_ENABLED` as `cgo` says, its `tags`). The module's own go.sum
/// lines (`sum`) lock it: go checks every module it fetches against go.sum and the checksum
/// database, and the rest of the graph follows from the module's go.mod at that version. A module
/// whose go.mod replaces its own modules with local paths gets each (`replace`) at its published
/// version (`replace-version`). The programs go to `$HOME/.cache/hello-edge/go/TOOL-VERSION/bin`,
/// so another clone on the machine reuses them, and are linked into [`GO_BIN`]; when the cache
/// has them already, linking is all there is to do.
fn go(setup: &Setup, pin: &Pin, all: bool) -> Plan {
    let (tool, module, version) = (&pin.tool, pin.get("go"), pin.get("go-version"));
    let strings = |key: &str| -> Vec<String> {
        pin.table
            .get(key)
            .and_then(toml::Value::as_array)
            .map(|values| {
                values
                    .iter()
                    .map(|value| value.as_str().expect("a string").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let packages = strings("packages");
    let binaries: Vec<String> = strings("binaries");
    assert_eq!(
        packages.len(),
        binaries.len(),
        "{tool}: a binary named for each package"
    );
    let dir = format!("target/go/{tool}");
    let cache = format!(".cache/hello-edge/go/{tool}-{}", pin.version());
    let built = binaries
        .iter()
        .all(|binary| home().join(&cache).join("bin").join(binary).is_file());
    let linked = binaries.iter().all(|binary| {
        let link = setup.root.join(GO_BIN).join(binary);
        std::fs::read_link(&link).is_ok_and(|to| to == home().join(&cache).join("bin").join(binary))
    });
    let missing = if built && linked {
        vec![]
    } else {
        vec![setup.tool_line(pin)]
    };
    let mut edit = Cmd::line(&format!("go -C {dir} mod edit"))
        .arg(format!("-go={}", pin.get("go-directive")))
        .arg(format!("-require={module}@{version}"));
    for replaced in strings("replace") {
        edit = edit.arg(format!(
            "-replace={replaced}={replaced}@{}",
            pin.get("replace-version")
        ));
    }
    let cgo = pin.table.get("cgo").and_then(toml::Value::as_bool) == Some(true);
    let mut build = Cmd::line(&format!(
        "env CGO_ENABLED={} go -C {dir} build -mod=mod -trimpath",
        u8::from(cgo)
    ));
    if let Some(tags) = pin.table.get("tags").and_then(toml::Value::as_str) {
        build = build.arg("-tags").arg(tags);
    }
    let mut commands = vec![
        Cmd::line(&format!("rm -rf {dir}")),
        Cmd::line(&format!("mkdir -p {dir} {GO_BIN}")),
        Cmd::line("mkdir -p").home_arg(format!("{cache}/bin")),
        Cmd::line(&format!(
            "go -C {dir} mod init hello-edge.local/tools/{tool}"
        )),
        edit,
        Cmd::line("cat")
            .stdin_lines(strings("sum"))
            .stdout(format!("{dir}/go.sum")),
    ];
    let ldflags = pin
        .table
        .get("ldflags")
        .and_then(toml::Value::as_str)
        .unwrap_or("-s -w");
    for (package, binary) in packages.iter().zip(&binaries) {
        commands.push(
            build
                .clone()
                .arg("-ldflags")
                .arg(ldflags)
                .arg("-o")
                .home_arg(format!("{cache}/bin/{binary}"))
                .arg(package),
        );
    }
    let mut link = Cmd::line(&format!("ln -sf -t {GO_BIN}"));
    for binary in &binaries {
        link = link.home_arg(format!("{cache}/bin/{binary}"));
    }
    if built && !all {
        // Built by another clone on this machine: this one links them.
        commands = vec![Cmd::line(&format!("mkdir -p {GO_BIN}"))];
    }
    commands.push(link);
    Plan {
        from: if built {
            format!("into {GO_BIN}, from $HOME/{cache}, where this machine has built them")
        } else {
            format!(
                "into $HOME/{cache}, built from the Go module {module}@{version} (go.sum pinned)"
            )
        },
        missing,
        commands,
        unavailable: None,
    }
}

/// Where the programs built from Go modules are linked: apart from `target/tools/bin`, which is
/// first on the tests' `PATH`, so that they do not stand in for Debian's containerd and runc,
/// which the deploy tests run.
const GO_BIN: &str = "target/tools/go/bin";

/// The home directory, where the Go tools' cache is.
fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
}

/// Everything the tests need, in the order it is installed: the Rust toolchain's parts, Debian's
/// packages, then each pinned tool, in the order Cargo.toml pins them.
fn steps(pins: &toml::Table) -> Vec<Step> {
    let words = |names: &[&str]| {
        names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>()
    };
    let components = words(&["clippy", "rustfmt"]);
    // The components; the static native binary of the container image.
    let targets = words(&["wasm32-wasip2", "x86_64-unknown-linux-musl"]);
    // A CNCF distribution registry, daemonless image tools, the musl linker (which also builds
    // the cluster's pause program); containerd and runc, which run the images as a Kubernetes
    // node does; iptables and iproute2 for the cluster's node (kube-proxy's rules, the pods'
    // bridge); xz for the given tools; unzip for the wheels; libseccomp for the runc built from
    // its module; pip and venv for the wheels and the virtualenv below (a Debian python3 has
    // neither).
    let packages = words(&[
        "docker-registry",
        "buildah",
        "skopeo",
        "umoci",
        "musl-tools",
        "containerd",
        "runc",
        "iptables",
        "iproute2",
        "xz-utils",
        "unzip",
        "libseccomp-dev",
        "python3-pip",
        "python3-venv",
    ]);
    let mut steps = vec![
        Step {
            what: format!("rustup components {}", components.join(" ")),
            source: Source::RustupComponents(components),
        },
        Step {
            what: format!("rustup targets {}", targets.join(" ")),
            source: Source::RustupTargets(targets),
        },
        // cargo fuzz builds with sanitizers and -Z flags.
        Step {
            what: "the nightly toolchain".into(),
            source: Source::RustupToolchain("nightly".into()),
        },
        Step {
            what: format!("Debian packages {}", packages.join(" ")),
            source: Source::Debian(packages),
        },
    ];
    for (tool, table) in pins {
        let table = table
            .as_table()
            .unwrap_or_else(|| panic!("{tool} in [workspace.metadata.tools] is not a table"))
            .clone();
        let pin = Pin {
            tool: tool.clone(),
            table,
        };
        let what = format!("{tool} {}", pin.version());
        let source = if pin.table.contains_key("wheel") {
            Source::Wheel(pin)
        } else if pin.table.contains_key("pip") {
            Source::Pip(pin)
        } else if pin.table.contains_key("crate") {
            Source::Crate(pin)
        } else if pin.table.contains_key("env") {
            Source::File(pin)
        } else if pin.table.contains_key("go") {
            Source::Go(pin)
        } else {
            panic!(
                "{tool} in [workspace.metadata.tools] names no source: wheel, pip, crate, env or go"
            );
        };
        steps.push(Step { what, source });
    }
    steps
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
        for step in steps(&self.pins) {
            let began = Instant::now();
            let plan = step.plan(self, false);
            let what = &step.what;
            if plan.missing.is_empty() {
                println!("ok: {what}: already there ({:.1} s)", secs(began));
                continue;
            }
            if let Some(why) = plan.unavailable {
                println!("--- not installed: {why}");
                unavailable.push(what.clone());
                continue;
            }
            println!("--- installing {} {}", plan.missing.join(" "), plan.from);
            for command in &plan.commands {
                command.run(self)?;
            }
            let still = step.plan(self, false).missing;
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
        steps(&self.pins)
            .iter()
            .flat_map(|step| step.plan(self, true).commands)
            .map(|command| command.to_string())
            .collect()
    }

    /// `TOOL VERSION`, for a pinned tool's lines.
    fn tool_line(&self, pin: &Pin) -> String {
        format!("{} {}", pin.tool, pin.version())
    }

    /// A pinned tool, unless `target/tools/bin/TOOL --version` prints its version.
    fn missing_at_version(&self, pin: &Pin) -> Vec<String> {
        let printed = output(Command::new(self.bin().join(&pin.tool)).arg("--version"));
        if printed.is_some_and(|text| text.split_whitespace().any(|word| word == pin.version())) {
            vec![]
        } else {
            vec![self.tool_line(pin)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_as_a_shell_reads_them() {
        assert_eq!(quoted("target/tools/bin"), "target/tools/bin");
        assert_eq!(quoted("a b"), "'a b'");
        assert_eq!(quoted(""), "''");
        assert_eq!(quoted("it's $x"), "\"it's \\$x\"");
    }

    #[test]
    fn what_a_command_reads_and_writes_is_printed_with_it() {
        let command = Cmd::line("sha256sum --check")
            .stdin("abc  file")
            .stdout("out.txt");
        assert_eq!(
            command.to_string(),
            "printf '%s\\n' 'abc  file' | sha256sum --check > out.txt"
        );
    }
}
