//! Throttling, `rate_limit = { per_second, burst, per }`: a token bucket (GCRA, from
//! `governor`) per route, per client address or per identity. Over the limit, the answer says
//! when to come back (`Retry-After`).

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::StatusCode;
use http::header::{self, HeaderValue};
use serde::Deserialize;

use super::policy::{
    Configure, Policy, RoutePolicyKind, Screening, Stage, Table, Verdict, decided,
};
use crate::manifest::ManifestError;
use crate::reply::text;

/// `rate_limit = { per_second, burst, per }`.
pub const POLICY: RoutePolicyKind = RoutePolicyKind {
    keys: &["rate_limit"],
    configure,
};

/// How often buckets that filled up again are forgotten, so memory follows the active clients.
const FORGET_EVERY: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimit {
    per_second: u32,
    burst: Option<u32>,
    per: Option<String>,
}

/// What a bucket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RateKey {
    /// One bucket for the whole route.
    Route,
    /// One bucket per client address.
    Client,
    /// One bucket per authenticated identity (the token's subject); anonymous requests share
    /// the client-address buckets.
    Identity,
}

/// The buckets of one route.
struct Throttle {
    limiter: DefaultKeyedRateLimiter<String>,
    per: RateKey,
    per_second: NonZeroU32,
    burst: NonZeroU32,
    /// When idle buckets were last forgotten.
    forgotten: Mutex<Instant>,
}

fn configure(config: &Configure<'_>, table: &Table) -> Result<Box<dyn Policy>, ManifestError> {
    let at = &table["rate_limit"];
    let raw: RateLimit = config.read(at)?;
    let (Some(per_second), Some(burst)) = (
        NonZeroU32::new(raw.per_second),
        NonZeroU32::new(raw.burst.unwrap_or(raw.per_second)),
    ) else {
        return Err(config
            .error(at, "`per_second` and `burst` must be at least 1")
            .fix("use `methods` or `waf` to refuse a route outright"));
    };
    let per = match raw.per.as_deref() {
        None | Some("client") => RateKey::Client,
        Some("route") => RateKey::Route,
        Some("identity") => RateKey::Identity,
        Some(other) => {
            return Err(config
                .error(at, format!("`per`: unknown bucket `{other}`"))
                .fix("use \"client\" (the default), \"route\" or \"identity\""));
        }
    };
    Ok(Box::new(Throttle::new(per_second, burst, per)))
}

impl Throttle {
    fn new(per_second: NonZeroU32, burst: NonZeroU32, per: RateKey) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            per,
            per_second,
            burst,
            forgotten: Mutex::new(Instant::now()),
        }
    }

    /// Takes one token for this request; `Err` holds how long until one is free.
    fn take(&self, client: &str, identity: Option<&str>) -> Result<(), Duration> {
        self.forget_idle();
        let key = match (self.per, identity) {
            (RateKey::Route, _) => "",
            (RateKey::Identity, Some(identity)) => identity,
            (RateKey::Client | RateKey::Identity, _) => client,
        };
        self.limiter
            .check_key(&key.to_string())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets the buckets that filled up again, once every [`FORGET_EVERY`]; a request that
    /// finds another one doing it goes on.
    fn forget_idle(&self) {
        let Ok(mut forgotten) = self.forgotten.try_lock() else {
            return;
        };
        if forgotten.elapsed() >= FORGET_EVERY {
            *forgotten = Instant::now();
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }
}

impl Policy for Throttle {
    /// Buckets by identity wait for the caller to be known; the others run before any
    /// authorizer, so a flood never reaches one.
    fn stage(&self) -> Stage {
        match self.per {
            RateKey::Identity => Stage::Identified,
            RateKey::Route | RateKey::Client => Stage::Anonymous,
        }
    }

    fn summary(&self) -> String {
        format!("{}/s burst {}", self.per_second, self.burst)
    }

    fn admit<'s>(&'s self, screening: &'s mut Screening<'_, '_>) -> BoxFuture<'s, Verdict> {
        let client = screening.client.to_string();
        let identity = screening.record.identity.as_deref();
        decided(self.take(&client, identity).map_err(|wait| {
            screening.record.outcome = Some("throttled");
            let mut response = text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&retry_after(wait)).expect("digits"),
            );
            response
        }))
    }
}

/// A `Retry-After` value: whole seconds, at least 1.
pub fn retry_after(wait: Duration) -> String {
    wait.as_secs_f64().ceil().max(1.0).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per: RateKey) -> Throttle {
        Throttle::new(NonZeroU32::MIN, NonZeroU32::new(2).unwrap(), per)
    }

    #[test]
    fn burst_then_refusal_per_client() {
        let throttle = throttle(RateKey::Client);
        assert!(throttle.take("a", None).is_ok());
        assert!(throttle.take("a", None).is_ok());
        let wait = throttle.take("a", None).unwrap_err();
        assert!(wait <= Duration::from_secs(1));
        assert_eq!(retry_after(wait), "1");
        // Another client has its own bucket.
        assert!(throttle.take("b", None).is_ok());
    }

    #[test]
    fn identities_have_their_own_buckets_and_anonymous_callers_share_the_address() {
        let throttle = throttle(RateKey::Identity);
        assert_eq!(throttle.stage(), Stage::Identified);
        for _ in 0..2 {
            assert!(throttle.take("10.0.0.1", Some("alice")).is_ok());
        }
        assert!(throttle.take("10.0.0.1", Some("alice")).is_err());
        assert!(throttle.take("10.0.0.1", Some("bob")).is_ok());
        assert!(throttle.take("10.0.0.1", None).is_ok());

        let route = throttle_route();
        assert_eq!(route.stage(), Stage::Anonymous);
        assert!(route.take("a", None).is_ok());
        assert!(route.take("b", None).is_ok());
        assert!(route.take("c", None).is_err());
    }

    fn throttle_route() -> Throttle {
        throttle(RateKey::Route)
    }
}
