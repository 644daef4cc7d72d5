//! Throttling: a token bucket (GCRA, from `governor`) per route, per client address or per
//! identity. Over the limit, the answer says when to come back (`Retry-After`).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::manifest::{RateKey, RateLimit};

/// How often buckets that filled up again are forgotten, so memory follows the active clients.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// The buckets of one route.
pub struct Throttle {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    per: RateKey,
}

impl Throttle {
    /// Buckets for `limit`; a background task forgets idle ones.
    pub fn new(limit: &RateLimit) -> Self {
        let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limit.burst).unwrap_or(per_second);
        let limiter = Arc::new(RateLimiter::keyed(
            Quota::per_second(per_second).allow_burst(burst),
        ));
        let forgetting = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FORGET_EVERY).await;
                let Some(limiter) = forgetting.upgrade() else {
                    return;
                };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
        Self {
            limiter,
            per: limit.per,
        }
    }

    /// Takes one token for this request; `Err` holds how long until one is free.
    pub fn admit(&self, client: &str, identity: Option<&str>) -> Result<(), Duration> {
        let key = match (self.per, identity) {
            (RateKey::Route, _) => "",
            (RateKey::Identity, Some(identity)) => identity,
            (RateKey::Client | RateKey::Identity, _) => client,
        };
        self.limiter
            .check_key(&key.to_string())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// A `Retry-After` value: whole seconds, at least 1.
pub fn retry_after(wait: Duration) -> String {
    wait.as_secs_f64().ceil().max(1.0).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn burst_then_refusal_per_client() {
        let throttle = Throttle::new(&RateLimit {
            per_second: 1,
            burst: 2,
            per: RateKey::Client,
        });
        assert!(throttle.admit("a", None).is_ok());
        assert!(throttle.admit("a", None).is_ok());
        let wait = throttle.admit("a", None).unwrap_err();
        assert!(wait <= Duration::from_secs(1));
        assert_eq!(retry_after(wait), "1");
        // Another client has its own bucket.
        assert!(throttle.admit("b", None).is_ok());
    }
}
