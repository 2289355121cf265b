-- wrk script for bench_server.py: POST /api/v1/generate, a distinct prompt per request.
-- BENCH_AUTH is the Authorization header value, or empty for the 401 path; BENCH_KEYS, when
-- set, is a comma-separated list of keys used in turn (one per connection, so that a rate
-- limit is spent per key as a team's clients would, not by one key).
local counter = 0
local auth = os.getenv("BENCH_AUTH") or ""
local keys = {}
for key in string.gmatch(os.getenv("BENCH_KEYS") or "", "[^,]+") do keys[#keys + 1] = key end

function request()
  counter = counter + 1
  local headers = {["Content-Type"] = "application/json"}
  if auth ~= "" then
    headers["Authorization"] = #keys > 0 and ("Bearer " .. keys[counter % #keys + 1]) or auth
  end
  local body = '{"model":"sdxl-lightning","width":1024,"height":1024,"num_inference_steps":8,'
    .. '"prompt":"a mountain at sunrise, take ' .. counter .. '"}'
  return wrk.format("POST", "/api/v1/generate", headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, '
      .. '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
