//! A guest's response, held for a turn or two of the scheduler until its body has ended.
//!
//! A guest streams its body (always so for `wasi:http` p3), so hyper would write the head with
//! what is ready of the body, and the terminating chunk in a write of its own once the guest
//! ends the body, a poll later: two `writev` calls for a response the guest ended right away.
//! [`settle`] gives the guest up to [`TURNS`] turns to end a short body first; a body that
//! ends is sent whole, with a `content-length`, in one write. One that does not (a stream, or
//! a guest still working) goes out as it was, its frames read so far first: it waited only
//! those turns.

use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use http::Response;
use http_body_util::{BodyExt as _, BodyStream, Full, StreamBody};
use hyper::body::Body as _;
use wasmtime_wasi_http::WasiBody;

/// How many times a response waits for the guest's other tasks to run.
const TURNS: usize = 2;

/// The most body a response holds back while it waits for the end.
const MOST_HELD: usize = 64 * 1024;

/// `response`, its body whole if the guest ends it within [`TURNS`] turns.
pub(super) async fn settle(response: Response<WasiBody>) -> Response<WasiBody> {
    let body = response.body();
    if body.is_end_stream() || body.size_hint().exact().is_some() {
        return response;
    }
    let (parts, mut body) = response.into_parts();
    let (mut chunks, mut held) = (Vec::<Bytes>::new(), 0);
    let mut turns = TURNS;
    let next = loop {
        match body.frame().now_or_never() {
            Some(None) => {
                let whole = match chunks.len() {
                    1 => chunks.swap_remove(0),
                    _ => chunks.concat().into(),
                };
                let whole = Full::new(whole).map_err(|never| match never {});
                return Response::from_parts(parts, whole.boxed_unsync());
            }
            Some(Some(Ok(frame))) => match frame.into_data() {
                Ok(chunk) => {
                    held += chunk.len();
                    chunks.push(chunk);
                    if held > MOST_HELD {
                        break None;
                    }
                }
                Err(trailers) => break Some(Ok(trailers)),
            },
            Some(Some(Err(error))) => break Some(Err(error)),
            None if turns == 0 => break None,
            None => {
                turns -= 1;
                tokio::task::yield_now().await;
            }
        }
    };
    let read = chunks
        .into_iter()
        .map(|chunk| Ok(hyper::body::Frame::data(chunk)))
        .chain(next);
    let rest = futures::stream::iter(read).chain(BodyStream::new(body));
    Response::from_parts(parts, StreamBody::new(rest).boxed_unsync())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::mpsc;
    use hyper::body::Frame;

    /// A streamed guest body: the frames sent into the returned sender, until it is dropped.
    fn streamed() -> (mpsc::UnboundedSender<Bytes>, Response<WasiBody>) {
        let (sender, frames) = mpsc::unbounded::<Bytes>();
        let body = StreamBody::new(frames.map(|chunk| Ok(Frame::data(chunk))));
        (sender, Response::new(body.boxed_unsync()))
    }

    #[tokio::test]
    async fn a_body_the_guest_has_ended_goes_out_whole_with_its_length() {
        let (sender, response) = streamed();
        sender.unbounded_send("Hello, ".into()).unwrap();
        sender.unbounded_send("world!".into()).unwrap();
        drop(sender);
        let settled = settle(response).await;
        assert_eq!(settled.body().size_hint().exact(), Some(13));
        let body = settled.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "Hello, world!");
    }

    #[tokio::test]
    async fn a_body_still_streaming_goes_out_after_the_turns_with_nothing_lost() {
        let (sender, response) = streamed();
        sender.unbounded_send("first ".into()).unwrap();
        let settled = settle(response).await;
        assert_eq!(settled.body().size_hint().exact(), None);
        sender.unbounded_send("and last".into()).unwrap();
        drop(sender);
        let body = settled.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "first and last");
    }
}
