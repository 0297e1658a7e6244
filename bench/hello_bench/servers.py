"""The server catalogue, as data: each server's name, label, whether it is ours or a reference,
its host kind ("native", "wasmtime", "wash", "python") and that kind's parameters (a binary and
its arguments, a component and wasmtime's flags, a component and the wash dev config). The
command that starts a server is made by its host kind's function in COMMANDS."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from . import BENCH, LOGS, ROOT, WASM

# wasmtime serve's defaults admit 1,000 connections and 1,000 requests at a time, so 10,000 waiting
# clients queue behind them (0.1 of the ideal). Lifting those caps alone is not enough: the pooling
# allocator holds 1,000 component instances, 1,000 core instances and 1,000 fibers (stacks) by
# default.
# - WASI 0.3: each request in flight runs on a fiber of its own, so 10,000 waiting requests answer
#   500 ("maximum concurrent limit of 1000 for fibers reached", likewise for core and component
#   instances; see target/bench-logs/). An instance awaits up to 16 requests at once by default
#   (--max-instance-concurrent-reuse-count). The sweep (`--scenarios sweep`) at C=10,000, where
#   the host is CPU-bound (about 1.5 cores), put a different count first in each run, all within
#   about 15% of each other, as the same settings are between runs: no count beats the default
#   beyond the noise, so the tuned host keeps it.
# - WASI 0.2: each request in flight holds a whole instance (1 component instance, 3 core
#   instances: the program and wit-component's two shims, 1 memory), so even 1,000 waiting
#   requests exceed the 1,000 core instances ("maximum concurrent limit of 1000 for core
#   instances reached"). With the pools raised but a fresh instance per request (the default for
#   0.2), instantiating is the ceiling. Reusing an instance for the next request once it has
#   answered (--max-instance-reuse-count) lifts that.
# An instance's requests before it is retired, "for good": more than any run sends.
REUSE_FOR_GOOD = 100_000_000
# The tuned host, the same for both, lifts the caps and the pools and reuses instances for good
# (the on-demand allocator, -Opooling-allocator=n, had no errors but was no faster).
WASMTIME_TUNED = (
    "--max-concurrent-connections=20000",
    "--max-concurrent-requests=20000",
    f"--max-instance-reuse-count={REUSE_FOR_GOOD}",
    "-Opooling-total-component-instances=12000",
    "-Opooling-total-core-instances=36000",
    "-Opooling-total-memories=16000",
    "-Opooling-total-tables=36000",
    "-Opooling-total-stacks=12000",
)

# Spin tuned: its pools lifted (a waiting WASI 0.2 request holds a component instance, and a
# WASI 0.3 one a stack), and, for WASI 0.3, instances reused for good, as wasmtime serve's tuned
# host does (Spin's default retires one after 128 requests; it takes 16 at once, as the sweep
# found best).
SPIN_TUNED_ENV = {"SPIN_MAX_INSTANCE_COUNT": "12000"}
SPIN_TUNED_WASIP3_FLAGS = (f"--max-instance-reuse-count={REUSE_FOR_GOOD}",)

# hello-edge's answer to `GET /hello/bench` (`date` aside), as every server but the seed's must
# send it, the references fixed: each row then measures the same bytes on the wire, and a
# reference that drifts from hello-edge, or hello-edge from this, stops the run.
ANSWER = (200, [("content-length", "22"), ("content-security-policy", "default-src 'none'"),
                ("content-type", "text/html; charset=utf-8"), ("x-content-type-options", "nosniff")],
          22)

NATIVE = ROOT / "target" / "release" / "hello-edge"
BARE_HYPER = ROOT / "target" / "release" / "bare-hyper"
SEED = BENCH / "seed_aiohttp.py"
P3, P3_NOOP = "hello_edge_wasip3.wasm", "hello_edge_bench_noop_wasip3.wasm"
P2, P2_NOOP = "hello_edge_wasip2.wasm", "hello_edge_bench_noop_wasip2.wasm"
COMPONENTS = (P2, P2_NOOP, P3, P3_NOOP)
# The repository's wash dev config: its dev.environment is the host's (the instance pool).
WASH_CONFIG = ROOT / ".wash" / "config.yaml"
WASH_PROJECTS = ROOT / "target" / "bench-wash"
# What wash dev logs once the component is deployed (after "HTTP server listening").
WASH_READY = "listening for HTTP requests"


@dataclasses.dataclass(frozen=True)
class Tools:
    """The host programs, as bench/run passes them."""
    wasmtime: str = "wasmtime"
    wash: str = "wash"
    spin: str = "spin"
    python: str = "python3"


@dataclasses.dataclass(frozen=True)
class Server:
    name: str
    label: str
    kind: str  # "ours" or "reference"
    host: str  # a key of COMMANDS
    params: dict = dataclasses.field(default_factory=dict, hash=False)


@dataclasses.dataclass
class Launch:
    """How to start one server: its command, where, and what it logs once it serves (if
    anything beyond answering HTTP)."""
    argv: list[str]
    cwd: Path | None = None
    ready_log: str | None = None
    env: dict = dataclasses.field(default_factory=dict)  # set in the server's environment, besides ours


def _args(server: Server, host: str, port: int, delay_ms: int, protocol: str) -> list[str]:
    return [a.format(addr=f"{host}:{port}", host=host, port=port, delay_ms=delay_ms, protocol=protocol)
            for a in server.params.get("args", ())]


def native_command(server: Server, host: str, port: int, delay_ms: int, protocol: str, tools: Tools) -> Launch:
    return Launch([str(server.params["binary"]), *_args(server, host, port, delay_ms, protocol)])


def python_command(server: Server, host: str, port: int, delay_ms: int, protocol: str, tools: Tools) -> Launch:
    return Launch([tools.python, str(server.params["script"]), *_args(server, host, port, delay_ms, protocol)])


def wasmtime_command(server: Server, host: str, port: int, delay_ms: int, protocol: str, tools: Tools) -> Launch:
    return Launch([tools.wasmtime, "serve", "-Scli", f"--addr={host}:{port}",
                   f"--env=HELLO_EDGE_DELAY_MS={delay_ms}", *server.params.get("flags", ()),
                   str(WASM / server.params["wasm"])])


def wash_command(server: Server, host: str, port: int, delay_ms: int, protocol: str, tools: Tools) -> Launch:
    project = wash_project(server.name, WASM / server.params["wasm"], f"{host}:{port}", delay_ms)
    return Launch([tools.wash, "-C", str(project), "dev", "--non-interactive"], cwd=project,
                  ready_log=WASH_READY)


def spin_command(server: Server, host: str, port: int, delay_ms: int, protocol: str, tools: Tools) -> Launch:
    """`spin up` on the component's own manifest (its `source` is where bench/run builds it), the
    delay through `-e`, its data directory and its component logs under target/bench-logs."""
    logs = LOGS / f"spin-{server.name}"
    return Launch([tools.spin, "up", "-f", str(ROOT / server.params["manifest"]), "--listen", f"{host}:{port}",
                   "-e", f"HELLO_EDGE_DELAY_MS={delay_ms}", "--log-dir", str(logs / "component"),
                   *server.params.get("flags", ())],
                  ready_log="Serving http://",
                  env={"SPIN_DATA_DIR": str(logs / "data"), **server.params.get("env", {})})


# Each takes (server, host, port, delay_ms, protocol, tools); the protocol ("http1" or "http2",
# as the scenario speaks it) matters to a server that is told it ({protocol} in its arguments).
COMMANDS: dict[str, Callable[[Server, str, int, int, str, Tools], Launch]] = {
    "native": native_command,
    "wasmtime": wasmtime_command,
    "wash": wash_command,
    "spin": spin_command,
    "python": python_command,
}


def launch(server: Server, port: int, delay_ms: int, tools: Tools, protocol: str = "http1",
           host: str = "127.0.0.1") -> Launch:
    return COMMANDS[server.host](server, host, port, delay_ms, protocol, tools)


def wash_config() -> dict:
    """The repository's .wash/config.yaml, parsed (PyYAML, from the virtualenv)."""
    import yaml

    return yaml.safe_load(WASH_CONFIG.read_text())


def wash_project(name: str, wasm: Path, address: str, delay_ms: int) -> Path:
    """A wash dev project directory (target/bench-wash/NAME) whose .wash/config.yaml is the
    repository's, serving `wasm` as built (no build step) on `address`, with the scenario's delay
    as the component's only environment variable; as tests/support/src/wash.rs does."""
    import yaml

    config = wash_config()
    config["build"]["command"] = "true"
    config["build"]["component_path"] = str(wasm)
    config["dev"]["address"] = address
    config.setdefault("workload", {}).setdefault("environment", {})["config"] = {
        "HELLO_EDGE_DELAY_MS": str(delay_ms)}
    project = WASH_PROJECTS / name
    (project / ".wash").mkdir(parents=True, exist_ok=True)
    (project / ".wash" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return project


def _wasmtime(name: str, label: str, kind: str, wasm: str, tuned: bool) -> Server:
    return Server(name, label, kind, "wasmtime", {"wasm": wasm, "flags": WASMTIME_TUNED if tuned else ()})


SERVERS = [
    # The cap (10,000 by default) lifted, as wasmtime's are when tuned.
    Server("native", "hello-edge native", "ours", "native",
           {"binary": NATIVE, "args": ("--listen", "{addr}", "--delay-ms", "{delay_ms}",
                                       "--max-connections", "30000")}),
    # Plain HTTP/1.1, or plain HTTP/2 in the HTTP/2 scenarios (its third argument); on hyper-util's
    # auto builder, to measure that builder's own cost.
    Server("bare-hyper", "bare hyper (reference)", "reference", "native",
           {"binary": BARE_HYPER, "args": ("{addr}", "{delay_ms}", "{protocol}")}),
    Server("bare-hyper-auto", "bare hyper on hyper-util's auto builder (reference)", "reference", "native",
           {"binary": BARE_HYPER, "args": ("{addr}", "{delay_ms}", "auto")}),
    _wasmtime("p3", "hello-edge WASI 0.3 component, wasmtime serve defaults", "ours", P3, False),
    _wasmtime("p3-tuned", "hello-edge WASI 0.3 component, wasmtime serve tuned", "ours", P3, True),
    _wasmtime("noop-p3", "no-op WASI 0.3 component, wasmtime serve defaults (reference)", "reference",
              P3_NOOP, False),
    _wasmtime("noop-p3-tuned", "no-op WASI 0.3 component, wasmtime serve tuned (reference)", "reference",
              P3_NOOP, True),
    _wasmtime("p2", "hello-edge WASI 0.2 component, wasmtime serve defaults", "ours", P2, False),
    _wasmtime("p2-tuned", "hello-edge WASI 0.2 component, wasmtime serve tuned", "ours", P2, True),
    _wasmtime("noop-p2", "no-op WASI 0.2 component, wasmtime serve defaults (reference)", "reference",
              P2_NOOP, False),
    _wasmtime("noop-p2-tuned", "no-op WASI 0.2 component, wasmtime serve tuned (reference)", "reference",
              P2_NOOP, True),
    Server("wash-p2", "hello-edge WASI 0.2 component, wasmCloud wash dev", "ours", "wash", {"wasm": P2}),
    Server("wash-p3", "hello-edge WASI 0.3 component, wasmCloud wash dev", "ours", "wash", {"wasm": P3}),
    # Spin 4.1: a fresh instance per WASI 0.2 request, up to 16 requests at once in a WASI 0.3
    # instance. Its pool holds 1,000 component instances (and as many memories and stacks);
    # SPIN_MAX_INSTANCE_COUNT raises every pool at once.
    Server("spin-p2", "hello-edge WASI 0.2 component, spin up defaults", "ours", "spin",
           {"manifest": "spin.toml"}),
    Server("spin-p2-tuned", "hello-edge WASI 0.2 component, spin up tuned", "ours", "spin",
           {"manifest": "spin.toml", "env": SPIN_TUNED_ENV}),
    Server("spin-p3", "hello-edge WASI 0.3 component, spin up defaults", "ours", "spin",
           {"manifest": "spin-wasip3.toml"}),
    Server("spin-p3-tuned", "hello-edge WASI 0.3 component, spin up tuned", "ours", "spin",
           {"manifest": "spin-wasip3.toml", "env": SPIN_TUNED_ENV, "flags": SPIN_TUNED_WASIP3_FLAGS}),
    Server("seed-aiohttp", "seed: aiohttp (reference)", "reference", "python",
           {"script": SEED, "args": ("{host}", "{port}", "{delay_ms}")}),
]
# The sweep (`--scenarios sweep`): the WASI 0.3 component under wasmtime serve tuned at
# C=10,000 with each count of requests an instance takes at once (`--max-instance-concurrent-
# reuse-count`), reused for good; and the same at 100 with wasmtime's default reuse count (an
# instance retired after 128 requests).
SWEEP_SCENARIO = "delay 500 ms, C=10,000"
SWEEP = [(concurrency, reuse) for concurrency in (16, 100, 1000, 20000) for reuse in (REUSE_FOR_GOOD,)] + [(100, 128)]


def sweep_server(concurrency: int, reuse: int) -> Server:
    """The WASI 0.3 component under wasmtime serve tuned, but for these two counts."""
    flags = [f for f in WASMTIME_TUNED if not f.startswith(("--max-instance-concurrent-reuse-count=",
                                                             "--max-instance-reuse-count="))]
    flags += [f"--max-instance-concurrent-reuse-count={concurrency}", f"--max-instance-reuse-count={reuse}"]
    name = f"p3-sweep-{concurrency}-{reuse}"
    return Server(name, f"hello-edge WASI 0.3 component, wasmtime serve, {concurrency:,} requests an instance"
                        f"{'' if reuse == REUSE_FOR_GOOD else f', retired after {reuse}'}",
                  "ours", "wasmtime", {"wasm": P3, "flags": tuple(flags), "sweep": (concurrency, reuse)})


SWEEP_SERVERS = [sweep_server(c, r) for c, r in SWEEP]
LABELS = {s.name: s.label for s in SERVERS + SWEEP_SERVERS}
