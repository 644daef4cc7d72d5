"""An HTTP function in Python (Spin's Python SDK, built with componentize-py: see build.sh)."""

import json

from spin_sdk import http, sqlite, util
from spin_sdk.http import Request, Response
from spin_sdk.sqlite import Value_Text


async def execute(db: sqlite.Connection, statement: str, params: list) -> list:
    """Runs `statement` and answers its rows' values, raising the error it ended with."""
    _columns, rows, result = await db.execute(statement, params)
    return [[value.value for value in row.values] for row in await util.collect((rows, result))]


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        path = request.headers.get("spin-path-info", "/")
        with await sqlite.Connection.open_default() as db:
            await execute(db, "CREATE TABLE IF NOT EXISTS visits (path TEXT NOT NULL)", [])
            await execute(db, "INSERT INTO visits (path) VALUES (?)", [Value_Text(path)])
            visits = (await execute(db, "SELECT count(*) FROM visits", []))[0][0]
        body = {"hello": "from Python", "path": path, "visits": visits}
        return Response(200, {"content-type": "application/json"}, bytes(json.dumps(body), "utf-8"))
