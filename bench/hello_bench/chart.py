"""The chart (latest.svg): one panel per kind of figure measured in this run, so that any subset of
servers and scenarios ends with a chart of what it measured; a panel with no data is left out.
Panels: throughput and p99 against concurrency at delay 500 ms (HTTP/1.1), HTTP/2 throughput
against streams, the WASI 0.3 component's sweep of requests an instance, delay-0 throughput, cold
start, instance cost."""

from __future__ import annotations

import math
from pathlib import Path

from .cold import InstanceCost, Start
from .load import SCENARIOS, Result
from .servers import Catalogue


def _log_scale(ax, values, axis: str = "y") -> None:
    """A log axis when every value is positive (else matplotlib refuses to draw it)."""
    if values and all(v > 0 for v in values):
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def _ordered(rows: list[Result], cat: Catalogue) -> list[str]:
    return [s.name for s in cat.servers if any(r.server == s.name for r in rows)]


def _against_concurrency(ax, rows: list[Result], cat: Catalogue, value, title: str, unit: str, xlabel: str,
                         ideal: str) -> None:
    for name in _ordered(rows, cat):
        mine = sorted((r for r in rows if r.server == name), key=lambda r: r.streams)
        ax.plot([r.streams for r in mine], [value(r) for r in mine], marker="o", label=cat.labels[name])
    cs = sorted({r.streams for r in rows})
    d = rows[0].delay_ms
    if ideal == "throughput":
        ax.plot(cs, [c / (d / 1000) for c in cs], "k--", label="ideal C/d")
    else:
        ax.axhline(d, color="k", linestyle="--", label="ideal: d")
    _log_scale(ax, cs, "x")
    _log_scale(ax, [value(r) for r in rows] + ([c / (d / 1000) for c in cs] if ideal == "throughput" else [d]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _bars(ax, names: list[str], series: list[tuple[str, list[float]]], ylabel: str, title: str) -> None:
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series):
        ax.bar([x + i * width for x in range(len(names))], values, width, label=label)
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(names))])
    ax.set_xticklabels([n.replace(" (reference)", "\n(reference)") for n in names],
                       rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)


def _sweep(ax, sweep: list[Result], cat: Catalogue) -> None:
    """Requests/s and p99 against the requests one instance takes, the WASI 0.3 component under
    wasmtime serve at C=10,000."""
    params = {s.name: s.sweep for s in cat.sweep}
    # Reused for good: the longest reuse any sweep server has.
    for_good = max(reuse for _, reuse in params.values())
    kept = sorted((r for r in sweep if params[r.server][1] == for_good), key=lambda r: params[r.server][0])
    xs = [params[r.server][0] for r in kept]
    ax.plot(xs, [r.rps for r in kept], marker="o", color="tab:blue", label="requests/s")
    if kept:
        ax.axhline(kept[0].ideal, color="tab:blue", linestyle="--", label="ideal C/d")
    ax.set_xscale("log")
    ax.set_xlabel("requests an instance takes at once")
    ax.set_ylabel("requests/s")
    other = ax.twinx()
    other.plot(xs, [r.p99_ms for r in kept], marker="s", color="tab:red", label="p99 (ms)")
    other.set_ylabel("p99, ms")
    ax.set_title("WASI 0.3 under wasmtime serve, C = 10,000")
    lines = ax.get_legend_handles_labels()
    more = other.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7)
    ax.grid(True, which="both", alpha=0.3)


def chart(results: list[Result], starts: list[Start], costs: list[InstanceCost], path: Path, cat: Catalogue,
          sweep: list[Result] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    group = {s.name: s.group for s in SCENARIOS}
    delayed = [r for r in results if group.get(r.scenario) == "delayed"]
    h2 = [r for r in results if group.get(r.scenario) == "h2"]
    zero = [r for r in results if group.get(r.scenario) == "zero"]
    panels = []  # (draw function), each given its axes
    if delayed:
        panels.append(lambda ax: _against_concurrency(
            ax, delayed, cat, lambda r: r.rps, "Throughput, delay 500 ms", "requests/s",
            "concurrent connections C", "throughput"))
        panels.append(lambda ax: _against_concurrency(
            ax, delayed, cat, lambda r: r.p99_ms, "p99 latency, delay 500 ms", "ms",
            "concurrent connections C", "latency"))
    if h2:
        panels.append(lambda ax: _against_concurrency(
            ax, h2, cat, lambda r: r.rps, f"HTTP/2 throughput, delay 500 ms, {h2[0].connections} connections",
            "requests/s", "concurrent streams", "throughput"))
    if sweep:
        panels.append(lambda ax: _sweep(ax, list(sweep), cat))
    if zero:
        def draw_zero(ax):
            names = _ordered(zero, cat)
            scen = [s.name for s in SCENARIOS if s.group == "zero" and any(r.scenario == s.name for r in zero)]
            series = [(sname, [next((r.rps for r in zero if r.server == n and r.scenario == sname), 0)
                               for n in names]) for sname in scen]
            _bars(ax, [cat.labels[n] for n in names], series, "requests/s", "Throughput, delay 0, C = 64")
        panels.append(draw_zero)
    if starts:
        def draw_cold(ax):
            # One bar per server configuration (median), the max marked above it.
            xs = range(len(starts))
            ax.bar(xs, [s.median_ms for s in starts], 0.7, label="median")
            ax.scatter(xs, [s.max_ms for s in starts], marker="_", s=200, color="k", label="max")
            ax.set_xticks(list(xs))
            ax.set_xticklabels([s.name for s in starts], rotation=45, ha="right", fontsize=7)
            _log_scale(ax, [s.median_ms for s in starts] + [s.max_ms for s in starts])
            ax.set_ylabel("ms, spawn to first 200")
            ax.set_title("Cold start, delay 0")
            ax.legend(fontsize=7)
            ax.grid(True, axis="y", which="both", alpha=0.3)
        panels.append(draw_cold)
    if costs:
        panels.append(lambda ax: _bars(
            ax, [c.label for c in costs],
            [("fresh instance per request", [c.rps_fresh for c in costs]),
             ("instances reused", [c.rps_reused for c in costs])],
            "requests/s", "Instance cost, delay 0, C = 64, /hello/x"))

    # One row of up to four panels; more (a full run has six) in rows of three.
    n = max(1, len(panels))
    cols = n if n <= 4 else 3
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.75 * cols, 6 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for draw, ax in zip(panels, flat):
        draw(ax)
    for ax in flat[len(panels):]:
        ax.set_axis_off()
    if not panels:
        flat[0].text(0.5, 0.5, "nothing measured", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
