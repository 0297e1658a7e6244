"""The options and the order of a run: parse the arguments (standard library only, so `--help`
prints before anything is installed), then each server for its scenarios, a server started per
delay, the limit that binds read from its log after each scenario; then cold start and instance
cost; then latest.md, latest.json and latest.svg (or the soak, with --soak)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path

from . import LOGS, RESULTS, chart, cold, limits, procs, report, soak
from . import __doc__ as PACKAGE_DOC
from .load import GROUPS, SCENARIOS, SWEEP_SCENARIO, Result, Scenario, measure
from .servers import ANSWER, Server, catalogue, serving
from .soak import SOAK_SERVERS

SCENARIO_CHOICES = ("all", *GROUPS, "sweep", "cold", "instances")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=PACKAGE_DOC.splitlines()[0])
    parser.add_argument("--servers", default="all",
                        help="comma-separated names of the host catalogue's servers (`target/release/hosts "
                        f"list` lists them: native, bare-hyper, p2-tuned, spin-p3, ...); all by default "
                        f"({SOAK_SERVERS} with --soak)")
    parser.add_argument("--scenarios", default="all", choices=SCENARIO_CHOICES,
                        help="all; delayed (delay 500 ms, HTTP/1.1), zero (delay 0), h2 (HTTP/2, h2load), "
                        "sweep (the WASI 0.3 component's requests an instance, at C=10,000), "
                        "cold (cold start) or instances (instance cost)")
    parser.add_argument("--starts", type=int, default=20, help="cold starts per configuration")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the window")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--soak", action="store_true",
                        help="instead: C=1,000 at 500 ms for --minutes per server (bench/soak)")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length per server")
    return parser.parse_args(argv)


def check_servers(servers: str) -> None:
    """Exits, naming them, if `servers` names a server the catalogue has not."""
    known = {s.name for s in catalogue().servers}
    unknown = [n for n in servers.split(",") if n != "all" and n not in known]
    if unknown:
        sys.exit(f"bench/run: unknown server(s): {', '.join(unknown)}; the catalogue has {', '.join(sorted(known))}")


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def run_server(server: Server, scenarios: list[Scenario], times: dict) -> list[Result]:
    """One server through its scenarios: started once per delay and protocol, slowest first,
    HTTP/1.1 before HTTP/2."""
    results = []
    scenarios = [s for s in scenarios if s.runs_for(server)]
    for delay_ms, protocol in sorted({(s.delay_ms, s.protocol) for s in scenarios}, key=lambda k: (-k[0], k[1])):
        log_path = LOGS / f"{server.name}-delay{delay_ms}{'-h2' if protocol == 'http2' else ''}.log"
        with serving(server.name, delay_ms, log_path, protocol) as proc:
            port = proc.port
            if protocol == "http1" and server.answers_as_hello_edge:
                answer = procs.answer_of(port)
                if answer != ANSWER:
                    raise RuntimeError(f"{server.name} answers /hello/bench with {answer}, "
                                       f"not hello-edge's {ANSWER}")
            for scenario in (s for s in scenarios if (s.delay_ms, s.protocol) == (delay_ms, protocol)):
                result = measure_once_or_twice(server, proc, port, scenario, times, log_path)
                results.append(result)
                print(f"  {server.name:14} {scenario.name:38} {result.rps:>9.0f} req/s  "
                      f"p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms  "
                      f"errors {result.errors:6}  peak RSS {result.peak_rss / 2**20:6.1f} MiB  "
                      f"CPU server {result.server_cpu:.2f} {result.load} {result.load_cpu:.2f}  "
                      f"limit {limits.describe(result.limit)}"
                      f"{'  LOAD-BOUND' if result.load_bound else ''}", flush=True)
    return results


def measure_once_or_twice(server: Server, proc, port: int, scenario: Scenario, times: dict,
                          log_path: Path) -> Result:
    """One scenario on a running server, with the limit its log named; a delayed scenario whose
    load generator was at its ceiling (Result.load_bound) is measured again, once, and kept
    flagged if it still was. (At delay 0 the load generator always has half the machine here.)"""
    result = None
    for run in (1, 2):
        start = limits.offset(log_path)
        result = measure(server.name, proc.pid, port, scenario, times)
        time.sleep(2)  # let the closed connections leave TIME_WAIT's busiest moment
        result.limit_counts = limits.scan(log_path, start)
        result.limit = limits.binding(result.limit_counts)
        result.runs = run
        if not (result.load_bound and scenario.delay_ms):
            break
        if proc.poll() is not None:
            break  # The server has gone: measuring again would measure nothing.
        print(f"  {server.name:14} {scenario.name:38} load-bound (server {result.server_cpu:.2f}, "
              f"{result.load} {result.load_cpu:.2f} cores): measuring again", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_servers(args.servers)
    every = catalogue().servers
    wanted = [s.name for s in every] if args.servers == "all" else args.servers.split(",")
    servers = [s for s in every if s.name in wanted]
    scenarios = {"all": SCENARIOS, "sweep": [], "cold": [], "instances": [],
                 **{g: [s for s in SCENARIOS if s.group == g] for g in GROUPS}}[args.scenarios]
    times = {"warmup": args.warmup, "window": args.window}
    versions = catalogue().versions
    open_files = procs.raise_open_file_limit()
    if open_files < 10_240:
        print(f"the open-file limit is {open_files}; the C = 10,000 scenarios need about 10,240", file=sys.stderr)
    wrk = procs.version(["wrk", "--version"])
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
                   f"{platform.system()} {platform.release()}, {platform.machine()}",
        "wrk": wrk.split()[1] if len(wrk.split()) > 1 else "?",
        "h2load": procs.version(["h2load", "--version"]).removeprefix("h2load "),
        "wasmtime": versions["wasmtime"].removeprefix("wasmtime "),
        "wash": versions["wash"].removeprefix("wash "),
        "spin": versions["spin"].removeprefix("spin "),
        "spin-4.0": versions["spin-4.0"].removeprefix("spin "),
        "aiohttp": package_version("aiohttp"),
        "python": platform.python_version(),
        "warmup": args.warmup,
        "window": args.window,
        "open_files": open_files,
    }
    if args.soak:
        return soak.soak(args, meta)
    print(f"hello-edge benchmark, {meta['date']}, {meta['machine']}", flush=True)
    results: list[Result] = []
    for server in servers:
        results += run_server(server, scenarios, times)
    sweep = []
    if args.scenarios == "sweep" or (args.scenarios == "all" and args.servers == "all"):
        scenario = next(s for s in SCENARIOS if s.name == SWEEP_SCENARIO)
        for server in catalogue().sweep:
            sweep += run_server(server, [dataclasses.replace(scenario, only=(server.name,))], times)
    starts = cold.cold_start(args.starts) if args.scenarios in ("all", "cold") else []
    costs = cold.instance_cost(times) if args.scenarios in ("all", "instances") else []
    wasm_sizes = cold.sizes()
    meta["sizes"] = wasm_sizes

    args.out.mkdir(parents=True, exist_ok=True)
    cat = catalogue()
    table = (report.markdown(results, meta, cat) + "\n" + report.sweep_markdown(sweep, cat) + "\n"
             + report.cold_markdown(starts, costs, wasm_sizes, args.starts))
    (args.out / "latest.md").write_text(table + "\n![chart](latest.svg)\n")
    (args.out / "latest.json").write_text(json.dumps(
        {"meta": meta, "results": [{**dataclasses.asdict(r), "load_bound": r.load_bound} for r in results],
         "sweep": [{**dataclasses.asdict(r), "load_bound": r.load_bound} for r in sweep],
         "cold_start": [dataclasses.asdict(s) for s in starts],
         "instance_cost": [{**dataclasses.asdict(c), "instantiation_us": c.instantiation_us} for c in costs]},
        indent=1) + "\n")
    chart.chart(results, starts, costs, args.out / "latest.svg", catalogue(), sweep)
    print()
    print(table)
    print(f"written: {args.out / 'latest.md'}, {args.out / 'latest.svg'}, {args.out / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
