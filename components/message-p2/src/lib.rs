//! A Redis trigger component written with spin-sdk 5's `#[redis_component]` (it exports
//! `fermyon:spin/inbound-redis`): each message is recorded in the `default` key-value store
//! under its own text, with the value `spin-sdk 5`. The message `fail` returns an error and
//! `panic` traps, to show that neither stops the next message.

use anyhow::{Result, bail};
use bytes::Bytes;
use spin_sdk::key_value::Store;
use spin_sdk::redis_component;

#[redis_component]
fn on_message(message: Bytes) -> Result<()> {
    let text = std::str::from_utf8(&message)?;
    match text {
        "fail" => bail!("asked to fail"),
        "panic" => panic!("asked to panic"),
        _ => {
            Store::open_default()?.set(text, b"spin-sdk 5")?;
            Ok(())
        }
    }
}
