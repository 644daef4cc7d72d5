-- One key-value set per request through the data-p2 guest's /kv route.
wrk.method = "PUT"
wrk.body = "a value of some thirty bytes.."
