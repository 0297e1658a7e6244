//! The catalogue: every host a test or the benchmark starts, as values, and the one way each is
//! started.
//!
//! * [`WASM_HOSTS`]: every program that serves the components (`wasmtime serve`, `wash dev`,
//!   `spin up` on each Spin), each a value implementing [`WasmHost`]. The end-to-end tests run
//!   every one of them (`tests/e2e/tests/wasm_hosts.rs` checks that its list is this one), and
//!   the benchmark measures every one.
//! * [`Server`] and [`servers`]: the benchmark's servers by name, hello-edge's and the references
//!   it is measured against, each a host and a launch; the `hosts` binary starts any of them for
//!   `bench/run` and prints where it serves (`src/bin/hosts.rs`).
//!
//! A new host is one [`WasmHost`] implementation and one line in [`WASM_HOSTS`]: the tests and the
//! benchmark take it from there. A host that is not a process here (a cluster's Service) is a
//! [`Host`] like the others.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use crate::client::Protocol;
use crate::component::{Component, NOOP_WASIP2, NOOP_WASIP3, WASIP2, WASIP3};
use crate::host::{BoxFuture, Host, Launch, Served, Stopped, WasmHost, wait_until_answering};
use crate::jaeger::Jaeger;
use crate::native::NativeBinary;
use crate::process::Log;
use crate::spin::SpinUp;
use crate::tools::root;
use crate::wash::WashDev;
use crate::wasmtime::WasmtimeServe;

/// Every program that serves the components, each once: what the end-to-end tests run, and what
/// the benchmark measures.
pub static WASM_HOSTS: [&dyn WasmHost; 4] =
    [&WasmtimeServe, &WashDev, &SpinUp::LATEST, &SpinUp::V4_0];

/// One of the benchmark's servers: hello-edge on a host, or a reference.
#[derive(Clone)]
pub struct Server {
    /// Its name, as `bench/run --servers` takes it: `native`, `p2-tuned`, `spin-p3`.
    pub name: String,
    /// What it is, in the report.
    pub label: String,
    /// Whether it is a reference hello-edge is measured against, not hello-edge.
    pub reference: bool,
    /// How it is started.
    pub serve: Serve,
}

/// How a [`Server`] is started.
#[derive(Clone)]
pub enum Serve {
    /// A program that says where it serves as the `hello-edge` binary does (`Serving
    /// http://ADDR`), with its arguments; in each, `{addr}`, `{host}`, `{port}`, `{delay_ms}` and
    /// `{protocol}` (`http1`, `http2`) are the run's.
    Program {
        /// The program, from the root.
        program: Program,
        /// Its arguments.
        args: Vec<&'static str>,
    },
    /// A component on a host, launched so (the delay is added to the component's environment).
    Component {
        /// The host.
        host: &'static dyn WasmHost,
        /// The component.
        component: &'static Component,
        /// The host's settings.
        launch: Launch,
    },
}

/// A program the benchmark runs as a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// The native server, as built in release (`target/release/hello-edge`).
    Native,
    /// The native server exporting every request's span ([`TRACED_ENV`]) to a Jaeger started
    /// beside it, the tests' collector ([`Jaeger`]).
    NativeTraced,
    /// The least a hyper server does (`target/release/bare-hyper`, bench/bare-hyper).
    BareHyper,
    /// The seed's aiohttp server, in the benchmark's virtualenv (bench/seed_aiohttp.py).
    Seed,
}

impl Program {
    /// The command that runs it, before its arguments.
    fn command(self) -> Command {
        let root = root();
        match self {
            Program::Native | Program::NativeTraced => {
                Command::new(root.join("target/release/hello-edge"))
            }
            Program::BareHyper => Command::new(root.join("target/release/bare-hyper")),
            Program::Seed => {
                let mut command = Command::new(root.join("bench/.venv/bin/python"));
                command.arg(root.join("bench/seed_aiohttp.py"));
                command
            }
        }
    }
}

/// The traced native server's environment, beside the collector's endpoint: every request
/// sampled, whatever its caller decided.
pub const TRACED_ENV: [(&str, &str); 1] = [("OTEL_TRACES_SAMPLER", "always_on")];

/// A host with the collector it exports to, which lives as long as it does.
struct WithCollector {
    host: Served,
    #[allow(dead_code)] // Held: stopped on drop.
    jaeger: Jaeger,
}

impl Host for WithCollector {
    fn label(&self) -> String {
        self.host.label()
    }

    fn addr(&self) -> SocketAddr {
        self.host.addr()
    }

    fn log(&self) -> Log {
        self.host.log()
    }

    fn pid(&self) -> Option<u32> {
        self.host.pid()
    }

    fn stop(&mut self) -> BoxFuture<'_, Stopped> {
        // The collector stops after it, on drop.
        self.host.stop()
    }
}

/// How one run of a server is set: where it listens, its delay, the protocol its load speaks.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The delay before each answer.
    pub delay: Duration,
    /// The protocol the load speaks (a server that must be told is told).
    pub protocol: Protocol,
}

impl Server {
    /// Whether it speaks HTTP/2 with prior knowledge, as the HTTP/2 scenarios need.
    pub fn speaks_http2(&self) -> bool {
        matches!(
            self.serve,
            Serve::Program {
                program: Program::Native | Program::NativeTraced | Program::BareHyper,
                ..
            }
        )
    }

    /// Whether it sends hello-edge's answer to `/hello/bench` (the same status, fields and body
    /// length), as every server but the seed's does: the benchmark checks it before measuring.
    pub fn answers_as_hello_edge(&self) -> bool {
        !matches!(
            self.serve,
            Serve::Program {
                program: Program::Seed,
                ..
            }
        )
    }

    /// Starts it for `run`, and returns once it answers over `run.protocol`.
    pub async fn start(&self, run: Run) -> Box<dyn Host> {
        let millis = run.delay.as_millis().to_string();
        match &self.serve {
            Serve::Program { program, args } => {
                let mut run = run;
                if run.listen.port() == 0 && args.iter().any(|arg| arg.contains("{port}")) {
                    // Told a port apart from its address, it says the one it was told: pick one.
                    run.listen.set_port(free_port(run.listen.ip()));
                }
                let mut command = program.command();
                let protocol = match run.protocol {
                    Protocol::Http1 => "http1",
                    Protocol::Http2 => "http2",
                };
                for arg in args {
                    command.arg(
                        arg.replace("{addr}", &run.listen.to_string())
                            .replace("{host}", &run.listen.ip().to_string())
                            .replace("{port}", &run.listen.port().to_string())
                            .replace("{delay_ms}", &millis)
                            .replace("{protocol}", protocol),
                    );
                }
                let collector = match program {
                    Program::NativeTraced => {
                        let jaeger = Jaeger::start().await;
                        command.envs(TRACED_ENV).env(
                            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                            jaeger.traces_endpoint(),
                        );
                        Some(jaeger)
                    }
                    _ => None,
                };
                let mut binary = NativeBinary::program(self.label.clone(), command).await;
                let addr = binary.addr();
                wait_until_answering(
                    addr,
                    binary.process(),
                    Duration::from_secs(30),
                    run.protocol,
                )
                .await;
                match collector {
                    Some(jaeger) => Box::new(WithCollector {
                        host: binary,
                        jaeger,
                    }),
                    None => Box::new(binary),
                }
            }
            Serve::Component {
                host,
                component,
                launch,
            } => {
                let mut launch = launch.clone();
                launch.listen = run.listen;
                launch
                    .env
                    .push((hello_edge::Config::DELAY_ENV.to_owned(), millis));
                host.start(component, &launch).await
            }
        }
    }

    /// This server with `flags` in place of those of its host's flags that start with one of
    /// `replacing` (a component's server only), named and labelled anew.
    pub fn with_flags(
        &self,
        name: String,
        label: String,
        replacing: &[&str],
        flags: &[&str],
    ) -> Server {
        let mut server = self.clone();
        server.name = name;
        server.label = label;
        match &mut server.serve {
            Serve::Component { launch, .. } => {
                launch
                    .flags
                    .retain(|flag| !replacing.iter().any(|prefix| flag.starts_with(prefix)));
                launch
                    .flags
                    .extend(flags.iter().map(|flag| flag.to_string()));
            }
            Serve::Program { .. } => panic!("{} is not a component's server", self.name),
        }
        server
    }

    /// This server serving `wasm` (a precompiled `.cwasm`) instead of its component as built.
    pub fn serving_file(&self, wasm: PathBuf) -> Server {
        let mut server = self.clone();
        match &mut server.serve {
            Serve::Component { launch, .. } => launch.wasm = Some(wasm),
            Serve::Program { .. } => panic!("{} is not a component's server", self.name),
        }
        server
    }
}

/// The native server's arguments in the benchmark, traced or not: the cap (10,000 by default)
/// lifted, as wasmtime's are when tuned.
const NATIVE_ARGS: &[&str] = &[
    "--listen",
    "{addr}",
    "--delay-ms",
    "{delay_ms}",
    "--max-connections",
    "30000",
];

/// The benchmark's servers, in the order it measures them: the native server (untraced, then
/// traced) and bare hyper, then each component under each host of [`WASM_HOSTS`] (with its
/// defaults, and tuned where the host has tuning), the no-op references beside them under
/// `wasmtime serve`, and the seed.
pub fn servers() -> Vec<Server> {
    let program = |name: &str, label: &str, reference, program, args: &[&'static str]| Server {
        name: name.to_owned(),
        label: label.to_owned(),
        reference,
        serve: Serve::Program {
            program,
            args: args.to_vec(),
        },
    };
    let mut servers = vec![
        program(
            "native",
            "hello-edge native",
            false,
            Program::Native,
            NATIVE_ARGS,
        ),
        // The same, exporting every request's span to a collector beside it: what traces cost.
        program(
            "native-traced",
            "hello-edge native, traced",
            false,
            Program::NativeTraced,
            NATIVE_ARGS,
        ),
        // Plain HTTP/1.1, or plain HTTP/2 in the HTTP/2 scenarios; and on hyper-util's auto
        // builder, to measure that builder's own cost.
        program(
            "bare-hyper",
            "bare hyper (reference)",
            true,
            Program::BareHyper,
            &["{addr}", "{delay_ms}", "{protocol}"],
        ),
        program(
            "bare-hyper-auto",
            "bare hyper on hyper-util's auto builder (reference)",
            true,
            Program::BareHyper,
            &["{addr}", "{delay_ms}", "auto"],
        ),
    ];
    for host in WASM_HOSTS {
        for (component, noop) in [(&WASIP3, &NOOP_WASIP3), (&WASIP2, &NOOP_WASIP2)] {
            if !host.serves(component) {
                continue;
            }
            servers.extend(component_servers(host, component));
            // The no-op beside each, under the reference host only.
            if host.name() == WasmtimeServe.name() {
                servers.extend(component_servers(host, noop));
            }
        }
    }
    servers.push(program(
        "seed-aiohttp",
        "seed: aiohttp (reference)",
        true,
        Program::Seed,
        &["{host}", "{port}", "{delay_ms}"],
    ));
    servers
}

/// `component` on `host`: with the host's defaults, and tuned if the host has tuning.
fn component_servers(host: &'static dyn WasmHost, component: &'static Component) -> Vec<Server> {
    let short = match component.name {
        "wasip2" => "p2",
        "wasip3" => "p3",
        "noop-wasip2" => "noop-p2",
        "noop-wasip3" => "noop-p3",
        other => other,
    };
    let reference = if component.is_reference() {
        " (reference)"
    } else {
        ""
    };
    let server = |suffix: &str, how: &str, launch: Launch| Server {
        name: format!("{}{short}{suffix}", host.names().prefix),
        label: format!(
            "{}, {}{how}{reference}",
            component.label,
            host.names().describe
        ),
        reference: component.is_reference(),
        serve: Serve::Component {
            host,
            component,
            launch,
        },
    };
    match host.tuned(component) {
        None => vec![server("", "", Launch::default())],
        Some(tuned) => vec![
            server("", " defaults", Launch::default()),
            server("-tuned", " tuned", tuned),
        ],
    }
}

/// A server of [`servers`] by its name.
pub fn server(name: &str) -> Option<Server> {
    servers().into_iter().find(|server| server.name == name)
}

/// A port free now on `ip`: for a program that cannot say which port it picked, and for a cold
/// start's clock, which must know the port before the host says it.
pub fn free_port(ip: std::net::IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|listener| listener.local_addr())
        .unwrap_or_else(|err| panic!("no free port on {ip}: {err}"))
        .port()
}

/// What the benchmark's report says of how its servers run beyond what their labels say, each
/// with the servers it is about: the native server's flags, each host's tuning, each host's
/// own configuration.
pub fn notes() -> Vec<(Vec<String>, String)> {
    let servers = servers();
    let mut notes = Vec::new();
    for server in &servers {
        if let Serve::Program {
            program: program @ (Program::Native | Program::NativeTraced),
            args,
        } = &server.serve
        {
            // Its arguments but where it listens and its delay, which every server is given.
            let own: Vec<&str> = args
                .chunks(2)
                .filter(|pair| !pair.iter().any(|arg| arg.contains('{')))
                .flatten()
                .copied()
                .collect();
            let text = match program {
                Program::NativeTraced => format!(
                    "The traced native server runs with `{}` and `{}` in its environment, and \
                     exports its spans in batches over OTLP/HTTP to Jaeger {} on loopback \
                     (keeping them in memory), started beside it.",
                    own.join(" "),
                    TRACED_ENV
                        .iter()
                        .map(|(name, value)| format!("{name}={value}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    crate::tools::pinned_version("jaeger"),
                ),
                _ => format!("The native server runs with `{}`.", own.join(" ")),
            };
            notes.push((vec![server.name.clone()], text));
        }
    }
    for host in WASM_HOSTS {
        let describe = host.names().describe;
        let tuned: Vec<(&str, String)> = [&WASIP2, &WASIP3]
            .into_iter()
            .filter(|component| host.serves(component))
            .filter_map(|component| {
                let launch = host.tuned(component)?;
                let mut parts = Vec::new();
                if !launch.flags.is_empty() {
                    parts.push(format!("`{}`", launch.flags.join(" ")));
                }
                if !launch.host_env.is_empty() {
                    let env: Vec<String> = launch
                        .host_env
                        .iter()
                        .map(|(name, value)| format!("{name}={value}"))
                        .collect();
                    parts.push(format!("`{}` in its environment", env.join(" ")));
                }
                Some((component.label, parts.join(" and ")))
            })
            .collect();
        // One tuning for every component is said once.
        let tuned: Vec<String> = match tuned.as_slice() {
            [(_, first), rest @ ..] if rest.iter().all(|(_, parts)| parts == first) => {
                vec![first.clone()]
            }
            _ => tuned
                .iter()
                .map(|(label, parts)| format!("for the {label}, {parts}"))
                .collect(),
        };
        let of_host = |suffix: &str| -> Vec<String> {
            servers
                .iter()
                .filter(|server| {
                    matches!(&server.serve, Serve::Component { host: h, .. } if h.name() == host.name())
                        && server.name.ends_with(suffix)
                })
                .map(|server| server.name.clone())
                .collect()
        };
        if !tuned.is_empty() {
            let text = format!(
                "{describe} tuned: {}; {describe} defaults: none of these.",
                tuned.join("; ")
            );
            notes.push((of_host("-tuned"), text));
        }
        if let Some(note) = host.note() {
            notes.push((of_host(""), note));
        }
    }
    notes
}
