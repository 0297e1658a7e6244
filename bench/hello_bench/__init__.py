"""The hello-edge benchmark: every server, the same scenarios, one table of ratios and a chart.

Run through `bench/run`, which builds and installs what this needs; `python -m hello_bench --help`
(from bench/) lists the options. Each server is started on loopback, one at a time, and driven by
wrk (HTTP/1.1) or h2load (HTTP/2); peak RSS comes from the server's /proc/PID/status (VmHWM,
reset before each scenario through /proc/PID/clear_refs).

Delayed scenarios are measured in a steady-state window (bench/steady.lua, h2load's warm-up and
duration): the answers that complete between WARMUP and WARMUP + WINDOW seconds into a run, so
neither the ramp-up nor the requests cut off at the end are counted. The window starts a quarter
of a delay after a round boundary, away from the bursts in which synchronised connections
complete.

The modules, one job each: servers (the servers as the host catalogue's `hosts` binary names
and starts them), procs (/proc), load (the scenarios and the load generators), limits (which
limit of a host binds, from its log), cold (cold start and instance cost), report (the
Markdown), chart (the SVG), soak (the soak) and __main__ (the options and the order of
things). Only the standard library is imported until a
run needs more, so `--help` works before anything is installed.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
# Each server's output, for when a figure needs explaining (and for the limits column).
LOGS = ROOT / "target" / "bench-logs"
