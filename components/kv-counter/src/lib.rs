//! A p2 guest written against `wasi:keyvalue@0.2.0-draft2` and `wasi:config/store`, not a Spin
//! SDK. Routes (the last path segments):
//!
//! - `POST /increment/<key>`: atomic increment of `<key>` in the `default` bucket, answers the
//!   new value;
//! - `POST /swap/<key>/<expected>/<new>`: compare-and-swap, answers `swapped` or `conflict`;
//! - `GET /get/<key>`: one `store.get`, answers the value (404 when there is none);
//! - `GET /many/<k1>,<k2>,...`: batch get, answers `key=value|<none>` lines;
//! - `GET /config/<name>`: `wasi:config/store.get`;
//! - `GET /unprovided`: calls an interface no host provides (the request fails, the host keeps
//!   serving).
//!
//! The query is not part of the key; `?cache-control=<value>` makes the response carry that
//! `Cache-Control` header (for the gateway's cache tests).

wit_bindgen::generate!({ path: "wit", world: "counter", generate_all });

use wasi::config::store as config;
use wasi::keyvalue::{atomics, batch, store};
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(Counter);

struct Counter;

impl wasip2::exports::http::incoming_handler::Guest for Counter {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (status, body) = match route(&segments) {
            Ok(Some(body)) => (200, body),
            Ok(None) => (404, "no such key".into()),
            Err(error) => (500, format!("error: {error}")),
        };
        let cache_control = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("cache-control="));
        respond(response_out, status, cache_control, body.as_bytes());
    }
}

/// Answers the body of the route, or `None` for a key that has no value.
fn route(segments: &[&str]) -> Result<Option<String>, String> {
    let bucket = || store::open("default").map_err(|e| format!("{e:?}"));
    let body = match segments {
        [.., "get", key] => {
            let value = bucket()?.get(key).map_err(|e| format!("{e:?}"))?;
            return Ok(value.map(|value| String::from_utf8_lossy(&value).into_owned()));
        }
        [.., "increment", key] => atomics::increment(&bucket()?, key, 1)
            .map(|value| value.to_string())
            .map_err(|e| format!("{e:?}")),
        [.., "swap", key, expected, new] => {
            let bucket = bucket()?;
            let cas = atomics::Cas::new(&bucket, key).map_err(|e| format!("{e:?}"))?;
            if cas.current().map_err(|e| format!("{e:?}"))?.as_deref() != Some(expected.as_bytes())
            {
                return Ok(Some("conflict".into()));
            }
            match atomics::swap(cas, new.as_bytes()) {
                Ok(()) => Ok("swapped".into()),
                Err(atomics::CasError::CasFailed(_)) => Ok("conflict".into()),
                Err(atomics::CasError::StoreError(e)) => Err(format!("{e:?}")),
            }
        }
        [.., "many", keys] => {
            let keys: Vec<String> = keys.split(',').map(str::to_owned).collect();
            let values = batch::get_many(&bucket()?, &keys).map_err(|e| format!("{e:?}"))?;
            Ok(values
                .into_iter()
                .map(|(key, value)| match value {
                    Some(value) => format!("{key}={}", String::from_utf8_lossy(&value)),
                    None => format!("{key}=<none>"),
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        [.., "unprovided"] => Ok(ledge::kv_counter::unprovided::ping()),
        [.., "config", name] => match config::get(name) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Ok("<none>".into()),
            Err(e) => Err(format!("{e:?}")),
        },
        _ => Err("unknown route".into()),
    };
    body.map(Some)
}

fn respond(out: ResponseOutparam, status: u16, cache_control: Option<&str>, body: &[u8]) {
    let headers = Fields::new();
    if let Some(value) = cache_control {
        headers
            .append("cache-control", value.as_bytes())
            .expect("a valid header");
    }
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status");
    let outgoing = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("the stream is taken once");
    for chunk in body.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .expect("the client is reading");
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("the body is complete");
}
