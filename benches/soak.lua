-- wrk script of benches/soak.sh: every request has a unique id in its query
-- (`?id=PHASE-THREAD-N`) and a route chosen from a fixed pattern by N, so the
-- server's access log can be matched request by request.
--
--   wrk -t T -c C -d MAX -s benches/soak.lua URL -- PHASE TOTAL PATTERN OUTDIR
--
-- PHASE: a tag for the ids of this run (w: warm-up, m: main).
-- TOTAL: requests to send over all T threads; thread t sends
--        TOTAL // T (+1 for the first TOTAL % T threads), ids 1..budget.
-- PATTERN: one letter per slot; request N of thread t is of the kind
--        PATTERN[(N + 37 * t) % #PATTERN] (letters below).
-- OUTDIR: a thread that has had all its responses writes OUTDIR/done-t and
--        stops; `done` writes OUTDIR/wrk.json with what each thread sent
--        and received.
--
-- Once a thread has sent its budget, its other connections get an empty
-- request (nothing is written) and stay idle: no request beyond the budget
-- is ever sent. Requests are never pipelined (one in flight per connection).

local paths = {
   o = "/ok/hello",        -- good: 200
   f = "/fuel/loop",       -- runs out of fuel: 500
   t = "/trap/trap",       -- traps: 500
   m = "/mem/membomb",     -- exceeds its memory limit: 500
   s = "/time/sleep",      -- blocked in a host call past its timeout: 504
   l = "/time/loop",       -- spins past its timeout: 504
}
local routes = {o = "/ok", f = "/fuel", t = "/trap", m = "/mem", s = "/time", l = "/time"}

-- Main state: number the threads in the order wrk creates them.
local threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

-- Thread state.
function init(args)
   phase = args[1]
   local total = tonumber(args[2])
   pattern = args[3]
   outdir = args[4]
   nthreads = tonumber(args[5])
   budget = math.floor(total / nthreads)
   if tid < total % nthreads then
      budget = budget + 1
   end
   sent, completed, idle = 0, 0, 0
   sent_by_kind, got_by_route = {}, {other = 0}
   for k, _ in pairs(paths) do
      sent_by_kind[k] = 0
   end
   for _, r in pairs(routes) do
      got_by_route[r] = 0
   end
   other_samples = {}
   host = wrk.headers["Host"]
   -- wrk calls request() once in the first thread to check the request's
   -- format before any connection is made; that request is never sent.
   verifying = (tid == 0)
   finished = (budget == 0)
   if finished then
      mark_done()
   end
end

function kind_of(n)
   local i = (n + 37 * tid) % #pattern + 1
   return pattern:sub(i, i)
end

function request()
   if verifying then
      verifying = false
      return "GET /ok/hello HTTP/1.1\r\nHost: " .. host .. "\r\n\r\n"
   end
   if sent >= budget then
      idle = idle + 1
      return ""
   end
   sent = sent + 1
   local kind = kind_of(sent)
   sent_by_kind[kind] = sent_by_kind[kind] + 1
   return string.format("GET %s?id=%s-%d-%d HTTP/1.1\r\nHost: %s\r\n\r\n",
                        paths[kind], phase, tid, sent, host)
end

-- The route of a response, told from its status and body alone.
local function classify(status, body)
   if status == 200 and body:find("path=/ok/hello?id=", 1, true) then
      return "/ok"
   elseif status == 504 and body:find("wall-clock timeout", 1, true) then
      return "/time"
   elseif status == 500 and body:find("exhausted its fuel", 1, true) then
      return "/fuel"
   elseif status == 500 and body:find("guest trapped", 1, true) then
      return "/trap"
   elseif status == 500 and body:find("memory limit", 1, true) then
      return "/mem"
   end
   return "other"
end

function mark_done()
   local f = io.open(outdir .. "/done-" .. phase .. "-" .. tid, "w")
   f:write(tostring(sent), "\n")
   f:close()
end

function response(status, headers, body)
   completed = completed + 1
   local route = classify(status, body)
   got_by_route[route] = got_by_route[route] + 1
   if route == "other" and #other_samples < 5 then
      table.insert(other_samples, tostring(status) .. " " .. body:sub(1, 200))
   end
   if completed == budget and sent == budget and not finished then
      finished = true
      mark_done()
      wrk.thread:stop()
   end
end

local function json_string(s)
   return '"' .. s:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
   end) .. '"'
end

local function json_counts(t)
   local parts = {}
   for k, v in pairs(t) do
      table.insert(parts, json_string(k) .. ": " .. tostring(v))
   end
   return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
   local out = threads[1]:get("outdir")
   local rows = {}
   for _, t in ipairs(threads) do
      local samples = {}
      for _, s in ipairs(t:get("other_samples")) do
         table.insert(samples, json_string(s))
      end
      table.insert(rows, string.format(
         '{"tid": %d, "budget": %d, "sent": %d, "completed": %d, "idle": %d, ' ..
         '"sent_by_kind": %s, "got_by_route": %s, "other_samples": [%s]}',
         t:get("tid"), t:get("budget"), t:get("sent"), t:get("completed"), t:get("idle"),
         json_counts(t:get("sent_by_kind")), json_counts(t:get("got_by_route")),
         table.concat(samples, ", ")))
   end
   local e = summary.errors
   local f = io.open(out .. "/wrk.json", "w")
   f:write(string.format(
      '{"duration_us": %d, "requests": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d}, "threads": [%s]}\n',
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      table.concat(rows, ", ")))
   f:close()
end
