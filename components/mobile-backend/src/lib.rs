//! The sample app's mobile backend (spin-sdk 7, p3): a JSON API over the data tier.
//!
//! - `GET /tickets`, `POST /tickets` (`{"show": 1, "seat": "A1"}`), `GET /tickets/<id>`: tickets
//!   in the `default` key-value store;
//! - `GET /shows`, `GET /shows/<id>`: shows in the `default` SQLite database (created and seeded
//!   by `migrations/001_shows.sql`);
//! - `GET /info`: the app's variables.

use serde::{Deserialize, Serialize};
use spin_sdk::http::{FullBody, IntoResponse, Method, Request};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;
use spin_sdk::sqlite::{Connection, Value};

type Response = spin_sdk::http::Response<FullBody<bytes::Bytes>>;

fn json(status: u16, value: &impl Serialize) -> Response {
    spin_sdk::http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(FullBody::new(bytes::Bytes::from(
            serde_json::to_vec(value).unwrap_or_default(),
        )))
        .unwrap()
}

fn error(status: u16, message: impl std::fmt::Display) -> Response {
    json(status, &serde_json::json!({ "error": message.to_string() }))
}

#[derive(Serialize, Deserialize)]
struct Ticket {
    id: String,
    show: i64,
    seat: String,
}

#[derive(Deserialize)]
struct NewTicket {
    show: i64,
    seat: String,
}

async fn tickets(method: &Method, id: Option<&str>, body: &[u8]) -> Response {
    let store = match Store::open("default").await {
        Ok(store) => store,
        Err(e) => return error(500, format!("{e:?}")),
    };
    match (method, id) {
        (&Method::GET, None) => {
            let keys = match store.get_keys().await.collect().await {
                Ok(keys) => keys,
                Err(e) => return error(500, format!("{e:?}")),
            };
            let mut all = Vec::new();
            for key in keys.iter().filter(|k| k.starts_with("ticket:")) {
                if let Ok(Some(bytes)) = store.get(key).await
                    && let Ok(ticket) = serde_json::from_slice::<Ticket>(&bytes)
                {
                    all.push(ticket);
                }
            }
            json(200, &all)
        }
        (&Method::GET, Some(id)) => match store.get(format!("ticket:{id}")).await {
            Ok(Some(bytes)) => match serde_json::from_slice::<Ticket>(&bytes) {
                Ok(ticket) => json(200, &ticket),
                Err(e) => error(500, e),
            },
            Ok(None) => error(404, format!("no ticket {id}")),
            Err(e) => error(500, format!("{e:?}")),
        },
        (&Method::POST, None) => {
            let new: NewTicket = match serde_json::from_slice(body) {
                Ok(new) => new,
                Err(e) => {
                    return error(
                        400,
                        format!("expected {{\"show\": <id>, \"seat\": \"A1\"}}: {e}"),
                    );
                }
            };
            let id = format!("{}-{}", new.show, new.seat);
            let ticket = Ticket {
                id: id.clone(),
                show: new.show,
                seat: new.seat,
            };
            match store
                .set(
                    format!("ticket:{id}"),
                    serde_json::to_vec(&ticket).unwrap_or_default(),
                )
                .await
            {
                Ok(()) => json(201, &ticket),
                Err(e) => error(500, format!("{e:?}")),
            }
        }
        _ => error(405, "use GET or POST"),
    }
}

async fn shows(id: Option<&str>) -> Response {
    let db = match Connection::open("default").await {
        Ok(db) => db,
        Err(e) => return error(500, format!("{e:?}")),
    };
    let (statement, params) = match id.map(str::parse::<i64>) {
        None => (
            "SELECT id, title, starts_at FROM shows ORDER BY starts_at",
            vec![],
        ),
        Some(Ok(id)) => (
            "SELECT id, title, starts_at FROM shows WHERE id = ?",
            vec![Value::Integer(id)],
        ),
        Some(Err(_)) => return error(400, "a show id is a number"),
    };
    let rows = match db.execute(statement, params).await {
        Ok(result) => match result.collect().await {
            Ok(rows) => rows,
            Err(e) => return error(500, format!("{e:?}")),
        },
        Err(e) => return error(500, format!("{e:?}")),
    };
    let shows: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            serde_json::json!({
                "id": row.get::<i64>(0),
                "title": row.get::<&str>(1),
                "starts_at": row.get::<&str>(2),
            })
        })
        .collect();
    match (id, shows.first()) {
        (None, _) => json(200, &shows),
        (Some(_), Some(show)) => json(200, show),
        (Some(id), None) => error(404, format!("no show {id}")),
    }
}

async fn info() -> Response {
    let mut info = serde_json::Map::new();
    for name in ["app_name", "region"] {
        let value = spin_sdk::variables::get(name).await.unwrap_or_default();
        info.insert(name.to_string(), serde_json::Value::String(value));
    }
    json(200, &info)
}

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body = match spin_sdk::http::body::IncomingBodyExt::bytes(req.into_body()).await {
        Ok(bytes) => bytes.to_vec(),
        Err(e) => return error(400, e),
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["tickets"] => tickets(&method, None, &body).await,
        ["tickets", id] => tickets(&method, Some(id), &body).await,
        ["shows"] => shows(None).await,
        ["shows", id] => shows(Some(id)).await,
        ["info"] => info().await,
        _ => error(404, "try /tickets, /shows or /info"),
    }
}
