-- One indexed SELECT per request through the data-p2 guest's /sql route.
wrk.method = "POST"
wrk.body = "SELECT name FROM items WHERE id = 42"
