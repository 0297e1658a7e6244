"""The servers, as the project's one host catalogue tells them: `hosts list` and `hosts serve`
(tests/support/src/bin/hosts.rs, on tests/support/src/catalogue.rs), the very code the tests
start every host with. Nothing here starts a server: `serving` asks `hosts serve` to, reads
where it serves and the pid of the process that does, and tells it to stop."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Iterator

from . import ROOT
from .procs import alive, server_env

# Built by bench/run (`cargo build --release --package hello-edge-test-support --bin hosts`).
HOSTS = ROOT / "target" / "release" / "hosts"

# hello-edge's answer to `GET /hello/bench` (`date` aside), as every server but the seed's must
# send it, the references fixed: each row then measures the same bytes on the wire, and a
# reference that drifts from hello-edge, or hello-edge from this, stops the run.
ANSWER = (200, [("content-length", "22"), ("content-security-policy", "default-src 'none'"),
                ("content-type", "text/html; charset=utf-8"), ("x-content-type-options", "nosniff")],
          22)


@dataclasses.dataclass(frozen=True)
class Server:
    """A server of the catalogue, as `hosts list` describes it."""
    name: str
    label: str
    reference: bool = False
    http2: bool = False  # speaks HTTP/2 with prior knowledge
    answers_as_hello_edge: bool = True  # sends ANSWER to /hello/bench
    sweep: tuple | None = None  # the sweep's (requests an instance at once, retired after)


@dataclasses.dataclass(frozen=True)
class Catalogue:
    servers: list[Server]
    sweep: list[Server]
    instances: list[dict]  # {name, of, label, component, reused}
    cold_starts: list[dict]  # {name, label}
    components: dict  # component name -> {path, size}
    versions: dict  # host tool -> its version line
    notes: list = dataclasses.field(default_factory=list)  # {servers, text}: how they run, for the report

    def named(self, name: str) -> Server:
        return next(s for s in self.servers + self.sweep if s.name == name)

    @property
    def labels(self) -> dict[str, str]:
        return {s.name: s.label for s in self.servers + self.sweep}


@functools.cache
def catalogue() -> Catalogue:
    """`hosts list`, parsed (it builds the components first, if they are not built)."""
    out = subprocess.run([str(HOSTS), "list"], check=True, stdout=subprocess.PIPE, text=True).stdout
    raw = json.loads(out)

    def server(s: dict) -> Server:
        return Server(s["name"], s["label"], s.get("reference", False), s.get("http2", False),
                      s.get("answers_as_hello_edge", True))

    sweep = [Server(s["name"], s["label"], sweep=(s["concurrency"], s["reuse"])) for s in raw["sweep"]]
    return Catalogue([server(s) for s in raw["servers"]], sweep, raw["instances"], raw["cold_starts"],
                     raw["components"], raw["versions"], raw["notes"])


@dataclasses.dataclass
class Serving:
    """A server `hosts serve` started: where it serves, and the process that serves (whose
    process tree holds its CPU time and memory)."""
    name: str
    port: int
    pid: int

    def poll(self) -> int | None:
        """None while the serving process runs (as Popen.poll), else 1."""
        return None if alive(self.pid) else 1


@contextlib.contextmanager
def serving(name: str, delay_ms: int, log_path: Path, protocol: str = "http1",
            port: int = 0) -> Iterator[Serving]:
    """The server `name` started by `hosts serve` for `delay_ms` and the protocol the load speaks,
    its log written to `log_path` (and what `hosts` itself says beside it, `.hosts`), answering
    once this yields; stopped its one way at the end."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    own_log = log_path.with_name(log_path.name + ".hosts")
    argv = [str(HOSTS), "serve", name, "--delay-ms", str(delay_ms), "--protocol", protocol,
            "--port", str(port), "--log", str(log_path)]
    with open(own_log, "wb") as errors:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                                start_new_session=True, env=server_env())
        pid = None
        try:
            line = proc.stdout.readline()
            if not line:
                proc.wait()
                raise RuntimeError(f"hosts serve {name} exited with {proc.returncode} before it served; "
                                   f"see {own_log}:\n{own_log.read_text()[-4000:]}")
            said = json.loads(line)
            pid = said["pid"]
            yield Serving(name, int(said["addr"].rsplit(":", 1)[1]), pid)
        finally:
            _stop(proc, pid)


def _stop(proc: subprocess.Popen, pid: int | None, timeout: float = 60) -> None:
    """Tells `hosts serve` to stop its server (it stops it its one way), and waits; past
    `timeout`, kills the server's process group (it has one of its own) and `hosts`."""
    if proc.poll() is None:
        try:
            proc.stdin.write(b"stop\n")
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            pass
    for group in (pid, proc.pid):
        if group is None:
            continue
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    proc.wait()
