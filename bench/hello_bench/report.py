"""The Markdown: the table of every result (with the limit that binds), the same-run ratios, the
cold-start and instance-cost tables (latest.md), and the soak's table (soak.md)."""

from __future__ import annotations

from .cold import FILES, InstanceCost, Start
from .limits import describe
from .load import H2_CONNECTIONS, H2_THREADS, SCALE_NOTE, SCENARIOS, Result
from .servers import LABELS, WASH_CONFIG, WASMTIME_TUNED

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
]


def find(results: list[Result], server: str, scenario: str) -> Result | None:
    return next((r for r in results if r.server == server and r.scenario == scenario), None)


def ratio(a: Result | None, b: Result | None) -> str:
    if a is None or b is None or not b.rps:
        return "–"
    return f"{a.rps / b.rps:.2f}"


def _errors(kinds: dict) -> str:
    total = sum(kinds.values())
    return f"{total}" + (f" ({', '.join(f'{k} {v}' for k, v in kinds.items())})" if total else "")


def markdown(results: list[Result], meta: dict, wash_env: dict | None = None) -> str:
    lines = [
        "# hello-edge benchmark",
        "",
        f"Run {meta['date']} on {meta['machine']}; load from wrk {meta['wrk']} (HTTP/1.1) and h2load "
        f"{meta['h2load']} (HTTP/2) on the same machine (loopback); wasm hosts wasmtime {meta['wasmtime']} "
        f"and wash {meta['wash']}; seed reference aiohttp {meta['aiohttp']} on Python {meta['python']}.",
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
        f"invocation), with how many lines named it.",
        "",
        "| server | scenario | req/s | ÷ ideal | p50 | p99 | p99 ÷ d | errors | limit that binds | peak RSS "
        "| RSS per connection | CPU: server, load (cores) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        ideal = f"{r.rps / r.ideal:.3f}" if r.ideal else "–"
        p99_d = f"{r.p99_ms / r.delay_ms:.3f}" if r.delay_ms else "–"
        if not r.delay_ms:
            per_conn = "–"
        elif r.streams != r.connections:
            per_conn = f"{(r.peak_rss - r.idle_rss) / r.streams / 1024:.1f} KiB a stream"
        else:
            per_conn = f"{(r.peak_rss - r.idle_rss) / r.connections / 1024:.1f} KiB"
        lines.append(
            f"| {LABELS[r.server]} | {r.scenario} | {r.rps:,.0f} | {ideal} | {r.p50_ms:.1f} ms | "
            f"{r.p99_ms:.1f} ms | {p99_d} | {_errors(r.error_kinds)} | {describe(r.limit)} | "
            f"{r.peak_rss / 2**20:.1f} MiB | {per_conn} | {r.server_cpu:.2f}, {r.load_cpu:.2f} |")
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
    notes = (f"wasmtime serve tuned: `{' '.join(WASMTIME_TUNED)}`. The native server runs with "
             "`--max-connections 30000`. " + SCALE_NOTE)
    if wash_env is not None:
        notes += (f" wash dev: `{WASH_CONFIG.relative_to(WASH_CONFIG.parent.parent)}` with its host environment "
                  f"(`dev.environment`: {', '.join(f'`{k}={v}`' for k, v in wash_env.items()) or 'none'}), "
                  "the component served as built; wash dev caps its HTTP connections at a quarter of its "
                  f"open-file limit ({meta.get('open_files', '?')} here).")
    lines += ["", notes, ""]
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
        for c in costs:
            lines.append(f"| {c.label} | {wasm_sizes.get(FILES[c.name], 0):,} B | {c.rps_fresh:,.0f} | "
                         f"{c.rps_reused:,.0f} | {c.cpu_us_fresh:.1f} µs | {c.cpu_us_reused:.1f} µs | "
                         f"{c.instantiation_us:.1f} µs |")
        lines.append("")
    return "\n".join(lines)


def soak_markdown(runs: list[dict], meta: dict) -> str:
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
            f"| {LABELS[run['server']]} | {run['connections']:,}, {run['delay_ms']} ms, {run['minutes']:g} | "
            f"{t['requests']:,} | {rps / ideal:.3f} | {t['p50_us'] / 1000:.1f} ms | {t['p99_us'] / 1000:.1f} ms | "
            f"{_errors(bad)} | "
            f"{r[0]:.1f}, {r[-1]:.1f}, {min(r):.1f}–{max(r):.1f} MiB | {moved:+.1f} % | {min(fds)}–{max(fds)} |")
    return "\n".join(lines) + "\n"
