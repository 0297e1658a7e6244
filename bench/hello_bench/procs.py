"""Processes as the benchmark reads them: the servers' environment and open-file limit, a
server's answer, whether a process lives, and its process tree's RSS, peak RSS (VmHWM, reset
through clear_refs), CPU seconds and open descriptors, from /proc. Servers themselves are
started through the host catalogue (servers.py)."""

from __future__ import annotations

import http.client
import os
import resource
import subprocess
from pathlib import Path


def server_env() -> dict:
    """The servers' environment: ours, without RUST_BACKTRACE, which makes a Rust host capture a
    backtrace for every error it logs (wasmtime serve does, per refused request) and so slows the
    very scenarios that refuse many."""
    env = dict(os.environ)
    env.pop("RUST_BACKTRACE", None)
    return env


def raise_open_file_limit() -> int:
    """Raises this process's soft open-file limit to the hard one, for itself and what it starts
    (each connection is a descriptor in the server and in the load generator; wash dev caps its
    HTTP connections at a quarter of its limit). Returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def answer_of(port: int, path: str = "/hello/bench") -> tuple[int, list[tuple[str, str]], int]:
    """A server's answer to GET `path` over HTTP/1.1: its status, its header fields (names
    lowercased, sorted, `date` left out, since hosts add it) and its body's length."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=70)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        fields = sorted((name.lower(), value) for name, value in response.getheaders()
                        if name.lower() != "date")
        return response.status, fields, len(body)
    finally:
        conn.close()


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def tree(pid: int) -> list[int]:
    """`pid` and every process below it: a server is its whole tree (`spin up` serves from a
    trigger process it starts)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def _status_field(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss(pid: int, field: str = "VmRSS") -> int:
    """A size field of /proc/PID/status (VmRSS, VmHWM), in bytes, summed over the process tree."""
    return sum(_status_field(p, field) for p in tree(pid))


def reset_peak_rss(pid: int) -> None:
    # Writing 5 resets VmHWM to the current RSS (Linux 4.0+).
    for p in tree(pid):
        try:
            Path(f"/proc/{p}/clear_refs").write_text("5")
        except OSError:
            pass


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and those below it so far (/proc/PID/stat,
    fields 14 and 15)."""
    return sum(_cpu_seconds(p) for p in tree(pid))


def children_cpu_seconds() -> float:
    """CPU time of this process's children that have ended (the load generators)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fd_count(pid: int) -> int:
    """Open descriptors of the process tree."""
    count = 0
    for p in tree(pid):
        try:
            count += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return count


def version(cmd: list[str]) -> str:
    """The first line a tool prints for its version, or "?"."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"
