//! The smallest `wasi:http/incoming-handler@0.2.x` (p2) component: answers `Hello, world!`.
//! The benchmarks serve it with ledge and with `wasmtime serve`, so both run the same guest.
//! Built for `wasm32-unknown-unknown` instead, it is a core module carrying a `component-type`
//! section, which the tests use to prove ledge componentizes such modules at load time.

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(Hello);

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let stream = body.write().expect("the stream is taken once");
        stream
            .blocking_write_and_flush(b"Hello, world!\n")
            .expect("the client is reading");
        drop(stream);
        OutgoingBody::finish(body, None).expect("the body is complete");
    }
}
