"""Process control and /proc sampling: starting a server in a session of its own and stopping it
(SIGTERM, then SIGKILL), free ports, waiting until a server answers, the servers' environment
and open-file limit, and a process's RSS, peak RSS (VmHWM, reset through clear_refs), CPU
seconds and open descriptors."""

from __future__ import annotations

import contextlib
import http.client
import os
import resource
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator


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


def raise_open_file_limit() -> int:
    """Raises this process's soft open-file limit to the hard one, for itself and what it starts
    (each connection is a descriptor in the server and in the load generator; wash dev caps its
    HTTP connections at a quarter of its limit). Returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start(argv: list[str], log, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    """Starts a server in a new session (so stop() reaches all it spawns), output to `log`, with
    `env` added to the servers' environment."""
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**server_env(), **(env or {})}, cwd=cwd)


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM to a server's process group (started with start_new_session), SIGKILL after 30 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# HTTP/2 with prior knowledge: the client's preface and an empty SETTINGS frame, which a server
# answers with a SETTINGS frame of its own (type 4, the fourth byte of a frame header).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def wait_until_serving(port: int, proc: subprocess.Popen, timeout: float = 120, protocol: str = "http1") -> None:
    """Waits until the server answers an HTTP request, or HTTP/2's preface with its settings
    (wasm hosts compile before they listen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.settimeout(70)
                if protocol == "http2":
                    sock.sendall(H2_PREFACE)
                    head = sock.recv(9)
                    if len(head) >= 4 and head[3] == 4:
                        return
                else:
                    sock.sendall(b"GET /hello/ready HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                    if sock.recv(12).startswith(b"HTTP/1.1"):
                        return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


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


def wait_for_log(path: Path, text: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Waits until the server's log holds `text`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text.encode() in path.read_bytes():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before logging {text!r}; see {path}")
        time.sleep(0.2)
    raise RuntimeError(f"the server did not log {text!r} within {timeout:.0f} s; see {path}")


@contextlib.contextmanager
def serving(argv: list[str], port: int, log_path: Path, cwd: Path | None = None,
            ready_log: str | None = None, protocol: str = "http1",
            env: dict | None = None) -> Iterator[subprocess.Popen]:
    """A server started, logging to `log_path`, and answering `protocol` on `port`; stopped at
    the end."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = start(argv, log, cwd, env)
        try:
            if ready_log:
                wait_for_log(log_path, ready_log, proc)
            wait_until_serving(port, proc, protocol=protocol)
            yield proc
        finally:
            stop(proc)


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
