"""Which limit binds: the messages hosts log when one of their limits refuses work, counted in
what a server logged during one scenario (its log from the offset at the scenario's start).

Kinds, one per log line: a pool of wasmtime's instance allocator ("maximum concurrent limit of
N for core instances reached", and component instances, fibers, memories, stacks, tables), a
connection ceiling (wash dev: "HTTP ingress is at its connection ceiling"), "too many open
files", "failed to invoke component" (wash dev's wrapper of any error in a request), and the
native server's trace exporter dropping spans, its queue full (said once, by the OpenTelemetry
SDK: a traced row's spans were not all exported). The
kind reported is the first one seen, with the number of lines naming it; the wrapper only when
nothing more specific was logged, since its cause (often a pool) may follow on the next lines.
"""

from __future__ import annotations

import re
from pathlib import Path

POOL = re.compile(rb"maximum concurrent limit of (\d+) for "
                  rb"(core instances|component instances|fibers|memories|stacks|tables) reached")
# (what a line holds, lower-cased, the kind it is), after POOL.
OTHERS = ((b"connection ceiling", "connection ceiling"),
          (b"too many open files", "too many open files"),
          (b"failed to invoke component", "failed to invoke component"),
          (b"dropped a span", "trace spans dropped"))
GENERIC = "failed to invoke component"
# Cheap tests that skip the lines which can hold none of these.
HINTS = (b"limit of", b"ceiling", b"open files", b"invoke component", b"dropped a Span")
ANSI = re.compile(rb"\x1b\[[0-9;]*m")


def offset(path: Path) -> int:
    """Where the log ends now: the start of the next scenario's part."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def kind_of(line: bytes) -> str | None:
    line = ANSI.sub(b"", line)
    pool = POOL.search(line)
    if pool:
        return f"{int(pool.group(1))} {pool.group(2).decode()}"
    lower = line.lower()
    return next((kind for text, kind in OTHERS if text in lower), None)


def scan(path: Path, start: int = 0) -> dict[str, int]:
    """The limit kinds logged from byte `start` on, each with its count of lines, in the order
    first seen."""
    counts: dict[str, int] = {}
    try:
        log = open(path, "rb")
    except FileNotFoundError:
        return counts
    with log:
        log.seek(start)
        for line in log:
            if not any(hint in line for hint in HINTS):
                continue
            kind = kind_of(line)
            if kind:
                counts[kind] = counts.get(kind, 0) + 1
    return counts


def binding(counts: dict[str, int]) -> dict | None:
    """The limit that binds, {"kind", "count"}, or None when none was logged."""
    specific = [k for k in counts if k != GENERIC] or list(counts)
    return {"kind": specific[0], "count": counts[specific[0]]} if specific else None


def describe(limit: dict | None) -> str:
    return f"{limit['kind']} ({limit['count']:,})" if limit else "–"
