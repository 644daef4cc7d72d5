//! Host-made `stream<T>` + `future<result<_, E>>` pairs for the async (p3) interfaces.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use wasmtime::StoreContextMut;
use wasmtime::component::{
    Accessor, Destination, FutureReader, HasData, StreamProducer, StreamReader, StreamResult,
    VecBuffer,
};

/// Sends `items` on a stream, then resolves the paired future with `Ok(())`. If the guest drops
/// the stream early the future still resolves.
struct ItemsThenDone<T, E> {
    items: std::collections::VecDeque<T>,
    done: Option<oneshot::Sender<Result<(), E>>>,
}

impl<T, E> Drop for ItemsThenDone<T, E> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(Ok(()));
        }
    }
}

impl<T, E, D> StreamProducer<D> for ItemsThenDone<T, E>
where
    T: Send + Sync + Unpin + 'static,
    E: Send + Unpin + 'static,
{
    type Item = T;
    type Buffer = VecBuffer<T>;

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        mut destination: Destination<'a, T, VecBuffer<T>>,
        _finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let room = destination.remaining(&mut store).unwrap_or(64);
        if room == 0 {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let take = room.min(self.items.len());
        let chunk: Vec<T> = self.items.drain(..take).collect();
        destination.set_buffer(chunk.into());
        if self.items.is_empty() {
            if let Some(done) = self.done.take() {
                let _ = done.send(Ok(()));
            }
            Poll::Ready(Ok(StreamResult::Dropped))
        } else {
            Poll::Ready(Ok(StreamResult::Completed))
        }
    }
}

/// A host-made stream and the future that reports how it ended.
pub type StreamAndDone<T, E> = (StreamReader<T>, FutureReader<Result<(), E>>);

/// A stream of `items` and a future that resolves `Ok(())` once they are all delivered.
pub fn items_then_done<T, E, U, D>(
    accessor: &Accessor<U, D>,
    items: Vec<T>,
) -> wasmtime::Result<StreamAndDone<T, E>>
where
    T: Send
        + Sync
        + Unpin
        + 'static
        + wasmtime::component::ComponentType
        + wasmtime::component::Lower
        + wasmtime::component::Lift,
    E: Send
        + Sync
        + Unpin
        + 'static
        + wasmtime::component::ComponentType
        + wasmtime::component::Lower
        + wasmtime::component::Lift,
    U: 'static,
    D: HasData,
{
    let (done, finished) = oneshot::channel();
    accessor.with(|mut access| {
        let stream = StreamReader::new(
            &mut access,
            ItemsThenDone {
                items: items.into(),
                done: Some(done),
            },
        )?;
        let future = FutureReader::new(&mut access, finished)?;
        Ok((stream, future))
    })
}
