"""An HTTP function in Python (Spin's Python SDK, built with componentize-py: see build.sh)."""

import json

from spin_sdk import http, sqlite
from spin_sdk.http import Request, Response
from spin_sdk.sqlite import Value_Text


async def execute(db: sqlite.Connection, statement: str, params: list) -> list:
    """Runs `statement` and answers its rows (raising the error it ended with, if any)."""
    _columns, rows, result = await db.execute(statement, params)
    values = []
    with rows:
        while not rows.writer_dropped:
            values += [[value.value for value in row.values] for row in await rows.read(64)]
    await result.read()
    return values


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        path = request.headers.get("spin-path-info", "/")
        with await sqlite.Connection.open_default() as db:
            await execute(db, "CREATE TABLE IF NOT EXISTS visits (path TEXT NOT NULL)", [])
            await execute(db, "INSERT INTO visits (path) VALUES (?)", [Value_Text(path)])
            visits = (await execute(db, "SELECT count(*) FROM visits", []))[0][0]
        body = {"hello": "from Python", "path": path, "visits": visits}
        return Response(200, {"content-type": "application/json"}, bytes(json.dumps(body), "utf-8"))
