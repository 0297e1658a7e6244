"""The benchmark's table, on results as the runs record them: a server that had exited by the
end of its run has no size to report, rather than a negative one."""

from hello_bench import report
from hello_bench.load import Result
from hello_bench.servers import Catalogue, Server

META = {"date": "2026-12-02 00:58 UTC", "machine": "2 cores", "wrk": "4.1.0", "h2load": "1.52.0",
        "wasmtime": "49.0.3", "wash": "2.10.3", "spin": "4.1.0-pre0", "aiohttp": "3.14.5",
        "python": "3.11.7", "warmup": 3.0, "window": 10.0}


# The catalogue as `hosts list` describes it, of the one server these results are of.
CATALOGUE = Catalogue(servers=[Server("spin-p2-tuned", "hello-edge WASI 0.2 component, spin up tuned")],
                      sweep=[], instances=[], cold_starts=[], components={}, versions={},
                      notes=[{"servers": ["spin-p2-tuned"], "text": "spin up tuned: its note."},
                             {"servers": ["native"], "text": "The native server's note."}])


def row(result: Result) -> list[str]:
    """The table's cells for `result`."""
    line = next(line for line in report.markdown([result], META, CATALOGUE).splitlines()
                if line.startswith("| hello-edge WASI 0.2 component, spin up tuned |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def waiting(peak_rss: int) -> Result:
    """Spin at C=10,000, 100 MiB before the run, with this peak."""
    return Result(server="spin-p2-tuned", scenario="delay 500 ms, C=10,000", delay_ms=500,
                  connections=10_000, streams=10_000, rps=0.0, p50_ms=441.0, p99_ms=2067.1,
                  errors=9215, error_kinds={"read": 9215}, peak_rss=peak_rss,
                  idle_rss=100 * 2**20)


def test_a_server_that_exited_has_no_sizes():
    cells = row(waiting(peak_rss=0))
    assert cells[9:11] == ["– (it had exited)", "–"]


def test_a_server_part_of_which_had_exited_has_no_size_a_connection():
    cells = row(waiting(peak_rss=60 * 2**20))
    assert cells[9:11] == ["60.0 MiB", "–"]


def test_a_server_that_ran_has_its_sizes():
    cells = row(waiting(peak_rss=100 * 2**20 + 10_000 * 60 * 1024))
    assert cells[9:11] == ["685.9 MiB", "60.0 KiB"]


def test_the_notes_are_those_of_the_servers_measured():
    text = report.markdown([waiting(peak_rss=0)], META, CATALOGUE)
    assert "spin up tuned: its note." in text
    assert "The native server's note." not in text


def traced(server: str, rps: float, cpu: float, peak_rss: int) -> Result:
    """A row of the traces' scenario."""
    return Result(server=server, scenario="delay 500 ms, C=10,000", delay_ms=500, connections=10_000,
                  streams=10_000, rps=rps, p50_ms=500.0, p99_ms=510.0, errors=0, error_kinds={},
                  peak_rss=peak_rss, idle_rss=0, server_cpu=cpu)


def test_the_traces_cost_is_traced_over_untraced():
    cat = Catalogue(servers=[Server("native", "hello-edge native"),
                             Server("native-traced", "hello-edge native, traced")],
                    sweep=[], instances=[], cold_starts=[], components={}, versions={}, notes=[])
    results = [traced("native", 20_000.0, 0.5, 100 * 2**20),
               traced("native-traced", 19_000.0, 0.57, 120 * 2**20)]
    text = report.markdown(results, META, cat)
    assert "| hello-edge native, traced | 19,000 | 30.0 µs | 120.0 MiB |" in text
    assert "| hello-edge native | 20,000 | 25.0 µs | 100.0 MiB |" in text
    assert "| traced ÷ untraced | 0.95 | 1.20 | 1.20 |" in text
    # Without both, no section.
    assert "What traces cost" not in report.markdown(results[:1], META, cat)
