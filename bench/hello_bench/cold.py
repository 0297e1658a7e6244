"""Cold start and the cost of an instance: spawn to the first 200 for each server configuration
(each component compiled at start, from wasmtime's cache and precompiled to .cwasm, and each
under spin up with its cache warm), a request
after wasmtime serve dropped its idle instances beside one on a warm host, and each component at
delay 0 with a fresh instance per request against instances reused."""

from __future__ import annotations

import dataclasses
import socket
import statistics
import subprocess
import time
from pathlib import Path

from . import ROOT, WASM
from .load import wrk
from .procs import free_port, start, stop, wait_until_serving
from .servers import (COMPONENTS, P2, P2_NOOP, P3, P3_NOOP, REUSE_FOR_GOOD, SERVERS, Server, Tools,
                      launch)

# (name, label, file) of each component measured.
CONFIGS = [("p2", "hello-edge WASI 0.2", P2), ("noop-p2", "no-op WASI 0.2 (reference)", P2_NOOP),
           ("p3", "hello-edge WASI 0.3", P3), ("noop-p3", "no-op WASI 0.3 (reference)", P3_NOOP)]
FILES = {name: wasm for name, _, wasm in CONFIGS}


@dataclasses.dataclass
class Start:
    """How one server configuration goes from nothing to a first answer."""
    name: str
    label: str
    starts: int
    median_ms: float  # process spawn to the first 200, delay 0
    max_ms: float
    idle_ms: float | None = None  # a request after the host dropped its idle instances (median)
    warm_ms: float | None = None  # a request on a warm host (median), for comparison


def cold_launches(tools: Tools, cwasm: Path) -> list[tuple[str, str, Server]]:
    """(name, label, server) for each configuration measured from a cold start: servers of the
    catalogue, each component's as wasmtime serve compiles it at start, finds it in its cache,
    and loads it precompiled."""
    catalogue = {s.name: s for s in SERVERS}
    configs = [("native", "hello-edge native", catalogue["native"]),
               ("bare-hyper", "bare hyper (reference)", catalogue["bare-hyper"])]
    for name, label, wasm in CONFIGS:
        server = catalogue[name]
        precompiled = cwasm / wasm.replace(".wasm", ".cwasm")
        configs += [
            (f"{name}-compile", f"{label}, .wasm compiled at start (cache off)",
             with_flags(server, "-Ccache=n")),
            (f"{name}-cached", f"{label}, .wasm from wasmtime's cache (the CLI's default)", server),
            (f"{name}-cwasm", f"{label}, precompiled .cwasm",
             with_flags(server, "--allow-precompiled", wasm=str(precompiled))),
        ]
    # spin up compiles a component at start unless wasmtime's cache (on in Spin) holds it.
    configs += [(f"{name}-cached", f"{label} under spin up (its cache warm)", catalogue[name])
                for name, label in (("spin-p2", "hello-edge WASI 0.2"), ("spin-p3", "hello-edge WASI 0.3"))]
    configs.append(("seed-aiohttp", "seed: aiohttp (reference)", catalogue["seed-aiohttp"]))
    return configs


def with_flags(server: Server, *flags: str, **params) -> Server:
    """`server` with these flags added to its host's, and these parameters replaced."""
    flags = (*server.params.get("flags", ()), *flags)
    return dataclasses.replace(server, params={**server.params, "flags": flags, **params})


def first_answer(port: int, path: str = "/", timeout: float = 60) -> float:
    """Seconds until `GET path` on a new connection answers 200, retrying while refused."""
    started = time.perf_counter()
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode()
    while time.perf_counter() - started < timeout:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
                sock.sendall(request)
                if sock.recv(12).startswith(b"HTTP/1.1 200"):
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.0005)
    raise RuntimeError(f"no 200 on port {port} within {timeout} s")


def _spawn(server: Server, port: int, tools: Tools) -> subprocess.Popen:
    """Starts `server` at delay 0 on `port`, in a session of its own, its output dropped."""
    how = launch(server, port, 0, tools)
    return start(how.argv, subprocess.DEVNULL, how.cwd, how.env)


def cold_start(tools: Tools, starts: int) -> list[Start]:
    """Spawn to first 200 answer at delay 0, `starts` times per configuration; then, for the wasm
    hosts, a request after the host has dropped its idle instances (wasmtime serve: after
    --idle-instance-timeout, 1 s) beside one on a warm host."""
    cwasm = ROOT / "target" / "bench-cwasm"
    cwasm.mkdir(parents=True, exist_ok=True)
    for wasm in COMPONENTS:
        subprocess.run([tools.wasmtime, "compile", str(WASM / wasm), "-o",
                        str(cwasm / wasm.replace(".wasm", ".cwasm"))], check=True)
    results = []
    for name, label, server in cold_launches(tools, cwasm):
        times = []
        if name.endswith("-cached"):
            # Fill wasmtime's cache once, so every measured start reads from it.
            port = free_port()
            warm = _spawn(server, port, tools)
            try:
                first_answer(port)
            finally:
                stop(warm)
        for _ in range(starts):
            port = free_port()
            started = time.perf_counter()
            proc = _spawn(server, port, tools)
            try:
                first_answer(port)
                times.append((time.perf_counter() - started) * 1000)
            finally:
                stop(proc)
        result = Start(name, label, len(times), statistics.median(times), max(times))
        if name.endswith("-cwasm") and not name.startswith("noop"):
            result.warm_ms, result.idle_ms = idle_and_warm(server, tools)
        results.append(result)
        idle = f"  after idle {result.idle_ms:6.2f} ms  warm {result.warm_ms:6.2f} ms" if result.idle_ms else ""
        print(f"  cold start {name:18} median {result.median_ms:8.2f} ms  max {result.max_ms:8.2f} ms{idle}",
              flush=True)
    return results


def idle_and_warm(server: Server, tools: Tools, samples: int = 10) -> tuple[float, float]:
    """Median ms of a request on a warm wasm host, and of one after 1.5 s idle (past wasmtime
    serve's 1 s --idle-instance-timeout, so the host has dropped the instance it kept)."""
    port = free_port()
    proc = _spawn(server, port, tools)
    try:
        first_answer(port)
        warm = [first_answer(port) * 1000 for _ in range(samples)]
        idle = []
        for _ in range(samples):
            time.sleep(1.5)
            idle.append(first_answer(port) * 1000)
        return statistics.median(warm), statistics.median(idle)
    finally:
        stop(proc)


@dataclasses.dataclass
class InstanceCost:
    """Delay 0, C=64: one component with instance reuse off (a fresh instance per request) and on."""
    name: str
    label: str
    rps_fresh: float
    rps_reused: float
    cpu_us_fresh: float  # server CPU per request
    cpu_us_reused: float

    @property
    def instantiation_us(self) -> float:
        return self.cpu_us_fresh - self.cpu_us_reused


def instance_cost(tools: Tools, times: dict) -> list[InstanceCost]:
    """Each component at delay 0, C=64 on /hello/x, with a fresh instance per request
    (--max-instance-reuse-count=1, a WASI 0.2 host's and Spin's way) and with instances reused
    (a WASI 0.3 instance also takes up to 16 requests at once, wasmtime's default)."""
    catalogue = {s.name: s for s in SERVERS}
    results = []
    for name, label, wasm in CONFIGS:
        figures = {}
        for mode, reuse in (("fresh", 1), ("reused", REUSE_FOR_GOOD)):
            server = with_flags(catalogue[name], f"--max-instance-reuse-count={reuse}")
            port = free_port()
            proc = _spawn(server, port, tools)
            try:
                wait_until_serving(port, proc)
                url = f"http://127.0.0.1:{port}/hello/x"
                wrk(url, 64, times["warmup"], "totals.lua")
                run = wrk(url, 64, times["window"], "totals.lua", server_pid=proc.pid)
                seconds = run["duration_us"] / 1e6
                rps = run["requests"] / seconds
                figures[mode] = (rps, run["server_cpu"] * seconds / run["requests"] * 1e6)
            finally:
                stop(proc)
        cost = InstanceCost(name, label, figures["fresh"][0], figures["reused"][0], figures["fresh"][1],
                            figures["reused"][1])
        results.append(cost)
        print(f"  instances {name:8} fresh {cost.rps_fresh:8.0f} req/s {cost.cpu_us_fresh:6.1f} µs CPU  "
              f"reused {cost.rps_reused:8.0f} req/s {cost.cpu_us_reused:6.1f} µs CPU  "
              f"instantiation {cost.instantiation_us:6.1f} µs", flush=True)
    return results


def sizes() -> dict:
    """Each component's size in bytes (0 when not built)."""
    return {wasm: (WASM / wasm).stat().st_size if (WASM / wasm).exists() else 0 for wasm in COMPONENTS}
