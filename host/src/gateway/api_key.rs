//! The API-key authorizer: a key in a header, looked up by its SHA-256 (keys are stored only
//! hashed), then held to its usage plan: a token bucket per key and a quota per UTC day or
//! month. Quota counts are kept in the state directory (`gateway.sqlite`), flushed every few
//! seconds, so a restart does not hand out a fresh quota.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::request::Parts;
use rusqlite::Connection;
use sha2::{Digest as _, Sha256};
use time::{Date, OffsetDateTime, Time};

use super::auth::Denial;
use super::identity::Identity;
use crate::manifest::{ApiKeySettings, QuotaPeriod};

/// How often quota counts are written to disk.
const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// One configured API-key authorizer.
pub struct ApiKeyAuthorizer {
    name: String,
    settings: ApiKeySettings,
    /// A token bucket per key, one limiter per plan that has a rate.
    rates: HashMap<String, DefaultKeyedRateLimiter<String>>,
    usage: Arc<Mutex<Usage>>,
}

/// Quota counts: (key id, period) -> requests, plus which changed since the last flush.
#[derive(Default)]
struct Usage {
    counts: HashMap<(String, String), u64>,
    dirty: Vec<(String, String)>,
}

impl ApiKeyAuthorizer {
    /// Prepares authorizer `name`, loading its quota counts from `database`.
    pub fn load(name: &str, settings: ApiKeySettings, database: &Path) -> Result<Arc<Self>> {
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
        let db = open(database)
            .with_context(|| format!("authorizer `{name}`: cannot open {}", database.display()))?;
        let mut usage = Usage::default();
        {
            let mut statement =
                db.prepare("SELECT key_id, period, count FROM quota_usage WHERE authorizer = ?1")?;
            let rows = statement.query_map([name], |row| {
                Ok(((row.get(0)?, row.get(1)?), row.get::<_, i64>(2)?))
            })?;
            for row in rows {
                let (key, count) = row?;
                usage.counts.insert(key, u64::try_from(count).unwrap_or(0));
            }
        }
        let usage = Arc::new(Mutex::new(usage));
        let authorizer_name = name.to_string();
        let flushing = Arc::downgrade(&usage);
        // A plain thread: it must not keep the async runtime from shutting down.
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(FLUSH_EVERY);
                let Some(usage) = flushing.upgrade() else {
                    return;
                };
                if let Err(error) = flush(&db, &authorizer_name, &usage) {
                    tracing::warn!(
                        "authorizer `{authorizer_name}`: cannot save quota counts: {error}"
                    );
                }
            }
        });
        Ok(Arc::new(Self {
            name: name.to_string(),
            settings,
            rates,
            usage,
        }))
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
    pub fn charge(&self, key_id: &str, plan: &str) -> Result<(), Denial> {
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
            Some((limit, period)) => self.count(key_id, limit, period),
            None => Ok(()),
        }
    }

    /// Counts one request against the key's quota for the current period.
    fn count(&self, key_id: &str, limit: u64, period: QuotaPeriod) -> Result<(), Denial> {
        let now = OffsetDateTime::now_utc();
        let (label, next) = current_period(now, period);
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let entry = (key_id.to_string(), label);
        let used = usage.counts.entry(entry.clone()).or_insert(0);
        if *used >= limit {
            let wait = (next - now).try_into().unwrap_or(Duration::from_secs(1));
            return Err(Denial::throttled(
                format!("the key's quota of {limit} requests per {period:?} is used up")
                    .to_lowercase(),
                wait,
            ));
        }
        *used += 1;
        usage.dirty.push(entry);
        Ok(())
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

fn open(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let db = Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS quota_usage (
             authorizer TEXT NOT NULL, key_id TEXT NOT NULL, period TEXT NOT NULL,
             count INTEGER NOT NULL, PRIMARY KEY (authorizer, key_id, period))",
    )?;
    Ok(db)
}

/// Writes the counts that changed since the last flush.
fn flush(db: &Connection, authorizer: &str, usage: &Mutex<Usage>) -> rusqlite::Result<()> {
    let changed: Vec<((String, String), u64)> = {
        let mut usage = usage.lock().unwrap_or_else(|p| p.into_inner());
        let mut dirty = std::mem::take(&mut usage.dirty);
        dirty.sort();
        dirty.dedup();
        dirty
            .into_iter()
            .map(|key| {
                let count = usage.counts.get(&key).copied().unwrap_or(0);
                (key, count)
            })
            .collect()
    };
    if changed.is_empty() {
        return Ok(());
    }
    let mut statement = db.prepare_cached(
        "INSERT INTO quota_usage (authorizer, key_id, period, count) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (authorizer, key_id, period) DO UPDATE SET count = excluded.count",
    )?;
    for ((key_id, period), count) in changed {
        statement.execute(rusqlite::params![
            authorizer,
            key_id,
            period,
            i64::try_from(count).unwrap_or(i64::MAX)
        ])?;
    }
    Ok(())
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
