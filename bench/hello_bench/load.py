"""The scenarios (defined once, here) and the load generators that measure them: wrk for HTTP/1.1
(bench/steady.lua in a steady-state window at a delay, bench/totals.lua at delay 0) and h2load
for HTTP/2 with prior knowledge (a warm-up, then a measured duration, each request's latency from
its --log-file). Each scenario measured gives one Result."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from . import BENCH, LOGS
from .procs import children_cpu_seconds, cpu_seconds, reset_peak_rss, rss


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    group: str  # "delayed", "zero" (wrk, HTTP/1.1) or "h2" (h2load, HTTP/2)
    delay_ms: int
    connections: int
    path: str
    streams: int = 0  # concurrent HTTP/2 streams over the connections; 0: one request a connection
    only: tuple = ()  # the servers it runs for; all when empty (but those with scenarios of their own)

    @property
    def protocol(self) -> str:
        """What the load generator speaks: "http2" (h2load) or "http1" (wrk)."""
        return "http2" if self.group == "h2" else "http1"

    @property
    def concurrency(self) -> int:
        """Requests in flight at once: the streams, else the connections."""
        return self.streams or self.connections

    def runs_for(self, server) -> bool:
        """Whether it runs for `server` (a servers.Server): an HTTP/2 scenario for those that
        speak HTTP/2 with prior knowledge only."""
        if server.name in OWN_SCENARIOS:
            return self.name in OWN_SCENARIOS[server.name]
        if self.protocol == "http2" and not server.http2:
            return False
        return not self.only or server.name in self.only


# The largest scale scenario is as many connections as one process may hold here: the hard
# open-file limit is 20,000 and cannot be raised (no CAP_SYS_RESOURCE), and each connection is a
# descriptor in the server and in wrk. 25,000 would need a higher limit; see SCALE_NOTE.
SCALE_C = 19_000
SCALE_NOTE = (f"C={SCALE_C:,} is the most this machine allows: the hard open-file limit is 20,000 per "
              "process and cannot be raised here (no CAP_SYS_RESOURCE), and the server and wrk each "
              "hold a descriptor per connection. C=25,000 needs a limit above 25,000.")
# HTTP/2: many streams over few connections, so the open-file limit does not bind; h2load's
# two threads, as wrk's. It runs for the servers that speak HTTP/2 with prior knowledge
# (cleartext), as the catalogue says.
H2_CONNECTIONS = 250
H2_THREADS = 2
# Servers that run only the scenarios named here: bare hyper on hyper-util's auto builder, for
# what that builder holds per waiting connection beside plain HTTP/1.1 (the native server tells
# HTTP/1.1 from HTTP/2 without it); the native server exporting every request's span, for what
# traces cost (report.TRACES).
OWN_SCENARIOS = {"bare-hyper-auto": ("delay 500 ms, C=10,000",),
                 "native-traced": ("delay 500 ms, C=10,000",)}
SCENARIOS = [
    Scenario("delay 500 ms, C=1,000", "delayed", 500, 1_000, "/hello/bench"),
    Scenario("delay 500 ms, C=10,000", "delayed", 500, 10_000, "/hello/bench"),
    Scenario(f"delay 500 ms, C={SCALE_C:,}", "delayed", 500, SCALE_C, "/hello/bench",
             only=("native", "bare-hyper")),
    *(Scenario(f"HTTP/2, delay 500 ms, {streams:,} streams", "h2", 500, H2_CONNECTIONS, "/hello/bench",
               streams) for streams in (25_000, 50_000)),
    Scenario("delay 0, C=64, /", "zero", 0, 64, "/"),
    Scenario("delay 0, C=64, /hello/x", "zero", 0, 64, "/hello/x"),
]
GROUPS = ("delayed", "zero", "h2")
# The scenario the sweep of requests an instance runs in (`--scenarios sweep`): the catalogue's
# sweep servers, the WASI 0.3 component under wasmtime serve tuned but for those counts.
SWEEP_SCENARIO = "delay 500 ms, C=10,000"


# The machine's cores all in use (of its 2), and the share of them the load generator had, past
# which a row is the load generator's as much as the server's (Result.load_bound).
LOAD_SATURATED = 1.8
LOAD_SHARE = 0.4


@dataclasses.dataclass
class Result:
    server: str
    scenario: str
    delay_ms: int
    connections: int
    streams: int  # requests in flight at once: the connections for HTTP/1.1
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_kinds: dict  # non-zero counts by kind: status (non-200), connect, read, write, timeout, failed
    peak_rss: int  # bytes
    idle_rss: int  # bytes, before the scenario
    server_cpu: float = 0.0  # cores the server used during the measured run
    load_cpu: float = 0.0  # cores the load generator used, of the machine's 2: near 2, it is the ceiling
    load: str = "wrk"  # the load generator: wrk or h2load
    limit: dict | None = None  # the limit that binds, from the server's log: {"kind", "count"}
    limit_counts: dict = dataclasses.field(default_factory=dict)  # every limit kind logged, with counts
    load_processes: int = 1  # the load generators that shared the connections (wrk), each its own process
    runs: int = 1  # how many times it was measured: a second time when the first was load-bound

    @property
    def load_bound(self) -> bool:
        """Whether the load generator, not the server alone, set the figure: the machine's cores
        were all in use (LOAD_SATURATED) and the load generator had LOAD_SHARE of them or more.
        Such a row is the machine's figure for server and load together, not the server's."""
        used = self.server_cpu + self.load_cpu
        # A server that has gone answers nothing: the load generator spinning on it is no ceiling.
        return self.rps > 0 and used >= LOAD_SATURATED and self.load_cpu >= LOAD_SHARE * used

    @property
    def ideal(self) -> float | None:
        return self.streams / (self.delay_ms / 1000) if self.delay_ms else None


def _cores(run, server_pid: int | None):
    """Runs `run()`, returning its value and the cores the children (load generator) and the
    server used meanwhile."""
    children = children_cpu_seconds()
    server_before = cpu_seconds(server_pid) if server_pid else 0.0
    started = time.monotonic()
    value = run()
    wall = time.monotonic() - started
    return value, {"load_cpu": (children_cpu_seconds() - children) / wall,
                   "server_cpu": (cpu_seconds(server_pid) - server_before) / wall if server_pid else 0.0}


# A wrk process opens its connections all at once; past the listen backlog (4,096 on the native
# server) the rest are retried by TCP a second and more later, so a large C would still be
# connecting in the window. Past this many, the connections are spread over several wrk
# processes, started a second apart, their windows aligned.
CONNECTIONS_PER_WRK = 5_000
WRK_STAGGER_S = 1.0


def wrk(url: str, connections: int, seconds: float, script: str, script_args: list[str] = (),
        server_pid: int | None = None) -> dict:
    """Runs wrk and returns its figures, with the cores it and the server used meanwhile
    (`load_cpu`, `server_cpu`)."""
    threads = min(2, connections)
    seconds = math.ceil(seconds)  # wrk takes whole seconds
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
           "-s", str(BENCH / script), url]
    if script_args:
        cmd += ["--", *script_args]
    out, used = _cores(lambda: subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120),
                       server_pid)
    return {**_figures(out.stdout, out.stderr), **used}


def _figures(stdout: str, stderr: str = "") -> dict:
    for line in stdout.splitlines():
        for prefix in ("STEADY ", "TOTALS "):
            if line.startswith(prefix):
                return json.loads(line[len(prefix):])
    # No figures: wrk could not connect at all (a server that has gone). Nothing answered, and
    # nothing measured the window (`window_s` 0).
    if "unable to connect" in stdout + stderr:
        return dict.fromkeys(("window_ok", "window_bad", "requests", "duration_us", "read_errors",
                              "write_errors", "status_errors", "timeouts", "p50_us", "p90_us",
                              "p99_us", "max_us"), 0) | {"connect_errors": 1, "window_s": 0,
                                                         "bad_statuses": ""}
    raise RuntimeError(f"wrk printed no figures:\n{stdout}\n{stderr}")


def steady(url: str, connections: int, warmup: float, window: float, tail: float,
           server_pid: int) -> dict:
    """The answers completing in a steady-state window (bench/steady.lua), `warmup` seconds
    after the (last) load generator starts, for `window` seconds; `tail` seconds more let the
    window's requests finish. Over CONNECTIONS_PER_WRK connections, several wrk processes share
    them, each started WRK_STAGGER_S after the one before and its window aligned with theirs.
    Besides the window's counts (summed): the cores the server and the load generators used in
    the window itself (sampled from /proc at its start and end), and wrk's whole-run latency
    percentiles (the highest of the processes', for p99)."""
    shares = _split(connections, math.ceil(connections / CONNECTIONS_PER_WRK))
    n = len(shares)
    procs = []
    try:
        started = time.monotonic()
        for k, share in enumerate(shares):
            own_warmup = warmup + (n - 1 - k) * WRK_STAGGER_S
            seconds = math.ceil(own_warmup + window + tail)
            cmd = ["wrk", f"-t{min(2, share)}", f"-c{share}", f"-d{seconds}s", "--timeout", "10s",
                   "-s", str(BENCH / "steady.lua"), url, "--", f"{own_warmup}", f"{window}"]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
            if k < n - 1:
                time.sleep(WRK_STAGGER_S)
        opens = started + (n - 1) * WRK_STAGGER_S + warmup
        time.sleep(max(0.0, opens - time.monotonic()))
        load_before = sum(cpu_seconds(p.pid) for p in procs)
        server_before = cpu_seconds(server_pid)
        time.sleep(window)
        load_cpu = (sum(cpu_seconds(p.pid) for p in procs) - load_before) / window
        server_cpu = (cpu_seconds(server_pid) - server_before) / window
        runs = []
        for p in procs:
            out, err = p.communicate(timeout=warmup + window + tail + n * WRK_STAGGER_S + 120)
            runs.append(_figures(out, err))
    finally:
        # A scenario that failed leaves no load generator behind to load the next one.
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    counts = ("window_ok", "window_bad", "requests", "connect_errors", "read_errors", "write_errors",
              "status_errors", "timeouts")
    summed = {k: sum(r[k] for r in runs) for k in counts}
    # The window as a load generator that connected measured it (one that could not has none).
    window_s = next((r["window_s"] for r in runs if r["window_s"]), window)
    return {**summed, "window_s": window_s,
            "bad_statuses": " ".join(r["bad_statuses"] for r in runs),
            "p50_us": statistics.median(r["p50_us"] for r in runs),
            "p99_us": max(r["p99_us"] for r in runs),
            "load_cpu": load_cpu, "server_cpu": server_cpu, "wrk_processes": n}


def _split(total: int, parts: int) -> list[int]:
    """`total` in `parts` as even as can be."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def percentile(sorted_values: list[int], p: float) -> int:
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))]


def parse_h2load(stdout: str) -> dict:
    """h2load's counts: the "requests:" and "status codes:" lines of its summary."""
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", stdout)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", stdout)
    if not req or not codes:
        raise RuntimeError(f"h2load printed no figures:\n{stdout}")
    names = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
    return {**dict(zip(names, map(int, req.groups()))),
            **dict(zip(("2xx", "3xx", "4xx", "5xx"), map(int, codes.groups())))}


def h2load(url: str, connections: int, streams: int, warmup_ms: int, window_ms: int,
           server_pid: int | None = None) -> dict:
    """Runs h2load over `connections` HTTP/2 connections (prior knowledge) with `streams` streams
    each: `warmup_ms` of warm-up, then `window_ms` measured, in which h2load counts the streams
    that close. Returns its counts, p50 and p99 of the measured requests (from --log-file: each
    request's microseconds to the end of its response) and the cores used."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=LOGS, prefix="h2load-", suffix=".tsv") as log:
        cmd = ["h2load", f"--clients={connections}", f"--max-concurrent-streams={streams}",
               f"--threads={H2_THREADS}", f"--warm-up-time={warmup_ms}ms", f"--duration={window_ms}ms",
               f"--log-file={log.name}", url]
        timeout = (warmup_ms + window_ms) / 1000 + 120
        out, used = _cores(lambda: subprocess.run(cmd, capture_output=True, text=True, timeout=timeout),
                           server_pid)
        with open(LOGS / "h2load.log", "a") as saved:  # its summary, for when a figure needs explaining
            saved.write(f"$ {' '.join(cmd)}\n{out.stdout}{out.stderr}\n")
        figures = parse_h2load(out.stdout)
        latencies = []
        for line in Path(log.name).read_text().splitlines():
            fields = line.split("\t")
            if len(fields) >= 3 and fields[1] != "-1":
                latencies.append(int(fields[2]))
    latencies.sort()
    return {**figures, "p50_us": percentile(latencies, 50), "p99_us": percentile(latencies, 99),
            "logged": len(latencies), "window_s": window_ms / 1000, **used}


def measure(server: str, pid: int, port: int, scenario: Scenario, times: dict) -> Result:
    url = f"http://127.0.0.1:{port}{scenario.path}"
    idle = rss(pid, "VmRSS")
    reset_peak_rss(pid)
    delay_s = scenario.delay_ms / 1000
    load = "wrk"
    if scenario.group == "h2":
        # h2load counts the streams that close after its warm-up, for its duration: the same
        # window as steady.lua's, a quarter of a delay past a round boundary, whole rounds long.
        load = "h2load"
        rounds = max(1, round(times["window"] / delay_s))
        figures = h2load(url, scenario.connections, scenario.streams // scenario.connections,
                         round((times["warmup"] + delay_s / 4) * 1000), round(rounds * scenario.delay_ms), pid)
        rps = figures["2xx"] / figures["window_s"]
        kinds = {"status": figures["3xx"] + figures["4xx"] + figures["5xx"],
                 # Streams that failed without a 4xx or 5xx answer (reset, refused, cut off).
                 "failed": figures["failed"] - figures["4xx"] - figures["5xx"]}
    else:
        if scenario.delay_ms:
            # The warm-up is inside the run: the window opens once C connections are up and
            # waiting. (A separate warm-up run made the measured one start while the host was still
            # tearing down the first run's C connections, and inflated peak RSS with its leftovers.)
            warmup = times["warmup"] + delay_s / 4
            window = times["window"]
            figures = steady(url, scenario.connections, warmup, window, 2 * delay_s + 1, pid)
            rps = figures["window_ok"] / figures["window_s"]
            errors = figures["window_bad"]
        else:
            wrk(url, scenario.connections, times["warmup"], "totals.lua")  # warm-up, not measured
            reset_peak_rss(pid)
            figures = wrk(url, scenario.connections, times["window"], "totals.lua", server_pid=pid)
            rps = figures["requests"] / (figures["duration_us"] / 1e6)
            errors = figures["status_errors"]
        statuses = " ".join(sorted(set(figures.get("bad_statuses", "").split())))
        kinds = {(f"status {statuses}" if statuses else "status"): errors,
                 **{k: figures[k + "_errors"] for k in ("connect", "read", "write")},
                 "timeout": figures["timeouts"]}
    return Result(server, scenario.name, scenario.delay_ms, scenario.connections, scenario.concurrency, rps,
                  figures["p50_us"] / 1000, figures["p99_us"] / 1000, sum(kinds.values()),
                  {k: v for k, v in kinds.items() if v}, rss(pid, "VmHWM"), idle,
                  figures["server_cpu"], figures["load_cpu"], load,
                  load_processes=figures.get("wrk_processes", 1))
