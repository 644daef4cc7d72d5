//! A core wasm module (built for `wasm32-unknown-unknown`) that exports
//! `wasi:http/incoming-handler` through its `component-type` section. ledge componentizes it at
//! load time, so it runs like any other p2 component.

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(CoreModule);

struct CoreModule;

impl wasip2::exports::http::incoming_handler::Guest for CoreModule {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let stream = body.write().expect("the stream is taken once");
        stream
            .blocking_write_and_flush(b"hello from a componentized core module\n")
            .expect("the client is reading");
        drop(stream);
        OutgoingBody::finish(body, None).expect("the body is complete");
    }
}
