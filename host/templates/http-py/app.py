"""An HTTP function in Python (Spin's Python SDK, built with componentize-py: see build.sh)."""

import json

from spin_sdk import http
from spin_sdk.http import Request, Response
from spin_sdk.wit.imports import fermyon_spin_sqlite as sqlite


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        path = request.headers.get("spin-path-info", "/")
        db = sqlite.Connection.open("default")
        db.execute("CREATE TABLE IF NOT EXISTS visits (path TEXT NOT NULL)", [])
        db.execute("INSERT INTO visits (path) VALUES (?)", [sqlite.Value_Text(path)])
        visits = db.execute("SELECT count(*) FROM visits", []).rows[0].values[0].value
        body = {"hello": "from Python", "path": path, "visits": visits}
        return Response(200, {"content-type": "application/json"}, bytes(json.dumps(body), "utf-8"))
