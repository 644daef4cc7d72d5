"""A function in Python: the shows of the sample app, over HTTP and SQLite.

Built with componentize-py and Spin's Python SDK (see requirements.txt):

    componentize-py -w spin-http componentize app -o shows_py.wasm

GET /shows lists the shows as JSON; POST /shows with {"title": ..., "starts_at": ...} adds one
and answers 201 with its id. The table is the sample app's (migrations/001_shows.sql).
"""

import json

from spin_sdk import http
from spin_sdk.http import Request, Response

# The generated binding of `fermyon:spin/sqlite@2.0.0` (componentize-py 0.16 names it after its
# package, beside `spin:sqlite/sqlite@3.0.0`).
from spin_sdk.wit.imports import fermyon_spin_sqlite as sqlite


def reply(status: int, body) -> Response:
    return Response(status, {"content-type": "application/json"}, bytes(json.dumps(body), "utf-8"))


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        db = sqlite.Connection.open("default")
        if request.method == "GET":
            result = db.execute("SELECT id, title, starts_at FROM shows ORDER BY id", [])
            shows = [
                {"id": row.values[0].value, "title": row.values[1].value, "starts_at": row.values[2].value}
                for row in result.rows
            ]
            return reply(200, shows)
        if request.method == "POST":
            try:
                show = json.loads(request.body or b"")
                params = [sqlite.Value_Text(show["title"]), sqlite.Value_Text(show["starts_at"])]
            except (ValueError, KeyError, TypeError):
                return reply(400, {"error": "send {\"title\": ..., \"starts_at\": ...}"})
            added = db.execute("INSERT INTO shows (title, starts_at) VALUES (?, ?) RETURNING id", params)
            return reply(201, {"id": added.rows[0].values[0].value})
        return reply(405, {"error": "use GET or POST"})
