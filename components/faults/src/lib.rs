//! A p2 component written against the plain `wasi` bindings (the `wasip2` crate), used to prove
//! how the host behaves when a guest misbehaves and what a guest can see of its sandbox.
//!
//! The last path segment picks the behaviour: `trap` panics, `loop` never returns, `alloc`
//! allocates without bound, `log` writes to stdout and stderr, `env` reports an environment
//! variable and a mounted file, `write` tries to write into the read-only mount. Anything else
//! answers `ok`.

use std::io::Write as _;

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(Faults);

struct Faults;

impl wasip2::exports::http::incoming_handler::Guest for Faults {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default();
        let behaviour = path.rsplit('/').next().unwrap_or_default();
        let body = match behaviour {
            "trap" => panic!("the guest was asked to trap"),
            "loop" => loop {
                std::hint::black_box(());
            },
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(1500));
                "slept\n".to_string()
            }
            "log" => {
                println!("a line on stdout");
                eprintln!("a line on stderr");
                "logged\n".to_string()
            }
            "env" => {
                let greeting = std::env::var("GREETING").unwrap_or_else(|_| "<unset>".into());
                let file = std::fs::read_to_string("/data/message.txt")
                    .unwrap_or_else(|e| format!("<{e}>"));
                format!("GREETING={greeting}\nfile={file}")
            }
            "write" => match std::fs::write("/data/new.txt", b"x") {
                Ok(()) => "write succeeded\n".to_string(),
                Err(_) => "write refused\n".to_string(),
            },
            _ => "ok\n".to_string(),
        };
        respond(response_out, 200, body.as_bytes());
    }
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::new();
    headers
        .set("content-type", &[b"text/plain".to_vec()])
        .expect("a valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status");
    let outgoing = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().expect("the stream is taken once");
    stream.write_all(body).expect("the client is reading");
    stream.flush().expect("the client is reading");
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("the body is complete");
}
