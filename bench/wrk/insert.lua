-- One INSERT per request through the data-p2 guest's /sql route (an acknowledged write).
wrk.method = "POST"
wrk.body = "INSERT INTO items (name) VALUES ('a new item')"
