-- wrk script for bench/bench.py: POSTs one chat request and prints the
-- results as one JSON line ("WRKJSON {...}") from the done callback.
-- The request is read from the environment so one file serves every case:
--   BENCH_BODY  the JSON body;  BENCH_HOST  the Host header;
--   BENCH_PATH  the path (default /v1/chat/completions).
local body = os.getenv("BENCH_BODY") or "{}"
local host = os.getenv("BENCH_HOST") or "llm.bench"
local path = os.getenv("BENCH_PATH") or "/v1/chat/completions"

wrk.method = "POST"
wrk.path = path
wrk.body = body
wrk.headers["Host"] = host
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-client-should-be-replaced"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
