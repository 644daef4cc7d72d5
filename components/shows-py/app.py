"""A function in Python: the shows of the sample app, over HTTP, SQLite, key-value and variables.

Built with componentize-py and Spin's Python SDK (see requirements.txt), in an activated venv,
exactly as the SDK's README says:

    componentize-py -w spin:up/http-trigger@4.1.0 componentize app -o shows_py.wasm

GET /shows lists the shows as JSON; POST /shows with {"title": ..., "starts_at": ...} adds one
and answers 201 with its id. The table is the sample app's (migrations/001_shows.sql).
POST /shows/<id>/likes counts a like in the default key-value store and answers the count;
GET /shows/venue answers the `venue` variable.
"""

import json

from spin_sdk import http, key_value, sqlite, util, variables
from spin_sdk.http import Request, Response
from spin_sdk.sqlite import Value_Text


def reply(status: int, body) -> Response:
    return Response(status, {"content-type": "application/json"}, bytes(json.dumps(body), "utf-8"))


async def query(db: sqlite.Connection, statement: str, params: list) -> list:
    """Runs `statement` and answers its rows' values, raising the error it ended with."""
    _columns, rows, result = await db.execute(statement, params)
    return [[value.value for value in row.values] for row in await util.collect((rows, result))]


async def shows(request: Request) -> Response:
    with await sqlite.Connection.open_default() as db:
        if request.method == "GET":
            rows = await query(db, "SELECT id, title, starts_at FROM shows ORDER BY id", [])
            return reply(200, [{"id": r[0], "title": r[1], "starts_at": r[2]} for r in rows])
        if request.method == "POST":
            try:
                show = json.loads(request.body or b"")
                params = [Value_Text(show["title"]), Value_Text(show["starts_at"])]
            except (ValueError, KeyError, TypeError):
                return reply(400, {"error": "send {\"title\": ..., \"starts_at\": ...}"})
            added = await query(
                db, "INSERT INTO shows (title, starts_at) VALUES (?, ?) RETURNING id", params
            )
            return reply(201, {"id": added[0][0]})
    return reply(405, {"error": "use GET or POST"})


async def like(show_id: str) -> Response:
    with await key_value.open_default() as store:
        key = f"likes-{show_id}"
        likes = int(await store.get(key) or b"0") + 1
        await store.set(key, str(likes).encode())
    return reply(200, {"show": show_id, "likes": likes})


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        path = request.uri.split("?")[0].rstrip("/")
        parts = path.split("/")[2:]
        if not parts:
            return await shows(request)
        if parts == ["venue"] and request.method == "GET":
            return reply(200, {"venue": await variables.get("venue")})
        if len(parts) == 2 and parts[1] == "likes" and request.method == "POST":
            return await like(parts[0])
        return reply(404, {"error": "not found"})
