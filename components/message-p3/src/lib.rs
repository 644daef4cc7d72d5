//! A Redis trigger component written with spin-sdk 7's `#[redis_subscriber]` (it exports
//! `spin:redis/inbound-redis@3.0.0`, asynchronous): each message is recorded in the `default`
//! key-value store under its own text, with the value `spin-sdk 7`. The message `fail`
//! returns an error and `panic` traps, to show that neither stops the next message.

use anyhow::{Result, bail};
use bytes::Bytes;
use spin_sdk::key_value::Store;
use spin_sdk::redis_subscriber;

#[redis_subscriber]
async fn on_message(message: Bytes) -> Result<()> {
    let text = std::str::from_utf8(&message)?;
    match text {
        "fail" => bail!("asked to fail"),
        "panic" => panic!("asked to panic"),
        _ => {
            Store::open_default().await?.set(text, b"spin-sdk 7").await?;
            Ok(())
        }
    }
}
