"""Cold start and the cost of an instance. Cold start is the host catalogue's to time (`hosts
cold-start`, tests/support/src/bin/hosts.rs: spawn to the first 200, each component compiled at
start, from wasmtime's cache and precompiled, and each under spin up with its cache warm, and a
request after wasmtime serve dropped its idle instances beside one on a warm host); here its
figures are read. The instance cost is measured here with wrk: each component at delay 0 with a
fresh instance per request against instances reused, each variant started through the
catalogue."""

from __future__ import annotations

import dataclasses
import json
import subprocess

from . import LOGS
from .load import wrk
from .procs import server_env
from .servers import HOSTS, catalogue, serving


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


def cold_start(starts: int) -> list[Start]:
    """`hosts cold-start`: every configuration `starts` times, one line of figures each."""
    proc = subprocess.Popen([str(HOSTS), "cold-start", "--starts", str(starts)], stdout=subprocess.PIPE,
                            text=True, env=server_env())
    results = []
    for line in proc.stdout:
        figures = json.loads(line)
        result = Start(figures["name"], figures["label"], figures["starts"], figures["median_ms"],
                       figures["max_ms"], figures["idle_ms"], figures["warm_ms"])
        results.append(result)
        idle = (f"  after idle {result.idle_ms:6.2f} ms  warm {result.warm_ms:6.2f} ms"
                if result.idle_ms is not None else "")
        print(f"  cold start {result.name:18} median {result.median_ms:8.2f} ms  max {result.max_ms:8.2f} ms{idle}",
              flush=True)
    if proc.wait() != 0:
        raise RuntimeError(f"hosts cold-start exited with {proc.returncode}")
    return results


@dataclasses.dataclass
class InstanceCost:
    """Delay 0, C=64: one component with instance reuse off (a fresh instance per request) and on."""
    name: str
    label: str
    component: str  # the catalogue's name of the component, for its size
    rps_fresh: float
    rps_reused: float
    cpu_us_fresh: float  # server CPU per request
    cpu_us_reused: float

    @property
    def instantiation_us(self) -> float:
        return self.cpu_us_fresh - self.cpu_us_reused


def instance_cost(times: dict) -> list[InstanceCost]:
    """Each component at delay 0, C=64 on /hello/x, with a fresh instance per request
    (--max-instance-reuse-count=1, a WASI 0.2 host's and Spin's way) and with instances reused
    (a WASI 0.3 instance also takes up to 16 requests at once, wasmtime's default): the
    catalogue's instance variants."""
    variants = catalogue().instances
    results = []
    for of in dict.fromkeys(v["of"] for v in variants):
        figures = {}
        for variant in (v for v in variants if v["of"] == of):
            with serving(variant["name"], 0, LOGS / f"instances-{variant['name']}.log") as server:
                url = f"http://127.0.0.1:{server.port}/hello/x"
                wrk(url, 64, times["warmup"], "totals.lua")
                run = wrk(url, 64, times["window"], "totals.lua", server_pid=server.pid)
                seconds = run["duration_us"] / 1e6
                rps = run["requests"] / seconds
                figures[variant["reused"]] = (rps, run["server_cpu"] * seconds / run["requests"] * 1e6)
        first = next(v for v in variants if v["of"] == of)
        label, component = first["label"], first["component"]
        cost = InstanceCost(of, label, component, figures[False][0], figures[True][0], figures[False][1],
                            figures[True][1])
        results.append(cost)
        print(f"  instances {of:8} fresh {cost.rps_fresh:8.0f} req/s {cost.cpu_us_fresh:6.1f} µs CPU  "
              f"reused {cost.rps_reused:8.0f} req/s {cost.cpu_us_reused:6.1f} µs CPU  "
              f"instantiation {cost.instantiation_us:6.1f} µs", flush=True)
    return results


def sizes() -> dict:
    """Each component's size in bytes, by the catalogue's name."""
    return {name: component["size"] for name, component in catalogue().components.items()}
