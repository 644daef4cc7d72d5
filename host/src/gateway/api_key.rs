//! The API-key authorizer: a key in a header, looked up by its SHA-256 (keys are stored only
//! hashed), then held to its usage plan: a token bucket per key and a quota per UTC day or
//! month. Quota counts live in the data tier (the host's `gateway` store in the state
//! directory): a call is counted durably before it is let through, so neither a restart nor a
//! crash hands out a fresh quota.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::request::Parts;
use sha2::{Digest as _, Sha256};
use time::{Date, OffsetDateTime, Time};

use super::auth::Denial;
use super::identity::Identity;
use crate::data::kv::SharedStore;
use crate::manifest::{ApiKeySettings, QuotaPeriod};

/// One configured API-key authorizer.
pub struct ApiKeyAuthorizer {
    name: String,
    settings: ApiKeySettings,
    /// A token bucket per key, one limiter per plan that has a rate.
    rates: HashMap<String, DefaultKeyedRateLimiter<String>>,
    /// Where quota counts are kept: `quota/<authorizer>/<period>/<key id>`.
    counts: SharedStore,
}

impl ApiKeyAuthorizer {
    /// Prepares authorizer `name`, counting quotas in `counts`.
    pub fn new(name: &str, settings: ApiKeySettings, counts: SharedStore) -> Arc<Self> {
        let rates = settings
            .plans
            .iter()
            .filter_map(|(plan_name, plan)| {
                let per_second = NonZeroU32::new(plan.per_second?)?;
                let burst = plan.burst.and_then(NonZeroU32::new).unwrap_or(per_second);
                let quota = Quota::per_second(per_second).allow_burst(burst);
                Some((plan_name.clone(), RateLimiter::keyed(quota)))
            })
            .collect();
        Arc::new(Self {
            name: name.to_string(),
            settings,
            rates,
            counts,
        })
    }

    /// Finds the request's key: the caller's identity and the key's plan.
    pub fn identify(&self, parts: &Parts) -> Result<(Identity, Option<String>), Denial> {
        let presented = parts
            .headers
            .get(self.settings.header.as_str())
            .map(|value| value.as_bytes())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| {
                Denial::unauthorized(format!(
                    "an API key is required in `{}`",
                    self.settings.header
                ))
            })?;
        let hash = hex::encode(Sha256::digest(presented));
        let key = self
            .settings
            .keys
            .get(&hash)
            .ok_or_else(|| Denial::unauthorized("the API key is not valid".into()))?;
        let identity = Identity {
            authorizer: self.name.clone(),
            subject: key.id.clone(),
            scopes: key.scopes.clone(),
            details: key
                .plan
                .as_ref()
                .map(|plan| ("plan".to_string(), plan.clone()))
                .into_iter()
                .collect(),
        };
        Ok((identity, key.plan.clone()))
    }

    /// Charges one request to key `key_id` on `plan`: its rate, then its quota.
    pub async fn charge(&self, key_id: &str, plan: &str) -> Result<(), Denial> {
        if let Some(limiter) = self.rates.get(plan)
            && let Err(not_until) = limiter.check_key(&key_id.to_string())
        {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(Denial::throttled(
                "the key's rate limit is reached".into(),
                wait,
            ));
        }
        match self.settings.plans.get(plan).and_then(|plan| plan.quota) {
            Some((limit, period)) => self.count(key_id, limit, period).await,
            None => Ok(()),
        }
    }

    /// Counts one request against the key's quota for the current period. The count is
    /// raised first, durably, and lowered again if that went over the quota, so concurrent
    /// calls never let more than the quota through and a refused call is not counted.
    async fn count(&self, key_id: &str, limit: u64, period: QuotaPeriod) -> Result<(), Denial> {
        let now = OffsetDateTime::now_utc();
        let (label, next) = current_period(now, period);
        let key = format!("quota/{}/{label}/{key_id}", self.name);
        let unavailable = |error: crate::data::kv::KvError| {
            tracing::error!(authorizer = %self.name, "cannot count the key's quota: {error}");
            Denial::unavailable("the key's quota cannot be counted just now".into())
        };
        let used = self.counts.increment(&key, 1).await.map_err(unavailable)?;
        if u64::try_from(used).unwrap_or(u64::MAX) <= limit {
            return Ok(());
        }
        self.counts.increment(&key, -1).await.map_err(unavailable)?;
        let wait = (next - now).try_into().unwrap_or(Duration::from_secs(1));
        Err(Denial::throttled(
            format!("the key's quota of {limit} requests per {period:?} is used up").to_lowercase(),
            wait,
        ))
    }
}

/// The label of the period `now` is in (`2026-11-27` or `2026-11`) and when the next starts.
fn current_period(now: OffsetDateTime, period: QuotaPeriod) -> (String, OffsetDateTime) {
    let today = now.date();
    let (label, next_start) = match period {
        QuotaPeriod::Day => (today.to_string(), today.next_day().unwrap_or(today)),
        QuotaPeriod::Month => {
            let first = Date::from_calendar_date(today.year(), today.month(), 1).unwrap_or(today);
            let next_month = today.month().next();
            let year = if next_month == time::Month::January {
                today.year() + 1
            } else {
                today.year()
            };
            (
                format!("{}-{:02}", today.year(), u8::from(today.month())),
                Date::from_calendar_date(year, next_month, 1).unwrap_or(first),
            )
        }
    };
    (label, next_start.with_time(Time::MIDNIGHT).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_roll_over_at_utc_midnight_and_month_start() {
        let now = time::macros::datetime!(2026-12-31 23:59:30 UTC);
        let (day, next) = current_period(now, QuotaPeriod::Day);
        assert_eq!(day, "2026-12-31");
        assert_eq!(next, time::macros::datetime!(2027-01-01 00:00 UTC));
        let (month, next) = current_period(now, QuotaPeriod::Month);
        assert_eq!(month, "2026-12");
        assert_eq!(next, time::macros::datetime!(2027-01-01 00:00 UTC));
    }
}
