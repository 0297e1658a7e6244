-- wrk script: counts the answers that complete inside a steady-state window, so neither the
-- ramp-up (connecting, the first round) nor the requests cut off when wrk stops are measured.
-- Usage: wrk ... -s steady.lua URL -- WARMUP_SECONDS WINDOW_SECONDS
-- Prints one JSON line (prefixed "STEADY ") with the window's counts and wrk's whole-run figures.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } hello_edge_timespec;
int clock_gettime(int clock, hello_edge_timespec *now);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("hello_edge_timespec")
local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

-- Globals, so that done() can read them from each thread with thread:get().
function init(args)
  warmup = tonumber(args[1])
  window = tonumber(args[2])
  started = now()
  ok = 0
  bad = 0
  statuses = ""
end

function response(status, headers, body)
  local t = now() - started
  if t >= warmup and t < warmup + window then
    if status == 200 then
      ok = ok + 1
    else
      bad = bad + 1
      -- Note each kind of refusal once, so the report can say which statuses came back.
      if not string.find(statuses, tostring(status), 1, true) then
        statuses = statuses .. " " .. tostring(status)
      end
    end
  end
end

function done(summary, latency, requests)
  local ok_total, bad_total, window_seconds, seen = 0, 0, 0, ""
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    bad_total = bad_total + thread:get("bad")
    window_seconds = thread:get("window")
    seen = seen .. thread:get("statuses")
  end
  local e = summary.errors
  io.write(string.format(
    'STEADY {"window_ok":%d,"window_bad":%d,"bad_statuses":"%s","window_s":%f,"requests":%d,"duration_us":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    ok_total, bad_total, seen, window_seconds, summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
