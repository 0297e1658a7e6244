"""The soak: each server under C=1,000 connections at delay 500 ms for --minutes, its RSS and open
descriptors sampled every 10 s, wrk's totals at the end; writes soak.md and soak.json."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import time

from . import BENCH, LOGS
from .procs import fd_count, rss
from .report import soak_markdown
from .servers import Server, catalogue, serving

SOAK_SERVERS = "native,p3-tuned,p2-tuned"


def soak_one(server: Server, minutes: float, connections: int, delay_ms: int) -> dict:
    """Runs one server under C connections at delay d for `minutes`, sampling its RSS and open
    descriptors every 10 s; returns the samples and wrk's totals."""
    samples = []
    with serving(server.name, delay_ms, LOGS / f"soak-{server.name}.log") as proc:
        port = proc.port
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
    return {"server": server.name, "minutes": minutes, "connections": connections,
            "delay_ms": delay_ms, "totals": totals, "samples": samples, "alive_at_end": alive}


def soak(args: argparse.Namespace, meta: dict) -> int:
    wanted = (args.servers if args.servers != "all" else SOAK_SERVERS).split(",")
    servers = [s for s in catalogue().servers if s.name in wanted]
    print(f"hello-edge soak, {meta['date']}: {', '.join(s.name for s in servers)}, "
          f"{args.minutes:g} minutes each", flush=True)
    runs = [soak_one(s, args.minutes, 1_000, 500) for s in servers]
    args.out.mkdir(parents=True, exist_ok=True)
    table = soak_markdown(runs, meta, catalogue())
    (args.out / "soak.md").write_text(table)
    (args.out / "soak.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
    print()
    print(table)
    print(f"written: {args.out / 'soak.md'}, {args.out / 'soak.json'}")
    return 0 if all(r["alive_at_end"] for r in runs) else 1
