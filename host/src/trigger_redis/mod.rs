//! Spin's Redis trigger (`[[trigger.redis]]`): ledge subscribes to each trigger's channel on
//! its server and runs the trigger's component on every message published there, each in a
//! fresh instance, several at once. A handler that fails (an error, a trap, a timeout) is
//! logged and the next message is handled as usual. The first connection is made at start-up,
//! so a wrong address stops `ledge up`; a connection lost later is made again.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use futures::StreamExt as _;

use crate::engine::MessageHandler;

/// One channel subscribed to, and who handles its messages.
pub struct Subscription {
    /// The server, `redis://host:port`.
    pub address: String,
    /// The channel.
    pub channel: String,
    /// The handling component's id, for the log.
    pub component: String,
    /// Runs the component on a message.
    pub handler: Arc<MessageHandler>,
}

/// How long to wait before connecting again after the server went away.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Subscribes to every channel, failing if one cannot be subscribed to, then handles their
/// messages until the returned [`Listening`] is dropped.
pub async fn subscribe(subscriptions: Vec<Subscription>) -> Result<Listening> {
    let mut listeners = Vec::new();
    for subscription in subscriptions {
        let pubsub = connect(&subscription).await?;
        println!(
            "Subscribed to Redis channel `{}` at {}: component `{}`",
            subscription.channel, subscription.address, subscription.component
        );
        listeners.push(tokio::spawn(listen(Arc::new(subscription), pubsub)));
    }
    Ok(Listening(listeners))
}

/// An app's subscriptions, listening until this is dropped (when the app version that made
/// them is replaced).
pub struct Listening(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Listening {
    fn drop(&mut self) {
        for listener in &self.0 {
            listener.abort();
        }
    }
}

async fn connect(subscription: &Subscription) -> Result<redis::aio::PubSub> {
    let unreachable = |error: redis::RedisError| {
        anyhow!(
            "cannot subscribe to Redis channel `{}` at {} (component `{}`): {error}",
            subscription.channel,
            subscription.address,
            subscription.component
        )
    };
    let client = redis::Client::open(subscription.address.as_str()).map_err(unreachable)?;
    let mut pubsub = client.get_async_pubsub().await.map_err(unreachable)?;
    pubsub
        .subscribe(&subscription.channel)
        .await
        .map_err(unreachable)?;
    Ok(pubsub)
}

/// Handles the messages of one subscription, forever.
async fn listen(subscription: Arc<Subscription>, mut pubsub: redis::aio::PubSub) {
    loop {
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let payload = message.get_payload_bytes().to_vec();
            let subscription = subscription.clone();
            tokio::spawn(async move {
                if let Err(error) = subscription.handler.handle(payload).await {
                    tracing::error!(
                        component = %subscription.component,
                        channel = %subscription.channel,
                        "a Redis message was not handled: {error}"
                    );
                }
            });
        }
        drop(messages);
        tracing::warn!(
            channel = %subscription.channel,
            "lost the connection to {}; connecting again",
            subscription.address
        );
        pubsub = loop {
            tokio::time::sleep(RECONNECT_DELAY).await;
            match connect(&subscription).await {
                Ok(pubsub) => break pubsub,
                Err(error) => tracing::warn!("{error:#}"),
            }
        };
    }
}
