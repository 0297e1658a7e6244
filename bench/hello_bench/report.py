"""The Markdown: the table of every result (with the limit that binds), the same-run ratios, the
cold-start and instance-cost tables (latest.md), and the soak's table (soak.md)."""

from __future__ import annotations

from .cold import InstanceCost, Start
from .limits import describe
from .load import (CONNECTIONS_PER_WRK, H2_CONNECTIONS, H2_THREADS, LOAD_SATURATED, LOAD_SHARE, SCALE_NOTE,
                   SCENARIOS, WRK_STAGGER_S, Result)
from .servers import Catalogue

# Each ratio of requests/s: (column title, numerator, denominator).
RATIOS = [
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
    ("wasmCloud 0.2 ÷ wasmtime 0.2 tuned", "wash-p2", "p2-tuned"),
    ("Spin 0.2 ÷ wasmtime 0.2", "spin-p2", "p2"),
    ("Spin 0.2 tuned ÷ wasmtime 0.2 tuned", "spin-p2-tuned", "p2-tuned"),
    ("Spin 0.3 ÷ wasmtime 0.3", "spin-p3", "p3"),
    ("Spin 0.3 tuned ÷ wasmtime 0.3 tuned", "spin-p3-tuned", "p3-tuned"),
]


def find(results: list[Result], server: str, scenario: str) -> Result | None:
    return next((r for r in results if r.server == server and r.scenario == scenario), None)


def ratio(a: Result | None, b: Result | None) -> str:
    """a's requests/s ÷ b's; marked † when either row was load-bound (not the servers' figure)."""
    if a is None or b is None or not b.rps:
        return "–"
    return f"{a.rps / b.rps:.2f}" + ("†" if a.load_bound or b.load_bound else "")


def _errors(kinds: dict) -> str:
    total = sum(kinds.values())
    return f"{total}" + (f" ({', '.join(f'{k} {v}' for k, v in kinds.items())})" if total else "")


def _peak(r: Result) -> str:
    """The peak RSS cell: none when no process was left to read it from, the server having exited
    by the end of the run."""
    return "– (it had exited)" if r.peak_rss == 0 else f"{r.peak_rss / 2**20:.1f} MiB"


def markdown(results: list[Result], meta: dict, cat: Catalogue) -> str:
    lines = [
        "# hello-edge benchmark",
        "",
        f"Run {meta['date']} on {meta['machine']}; load from wrk {meta['wrk']} (HTTP/1.1) and h2load "
        f"{meta['h2load']} (HTTP/2) on the same machine (loopback); wasm hosts wasmtime {meta['wasmtime']}, "
        f"wash {meta['wash']}, Spin {meta.get('spin', '?')} and Spin {meta.get('spin-4.0', '?')}; seed reference aiohttp {meta['aiohttp']} on "
        f"Python {meta['python']}. The references (bare hyper, the no-op components) send hello-edge's "
        f"answer to `/hello/bench`, the same header fields and body length, fixed.",
        f"Delayed scenarios count the answers completing in a {meta['window']} s steady-state window "
        f"that opens {meta['warmup']} s (+ d/4) into the run, on a server started for the delay; "
        f"wrk's latency percentiles are over the whole run. Delay 0: a {meta['warmup']} s warm-up run, "
        f"then a {meta['window']} s measured run. Ideal at delay d and C concurrent requests (connections, "
        f"or HTTP/2 streams): C/d req/s at latency d. Errors: non-200 answers in the window, and wrk's "
        f"connect, read, write and timeout errors. HTTP/2: h2load with prior knowledge, "
        f"{H2_CONNECTIONS} connections, streams ÷ {H2_CONNECTIONS} streams on each (`-m`), "
        f"`-t {H2_THREADS}`, its warm-up (`--warm-up-time`) then the window (`-D`, whole rounds), counting "
        f"the streams that close in it; p50 and p99 of those (`--log-file`); errors: non-2xx answers, and "
        f"streams failed without one. Limit: the first limit the server's log named during the scenario "
        f"(a pool of wasmtime's instance allocator, a connection ceiling, too many open files, a failed "
        f"invocation), with how many lines named it. CPU: the cores the server and the load generator used "
        f"in the window (delayed scenarios) or the measured run (delay 0). Load-bound (†): the machine's "
        f"2 cores were in use ({LOAD_SATURATED} or more) and the load generator had {LOAD_SHARE:.0%} of "
        f"them or more, so the row is the machine's figure for server and load together, not the "
        f"server's; a delayed row so found is measured again, once, and kept flagged if it still is. "
        f"Past {CONNECTIONS_PER_WRK:,} connections, wrk processes of {CONNECTIONS_PER_WRK:,} at most share them, "
        f"started {WRK_STAGGER_S:g} s apart, their windows aligned, so that every connection is open "
        f"before the window.",
        "",
        "| server | scenario | req/s | ÷ ideal | p50 | p99 | p99 ÷ d | errors | limit that binds | peak RSS "
        "| RSS per connection | CPU: server, load (cores) | load-bound |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        ideal = f"{r.rps / r.ideal:.3f}" if r.ideal else "–"
        p99_d = f"{r.p99_ms / r.delay_ms:.3f}" if r.delay_ms else "–"
        # Less than before the run: the server, or a process of it, had exited by its end.
        if not r.delay_ms or r.peak_rss < r.idle_rss:
            per_conn = "–"
        elif r.streams != r.connections:
            per_conn = f"{(r.peak_rss - r.idle_rss) / r.streams / 1024:.1f} KiB a stream"
        else:
            per_conn = f"{(r.peak_rss - r.idle_rss) / r.connections / 1024:.1f} KiB"
        lines.append(
            f"| {cat.labels[r.server]} | {r.scenario} | {r.rps:,.0f} | {ideal} | {r.p50_ms:.1f} ms | "
            f"{r.p99_ms:.1f} ms | {p99_d} | {_errors(r.error_kinds)} | {describe(r.limit)} | "
            f"{_peak(r)} | {per_conn} | {r.server_cpu:.2f}, {r.load_cpu:.2f} | "
            f"{'† (measured ' + str(r.runs) + '×)' if r.load_bound else '–'} |")
    measured = [s for s in SCENARIOS if any(r.scenario == s.name for r in results)]
    cells = {s.name: [ratio(find(results, a, s.name), find(results, b, s.name)) for _, a, b in RATIOS]
             for s in measured}
    # The columns with a figure in this run (all of them in a full run).
    shown = [i for i in range(len(RATIOS)) if any(cells[s.name][i] != "–" for s in measured)]
    if shown:
        lines += ["", "## Ratios of requests/s (same run)", "",
                  "| scenario | " + " | ".join(RATIOS[i][0] for i in shown) + " |",
                  "| --- |" + " ---: |" * len(shown)]
        for s in measured:
            lines.append(f"| {s.name} | " + " | ".join(cells[s.name][i] for i in shown) + " |")
    lines += traces_markdown(results, cat)
    # How the measured servers run, as the catalogue says, then what bounds the scenarios.
    ran = {r.server for r in results}
    notes = " ".join([n["text"] for n in cat.notes if ran & set(n["servers"])] + [SCALE_NOTE])
    lines += ["", notes, ""]
    return "\n".join(lines)


# What traces cost: the native server exporting every request's span, beside it with none, in the
# scenario both run.
TRACES = ("native-traced", "native", "delay 500 ms, C=10,000")


def traces_markdown(results: list[Result], cat: Catalogue) -> list[str]:
    """The traces' cost, if both servers ran: each one's req/s, CPU per request and peak RSS,
    and traced ÷ untraced of each."""
    traced, plain, scenario = TRACES
    a, b = find(results, traced, scenario), find(results, plain, scenario)
    if a is None or b is None or not a.rps or not b.rps:
        return []
    per_request = {r.server: r.server_cpu / r.rps * 1e6 for r in (a, b)}
    lines = ["", f"## What traces cost: {scenario} (same run)", "",
             "Every request a span, exported over OTLP/HTTP to a collector on the same machine, beside the "
             "same server with no collector named (no exporter runs). CPU is the server's alone.", "",
             "| server | req/s | CPU per request | peak RSS |", "| --- | ---: | ---: | ---: |"]
    for r in (a, b):
        lines.append(f"| {cat.labels[r.server]} | {r.rps:,.0f} | {per_request[r.server]:.1f} µs | {_peak(r)} |")
    rss = f"{a.peak_rss / b.peak_rss:.2f}" if a.peak_rss and b.peak_rss else "–"
    lines.append(f"| traced ÷ untraced | {ratio(a, b)} | {per_request[traced] / per_request[plain]:.2f} | {rss} |")
    return lines


def sweep_markdown(sweep: list[Result], cat: Catalogue) -> str:
    """The sweep's table: the WASI 0.3 component under wasmtime serve at C=10,000, by the
    requests an instance takes at once."""
    if not sweep:
        return ""
    params = {s.name: s.sweep for s in cat.sweep}
    lines = [
        "## Requests an instance takes: the WASI 0.3 component under wasmtime serve, C=10,000",
        "",
        "wasmtime serve tuned, but for `--max-instance-concurrent-reuse-count` (the requests one instance "
        "awaits at once) and `--max-instance-reuse-count` (the requests it takes before it is retired). "
        "Instances: how many 10,000 waiting requests need. Each instance is a store that runs on one thread "
        "at a time, so fewer instances than the runtime's threads leave cores idle.",
        "",
        "| requests an instance at once | retired after | instances at C=10,000 | req/s | ÷ ideal | p50 | p99 "
        "| errors | peak RSS | CPU: server, load (cores) | CPU per request | load-bound |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in sweep:
        concurrency, reuse = params[r.server]
        instances = -(-r.streams // concurrency)
        per_request = f"{r.server_cpu / r.rps * 1e6:.1f} µs" if r.rps else "–"
        lines.append(
            f"| {concurrency:,} | {reuse:,} | {instances:,} | {r.rps:,.0f} | {r.rps / r.ideal:.3f} | "
            f"{r.p50_ms:.1f} ms | {r.p99_ms:.1f} ms | {_errors(r.error_kinds)} | {_peak(r)} | "
            f"{r.server_cpu:.2f}, {r.load_cpu:.2f} | {per_request} | {'†' if r.load_bound else '–'} |")
    lines.append("")
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
            "compile`, served with `--allow-precompiled`); spin up starts its trigger process, then compiles "
            "or (here) reads its cache. After idle: a request 1.5 s after the last, once "
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
        for c in costs:
            lines.append(f"| {c.label} | {wasm_sizes.get(c.component, 0):,} B | {c.rps_fresh:,.0f} | "
                         f"{c.rps_reused:,.0f} | {c.cpu_us_fresh:.1f} µs | {c.cpu_us_reused:.1f} µs | "
                         f"{c.instantiation_us:.1f} µs |")
        lines.append("")
    return "\n".join(lines)


def soak_markdown(runs: list[dict], meta: dict, cat: Catalogue) -> str:
    lines = [
        "# hello-edge soak",
        "",
        f"Run {meta['date']} on {meta['machine']}; wrk {meta['wrk']} on the same machine; wasmtime "
        f"{meta['wasmtime']}, wash {meta['wash']}. Each server under C connections at delay d for the whole "
        "run; RSS and open descriptors sampled every 10 s. Warm-up: the first minute. Errors: wrk's non-2xx, "
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
            f"| {cat.labels[run['server']]} | {run['connections']:,}, {run['delay_ms']} ms, {run['minutes']:g} | "
            f"{t['requests']:,} | {rps / ideal:.3f} | {t['p50_us'] / 1000:.1f} ms | {t['p99_us'] / 1000:.1f} ms | "
            f"{_errors(bad)} | "
            f"{r[0]:.1f}, {r[-1]:.1f}, {min(r):.1f}–{max(r):.1f} MiB | {moved:+.1f} % | {min(fds)}–{max(fds)} |")
    return "\n".join(lines) + "\n"
