//! Host-made `stream<T>` + `future<result<_, E>>` pairs for the async (p3) interfaces.
//!
//! A guest may consume such a pair in any order: await the future first (spin-sdk 7's
//! `execute(..).await?.result().await?`), read the stream first, read it halfway, drop the
//! stream unread, or drop both. So the future never waits on the stream: every pair made here
//! carries a result that is already known when the pair is made.

use wasmtime::component::StreamReader;
use wasmtime::component::{Accessor, ComponentType, FutureReader, HasData, Lift, Lower};

/// A host-made stream and the future that reports how it ended.
pub type StreamAndResult<T, E> = (StreamReader<T>, FutureReader<Result<(), E>>);

/// A stream of `items` and a future that resolves to `outcome` at once, whatever the guest
/// does with the stream.
pub fn finished_stream<T, E, U, D>(
    accessor: &Accessor<U, D>,
    items: Vec<T>,
    outcome: Result<(), E>,
) -> wasmtime::Result<StreamAndResult<T, E>>
where
    T: Send + Sync + Unpin + 'static + ComponentType + Lower + Lift,
    E: Send + Sync + Unpin + 'static + ComponentType + Lower + Lift,
    U: 'static,
    D: HasData,
{
    accessor.with(|mut access| {
        let stream = StreamReader::new(&mut access, items)?;
        let future = FutureReader::new(
            &mut access,
            std::future::ready(wasmtime::error::Ok(outcome)),
        )?;
        Ok((stream, future))
    })
}
