-- One Redis GET per request through the data-p2 guest's /redis route.
wrk.method = "POST"
wrk.body = "get greeting"
