-- One key-value set per request through the data-p2 guest's /kv route. Each request writes a
-- value of its own: SQLite skips a write that leaves a row as it was, so a constant value
-- would commit nothing after the first request and measure no disk at all.
wrk.method = "PUT"
local count = 0
request = function()
  count = count + 1
  return wrk.format(nil, nil, nil, string.format("a value of some bytes #%012d", count))
end
