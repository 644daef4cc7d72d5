//! The data tier through spin-sdk 5's synchronous interfaces (`fermyon:spin/*@2.0.0`), in a p2
//! component. A small HTTP API over it, used by the end-to-end tests:
//!
//! Paths below are the route's wildcard part (`spin-path-info`).
//!
//! - `GET|PUT|DELETE /kv/<label>/<key>`, `GET /kv/<label>` (keys, one per line);
//! - `POST /sql/<label>` with a statement as the body (columns, then one row per line);
//! - `GET /sql-roundtrip/<label>`: stores extreme values of every type and reads them back;
//! - `GET /var/<name>`;
//! - `GET /fetch/<host[:port]>/<path>`: an outbound `http://` request, answered with its
//!   status and body;
//! - `GET /ping`: answers `pong` and touches no data (the benchmark's same-guest baseline).
//!
//! Failures answer 500 with `error: <the interface's error>`.

use spin_sdk::http::{IncomingRequest, IntoResponse, Method, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use spin_sdk::sqlite::{Connection, Value};

fn reply(status: u16, body: impl Into<String>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.into())
        .build()
}

fn failure(error: impl std::fmt::Debug) -> Response {
    reply(500, format!("error: {error:?}"))
}

#[http_component]
async fn handle(req: IncomingRequest) -> anyhow::Result<impl IntoResponse> {
    let method = req.method();
    // The route's wildcard part: the API is the same wherever the app mounts the component.
    let path = req
        .headers()
        .get("spin-path-info")
        .first()
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .unwrap_or_default();
    let body = req.into_body().await?;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Ok(match segments.as_slice() {
        ["kv", label] => match Store::open(label).and_then(|s| s.get_keys()) {
            Ok(keys) => reply(200, keys.join("\n")),
            Err(e) => failure(e),
        },
        ["kv", label, key] => {
            let store = match Store::open(label) {
                Ok(store) => store,
                Err(e) => return Ok(failure(e)),
            };
            let result = match method {
                Method::Get => store.get(key).map(|v| match v {
                    Some(value) => reply(200, String::from_utf8_lossy(&value).into_owned()),
                    None => reply(404, "no such key"),
                }),
                Method::Put => store.set(key, &body).map(|()| reply(200, "ok")),
                Method::Delete => store.delete(key).map(|()| reply(200, "ok")),
                _ => Ok(reply(405, "method not allowed")),
            };
            result.unwrap_or_else(failure)
        }
        ["sql", label] => {
            // Each line is one statement, run in order on one connection; the last one answers.
            let statements = String::from_utf8_lossy(&body).into_owned();
            let run = |connection: Connection| {
                let mut last = None;
                for statement in statements.lines().filter(|line| !line.trim().is_empty()) {
                    last = Some(connection.execute(statement, &[])?);
                }
                Ok(last)
            };
            match Connection::open(label).and_then(run) {
                Ok(last) => {
                    let mut lines = Vec::new();
                    if let Some(result) = last {
                        lines.push(result.columns.join(","));
                        lines.extend(result.rows.iter().map(|row| format!("{:?}", row.values)));
                    }
                    reply(200, lines.join("\n"))
                }
                Err(e) => failure(e),
            }
        }
        ["sql-roundtrip", label] => {
            let values = vec![
                Value::Integer(i64::MIN),
                Value::Integer(i64::MAX),
                Value::Real(-1.5e300),
                Value::Text("nul\0 and emoji 🦀".into()),
                Value::Blob(vec![0, 1, 254, 255]),
                Value::Null,
            ];
            let check = || -> Result<bool, spin_sdk::sqlite::Error> {
                let db = Connection::open(label)?;
                db.execute(
                    "CREATE TABLE IF NOT EXISTS roundtrip (a, b, c, d, e, f)",
                    &[],
                )?;
                db.execute("DELETE FROM roundtrip", &[])?;
                db.execute("INSERT INTO roundtrip VALUES (?, ?, ?, ?, ?, ?)", &values)?;
                let read = db.execute("SELECT a, b, c, d, e, f FROM roundtrip", &[])?;
                Ok(read.rows.len() == 1
                    && format!("{:?}", read.rows[0].values) == format!("{values:?}"))
            };
            match check() {
                Ok(true) => reply(200, "round trip exact"),
                Ok(false) => reply(500, "round trip changed a value"),
                Err(e) => failure(e),
            }
        }
        ["fetch", host, rest @ ..] => {
            let url = format!("http://{host}/{}", rest.join("/"));
            let request = spin_sdk::http::Request::get(url).build();
            match spin_sdk::http::send::<_, Response>(request).await {
                Ok(response) => reply(
                    200,
                    format!(
                        "{} {}",
                        response.status(),
                        String::from_utf8_lossy(response.body())
                    ),
                ),
                Err(e) => failure(e),
            }
        }
        ["var", name] => match spin_sdk::variables::get(name) {
            Ok(value) => reply(200, value),
            Err(e) => failure(e),
        },
        ["ping"] => reply(200, "pong"),
        _ => reply(404, "unknown route"),
    })
}
