//! The data tier through spin-sdk 7's asynchronous interfaces (`spin:key-value@3.0.0`,
//! `spin:sqlite@3.1.0`, `spin:variables@3.0.0`), in a p3 component. The same HTTP API as
//! `data-p2` (including `/fetch`), so the end-to-end tests run one suite against both.

use spin_sdk::http::{FullBody, IntoResponse, Method, Request};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;
use spin_sdk::sqlite::{Connection, Value};

/// What every handler here answers.
type Response = spin_sdk::http::Response<FullBody<bytes::Bytes>>;

fn reply(status: u16, body: impl Into<String>) -> Response {
    spin_sdk::http::Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(FullBody::new(bytes::Bytes::from(body.into())))
        .unwrap()
}

fn failure(error: impl std::fmt::Debug) -> Response {
    reply(500, format!("error: {error:?}"))
}

async fn handle_kv(method: &Method, label: &str, key: Option<&str>, body: Vec<u8>) -> Response {
    let store = match Store::open(label).await {
        Ok(store) => store,
        Err(e) => return failure(e),
    };
    let Some(key) = key else {
        return match store.get_keys().await.collect().await {
            Ok(keys) => reply(200, keys.join("\n")),
            Err(e) => failure(e),
        };
    };
    let result = match *method {
        Method::GET => store.get(key).await.map(|v| match v {
            Some(value) => reply(200, String::from_utf8_lossy(&value).into_owned()),
            None => reply(404, "no such key"),
        }),
        Method::PUT => store.set(key, &body).await.map(|()| reply(200, "ok")),
        Method::DELETE => store.delete(key).await.map(|()| reply(200, "ok")),
        _ => Ok(reply(405, "method not allowed")),
    };
    result.unwrap_or_else(failure)
}

/// Runs each line of `statements` in order on one connection; answers with the last result.
async fn handle_sql(label: &str, statements: String) -> Response {
    let db = match Connection::open(label).await {
        Ok(db) => db,
        Err(e) => return failure(e),
    };
    let mut lines = Vec::new();
    for statement in statements.lines().filter(|line| !line.trim().is_empty()) {
        let result = match db.execute(statement.to_owned(), []).await {
            Ok(result) => result,
            Err(e) => return failure(e),
        };
        lines = vec![result.columns().join(",")];
        match result.collect().await {
            Ok(rows) => lines.extend(rows.iter().map(|row| format!("{:?}", row.values))),
            Err(e) => return failure(e),
        }
    }
    reply(200, lines.join("\n"))
}

async fn roundtrip(label: &str) -> Response {
    let values = vec![
        Value::Integer(i64::MIN),
        Value::Integer(i64::MAX),
        Value::Real(-1.5e300),
        Value::Text("nul\0 and emoji 🦀".into()),
        Value::Blob(vec![0, 1, 254, 255]),
        Value::Null,
    ];
    let check = async || -> Result<bool, spin_sdk::sqlite::Error> {
        let db = Connection::open(label).await?;
        db.execute(
            "CREATE TABLE IF NOT EXISTS roundtrip (a, b, c, d, e, f)",
            [],
        )
        .await?
        .collect()
        .await?;
        db.execute("DELETE FROM roundtrip", [])
            .await?
            .collect()
            .await?;
        db.execute(
            "INSERT INTO roundtrip VALUES (?, ?, ?, ?, ?, ?)",
            values.clone(),
        )
        .await?
        .collect()
        .await?;
        let rows = db
            .execute("SELECT a, b, c, d, e, f FROM roundtrip", [])
            .await?
            .collect()
            .await?;
        Ok(rows.len() == 1 && format!("{:?}", rows[0].values) == format!("{values:?}"))
    };
    match check().await {
        Ok(true) => reply(200, "round trip exact"),
        Ok(false) => reply(500, "round trip changed a value"),
        Err(e) => failure(e),
    }
}

/// An outbound GET through `wasi:http/client@0.3.0`, answered with its status and body.
async fn fetch(url: &str) -> Response {
    let request = match spin_sdk::http::Request::get(url).body(spin_sdk::http::EmptyBody::new()) {
        Ok(request) => request,
        Err(e) => return failure(e),
    };
    match spin_sdk::http::send(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            match spin_sdk::http::body::IncomingBodyExt::bytes(response.into_body()).await {
                Ok(body) => reply(200, format!("{status} {}", String::from_utf8_lossy(&body))),
                Err(e) => failure(e),
            }
        }
        Err(e) => failure(e),
    }
}

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let method = req.method().clone();
    // The route's wildcard part: the API is the same wherever the app mounts the component.
    let path = req
        .headers()
        .get("spin-path-info")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = match spin_sdk::http::body::IncomingBodyExt::bytes(req.into_body()).await {
        Ok(bytes) => bytes.to_vec(),
        Err(e) => return failure(e),
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["kv", label] => handle_kv(&method, label, None, body).await,
        ["kv", label, key] => handle_kv(&method, label, Some(key), body).await,
        ["sql", label] => handle_sql(label, String::from_utf8_lossy(&body).into_owned()).await,
        ["sql-roundtrip", label] => roundtrip(label).await,
        ["fetch", host, rest @ ..] => fetch(&format!("http://{host}/{}", rest.join("/"))).await,
        ["var", name] => match spin_sdk::variables::get(name).await {
            Ok(value) => reply(200, value),
            Err(e) => failure(e),
        },
        _ => reply(404, "unknown route"),
    }
}
