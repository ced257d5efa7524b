-- wrk script for scripts/bench/serve.sh: POSTs one fixed body (built once, read from a file)
-- and prints a JSON summary line at the end.
--   BODY_FILE   file holding the request body (JSON, or binary-extension header + raw bytes)
--   HEADER_LEN  when set: Inference-Header-Content-Length (Triton binary tensor extension)
--   CTYPE       Content-Type (default application/json; application/octet-stream for binary)
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("CTYPE") or "application/json"
local hl = os.getenv("HEADER_LEN")
if hl and hl ~= "" then wrk.headers["Inference-Header-Content-Length"] = hl end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"seconds":%.3f,"rps":%.1f,"bytes":%d,"p50_ms":%.3f,"p90_ms":%.3f,' ..
    '"p99_ms":%.3f,"max_ms":%.3f,"non2xx":%d,"errors":%d,"body_bytes":%d}\n',
    summary.requests, s, summary.requests / s, summary.bytes,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.status, e.connect + e.read + e.write + e.timeout, #wrk.body))
end

-- MAX_REQUESTS: stop each wrk thread after that many responses (e.g. "the first 10k requests")
local max = tonumber(os.getenv("MAX_REQUESTS") or "")
if max then
  local n = 0
  function response(status, headers, body)
    n = n + 1
    if n >= max then wrk.thread:stop() end
  end
end
