-- A 3-statement transaction per request through the data-p2 guest's /sql route (the hello
-- route it is paired with ignores the body).
wrk.method = "POST"
wrk.body = "BEGIN\nUPDATE items SET name = 'item 42' WHERE id = 42\nSELECT name FROM items WHERE id = 42\nCOMMIT"
