//! The data tier through spin-sdk 7's asynchronous interfaces (`spin:key-value@3.0.0`,
//! `spin:sqlite@3.1.0`, `spin:variables@3.0.0`), in a p3 component. The same HTTP API as
//! `data-p2` (including `/fetch`), so the end-to-end tests run one suite against both. Beside
//! it: `POST /pg/<open|builder>` (script lines, `pg-address` header), `GET /pg-types` and
//! `GET /pg-orders` (every order of consuming `query-async`'s rows and result), and the same
//! for MySQL: `POST /mysql` (`mysql-address` header), `GET /mysql-types`, `GET /mysql-orders`.

/// Consumes a query's row stream and result future in every order spin-sdk 7 allows, on
/// `$db` (a `pg` or `mysql` connection whose table `orders` holds the rows 1, 2 and 3); the
/// caller has that module's `Decode` in scope and returns its `Error`.
macro_rules! every_consumption_order {
    ($db:expr) => {{
        let select = "SELECT n FROM orders ORDER BY n";
        let mut seen = Vec::new();
        // The result first, rows never read.
        $db.query(select, []).await?.result().await?;
        seen.push("result-only".to_string());
        // Rows one by one, then the result.
        let mut result = $db.query(select, []).await?;
        let mut read = 0;
        while result.next().await.is_some() {
            read += 1;
        }
        result.result().await?;
        seen.push(format!("stream-then-result {read}"));
        // The result future before any row, then the rows.
        let (_, rows, done) = $db.query(select, []).await?.into_inner();
        done.await?;
        seen.push(format!("result-then-stream {}", rows.collect().await.len()));
        // One row of three, then the result.
        let mut result = $db.query(select, []).await?;
        let first = result.next().await.map(|row| format!("{:?}", row[0]));
        result.result().await?;
        seen.push(format!("halfway {}", first.unwrap_or_default()));
        // The stream dropped unread, then the result.
        let (_, rows, done) = $db.query(select, []).await?.into_inner();
        drop(rows);
        done.await?;
        seen.push("stream-dropped".to_string());
        // Both dropped; the connection goes on.
        drop($db.query(select, []).await?);
        let all = $db.query("SELECT count(*) FROM orders", []).await?.collect().await?;
        seen.push(format!("both-dropped {:?}", i64::decode(&all[0][0])?));
        Ok(seen.join("\n"))
    }};
}

mod mysql;
mod pg;

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
/// Two lines are not SQL: `!sleep <ms>` waits, `!trap` panics (the instance traps) with the
/// connection still open.
async fn handle_sql(label: &str, statements: String) -> Response {
    let db = match Connection::open(label).await {
        Ok(db) => db,
        Err(e) => return failure(e),
    };
    let mut lines = Vec::new();
    for statement in statements.lines().filter(|line| !line.trim().is_empty()) {
        if let Some(ms) = statement.strip_prefix("!sleep ") {
            spin_sdk::time::sleep(std::time::Duration::from_millis(ms.parse().unwrap())).await;
            continue;
        }
        if statement == "!trap" {
            panic!("trapped on purpose, inside whatever transaction the connection has open");
        }
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

/// Consumes `execute`'s row stream and result future in every order spin-sdk 7 allows, on one
/// connection; answers with what each order saw.
async fn sql_consumption_orders(label: &str) -> Result<String, spin_sdk::sqlite::Error> {
    let db = Connection::open(label).await?;
    let select = "SELECT n FROM orders ORDER BY n";
    // The result first, the rows never read: how spin-sdk's docs run DDL and writes.
    db.execute("CREATE TABLE IF NOT EXISTS orders (n INTEGER)", [])
        .await?
        .result()
        .await?;
    db.execute("DELETE FROM orders", []).await?.result().await?;
    db.execute("INSERT INTO orders VALUES (1), (2), (3)", [])
        .await?
        .result()
        .await?;
    let mut seen = Vec::new();
    // Rows one by one, then the result (the SDK's streaming example).
    let mut rows = db.execute(select, []).await?;
    let mut read = Vec::new();
    while let Some(row) = rows.next().await {
        read.push(format!("{:?}", row.values));
    }
    rows.result().await?;
    seen.push(format!("stream-then-result {}", read.len()));
    // The result future awaited before any row is read, then the rows.
    let (_, rows, result) = db.execute(select, []).await?.into_inner();
    result.await?;
    seen.push(format!("result-then-stream {}", rows.collect().await.len()));
    // One row of three, then the result.
    let mut rows = db.execute(select, []).await?;
    let first = rows.next().await.map(|row| format!("{:?}", row.values));
    rows.result().await?;
    seen.push(format!("halfway {}", first.unwrap_or_default()));
    // The stream dropped unread, then the result.
    let (_, rows, result) = db.execute(select, []).await?.into_inner();
    drop(rows);
    result.await?;
    seen.push("stream-dropped".into());
    // Both dropped; the connection goes on.
    drop(db.execute(select, []).await?);
    let after = db
        .execute("SELECT count(*) FROM orders", [])
        .await?
        .collect()
        .await?;
    seen.push(format!("both-dropped {:?}", after[0].values));
    Ok(seen.join("\n"))
}

/// The same orders for `get-keys`' stream and result future.
async fn kv_consumption_orders(label: &str) -> Result<String, spin_sdk::key_value::Error> {
    let store = Store::open(label).await?;
    let mut seen = Vec::new();
    let mut keys = store.get_keys().await;
    let mut read = 0;
    while keys.next().await.is_some() {
        read += 1;
    }
    keys.result().await?;
    seen.push(format!("stream-then-result {read}"));
    let (keys, result) = store.get_keys().await.into_inner();
    result.await?;
    seen.push(format!("result-then-stream {}", keys.collect().await.len()));
    let mut keys = store.get_keys().await;
    let first = keys.next().await;
    keys.result().await?;
    seen.push(format!("halfway {}", first.unwrap_or_default()));
    let (keys, result) = store.get_keys().await.into_inner();
    drop(keys);
    result.await?;
    seen.push("stream-dropped".into());
    drop(store.get_keys().await);
    seen.push(format!(
        "both-dropped {}",
        store.get_keys().await.collect().await?.len()
    ));
    Ok(seen.join("\n"))
}

/// Runs the calls of `script` (one per line: `get k`, `set k v`, `incr k`, `del k..`,
/// `sadd k v..`, `smembers k`, `srem k v..`, `publish channel message`, `execute COMMAND arg..`)
/// on one connection to `redis://<address>`; one answer line per call.
async fn redis_script(address: &str, script: &str) -> Result<Vec<String>, spin_sdk::redis::Error> {
    use spin_sdk::redis::{Connection, RedisParameter, RedisResult};
    let connection = Connection::open(format!("redis://{address}")).await?;
    let mut lines = Vec::new();
    for line in script.lines().filter(|line| !line.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        lines.push(match words[0] {
            "publish" => format!("{:?}", connection.publish(words[1], words[2]).await?),
            "get" => format!(
                "{:?}",
                connection
                    .get(words[1])
                    .await?
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
            ),
            "set" => format!("{:?}", connection.set(words[1], words[2]).await?),
            "incr" => connection.incr(words[1]).await?.to_string(),
            "del" => connection.del(&words[1..]).await?.to_string(),
            "sadd" => connection.sadd(words[1], &words[2..]).await?.to_string(),
            "srem" => connection.srem(words[1], &words[2..]).await?.to_string(),
            "smembers" => {
                let mut members = connection.smembers(words[1]).await?;
                members.sort();
                members.join(",")
            }
            "execute" => {
                let arguments = words[2..].iter().map(|word| match word.parse() {
                    Ok(number) => RedisParameter::Int64(number),
                    Err(_) => RedisParameter::Binary(word.as_bytes().to_vec()),
                });
                let results = connection.execute(words[1], arguments).await?;
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

/// Sends `message` over a `wasi:sockets@0.3.0` TCP socket to `address` (`host:port`, the host
/// looked up through `ip-name-lookup`) and reads the answer until the peer closes.
async fn tcp_round_trip(address: &str, message: Vec<u8>) -> Result<Vec<u8>, String> {
    use wasip3::sockets::types::{
        IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
        TcpSocket,
    };
    let (host, port) = address.rsplit_once(':').ok_or("the address has no port")?;
    let port: u16 = port.parse().map_err(|_| format!("bad port `{port}`"))?;
    let addresses = wasip3::sockets::ip_name_lookup::resolve_addresses(host.to_string())
        .await
        .map_err(|e| format!("{e:?}"))?;
    // Like `std::net::TcpStream::connect`: each address in turn, the last error if none works.
    let mut last_error = String::from("no address");
    let mut connected = None;
    for address in addresses {
        let (family, remote) = match address {
            IpAddress::Ipv4(address) => (
                IpAddressFamily::Ipv4,
                IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address }),
            ),
            IpAddress::Ipv6(address) => (
                IpAddressFamily::Ipv6,
                IpSocketAddress::Ipv6(Ipv6SocketAddress {
                    port,
                    flow_info: 0,
                    address,
                    scope_id: 0,
                }),
            ),
        };
        let socket = TcpSocket::create(family).map_err(|e| format!("{e:?}"))?;
        match socket.connect(remote).await {
            Ok(()) => {
                connected = Some(socket);
                break;
            }
            Err(e) => last_error = format!("{e:?}"),
        }
    }
    let socket = connected.ok_or(last_error)?;
    let (mut outgoing, outgoing_reader) = wasip3::wit_stream::new::<u8>();
    let sent = socket.send(outgoing_reader);
    outgoing.write_all(message).await;
    drop(outgoing);
    sent.await.map_err(|e| format!("{e:?}"))?;
    let (incoming, received) = socket.receive();
    let answer = incoming.collect().await;
    received.await.map_err(|e| format!("{e:?}"))?;
    Ok(answer)
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
    let pg_address = req
        .headers()
        .get("pg-address")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mysql_address = req
        .headers()
        .get("mysql-address")
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
        ["mqtt", address, topic, qos] => {
            use spin_sdk::mqtt::{Connection, Qos};
            let qos = match *qos {
                "0" => Qos::AtMostOnce,
                "1" => Qos::AtLeastOnce,
                _ => Qos::ExactlyOnce,
            };
            let published = async {
                let connection = Connection::open(format!("mqtt://{address}"), "", "", 30).await?;
                connection.publish(topic, body, qos).await
            };
            match published.await {
                Ok(()) => reply(200, "published"),
                Err(e) => failure(e),
            }
        }
        ["redis", address] => match redis_script(address, &String::from_utf8_lossy(&body)).await {
            Ok(lines) => reply(200, lines.join("\n")),
            Err(e) => failure(e),
        },
        ["sql-orders", label] => match sql_consumption_orders(label).await {
            Ok(seen) => reply(200, seen),
            Err(e) => failure(e),
        },
        ["kv-orders", label] => match kv_consumption_orders(label).await {
            Ok(seen) => reply(200, seen),
            Err(e) => failure(e),
        },
        ["fetch", host, rest @ ..] => fetch(&format!("http://{host}/{}", rest.join("/"))).await,
        ["pg", how] => {
            let script = String::from_utf8_lossy(&body);
            match pg::script(&pg_address, *how == "builder", &script).await {
                Ok(lines) => reply(200, lines.join("\n")),
                Err(e) => failure(e),
            }
        }
        ["pg-types"] => match pg::round_trip(&pg_address).await {
            Ok(answer) => reply(200, answer),
            Err(e) => failure(e),
        },
        ["pg-orders"] => match pg::consumption_orders(&pg_address).await {
            Ok(answer) => reply(200, answer),
            Err(e) => failure(e),
        },
        ["mysql"] => match mysql::script(&mysql_address, &String::from_utf8_lossy(&body)).await {
            Ok(lines) => reply(200, lines.join("\n")),
            Err(e) => failure(e),
        },
        ["mysql-types"] => match mysql::round_trip(&mysql_address).await {
            Ok(answer) => reply(200, answer),
            Err(e) => failure(e),
        },
        ["mysql-orders"] => match mysql::consumption_orders(&mysql_address).await {
            Ok(answer) => reply(200, answer),
            Err(e) => failure(e),
        },
        ["tcp", address] => match tcp_round_trip(address, body).await {
            Ok(echoed) => reply(200, String::from_utf8_lossy(&echoed).into_owned()),
            Err(e) => reply(500, format!("error: {e}")),
        },
        ["var", name] => match spin_sdk::variables::get(name).await {
            Ok(value) => reply(200, value),
            Err(e) => failure(e),
        },
        _ => reply(404, "unknown route"),
    }
}
