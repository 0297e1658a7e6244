"""The hello-edge benchmark: every server, the same scenarios, one table of ratios and a chart.

Run through `bench/run`, which builds and installs what this needs. Each server is started on
loopback, one at a time, and driven by wrk; peak RSS comes from the server's /proc/PID/status
(VmHWM, reset before each scenario through /proc/PID/clear_refs).

Delayed scenarios are measured in a steady-state window (bench/steady.lua): the answers that
complete between WARMUP and WARMUP + WINDOW seconds into a run, so neither the ramp-up nor the
requests cut off at the end are counted. The window starts a quarter of a delay after a round
boundary, away from the bursts in which synchronised connections complete.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import resource
import signal
import statistics
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
WASM = ROOT / "target" / "wasm32-wasip2" / "component"
# Each server's output, for when a figure needs explaining.
LOGS = ROOT / "target" / "bench-logs"

# wasmtime serve's defaults admit 1,000 connections and 1,000 requests at a time, so 10,000
# waiting clients queue behind them (0.1 of the ideal). Lifting those caps alone is not enough:
# the pooling allocator holds 1,000 component instances, 1,000 core instances and 1,000 fibers
# (stacks) by default.
# - WASI 0.3: each request in flight runs on a fiber of its own, so 10,000 waiting requests answer
#   500 ("maximum concurrent limit of 1000 for fibers reached", likewise for core and component
#   instances; see target/bench-logs/). One instance may await any number of requests.
# - WASI 0.2: each request in flight holds a whole instance (1 component instance, 3 core
#   instances: the program and wit-component's two shims, 1 memory), so even 1,000 waiting
#   requests exceed the 1,000 core instances ("maximum concurrent limit of 1000 for core
#   instances reached"). With the pools raised but a fresh instance per request (the default for
#   0.2), instantiating is the ceiling: about 7,000 requests/s on 2 cores. Reusing an instance for
#   the next request once it has answered (--max-instance-reuse-count) lifts that.
# The tuned host, the same for both, lifts the caps and the pools and reuses instances (the
# on-demand allocator, -Opooling-allocator=n, had no errors but was no faster).
WASMTIME_TUNED = [
    "--max-concurrent-connections=20000",
    "--max-concurrent-requests=20000",
    "--max-instance-concurrent-reuse-count=20000",
    "--max-instance-reuse-count=100000000",
    "-Opooling-total-component-instances=12000",
    "-Opooling-total-core-instances=36000",
    "-Opooling-total-memories=16000",
    "-Opooling-total-tables=36000",
    "-Opooling-total-stacks=12000",
]


@dataclasses.dataclass
class Server:
    name: str
    label: str
    kind: str  # "ours" or "reference"
    host: str  # "native", "wasm", "python"
    wasm: str = ""  # the component, for wasm hosts
    tuned: bool = False  # wasmtime serve with WASMTIME_TUNED

    def command(self, addr: tuple[str, int], delay_ms: int, wasmtime: str, python: str) -> list[str]:
        host, port = addr
        listen = f"{host}:{port}"
        if self.name == "native":
            # The cap (10,000 by default) lifted, as wasmtime's are when tuned.
            return [str(ROOT / "target/release/hello-edge"), "--listen", listen, "--delay-ms", str(delay_ms),
                    "--max-connections", "30000"]
        if self.name == "bare-hyper":
            return [str(ROOT / "target/release/bare-hyper"), listen, str(delay_ms)]
        if self.name == "seed-aiohttp":
            return [python, str(BENCH / "seed_aiohttp.py"), host, str(port), str(delay_ms)]
        flags = WASMTIME_TUNED if self.tuned else []
        return [wasmtime, "serve", "-Scli", f"--addr={listen}", f"--env=HELLO_EDGE_DELAY_MS={delay_ms}",
                *flags, str(WASM / self.wasm)]


P3, P3_NOOP = "hello_edge_wasip3.wasm", "hello_edge_bench_noop_wasip3.wasm"
P2, P2_NOOP = "hello_edge_wasip2.wasm", "hello_edge_bench_noop_wasip2.wasm"
SERVERS = [
    Server("native", "hello-edge native", "ours", "native"),
    Server("bare-hyper", "bare hyper (reference)", "reference", "native"),
    Server("p3", "hello-edge WASI 0.3 component, wasmtime serve defaults", "ours", "wasm", P3),
    Server("p3-tuned", "hello-edge WASI 0.3 component, wasmtime serve tuned", "ours", "wasm", P3, True),
    Server("noop-p3", "no-op WASI 0.3 component, wasmtime serve defaults (reference)", "reference", "wasm",
           P3_NOOP),
    Server("noop-p3-tuned", "no-op WASI 0.3 component, wasmtime serve tuned (reference)", "reference", "wasm",
           P3_NOOP, True),
    Server("p2", "hello-edge WASI 0.2 component, wasmtime serve defaults", "ours", "wasm", P2),
    Server("p2-tuned", "hello-edge WASI 0.2 component, wasmtime serve tuned", "ours", "wasm", P2, True),
    Server("noop-p2", "no-op WASI 0.2 component, wasmtime serve defaults (reference)", "reference", "wasm",
           P2_NOOP),
    Server("noop-p2-tuned", "no-op WASI 0.2 component, wasmtime serve tuned (reference)", "reference", "wasm",
           P2_NOOP, True),
    Server("seed-aiohttp", "seed: aiohttp (reference)", "reference", "python"),
]


@dataclasses.dataclass
class Scenario:
    name: str
    delay_ms: int
    connections: int
    path: str
    only: tuple = ()  # the servers it runs for; all when empty


# The largest scale scenario is as many connections as one process may hold here: the hard
# open-file limit is 20,000 and cannot be raised (no CAP_SYS_RESOURCE), and each connection is a
# descriptor in the server and in wrk. 25,000 would need a higher limit; see SCALE_NOTE.
SCALE_C = 19_000
SCALE_NOTE = (f"C={SCALE_C:,} is the most this machine allows: the hard open-file limit is 20,000 per "
              "process and cannot be raised here (no CAP_SYS_RESOURCE), and the server and wrk each "
              "hold a descriptor per connection. C=25,000 needs a limit above 25,000.")
SCENARIOS = [
    Scenario("delay 500 ms, C=1,000", 500, 1_000, "/hello/bench"),
    Scenario("delay 500 ms, C=10,000", 500, 10_000, "/hello/bench"),
    Scenario(f"delay 500 ms, C={SCALE_C:,}", 500, SCALE_C, "/hello/bench", ("native", "bare-hyper")),
    Scenario("delay 0, C=64, /", 0, 64, "/"),
    Scenario("delay 0, C=64, /hello/x", 0, 64, "/hello/x"),
]


@dataclasses.dataclass
class Result:
    server: str
    scenario: str
    delay_ms: int
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_kinds: dict  # non-zero counts by kind: status (non-200), connect, read, write, timeout
    peak_rss: int  # bytes
    idle_rss: int  # bytes, before the scenario
    server_cpu: float = 0.0  # cores the server used during the measured run
    wrk_cpu: float = 0.0  # cores wrk used, of the machine's 2: near 2 means the load is the ceiling

    @property
    def ideal(self) -> float | None:
        return self.connections / (self.delay_ms / 1000) if self.delay_ms else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env() -> dict:
    """The servers' environment: ours, without RUST_BACKTRACE, which makes a Rust host capture a
    backtrace for every error it logs (wasmtime serve does, per refused request) and so slows the
    very scenarios that refuse many."""
    env = dict(os.environ)
    env.pop("RUST_BACKTRACE", None)
    return env


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to a server's process group (started with start_new_session), SIGKILL after 30 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_until_serving(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Waits until the server answers an HTTP request (wasm hosts compile before they listen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /hello/ready HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                sock.settimeout(70)
                if sock.recv(12).startswith(b"HTTP/1.1"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def rss(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak_rss(pid: int) -> None:
    # Writing 5 resets VmHWM to the current RSS (Linux 4.0+).
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, connections: int, seconds: float, script: str, script_args: list[str] = (),
        server_pid: int | None = None) -> dict:
    """Runs wrk and returns its figures, with the cores it and the server used meanwhile
    (`wrk_cpu`, `server_cpu`)."""
    threads = min(2, connections)
    seconds = math.ceil(seconds)  # wrk takes whole seconds
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
           "-s", str(BENCH / script), url]
    if script_args:
        cmd += ["--", *script_args]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = cpu_seconds(server_pid) if server_pid else 0.0
    started = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = {"wrk_cpu": (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime) / wall,
            "server_cpu": (cpu_seconds(server_pid) - server_before) / wall if server_pid else 0.0}
    for line in out.stdout.splitlines():
        for prefix in ("STEADY ", "TOTALS "):
            if line.startswith(prefix):
                return {**json.loads(line[len(prefix):]), **used}
    raise RuntimeError(f"wrk printed no figures:\n{out.stdout}\n{out.stderr}")


def measure(server: Server, pid: int, port: int, scenario: Scenario, times: dict) -> Result:
    url = f"http://127.0.0.1:{port}{scenario.path}"
    idle = rss(pid, "VmRSS")
    reset_peak_rss(pid)
    if scenario.delay_ms:
        # The warm-up is inside the run: the window opens once C connections are up and
        # waiting. (A separate warm-up run made the measured one start while the host was still
        # tearing down the first run's C connections, and inflated peak RSS with its leftovers.)
        warmup = times["warmup"] + scenario.delay_ms / 1000 / 4
        window = times["window"]
        figures = wrk(url, scenario.connections, warmup + window + 2 * scenario.delay_ms / 1000 + 1,
                      "steady.lua", [f"{warmup}", f"{window}"], pid)
        rps = figures["window_ok"] / figures["window_s"]
        errors = figures["window_bad"]
    else:
        wrk(url, scenario.connections, times["warmup"], "totals.lua")  # warm-up, not measured
        reset_peak_rss(pid)
        figures = wrk(url, scenario.connections, times["window"], "totals.lua", server_pid=pid)
        rps = figures["requests"] / (figures["duration_us"] / 1e6)
        errors = figures["status_errors"]
    statuses = " ".join(sorted(set(figures.get("bad_statuses", "").split())))
    kinds = {(f"status {statuses}" if statuses else "status"): errors, **{k: figures[k + "_errors"] for k in ("connect", "read", "write")},
             "timeout": figures["timeouts"]}
    return Result(server.name, scenario.name, scenario.delay_ms, scenario.connections, rps,
                  figures["p50_us"] / 1000, figures["p99_us"] / 1000, sum(kinds.values()),
                  {k: v for k, v in kinds.items() if v}, rss(pid, "VmHWM"), idle,
                  figures["server_cpu"], figures["wrk_cpu"])


def run_server(server: Server, scenarios: list[Scenario], times: dict, wasmtime: str, python: str) -> list[Result]:
    results = []
    scenarios = [s for s in scenarios if not s.only or server.name in s.only]
    for delay_ms in sorted({s.delay_ms for s in scenarios}, reverse=True):
        port = free_port()
        cmd = server.command(("127.0.0.1", port), delay_ms, wasmtime, python)
        LOGS.mkdir(parents=True, exist_ok=True)
        log = open(LOGS / f"{server.name}-delay{delay_ms}.log", "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=server_env())
        try:
            wait_until_serving(port, proc)
            for scenario in (s for s in scenarios if s.delay_ms == delay_ms):
                result = measure(server, proc.pid, port, scenario, times)
                results.append(result)
                print(f"  {server.name:22} {scenario.name:26} {result.rps:>9.0f} req/s  "
                      f"p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms  "
                      f"errors {result.errors:5}  peak RSS {result.peak_rss / 2**20:6.1f} MiB  "
                      f"CPU server {result.server_cpu:.2f} wrk {result.wrk_cpu:.2f}",
                      flush=True)
                time.sleep(2)  # let the closed connections leave TIME_WAIT's busiest moment
        finally:
            stop(proc)
            log.close()
    return results


# --- Cold start and the cost of an instance ------------------------------------------------

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


def cold_commands(wasmtime: str, python: str, cwasm: Path) -> list[tuple[str, str, list[str]]]:
    """(name, label, command with {port}) for each configuration measured from a cold start."""
    native = [str(ROOT / "target/release/hello-edge"), "--listen", "127.0.0.1:{port}", "--delay-ms", "0"]
    bare = [str(ROOT / "target/release/bare-hyper"), "127.0.0.1:{port}", "0"]
    seed = [python, str(BENCH / "seed_aiohttp.py"), "127.0.0.1", "{port}", "0"]
    serve = [wasmtime, "serve", "-Scli", "--addr=127.0.0.1:{port}", "--env=HELLO_EDGE_DELAY_MS=0"]
    configs = [("native", "hello-edge native", native), ("bare-hyper", "bare hyper (reference)", bare)]
    for name, label, wasm in [("p2", "hello-edge WASI 0.2", P2), ("noop-p2", "no-op WASI 0.2 (reference)", P2_NOOP),
                              ("p3", "hello-edge WASI 0.3", P3), ("noop-p3", "no-op WASI 0.3 (reference)", P3_NOOP)]:
        precompiled = cwasm / wasm.replace(".wasm", ".cwasm")
        configs += [
            (f"{name}-compile", f"{label}, .wasm compiled at start (cache off)", [*serve, "-Ccache=n", str(WASM / wasm)]),
            (f"{name}-cached", f"{label}, .wasm from wasmtime's cache (the CLI's default)", [*serve, str(WASM / wasm)]),
            (f"{name}-cwasm", f"{label}, precompiled .cwasm", [*serve, "--allow-precompiled", str(precompiled)]),
        ]
    configs.append(("seed-aiohttp", "seed: aiohttp (reference)", seed))
    return configs


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


def cold_start(wasmtime: str, python: str, starts: int) -> list[Start]:
    """Spawn to first 200 answer at delay 0, `starts` times per configuration; then, for the wasm
    hosts, a request after the host has dropped its idle instances (wasmtime serve: after
    --idle-instance-timeout, 1 s) beside one on a warm host."""
    cwasm = ROOT / "target" / "bench-cwasm"
    cwasm.mkdir(parents=True, exist_ok=True)
    for wasm in (P2, P2_NOOP, P3, P3_NOOP):
        subprocess.run([wasmtime, "compile", str(WASM / wasm), "-o", str(cwasm / wasm.replace(".wasm", ".cwasm"))],
                       check=True)
    results = []
    for name, label, template in cold_commands(wasmtime, python, cwasm):
        times = []
        if name.endswith("-cached"):
            # Fill wasmtime's cache once, so every measured start reads from it.
            port = free_port()
            warm = subprocess.Popen([a.replace("{port}", str(port)) for a in template],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=server_env())
            first_answer(port)
            warm.terminate()
            warm.wait()
        for _ in range(starts):
            port = free_port()
            cmd = [a.replace("{port}", str(port)) for a in template]
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=server_env())
            try:
                first_answer(port)
                times.append((time.perf_counter() - started) * 1000)
            finally:
                proc.terminate()
                proc.wait()
        start = Start(name, label, len(times), statistics.median(times), max(times))
        if name.endswith("-cwasm") and not name.startswith("noop"):
            start.warm_ms, start.idle_ms = idle_and_warm(template)
        results.append(start)
        idle = f"  after idle {start.idle_ms:6.2f} ms  warm {start.warm_ms:6.2f} ms" if start.idle_ms else ""
        print(f"  cold start {name:18} median {start.median_ms:8.2f} ms  max {start.max_ms:8.2f} ms{idle}", flush=True)
    return results


def idle_and_warm(template: list[str], samples: int = 10) -> tuple[float, float]:
    """Median ms of a request on a warm wasm host, and of one after 1.5 s idle (past wasmtime
    serve's 1 s --idle-instance-timeout, so the host has dropped the instance it kept)."""
    port = free_port()
    proc = subprocess.Popen([a.replace("{port}", str(port)) for a in template], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=server_env())
    try:
        first_answer(port)
        warm = [first_answer(port) * 1000 for _ in range(samples)]
        idle = []
        for _ in range(samples):
            time.sleep(1.5)
            idle.append(first_answer(port) * 1000)
        return statistics.median(warm), statistics.median(idle)
    finally:
        proc.terminate()
        proc.wait()


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


def instance_cost(wasmtime: str, times: dict) -> list[InstanceCost]:
    """Each component at delay 0, C=64 on /hello/x, with a fresh instance per request
    (--max-instance-reuse-count=1, a WASI 0.2 host's and Spin's way) and with instances reused
    (a WASI 0.3 instance also takes up to 16 requests at once, wasmtime's default)."""
    results = []
    for name, label, wasm in [("p2", "hello-edge WASI 0.2", P2), ("noop-p2", "no-op WASI 0.2 (reference)", P2_NOOP),
                              ("p3", "hello-edge WASI 0.3", P3), ("noop-p3", "no-op WASI 0.3 (reference)", P3_NOOP)]:
        figures = {}
        for mode, reuse in (("fresh", "1"), ("reused", "100000000")):
            port = free_port()
            cmd = [wasmtime, "serve", "-Scli", f"--addr=127.0.0.1:{port}", "--env=HELLO_EDGE_DELAY_MS=0",
                   f"--max-instance-reuse-count={reuse}", str(WASM / wasm)]
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True, env=server_env())
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
    return {wasm: (WASM / wasm).stat().st_size for wasm in (P2, P2_NOOP, P3, P3_NOOP)}


def find(results: list[Result], server: str, scenario: str) -> Result | None:
    return next((r for r in results if r.server == server and r.scenario == scenario), None)


def ratio(a: Result | None, b: Result | None) -> str:
    if a is None or b is None or not b.rps:
        return "–"
    return f"{a.rps / b.rps:.2f}"


def markdown(results: list[Result], meta: dict) -> str:
    lines = [
        "# hello-edge benchmark",
        "",
        f"Run {meta['date']} on {meta['machine']}; load from wrk {meta['wrk']} on the same machine "
        f"(loopback); wasm host wasmtime {meta['wasmtime']}; seed reference aiohttp {meta['aiohttp']} "
        f"on Python {meta['python']}.",
        f"Delayed scenarios count the answers completing in a {meta['window']} s steady-state window "
        f"that opens {meta['warmup']} s (+ d/4) into the run, on a server started for the delay; "
        f"latency percentiles are wrk's over the whole run. Delay 0: a {meta['warmup']} s warm-up run, "
        f"then a {meta['window']} s measured run. Ideal at delay d and C "
        f"connections: C/d req/s at latency d. Errors: non-200 answers in the window, and wrk's "
        f"connect, read, write and timeout errors.",
        "",
        "| server | scenario | req/s | ÷ ideal | p50 | p99 | p99 ÷ d | errors | peak RSS | RSS per connection | CPU: server, wrk (cores) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    labels = {s.name: s.label for s in SERVERS}
    for r in results:
        ideal = f"{r.rps / r.ideal:.3f}" if r.ideal else "–"
        p99_d = f"{r.p99_ms / r.delay_ms:.3f}" if r.delay_ms else "–"
        per_conn = f"{(r.peak_rss - r.idle_rss) / r.connections / 1024:.1f} KiB" if r.delay_ms else "–"
        errors = f"{r.errors}" + (f" ({', '.join(f'{k} {v}' for k, v in r.error_kinds.items())})"
                                  if r.errors else "")
        lines.append(
            f"| {labels[r.server]} | {r.scenario} | {r.rps:,.0f} | {ideal} | {r.p50_ms:.1f} ms | "
            f"{r.p99_ms:.1f} ms | {p99_d} | {errors} | {r.peak_rss / 2**20:.1f} MiB | {per_conn} | "
            f"{r.server_cpu:.2f}, {r.wrk_cpu:.2f} |")
    # Each ratio: (column title, numerator, denominator).
    columns = [
        ("native ÷ seed", "native", "seed-aiohttp"),
        ("native ÷ bare hyper", "native", "bare-hyper"),
        ("0.3 tuned ÷ seed", "p3-tuned", "seed-aiohttp"),
        ("0.3 ÷ no-op 0.3", "p3", "noop-p3"),
        ("0.3 tuned ÷ no-op 0.3 tuned", "p3-tuned", "noop-p3-tuned"),
        ("0.2 tuned ÷ seed", "p2-tuned", "seed-aiohttp"),
        ("0.2 ÷ no-op 0.2", "p2", "noop-p2"),
        ("0.2 tuned ÷ no-op 0.2 tuned", "p2-tuned", "noop-p2-tuned"),
        ("0.2 ÷ 0.3", "p2", "p3"),
        ("0.2 tuned ÷ 0.3 tuned", "p2-tuned", "p3-tuned"),
    ]
    lines += ["", "## Ratios of requests/s (same run)", "",
              "| scenario | " + " | ".join(c[0] for c in columns) + " |",
              "| --- |" + " ---: |" * len(columns)]
    for s in SCENARIOS:
        get = lambda name: find(results, name, s.name)  # noqa: E731
        lines.append(f"| {s.name} | " + " | ".join(ratio(get(a), get(b)) for _, a, b in columns) + " |")
    lines += ["", f"wasmtime serve tuned: `{' '.join(WASMTIME_TUNED)}`. The native server runs with "
              "`--max-connections 30000`. " + SCALE_NOTE, ""]
    return "\n".join(lines)


def cold_markdown(starts: list[Start], costs: list[InstanceCost], wasm_sizes: dict, count: int) -> str:
    lines = []
    if starts:
        lines += [
            "## Cold start",
            "",
            f"From process spawn to the first 200 answer (`GET /`, delay 0, a new connection retried while "
            f"refused), over {count} starts each. wasmtime serve compiles a `.wasm` at start unless its cache "
            "(on by default in the CLI) already holds it; a `.cwasm` is compiled ahead of time (`wasmtime "
            "compile`, served with `--allow-precompiled`). After idle: a request 1.5 s after the last, once "
            "wasmtime serve has dropped the instances it kept (`--idle-instance-timeout`, 1 s), beside a "
            "request on a warm host.",
            "",
            "| server | starts | median | max | after idle (median) | warm request (median) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for s in starts:
            idle = f"{s.idle_ms:.2f} ms" if s.idle_ms is not None else "–"
            warm = f"{s.warm_ms:.2f} ms" if s.warm_ms is not None else "–"
            lines.append(f"| {s.label} | {s.starts} | {s.median_ms:.1f} ms | {s.max_ms:.1f} ms | {idle} | {warm} |")
        lines.append("")
    if costs:
        lines += [
            "## Instance cost",
            "",
            "Delay 0, C=64 on `/hello/x`, under wasmtime serve's defaults but for reuse: a fresh instance "
            "per request (`--max-instance-reuse-count=1`, as a WASI 0.2 host or Spin runs a component) "
            "against instances reused. CPU is the server's, per request answered; instantiation is the "
            "difference.",
            "",
            "| component | size | req/s, fresh | req/s, reused | CPU per request, fresh | reused | instantiation |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        files = {"p2": P2, "noop-p2": P2_NOOP, "p3": P3, "noop-p3": P3_NOOP}
        for c in costs:
            lines.append(f"| {c.label} | {wasm_sizes.get(files[c.name], 0):,} B | {c.rps_fresh:,.0f} | "
                         f"{c.rps_reused:,.0f} | {c.cpu_us_fresh:.1f} µs | {c.cpu_us_reused:.1f} µs | "
                         f"{c.instantiation_us:.1f} µs |")
        lines.append("")
    return "\n".join(lines)


def chart(results: list[Result], starts: list[Start], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {s.name: s.label for s in SERVERS}
    delayed = [r for r in results if r.delay_ms]
    servers = [s.name for s in SERVERS if any(r.server == s.name for r in delayed)]
    fig, (thr, lat, zero, cold) = plt.subplots(1, 4, figsize=(23, 6))
    for name in servers:
        rows = sorted((r for r in delayed if r.server == name), key=lambda r: r.connections)
        cs = [r.connections for r in rows]
        thr.plot(cs, [r.rps for r in rows], marker="o", label=labels[name])
        lat.plot(cs, [r.p99_ms for r in rows], marker="o", label=labels[name])
    if delayed:
        cs = sorted({r.connections for r in delayed})
        d = delayed[0].delay_ms / 1000
        thr.plot(cs, [c / d for c in cs], "k--", label="ideal C/d")
        lat.axhline(delayed[0].delay_ms, color="k", linestyle="--", label="ideal: d")
    for ax, title, unit in ((thr, "Throughput, delay 500 ms", "requests/s"),
                            (lat, "p99 latency, delay 500 ms", "ms")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrent connections C")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    if delayed:
        thr.legend(fontsize=7)
    zero_rows = [r for r in results if not r.delay_ms]
    names = [s.name for s in SERVERS if any(r.server == s.name for r in zero_rows)]
    scen = [s.name for s in SCENARIOS if not s.delay_ms]
    width = 0.8 / max(1, len(scen))
    for i, sname in enumerate(scen):
        values = [getattr(find(results, n, sname), "rps", 0) for n in names]
        zero.bar([x + i * width for x in range(len(names))], values, width, label=sname)
    zero.set_xticks([x + width * (len(scen) - 1) / 2 for x in range(len(names))])
    zero.set_xticklabels([labels[n].replace(" (reference)", "\n(reference)") for n in names],
                         rotation=30, ha="right", fontsize=7)
    zero.set_ylabel("requests/s")
    zero.set_title("Throughput, delay 0, C = 64")
    if zero_rows:
        zero.legend(fontsize=7)
    zero.grid(True, axis="y", alpha=0.3)
    # Cold start: one bar per server configuration (median), the max marked above it.
    xs = range(len(starts))
    cold.bar(xs, [s.median_ms for s in starts], 0.7, label="median")
    cold.scatter(xs, [s.max_ms for s in starts], marker="_", s=200, color="k", label="max")
    cold.set_xticks(list(xs))
    cold.set_xticklabels([s.name for s in starts], rotation=45, ha="right", fontsize=7)
    cold.set_yscale("log")
    cold.set_ylabel("ms, spawn to first 200")
    cold.set_title("Cold start, delay 0")
    if starts:
        cold.legend(fontsize=7)
    cold.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


SOAK_SERVERS = "native,p3-tuned,p2-tuned"


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def soak_one(server: Server, minutes: float, connections: int, delay_ms: int, wasmtime: str,
             python: str) -> dict:
    """Runs one server under C connections at delay d for `minutes`, sampling its RSS and open
    descriptors every 10 s; returns the samples and wrk's totals."""
    port = free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / f"soak-{server.name}.log", "w")
    cmd = server.command(("127.0.0.1", port), delay_ms, wasmtime, python)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=server_env())
    samples = []
    try:
        wait_until_serving(port, proc)
        seconds = math.ceil(minutes * 60)
        wrk_cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
                   "-s", str(BENCH / "totals.lua"), f"http://127.0.0.1:{port}/hello/soak"]
        load = subprocess.Popen(wrk_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = time.monotonic()
        while load.poll() is None:
            samples.append({"t": round(time.monotonic() - started), "rss": rss(proc.pid, "VmRSS"),
                            "fds": fd_count(proc.pid)})
            print(f"  {server.name:10} t={samples[-1]['t']:4d} s  RSS {samples[-1]['rss'] / 2**20:7.1f} MiB  "
                  f"fds {samples[-1]['fds']:6d}", flush=True)
            try:
                load.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        out, err = load.communicate()
        totals = next((json.loads(line[len("TOTALS "):]) for line in out.splitlines()
                       if line.startswith("TOTALS ")), None)
        if totals is None:
            raise RuntimeError(f"wrk printed no figures:\n{out}\n{err}")
        alive = proc.poll() is None
    finally:
        stop(proc)
        log.close()
    return {"server": server.name, "minutes": minutes, "connections": connections,
            "delay_ms": delay_ms, "totals": totals, "samples": samples, "alive_at_end": alive}


def soak_markdown(runs: list[dict], meta: dict) -> str:
    labels = {s.name: s.label for s in SERVERS}
    lines = [
        "# hello-edge soak",
        "",
        f"Run {meta['date']} on {meta['machine']}; wrk {meta['wrk']} on the same machine; wasmtime "
        f"{meta['wasmtime']}. Each server under C connections at delay d for the whole run; RSS and "
        "open descriptors sampled every 10 s. Warm-up: the first minute. Errors: wrk's non-2xx, "
        "connect, read, write and timeout counts over the whole run (the requests cut off when wrk "
        "stops are not errors).",
        "",
        "| server | C, d, minutes | requests | req/s ÷ ideal | p50 | p99 | errors | RSS after warm-up: first, last, min–max | RSS moved | descriptors min–max |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for run in runs:
        t = run["totals"]
        ideal = run["connections"] / (run["delay_ms"] / 1000)
        rps = t["requests"] / (t["duration_us"] / 1e6)
        errors = {k: t[k + "_errors"] for k in ("status", "connect", "read", "write")}
        errors["timeout"] = t["timeouts"]
        bad = {k: v for k, v in errors.items() if v}
        warm = [s for s in run["samples"] if s["t"] >= 60] or run["samples"]
        r = [s["rss"] / 2**20 for s in warm]
        fds = [s["fds"] for s in run["samples"]]
        moved = (r[-1] - r[0]) / r[0] * 100 if r and r[0] else 0
        lines.append(
            f"| {labels[run['server']]} | {run['connections']:,}, {run['delay_ms']} ms, {run['minutes']:g} | "
            f"{t['requests']:,} | {rps / ideal:.3f} | {t['p50_us'] / 1000:.1f} ms | {t['p99_us'] / 1000:.1f} ms | "
            f"{sum(bad.values())}{' (' + ', '.join(f'{k} {v}' for k, v in bad.items()) + ')' if bad else ''} | "
            f"{r[0]:.1f}, {r[-1]:.1f}, {min(r):.1f}–{max(r):.1f} MiB | {moved:+.1f} % | {min(fds)}–{max(fds)} |")
    return "\n".join(lines) + "\n"


def soak(args: argparse.Namespace, meta: dict) -> int:
    wanted = (args.servers if args.servers != "all" else SOAK_SERVERS).split(",")
    servers = [s for s in SERVERS if s.name in wanted]
    print(f"hello-edge soak, {meta['date']}: {', '.join(s.name for s in servers)}, "
          f"{args.minutes:g} minutes each", flush=True)
    runs = [soak_one(s, args.minutes, 1_000, 500, args.wasmtime, sys.executable) for s in servers]
    args.out.mkdir(parents=True, exist_ok=True)
    table = soak_markdown(runs, meta)
    (args.out / "soak.md").write_text(table)
    (args.out / "soak.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
    print()
    print(table)
    print(f"written: {args.out / 'soak.md'}, {args.out / 'soak.json'}")
    return 0 if all(r["alive_at_end"] for r in runs) else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    parser.add_argument("--wasmtime", default="wasmtime")
    parser.add_argument("--servers", default="all",
                        help="comma-separated: " + ", ".join(s.name for s in SERVERS)
                        + f"; all by default ({SOAK_SERVERS} with --soak)")
    parser.add_argument("--scenarios", default="all",
                        help="all, delayed, zero, cold (cold start) or instances (instance cost)")
    parser.add_argument("--starts", type=int, default=20, help="cold starts per configuration")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the window")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--soak", action="store_true",
                        help="instead: C=1,000 at 500 ms for --minutes per server (bench/soak)")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length per server")
    args = parser.parse_args()

    wanted = [s.name for s in SERVERS] if args.servers == "all" else args.servers.split(",")
    servers = [s for s in SERVERS if s.name in wanted]
    scenarios = {"all": SCENARIOS, "delayed": [s for s in SCENARIOS if s.delay_ms],
                 "zero": [s for s in SCENARIOS if not s.delay_ms], "cold": [], "instances": []}[args.scenarios]
    times = {"warmup": args.warmup, "window": args.window}
    import aiohttp

    meta = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
                   f"{platform.system()} {platform.release()}, {platform.machine()}",
        "wrk": version(["wrk", "--version"]).split()[1] if version(["wrk", "--version"]) != "?" else "?",
        "wasmtime": version([args.wasmtime, "--version"]).removeprefix("wasmtime "),
        "aiohttp": aiohttp.__version__,
        "python": platform.python_version(),
        "warmup": args.warmup,
        "window": args.window,
    }
    if args.soak:
        return soak(args, meta)
    print(f"hello-edge benchmark, {meta['date']}, {meta['machine']}", flush=True)
    results: list[Result] = []
    for server in servers:
        results += run_server(server, scenarios, times, args.wasmtime, sys.executable)
    starts = cold_start(args.wasmtime, sys.executable, args.starts) if args.scenarios in ("all", "cold") else []
    costs = instance_cost(args.wasmtime, times) if args.scenarios in ("all", "instances") else []
    wasm_sizes = sizes()
    meta["sizes"] = wasm_sizes

    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(results, meta) + "\n" + cold_markdown(starts, costs, wasm_sizes, args.starts)
    (args.out / "latest.md").write_text(table + "\n![chart](latest.svg)\n")
    (args.out / "latest.json").write_text(json.dumps(
        {"meta": meta, "results": [dataclasses.asdict(r) for r in results],
         "cold_start": [dataclasses.asdict(s) for s in starts],
         "instance_cost": [{**dataclasses.asdict(c), "instantiation_us": c.instantiation_us} for c in costs]},
        indent=1) + "\n")
    chart(results, starts, args.out / "latest.svg")
    print()
    print(table)
    print(f"written: {args.out / 'latest.md'}, {args.out / 'latest.svg'}, {args.out / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
