"""The benchmark's table, on results as the runs record them: a server that had exited by the
end of its run has no size to report, rather than a negative one."""

import json
from pathlib import Path

from hello_bench import report
from hello_bench.load import Result

META = json.loads((Path(__file__).parents[1] / "results" / "latest.json").read_text())["meta"]


def row(result: Result) -> list[str]:
    """The table's cells for `result`."""
    line = next(line for line in report.markdown([result], META).splitlines()
                if line.startswith(f"| {report.LABELS[result.server]} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def waiting(peak_rss: int) -> Result:
    return Result(server="spin-p2-tuned", scenario="delay 500 ms, C=10,000", delay_ms=500,
                  connections=10_000, streams=10_000, rps=0.0, p50_ms=441.0, p99_ms=2067.1,
                  errors=9215, error_kinds={"read": 9215}, peak_rss=peak_rss,
                  idle_rss=100 * 2**20)


def test_a_server_that_exited_has_no_sizes():
    cells = row(waiting(peak_rss=0))
    assert cells[9:11] == ["– (it had exited)", "–"]


def test_a_server_that_ran_has_its_sizes():
    cells = row(waiting(peak_rss=100 * 2**20 + 10_000 * 60 * 1024))
    assert cells[9:11] == ["685.9 MiB", "60.0 KiB"]
