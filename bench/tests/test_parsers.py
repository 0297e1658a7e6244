"""The benchmark's parsers on what the tools and hosts print: h2load's summary, the percentiles
of a latency list, and the limits a host's log names."""

import pytest

from hello_bench import limits
from hello_bench.load import parse_h2load, percentile

H2LOAD = """\
starting benchmark...
spawning thread #0: 125 total client(s). 1000000 total requests

finished in 10.50s, 47725.10 req/s, 2.10MB/s
requests: 501115 total, 525000 started, 501115 done, 500000 succeeded, 1115 failed, 1115 errored, 0 timeout
status codes: 500000 2xx, 0 3xx, 15 4xx, 100 5xx
traffic: 22.07MB (23142070) total, 1.43MB (1503345) headers (space savings 95.13%), 10.49MB (11000000) data
"""


def test_h2load_counts_are_read_by_name():
    figures = parse_h2load(H2LOAD)
    assert figures["total"] == 501115
    assert figures["started"] == 525000
    assert figures["done"] == 501115
    assert figures["succeeded"] == 500000
    assert figures["failed"] == 1115
    assert figures["errored"] == 1115
    assert figures["timeout"] == 0
    assert (figures["2xx"], figures["3xx"], figures["4xx"], figures["5xx"]) == (500000, 0, 15, 100)


def test_h2load_without_a_summary_is_an_error_quoting_it():
    with pytest.raises(RuntimeError, match="connect to 127.0.0.1 failed"):
        parse_h2load("connect to 127.0.0.1 failed\n")


def test_percentiles_are_nearest_rank():
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([7], 99) == 7
    assert percentile([], 50) == 0
    # Nearest rank: the smallest value with at least p% of the values at or below it.
    assert percentile([10, 20, 30, 40], 50) == 20
    assert percentile([10, 20, 30, 40], 51) == 30


@pytest.mark.parametrize("line, kind", [
    (b"ERROR maximum concurrent limit of 1000 for core instances reached", "1000 core instances"),
    (b"Error processing request: maximum concurrent limit of 1000 for component instances reached",
     "1000 component instances"),
    (b"error: maximum concurrent limit of 12000 for fibers reached", "12000 fibers"),
    (b"\x1b[31mWARN\x1b[0m HTTP ingress is at its connection ceiling; shedding new connections",
     "connection ceiling"),
    (b"accept failed: Too many open files (os error 24)", "too many open files"),
    (b"Failed to invoke component: guest trapped", "failed to invoke component"),
    (b"WARN opentelemetry_sdk: name=\"BatchSpanProcessor.SpanDroppingStarted\" BatchSpanProcessor "
     b"dropped a Span due to queue full.", "trace spans dropped"),
    (b"INFO request finished in 500 ms", None),
])
def test_each_limit_is_told_from_its_line(line, kind):
    assert limits.kind_of(line) == kind


def test_the_binding_limit_is_the_first_specific_one(tmp_path):
    log = tmp_path / "server.log"
    log.write_bytes(b"before the scenario: maximum concurrent limit of 1000 for memories reached\n")
    start = limits.offset(log)
    with open(log, "ab") as out:
        out.write(b"failed to invoke component\n"
                  b"maximum concurrent limit of 1000 for core instances reached\n"
                  b"maximum concurrent limit of 1000 for core instances reached\n"
                  b"maximum concurrent limit of 1000 for stacks reached\n"
                  b"failed to invoke component\n")
    counts = limits.scan(log, start)
    assert counts == {"failed to invoke component": 2, "1000 core instances": 2, "1000 stacks": 1}
    assert limits.binding(counts) == {"kind": "1000 core instances", "count": 2}
    assert limits.describe(limits.binding(counts)) == "1000 core instances (2)"


def test_the_generic_failure_binds_only_alone(tmp_path):
    assert limits.binding({"failed to invoke component": 3}) == {"kind": "failed to invoke component", "count": 3}
    assert limits.binding({}) is None
    assert limits.describe(None) == "–"
    assert limits.scan(tmp_path / "absent.log") == {}
    assert limits.offset(tmp_path / "absent.log") == 0
