-- wrk script: prints wrk's whole-run figures as one JSON line (prefixed "TOTALS "), with no
-- per-response hook, so the load generator stays as fast as wrk itself.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'TOTALS {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
