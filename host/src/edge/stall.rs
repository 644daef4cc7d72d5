//! Telling a stream follower that is stuck from one that is merely behind.
//!
//! A JetStream consumer can stop delivering after the hub or a leaf link comes back, while the
//! stream moves on; the follower cannot see it from the consumer. So it checks now and then:
//! if it got further since the last check, all is well; else it asks the hub where the stream
//! ends. Behind and still not moving [`STALL_LIMIT`] later, or behind right after the hub
//! answered again following an outage, it is stuck: the follower makes its consumer anew.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// How long a follower may be behind its stream without moving before it is stuck.
pub const STALL_LIMIT: Duration = Duration::from_millis(250);

/// One follower's checks.
#[derive(Default)]
pub struct StallWatch {
    progress_at_last_check: u64,
    behind_since: Option<Instant>,
    /// The hub did not answer the last check.
    out_of_touch: bool,
}

impl StallWatch {
    /// At a check: whether the follower, now at `progress`, got further since the last one
    /// (then it need not ask the hub).
    pub fn progressed(&mut self, progress: u64) -> bool {
        let moved = progress > self.progress_at_last_check;
        if moved {
            self.progress_at_last_check = progress;
            self.behind_since = None;
        }
        moved
    }

    /// The hub did not answer: nothing newer can be missed meanwhile.
    pub fn unreachable(&mut self) {
        self.out_of_touch = true;
    }

    /// The hub says the stream ends at `last`, and the follower is at `progress`: fails if the
    /// follower is stuck, else says when to check again if sooner than usual.
    pub fn compare(&mut self, progress: u64, last: u64) -> Result<Option<Duration>> {
        let came_back = std::mem::take(&mut self.out_of_touch);
        if last <= progress {
            self.behind_since = None;
            return Ok(None);
        }
        if came_back {
            bail!("the hub is back, at {last}; this follower is at {progress}");
        }
        let since = *self.behind_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= STALL_LIMIT {
            bail!("stuck at {progress}, while the stream is at {last}");
        }
        Ok(Some(STALL_LIMIT.saturating_sub(since.elapsed())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_that_moves_or_is_at_the_end_is_fine_and_one_left_behind_is_stuck() {
        let mut watch = StallWatch::default();
        assert!(watch.progressed(5));
        assert_eq!(watch.compare(5, 5).unwrap(), None);
        assert!(!watch.progressed(5));
        let again = watch
            .compare(5, 7)
            .unwrap()
            .expect("behind: check again soon");
        assert!(again <= STALL_LIMIT);
        std::thread::sleep(STALL_LIMIT);
        assert!(watch.compare(5, 7).is_err());
    }

    #[test]
    fn a_follower_behind_when_the_hub_answers_again_is_stuck_at_once() {
        let mut watch = StallWatch::default();
        watch.unreachable();
        assert_eq!(watch.compare(3, 3).unwrap(), None);
        watch.unreachable();
        assert!(watch.compare(3, 4).is_err());
    }
}
