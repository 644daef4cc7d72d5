//! The data tier through spin-sdk 5's synchronous interfaces (`fermyon:spin/*@2.0.0`), in a p2
//! component. A small HTTP API over it, used by the end-to-end tests:
//!
//! Paths below are the route's wildcard part (`spin-path-info`).
//!
//! - `GET|PUT|DELETE /kv/<label>/<key>`, `GET /kv/<label>` (keys, one per line);
//! - `POST /sql/<label>` with statements as the body, one per line, run on one connection
//!   (the last one's columns, then one row per line); `!sleep <ms>` and `!trap` lines wait
//!   and panic;
//! - `POST /sql3/<label>`: the same through `spin:sqlite/sqlite@3.0.0` (spin-sdk's `sqlite3`),
//!   answering the last result, then `rowid=<last-insert-rowid> changes=<changes>`;
//! - `GET /sql-roundtrip/<label>`: stores extreme values of every type and reads them back;
//! - `GET /var/<name>`;
//! - `GET /llm/<model>`: infers with `model` (answers the result, or the interface's error);
//! - `POST /mqtt/<host:port>/<topic>/<qos 0|1|2>`: publishes the body on one connection;
//! - `POST /redis/<host:port>` with Redis calls as the body, one per line (`get k`, `set k v`,
//!   `incr k`, `del k..`, `sadd k v..`, `smembers k`, `srem k v..`, `publish channel message`,
//!   `execute COMMAND arg..`), on one connection; answers one line per call;
//! - `GET /fetch/<host[:port]>/<path>`: an outbound `http://` request, answered with its
//!   status and body;
//! - `POST /tcp/<host:port>`: connects with `std::net::TcpStream` (a name is looked up through
//!   `wasi:sockets/ip-name-lookup`), sends the body, shuts down its write side and answers
//!   what came back;
//! - `POST /udp/<host:port>`: sends the body as one datagram from `std::net::UdpSocket` and
//!   answers the reply datagram;
//! - `POST /pg/<v2|v3|v4>` with the connection string in a `pg-address` header and
//!   `query <SQL>` / `execute <SQL>` lines as the body, through spin-sdk's `pg`, `pg3` or `pg4`;
//!   answers one line per statement;
//! - `GET /pg-types` (`pg-address` header): every `pg4` type bound and read back;
//! - `POST /mysql` with the address in a `mysql-address` header and `query <SQL>` /
//!   `execute <SQL>` lines as the body, through spin-sdk's `mysql`; `GET /mysql-types`: every
//!   parameter type bound and read back;
//! - `GET /ping`: answers `pong` and touches no data (the benchmark's same-guest baseline).
//!
//! Failures answer 500 with `error: <the interface's error>`.

mod mysql;
mod pg;

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
    let pg_address = req
        .headers()
        .get("pg-address")
        .first()
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .unwrap_or_default();
    let mysql_address = req
        .headers()
        .get("mysql-address")
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
            // `!sleep <ms>` waits and `!trap` panics with the connection open.
            let statements = String::from_utf8_lossy(&body).into_owned();
            let run = |connection: Connection| {
                let mut last = None;
                for statement in statements.lines().filter(|line| !line.trim().is_empty()) {
                    if let Some(ms) = statement.strip_prefix("!sleep ") {
                        std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap()));
                        continue;
                    }
                    if statement == "!trap" {
                        panic!("trapped on purpose, inside whatever transaction is open");
                    }
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
        ["sql3", label] => match sqlite3_script(label, &String::from_utf8_lossy(&body)) {
            Ok(lines) => reply(200, lines.join("\n")),
            Err(e) => failure(e),
        },
        ["llm", model] => {
            use spin_sdk::llm::{InferencingModel, infer};
            match infer(InferencingModel::Other(model), "Say hello") {
                Ok(result) => reply(200, result.text),
                Err(e) => failure(e),
            }
        }
        ["mqtt", address, topic, qos] => {
            use spin_sdk::mqtt::{Connection, Qos};
            let qos = match *qos {
                "0" => Qos::AtMostOnce,
                "1" => Qos::AtLeastOnce,
                _ => Qos::ExactlyOnce,
            };
            match Connection::open(&format!("mqtt://{address}"), "", "", 30)
                .and_then(|connection| connection.publish(topic, &body, qos))
            {
                Ok(()) => reply(200, "published"),
                Err(e) => failure(e),
            }
        }
        ["redis", address] => match redis_script(address, &String::from_utf8_lossy(&body)) {
            Ok(lines) => reply(200, lines.join("\n")),
            Err(e) => failure(e),
        },
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
        ["pg", version] => {
            let script = String::from_utf8_lossy(&body);
            let ran = match *version {
                "v2" => pg::script_v2(&pg_address, &script),
                "v3" => pg::script_v3(&pg_address, &script),
                _ => pg::script_v4(&pg_address, &script),
            };
            match ran {
                Ok(lines) => reply(200, lines.join("\n")),
                Err(e) => reply(500, format!("error: {e}")),
            }
        }
        ["pg-types"] => match pg::round_trip(&pg_address) {
            Ok(answer) => reply(200, answer),
            Err(e) => reply(500, format!("error: {e}")),
        },
        ["mysql"] => match mysql::script(&mysql_address, &String::from_utf8_lossy(&body)) {
            Ok(lines) => reply(200, lines.join("\n")),
            Err(e) => reply(500, format!("error: {e}")),
        },
        ["mysql-types"] => match mysql::round_trip(&mysql_address) {
            Ok(answer) => reply(200, answer),
            Err(e) => reply(500, format!("error: {e}")),
        },
        ["tcp", address] => match tcp_round_trip(address, &body) {
            Ok(echoed) => reply(200, String::from_utf8_lossy(&echoed).into_owned()),
            Err(e) => reply(500, format!("error: {:?}: {e}", e.kind())),
        },
        ["udp", address] => match udp_round_trip(address, &body) {
            Ok(echoed) => reply(200, String::from_utf8_lossy(&echoed).into_owned()),
            Err(e) => reply(500, format!("error: {:?}: {e}", e.kind())),
        },
        ["ping"] => reply(200, "pong"),
        _ => reply(404, "unknown route"),
    })
}

/// Runs the calls of `script` on one connection to `redis://<address>`.
fn redis_script(address: &str, script: &str) -> Result<Vec<String>, spin_sdk::redis::Error> {
    use spin_sdk::redis::{Connection, RedisParameter, RedisResult};
    let connection = Connection::open(&format!("redis://{address}"))?;
    let mut lines = Vec::new();
    for line in script.lines().filter(|line| !line.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let rest =
            |from: usize| -> Vec<String> { words[from..].iter().map(|w| w.to_string()).collect() };
        lines.push(match words[0] {
            "publish" => format!(
                "{:?}",
                connection.publish(words[1], words[2].as_bytes())?
            ),
            "get" => format!(
                "{:?}",
                connection
                    .get(words[1])?
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
            ),
            "set" => format!(
                "{:?}",
                connection.set(words[1], words[2].as_bytes())?
            ),
            "incr" => connection.incr(words[1])?.to_string(),
            "del" => connection.del(&rest(1))?.to_string(),
            "sadd" => connection.sadd(words[1], &rest(2))?.to_string(),
            "srem" => connection.srem(words[1], &rest(2))?.to_string(),
            "smembers" => {
                let mut members = connection.smembers(words[1])?;
                members.sort();
                members.join(",")
            }
            "execute" => {
                let arguments: Vec<RedisParameter> = words[2..]
                    .iter()
                    .map(|word| match word.parse() {
                        Ok(number) => RedisParameter::Int64(number),
                        Err(_) => RedisParameter::Binary(word.as_bytes().to_vec()),
                    })
                    .collect();
                let results = connection.execute(words[1], &arguments)?;
                let shown: Vec<String> = results
                    .iter()
                    .map(|result| match result {
                        RedisResult::Nil => "nil".to_string(),
                        RedisResult::Status(status) => format!("status {status}"),
                        RedisResult::Int64(number) => format!("int {number}"),
                        RedisResult::Binary(bytes) => {
                            format!("bytes {}", String::from_utf8_lossy(bytes))
                        }
                    })
                    .collect();
                shown.join(",")
            }
            other => format!("unknown call {other}"),
        });
    }
    Ok(lines)
}

/// Runs each line of `script` on one `spin:sqlite/sqlite@3.0.0` connection.
fn sqlite3_script(label: &str, script: &str) -> Result<Vec<String>, spin_sdk::sqlite3::Error> {
    let connection = spin_sdk::sqlite3::Connection::open(label)?;
    let mut lines = Vec::new();
    for statement in script.lines().filter(|line| !line.trim().is_empty()) {
        let result = connection.execute(statement, &[])?;
        lines = vec![result.columns.join(",")];
        lines.extend(result.rows.iter().map(|row| format!("{:?}", row.values)));
    }
    lines.push(format!(
        "rowid={} changes={}",
        connection.last_insert_rowid(),
        connection.changes()
    ));
    Ok(lines)
}

/// Sends `message` over TCP to `address` and reads the answer until the peer closes.
fn tcp_round_trip(address: &str, message: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.write_all(message)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(answer)
}

/// Sends `message` as one UDP datagram to `address` and waits for one back.
fn udp_round_trip(address: &str, message: &[u8]) -> std::io::Result<Vec<u8>> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
    socket.send_to(message, address)?;
    let mut answer = vec![0; 65536];
    let (length, _) = socket.recv_from(&mut answer)?;
    answer.truncate(length);
    Ok(answer)
}
