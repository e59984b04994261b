-- wrk's script for bench/scale.py --generator wrk: the read and action scenarios of bench/load.py.
-- Run with as many threads as connections (-t N -c N), so each thread is one closed-loop client with its own
-- token and (for reads) its own conversation, as bench/load.py's clients are. Settings come from the
-- environment: SAYSO_WRK_KIND (read or action), SAYSO_WRK_TOKENS and SAYSO_WRK_CONVERSATIONS (comma-separated,
-- one per client), SAYSO_WRK_RUN (in each action's text, "wrk test RUN N", so a run's effects can be counted in
-- chat.db). done() prints one JSON line: requests, answers with the expected status ("good") and others ("bad"),
-- socket errors, p50/p99/max in microseconds.

local kind = os.getenv("SAYSO_WRK_KIND")
local run = os.getenv("SAYSO_WRK_RUN") or "0"
local function split(text)
  local items = {}
  for item in string.gmatch(text or "", "[^,]+") do items[#items + 1] = item end
  return items
end
local tokens = split(os.getenv("SAYSO_WRK_TOKENS"))
local conversations = split(os.getenv("SAYSO_WRK_CONVERSATIONS"))
local expect = kind == "read" and '"status":"answered"' or '"status":"executed"'

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
  table.insert(threads, thread)
end

function init(_args)
  n = index * 10000000
  good = 0
  bad = 0
  local token = tokens[(index - 1) % #tokens + 1]
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/json"
  if kind == "read" then
    path = "/v1/conversations/" .. conversations[index] .. "/messages"
  else
    path = "/v1/actions/chat.send"
  end
end

function request()
  n = n + 1
  local body
  if kind == "read" then
    body = '{"text": "which of my deals close in the next 30 days?"}'
  else
    body = '{"args": {"to": "carol", "text": "wrk test ' .. run .. ' ' .. n .. '"}}'
  end
  return wrk.format("POST", path, nil, body)
end

function response(status, _headers, body)
  if status == 200 and string.find(body, expect, 1, true) then
    good = good + 1
  else
    bad = bad + 1
  end
end

function done(summary, latency, _requests)
  local good_total, bad_total = 0, 0
  for _, thread in ipairs(threads) do
    good_total = good_total + thread:get("good")
    bad_total = bad_total + thread:get("bad")
  end
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "good": %d, "bad": %d, "socket_errors": %d, "p50_us": %d, ' ..
    '"p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, good_total, bad_total,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
